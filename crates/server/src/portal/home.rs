//! The home page (recent sign-ins, current methods), reporting a sign-in
//! that was not the user's, and signing out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use radmfa_store::Method;
use tracing::warn;

use crate::admin::{AdminError, AdminRequest};
use crate::https::Peer;
use crate::pipeline::Node;

use super::html::{self, alert, csrf_field, esc, notice, page, Chrome};
use super::i18n::Msg;
use super::respond::{field, forbidden, html_response, message_page, redirect, take_notice};
use super::session::{self};
use super::state::Portal;

// ---------------------------------------------------------------- home

pub(super) fn method_msg(m: Method) -> Msg {
    match m {
        Method::Totp => Msg::MethodTotp,
        Method::Hotp => Msg::MethodHotp,
        Method::Sms => Msg::MethodSms,
        Method::SmsTwoWay => Msg::MethodSmsTwoWay,
        Method::Call => Msg::MethodCall,
        Method::Push => Msg::MethodPush,
        Method::None => Msg::MethodNone,
    }
}

pub(super) async fn home(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let u = &si.user.user;
    // The whole cluster's: on a replica asked of the primary, or this
    // node's copy when the primary is unreachable.
    let recent = AdminRequest::Report {
        user: Some(u.name.clone()),
        result: None,
        since_ms: None,
        limit: Some(10),
        until_ms: None,
        method: None,
        client: None,
        sign_ins_only: true,
    };
    let records = crate::control::dispatch(&p.node, recent)
        .await
        .map_err(|e| e.to_string())
        .and_then(|v| {
            serde_json::from_value::<crate::admin::AuditReport>(v).map_err(|e| e.to_string())
        })
        .map_err(|e| warn!(error = %e, "audit read failed"))
        .ok()
        .map(|r| r.records);
    let mut body = take_notice(&mut si.s, lang);
    if si.user.token.is_none() && u.phone.is_empty() {
        body.push_str(&format!(
            "<div class=\"alert\" id=\"no-second-factor\">{} <a href=\"/enroll\">{}</a> · <a href=\"/phone\">{}</a></div>",
            t(Msg::NoSecondFactor),
            t(Msg::NavApp),
            t(Msg::NavPhone)
        ));
    }
    let who = if u.display_name.is_empty() {
        esc(&u.name)
    } else {
        format!("{} ({})", esc(&u.display_name), esc(&u.name))
    };
    body.push_str(&format!(
        "<dl><dt>{la}</dt><dd id=\"account\">{who}</dd><dt>{lm}</dt><dd id=\"method\">{m}</dd>\
<dt>{lp}</dt><dd id=\"phone\">{ph}</dd><dt>{lapp}</dt><dd id=\"app\">{app}</dd><dt>{lpin}</dt><dd id=\"pin-mode\">{pin}</dd></dl>",
        la = t(Msg::Account),
        lm = t(Msg::MethodLabel),
        m = t(method_msg(u.method)),
        lp = t(Msg::PhoneLabel),
        ph = if u.phone.is_empty() { t(Msg::NoPhone) } else { esc(&html::mask_phone(&u.phone)) },
        lapp = t(Msg::AppLabel),
        app = if si.user.token.is_some() { t(Msg::Enrolled) } else { t(Msg::NotEnrolled) },
        lpin = t(Msg::PinModeLabel),
        pin = if u.pin.is_some() { t(Msg::PinOn) } else { t(Msg::PinOff) },
    ));
    body.push_str(&format!("<h2>{}</h2>", t(Msg::RecentSignIns)));
    match records {
        None => body.push_str(&alert(Msg::TryAgain.text(lang))),
        Some(r) if r.is_empty() => body.push_str(&format!("<p>{}</p>", t(Msg::NoSignIns))),
        Some(r) => {
            body.push_str(&format!(
                "<table id=\"signins\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                t(Msg::When),
                t(Msg::Outcome),
                t(Msg::How),
                t(Msg::Where),
                t(Msg::Report)
            ));
            for rec in r.iter().rev() {
                let when = html::utc(rec.time_ms);
                let result = match rec.result.as_str() {
                    "accept" => t(Msg::ResultAccept),
                    "reject" => t(Msg::ResultReject),
                    "challenge" => t(Msg::ResultChallenge),
                    other => esc(other),
                };
                let from = if rec.calling_station.is_empty() {
                    format!("{} ({})", esc(&rec.client_name), esc(&rec.client_ip))
                } else {
                    format!("{} ({})", esc(&rec.client_name), esc(&rec.calling_station))
                };
                body.push_str(&format!(
                    "<tr><td>{when}</td><td>{result}</td><td>{mode}</td><td>{from}</td><td><form method=\"post\" action=\"/not-me\">{csrf}<input type=\"hidden\" name=\"t\" value=\"{ms}\"><button type=\"submit\" aria-label=\"{notme}: {when}\">{notme}</button></form></td></tr>",
                    mode = esc(&rec.mode),
                    csrf = csrf_field(&si.s.csrf),
                    ms = rec.time_ms,
                    notme = t(Msg::NotMe),
                ));
            }
            body.push_str("</tbody></table>");
        }
    }
    let html = page(&p.chrome(&si), Msg::HomeTitle, &body);
    html_response(StatusCode::OK, html, p.cookie(&si.s, now))
}

// ---------------------------------------------------------------- report, sign-out

/// "This was not me": records `fraud_reported_by_user` in the audit log and
/// disables the account, so whoever used it is locked out. The one place to
/// change when a proper lockout replaces the disabling.
pub(super) async fn report_not_me(
    node: &Arc<Node>,
    user: &str,
    reported_ms: u64,
    source: IpAddr,
) -> Result<(), AdminError> {
    node.portal_audit(user, "portal", "report", "fraud_reported_by_user", source);
    warn!(
        user,
        reported_sign_in_ms = reported_ms,
        "a user reported a sign-in as not theirs; disabling the account"
    );
    crate::control::dispatch_as(
        node,
        crate::admin::Actor::Portal {
            user: user.to_string(),
        },
        AdminRequest::UserDisableFraud {
            name: user.to_string(),
        },
    )
    .await
    .map(|_| ())
}

pub(super) async fn not_me(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, true, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let reported = field(&form, "t").parse::<u64>().unwrap_or(0);
    if let Err(e) = report_not_me(&p.node, si.name(), reported, peer.0.ip()).await {
        warn!(user = %crate::text::Escaped(si.name()), error = %e, "portal: cannot disable the account after a report");
        return message_page(lang, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE);
    }
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::ReportedTitle,
        &notice(Msg::ReportedText.text(lang)),
    );
    html_response(StatusCode::OK, body, Some(session::clear_cookie()))
}

pub(super) async fn signout(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let Some(s) = p.session(&headers, now) else {
        return redirect("/signin", Some(session::clear_cookie()));
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    p.to_signin(lang, Msg::SignedOut, now)
}
