//! The approval page a push notification opens (`/approve/{id}`): what is
//! signing in (application, source, time; the number to type when the
//! policy asks for number matching; a PIN field in PIN mode) and Approve /
//! Deny / "This was not me". The id (128 random bits, in the pushed message
//! only) is the bearer capability: no portal session is needed, the page
//! may open on a phone that never signed in to the portal. The decision
//! goes into the verification registry of the node that owns it (over the
//! peer link when the balancer sent the page to another node,
//! `callback::deliver`), which wakes the waiting login; it counts there (lockout, fraud lock) like any second factor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use tracing::info;

use crate::callback::push::{ApprovalView, PushAction};
use crate::callback::{deliver, Answer, Delivered};

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

/// What the page of push verification `id` shows, asked of the node that
/// owns it (over the peer link when that is another node).
async fn pending(p: &Portal, id: &str) -> Option<ApprovalView> {
    let asked = Answer::Push {
        id: id.to_string(),
        action: PushAction::View,
    };
    match deliver(&p.node, asked).await {
        Delivered::Page { view } => Some(view),
        _ => None,
    }
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
    let Some(v) = pending(&p, &id).await else {
        return gone(lang);
    };
    // The page speaks the language of the user signing in (who may open it
    // in a browser set to another one).
    let lang = p
        .node
        .portal_user(&v.user)
        .ok()
        .flatten()
        .and_then(|c| Lang::parse(&c.user.language))
        .unwrap_or(lang);
    let t = |m: Msg| esc(m.text(lang));
    let source = match (&v.calling_station, &v.nas_ip) {
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
        app = esc(&v.client),
        ls = t(Msg::ApproveSource),
        source = esc(&source),
        lt = t(Msg::ApproveTime),
        time = esc(&super::html::utc(v.at_unix.saturating_mul(1000))),
    );
    if let Some(n) = v.number {
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
    let pin = zeroize::Zeroizing::new(field(&form, "pin").to_string());
    let (action, done) = match field(&form, "decision") {
        "approve" => (
            PushAction::Approve {
                pin: pin.to_string(),
            },
            Msg::ApprovedText,
        ),
        "deny" => (PushAction::Deny, Msg::DeniedText),
        "not_me" => (PushAction::NotMe, Msg::NotMeText),
        _ => return message_page(lang, Msg::FormExpired, StatusCode::BAD_REQUEST),
    };
    let answer = Answer::Push {
        id: id.clone(),
        action,
    };
    let Delivered::Done { outcome, .. } = deliver(&p.node, answer).await else {
        return gone(lang);
    };
    info!(
        approval = %crate::text::Escaped(&id),
        outcome = outcome.as_str(),
        "push approval answered on the approval page"
    );
    let html = page(&chrome(lang), Msg::ApproveTitle, &notice(done.text(lang)));
    html_response(StatusCode::OK, html, None)
}
