//! The sign-in page: the first factor (password or directory), rate
//! limited per address and per user, then on to the second factor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use tracing::info;
use zeroize::Zeroizing;

use crate::https::Peer;
use crate::pipeline::PortalFirstFactor;

use super::html::{alert, csrf_field, esc, page, Chrome};
use super::i18n::{Lang, Msg};
use super::respond::{field, forbidden, html_response, lock_msg, redirect, take_notice};
use super::session::{Session, Stage};
use super::state::Portal;

/// How long the second-factor step may take after the first factor.
pub(super) const SECOND_FACTOR_SECS: u64 = 5 * 60;

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Deserialize)]
pub(super) struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

pub(super) fn signin_form(lang: Lang, csrf: &str, user: &str, message: &str) -> String {
    let t = |m: Msg| esc(m.text(lang));
    format!(
        "{message}<form method=\"post\" action=\"/signin\">{csrf}\
<label for=\"user\">{lu}</label><input id=\"user\" name=\"user\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required value=\"{user}\">\
<label for=\"password\">{lp}</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(csrf),
        lu = t(Msg::UserName),
        lp = t(Msg::Password),
        user = esc(user),
        go = t(Msg::SignIn),
    )
}

pub(super) fn signin_response(
    p: &Portal,
    s: &Session,
    lang: Lang,
    user: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: Some("/signin"),
        },
        Msg::SignInTitle,
        &signin_form(lang, &s.csrf, user, message),
    );
    html_response(status, body, p.cookie(s, now))
}

pub(super) async fn signin_page(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let now = p.clock.now_unix();
    let existing = p.session(&headers, now);
    if existing.as_ref().and_then(Session::signed_in).is_some() {
        return redirect("/home", None);
    }
    let mut lang = p.lang_of(&headers, existing.as_ref());
    if let Some(l) = q.lang.as_deref().and_then(Lang::parse) {
        lang = l;
    }
    let mut s = match existing {
        Some(s) if s.stage == Stage::Anonymous => s,
        _ => Session::anonymous(now, lang.code()),
    };
    s.lang = lang.code().to_string();
    let message = take_notice(&mut s, lang);
    signin_response(&p, &s, lang, "", &message, StatusCode::OK, now)
}

/// The user-facing message for a failed first factor.
pub(super) fn first_factor_message(reason: &str) -> Msg {
    match reason {
        "wrong_password" | "unknown_user" => Msg::WrongCredentials,
        "store_error" | "no_directory" | "directory_unreachable" | "unreachable" => Msg::TryAgain,
        r if r.contains("unreachable") || r.contains("error") => Msg::TryAgain,
        _ => Msg::AccountCannotSignIn,
    }
}

pub(super) async fn signin(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let Some(s) = p.session(&headers, now) else {
        return forbidden(p.lang_of(&headers, None));
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    let password = Zeroizing::new(form.remove("password").unwrap_or_default());
    let name = field(&form, "user").to_string();
    let fail = |msg: Msg, status: StatusCode| {
        let s = Session::anonymous(now, lang.code());
        signin_response(&p, &s, lang, &name, &alert(msg.text(lang)), status, now)
    };
    if name.is_empty() || password.is_empty() || name.len() > 253 {
        return fail(Msg::WrongCredentials, StatusCode::UNAUTHORIZED);
    }
    if name.chars().any(radmfa_store::is_unsafe_char) {
        // No user can have such a name (the store refuses it).
        info!(user = %crate::text::Escaped(&name), reason = "invalid_user_name", "portal sign-in refused");
        return fail(Msg::WrongCredentials, StatusCode::UNAUTHORIZED);
    }
    if !p.allow(ip, Some(&name)) {
        info!(user = %crate::text::Escaped(&name), peer = %ip, "portal sign-in rate limited");
        return fail(Msg::TooMany, StatusCode::TOO_MANY_REQUESTS);
    }
    // A locked user is refused before any factor is checked, as at RADIUS.
    if let Some(k) = p.node.portal_lock(&name) {
        p.node
            .portal_audit(&name, "portal", "reject", "locked_out", ip);
        return fail(lock_msg(k), StatusCode::FORBIDDEN);
    }
    let policy = p.node.config().policy(&p.settings.policy).clone();
    let (login, cached) = match p
        .node
        .portal_first_factor(&name, password.as_bytes(), &policy)
        .await
    {
        PortalFirstFactor::Passed(login, cached) => (login, cached),
        PortalFirstFactor::Failed(reason) => {
            p.node.portal_audit(&name, "portal", "reject", reason, ip);
            info!(user = %crate::text::Escaped(&name), reason, "portal sign-in refused");
            return fail(first_factor_message(reason), StatusCode::UNAUTHORIZED);
        }
    };
    drop(password);
    // Again under the canonical name the directory may have mapped to.
    if let Some(k) = p.node.portal_lock(&login) {
        p.node
            .portal_audit(&login, "portal", "reject", "locked_out", ip);
        return fail(lock_msg(k), StatusCode::FORBIDDEN);
    }
    let Some(cached) = cached else {
        p.node
            .portal_audit(&login, "portal", "reject", "not_enrolled", ip);
        return fail(Msg::NotSetUp, StatusCode::FORBIDDEN);
    };
    let user = &cached.user;
    if !user.enabled {
        let reason = crate::pipeline::disabled_audit_reason(user);
        p.node.portal_audit(&login, "portal", "reject", reason, ip);
        return fail(Msg::AccountDisabled, StatusCode::FORBIDDEN);
    }
    let lang = Lang::parse(&user.language).unwrap_or(lang);
    let mut next = Session::anonymous(now, lang.code());
    if cached.token.is_some() {
        next.exp = now + SECOND_FACTOR_SECS;
        next.stage = Stage::SecondFactor {
            user: login,
            sms: None,
        };
        return redirect("/verify", p.cookie(&next, now));
    }
    if !user.phone.is_empty() {
        // One-way SMS code to the phone on file.
        let sms = &p.node.config().sms;
        let sent = p.new_code(&user.phone, now);
        let body = sms.text(lang, &sent.code);
        if p.node
            .portal_send_sms(user, &user.phone, body, Some(ip))
            .await
            .is_err()
        {
            p.node
                .portal_audit(&login, "portal+sms", "reject", "gateway_unreachable", ip);
            return fail(Msg::SmsFailed, StatusCode::SERVICE_UNAVAILABLE);
        }
        next.exp = now + SECOND_FACTOR_SECS.max(sms.lifetime_secs);
        next.stage = Stage::SecondFactor {
            user: login,
            sms: Some(sent),
        };
        return redirect("/verify", p.cookie(&next, now));
    }
    // No second factor yet: signed in on the first factor, to enroll one.
    p.node.portal_audit(
        &login,
        "portal",
        "accept",
        "first_factor_only_not_enrolled",
        ip,
    );
    info!(user = %crate::text::Escaped(&login), "portal sign-in without a second factor (enrollment)");
    next.exp = now + p.settings.session_minutes * 60;
    next.stage = Stage::SignedIn { user: login };
    redirect("/home", p.cookie(&next, now))
}
