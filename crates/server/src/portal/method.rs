//! Choosing the second-factor method among those the user has set up.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use radmfa_store::{Method, TokenKind};
use tracing::info;

use crate::admin::{AdminRequest, UserChange};
use crate::hot::CachedUser;

use super::home::method_msg;
use super::html::{alert, csrf_field, esc, page};
use super::i18n::Msg;
use super::respond::{field, html_response, take_notice};
use super::state::{Portal, SignedIn};

// ---------------------------------------------------------------- method

/// A form page of the signed-in user with the pending notice on top, drawn
/// by `render` (see [`Portal::signed_in`] for `pin_page`).
pub(super) fn notice_page(
    p: &Portal,
    headers: &HeaderMap,
    pin_page: bool,
    render: fn(&Portal, &SignedIn, &str, StatusCode, u64) -> Response,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(headers, now, pin_page) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    render(p, &si, &message, StatusCode::OK, now)
}

/// The methods this user can choose now.
pub(super) fn available_methods(p: &Portal, user: &CachedUser) -> Vec<Method> {
    let mut out = Vec::new();
    match user.token.as_ref().map(|t| t.kind) {
        Some(TokenKind::Totp) => out.push(Method::Totp),
        Some(TokenKind::Hotp) => out.push(Method::Hotp),
        None => {}
    }
    if !user.user.phone.is_empty() && p.node.portal_can_send_sms() {
        out.extend([Method::Sms, Method::SmsTwoWay, Method::Call]);
    }
    let web_push = !user.user.push_devices.is_empty();
    if web_push || (!user.user.device_token.is_empty() && p.node.portal_can_send_sms()) {
        out.push(Method::Push);
    }
    out
}

pub(super) fn method_response(
    p: &Portal,
    si: &SignedIn,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let current = si.user.user.method;
    let mut radios = String::new();
    for m in available_methods(p, &si.user) {
        radios.push_str(&format!(
            "<label><input type=\"radio\" name=\"method\" value=\"{v}\"{checked}> {text}</label>",
            v = m.as_str(),
            checked = if m == current { " checked" } else { "" },
            text = t(method_msg(m)),
        ));
    }
    let body = if radios.is_empty() {
        format!("{message}{}", alert(Msg::MethodUnavailable.text(lang)))
    } else {
        format!(
            "{message}<form method=\"post\" action=\"/method\">{csrf}<fieldset><legend>{hint}</legend>{radios}</fieldset><button type=\"submit\">{go}</button></form>",
            csrf = csrf_field(&si.s.csrf),
            hint = t(Msg::MethodHint),
            go = t(Msg::Save),
        )
    };
    let html = page(&p.chrome(si), Msg::MethodTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

pub(super) async fn method_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    notice_page(&p, &headers, false, method_response)
}

pub(super) async fn method_set(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let chosen = field(&form, "method").parse::<Method>().ok();
    let Some(method) = chosen.filter(|m| available_methods(&p, &si.user).contains(m)) else {
        return method_response(
            &p,
            &si,
            &alert(Msg::MethodUnavailable.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    };
    let name = si.name().to_string();
    let req = AdminRequest::UserSet(UserChange {
        name: name.clone(),
        display_name: None,
        email: None,
        language: None,
        phone: None,
        method: Some(method),
        device_token: None,
        groups: None,
    });
    if !p.write(&name, "change the method", req).await {
        return method_response(
            &p,
            &si,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), method = %method, "method changed in the portal");
    p.home_with(si.s, Msg::MethodSaved, now)
}
