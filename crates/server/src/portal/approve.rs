//! The approval page a push notification opens (`/approve/{id}`): what is
//! signing in (application, source, time; the number to type when the
//! policy asks for number matching; a PIN field in PIN mode) and Approve /
//! Deny / "This was not me". The id (128 random bits, in the pushed message
//! only) is the bearer capability: no portal session is needed, the page
//! may open on a phone that never signed in to the portal. The decision
//! goes into the node's verification registry, which wakes the waiting
//! login; it counts there (lockout, fraud lock) like any second factor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use tracing::info;

use crate::verifications::{Decided, OobMode, Outcome, View};

use super::html::{esc, notice, page, Chrome};
use super::i18n::{Lang, Msg};
use super::respond::{field, forbidden, html_response, message_page};
use super::state::Portal;

fn chrome(lang: Lang) -> Chrome<'static> {
    Chrome {
        lang,
        signed_in_csrf: None,
        lang_switch: None,
    }
}

/// The pending push verification `id` on this node, if it can still be
/// answered.
fn pending(p: &Portal, id: &str) -> Option<View> {
    let v = p.node.verifications().view(id, p.clock.instant())?;
    (v.mode == OobMode::Push && !v.decided).then_some(v)
}

fn gone(lang: Lang) -> Response {
    message_page(lang, Msg::ApproveGone, StatusCode::GONE)
}

/// `GET /approve/{id}`.
pub(super) async fn approve_page(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let lang = p.lang_of(&headers, None);
    let Some(v) = pending(&p, &id) else {
        return gone(lang);
    };
    let t = |m: Msg| esc(m.text(lang));
    let c = &v.context;
    let source = match (&c.calling_station, c.nas_ip) {
        (Some(cs), Some(ip)) => format!("{cs} (NAS {ip})"),
        (Some(cs), None) => cs.clone(),
        (None, Some(ip)) => format!("NAS {ip}"),
        (None, None) => "-".to_string(),
    };
    let mut body = format!(
        "<p>{intro}</p><dl id=\"approval\"><dt>{lu}</dt><dd id=\"approval-user\">{user}</dd>\
<dt>{la}</dt><dd id=\"approval-app\">{app}</dd><dt>{ls}</dt><dd id=\"approval-source\">{source}</dd>\
<dt>{lt}</dt><dd id=\"approval-time\">{time}</dd></dl>",
        intro = t(Msg::ApproveIntro),
        lu = t(Msg::ApproveUser),
        user = esc(&v.user),
        la = t(Msg::ApproveApp),
        app = esc(&c.client),
        ls = t(Msg::ApproveSource),
        source = esc(&source),
        lt = t(Msg::ApproveTime),
        time = esc(&super::html::utc(c.at_unix.saturating_mul(1000))),
    );
    if let Some(n) = p.node.push_number(&id) {
        body.push_str(&format!(
            "<p>{}</p><p class=\"number\" id=\"approval-number\">{n:02}</p>",
            t(Msg::ApproveNumber)
        ));
    }
    body.push_str(&format!(
        "<form class=\"approve\" method=\"post\" action=\"/approve/{id}\">",
        id = esc(&id)
    ));
    if v.pin_mode {
        body.push_str(&format!(
            "<label for=\"pin\">{}</label><input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\">",
            t(Msg::Pin)
        ));
    }
    body.push_str(&format!(
        "<button type=\"submit\" name=\"decision\" value=\"approve\">{}</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">{}</button>\
<button type=\"submit\" name=\"decision\" value=\"not_me\">{}</button></form>",
        t(Msg::Approve),
        t(Msg::Deny),
        t(Msg::NotMe),
    ));
    let html = page(&chrome(lang), Msg::ApproveTitle, &body);
    html_response(StatusCode::OK, html, None)
}

/// `POST /approve/{id}`: the user's decision, once.
pub(super) async fn approve_decide(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = p.lang_of(&headers, None);
    if !p.origin_ok(&headers) {
        return forbidden(lang);
    }
    let (outcome, done) = match field(&form, "decision") {
        "approve" => (Outcome::Approved, Msg::ApprovedText),
        "deny" => (Outcome::Denied, Msg::DeniedText),
        "not_me" => (Outcome::Fraud, Msg::NotMeText),
        _ => return message_page(lang, Msg::FormExpired, StatusCode::BAD_REQUEST),
    };
    if pending(&p, &id).is_none() {
        return gone(lang);
    }
    let pin = zeroize::Zeroizing::new(field(&form, "pin").to_string());
    let mut user = String::new();
    let decided = p
        .node
        .verifications()
        .decide_with(&id, p.clock.instant(), |j| {
            user.clone_from(&j.view.user);
            match (outcome, j.pin_matches(&pin)) {
                (Outcome::Approved, Some(false)) => Outcome::WrongPin,
                (o, _) => o,
            }
        });
    if decided != Decided::Done {
        return gone(lang);
    }
    info!(
        user = %crate::text::Escaped(&user),
        decision = outcome.as_str(),
        "push approval answered on the approval page"
    );
    let html = page(&chrome(lang), Msg::ApproveTitle, &notice(done.text(lang)));
    html_response(StatusCode::OK, html, None)
}
