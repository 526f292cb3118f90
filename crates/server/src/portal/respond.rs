//! Building responses: the security headers every answer carries, HTML
//! pages and redirects, the message pages, and small form helpers. No state.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::limits::LockKind;

use super::html::{alert, esc, notice, page, Chrome};
use super::i18n::{Lang, Msg};
use super::session::Session;

// ---------------------------------------------------------------- responses

/// Headers every portal response carries.
pub(super) fn secure(mut r: Response, cookie: Option<String>) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; worker-src 'self'; manifest-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not "no-referrer": Chromium then sends `Origin: null` with form posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.append(header::SET_COOKIE, c);
    }
    r
}

pub(super) fn html_response(status: StatusCode, body: String, cookie: Option<String>) -> Response {
    let r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    secure(r, cookie)
}

pub(super) fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    secure(r, cookie)
}

/// What a locked user is told (the portal's words for [`LockKind`]).
pub(super) fn lock_msg(k: LockKind) -> Msg {
    match k {
        LockKind::Timed => Msg::LockedTimed,
        LockKind::Admin => Msg::LockedAdmin,
        LockKind::Fraud => Msg::LockedFraud,
    }
}

/// `https://host[:port]` of a URL.
pub(super) fn origin_of(url: &str) -> &str {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let end = rest
        .find('/')
        .map_or(url.len(), |i| url.len() - rest.len() + i);
    &url[..end]
}

pub(super) fn message_page(lang: Lang, msg: Msg, status: StatusCode) -> Response {
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::PortalName,
        &format!(
            "{}<p><a href=\"/signin\">{}</a></p>",
            alert(msg.text(lang)),
            esc(Msg::SignIn.text(lang))
        ),
    );
    html_response(status, body, None)
}

/// The answer to a POST whose CSRF token or Origin is wrong.
pub(super) fn forbidden(lang: Lang) -> Response {
    message_page(lang, Msg::FormExpired, StatusCode::FORBIDDEN)
}

pub(super) fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("").trim()
}

pub(super) fn take_notice(s: &mut Session, lang: Lang) -> String {
    s.notice
        .take()
        .and_then(|id| Msg::from_id(&id))
        .map(|m| notice(m.text(lang)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://mfa.example.com/portal"),
            "https://mfa.example.com"
        );
        assert_eq!(
            origin_of("https://mfa.example.com:8444"),
            "https://mfa.example.com:8444"
        );
    }
}
