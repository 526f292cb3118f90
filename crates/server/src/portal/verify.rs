//! The second-factor page after sign-in: a code from the app or a text
//! message (with the PIN when the user has one), counted towards the lockout.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use radmfa_store::TokenKind;
use tracing::info;
use zeroize::Zeroizing;

use crate::hot::CachedUser;
use crate::https::Peer;
use crate::pipeline::decision::Reason;

use super::codes::Verdict;
use super::html::{alert, csrf_field, esc, page, Chrome};
use super::i18n::{Lang, Msg};
use super::pin_policy::ct_eq;
use super::respond::{field, forbidden, html_response, lock_msg, message_page, redirect};
use super::session::{SentCode, Session, Stage};
use super::state::Portal;

// ---------------------------------------------------------------- second factor

/// The form that asks for the second factor, posted to `action` with the
/// hidden fields `hidden` (HTML).
pub(super) fn verify_form(
    lang: Lang,
    csrf: &str,
    sms: Option<&SentCode>,
    with_pin: bool,
    message: &str,
    action: &str,
    hidden: &str,
) -> String {
    let t = |m: Msg| esc(m.text(lang));
    let intro = match sms {
        Some(sent) => {
            let digits: Vec<char> = sent.phone.chars().filter(char::is_ascii_digit).collect();
            let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            esc(&Msg::CodeSentTo.text(lang).replace("{tail}", &tail))
        }
        None => t(Msg::CodeFromApp),
    };
    let pin = if with_pin {
        format!(
            "<p class=\"hint\">{}</p><label for=\"pin\">{}</label><input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\" required>",
            t(Msg::PinWithCode),
            t(Msg::Pin)
        )
    } else {
        String::new()
    };
    format!(
        "{message}<p>{intro}</p><form method=\"post\" action=\"{action}\">{csrf}{hidden}{pin}\
<label for=\"code\">{lc}</label><input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(csrf),
        lc = t(Msg::Code),
        go = t(Msg::Verify),
    )
}

pub(super) fn verify_response(
    p: &Portal,
    s: &Session,
    user: &CachedUser,
    lang: Lang,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let sms = match &s.stage {
        Stage::SecondFactor { sms, .. } => sms.as_ref(),
        _ => None,
    };
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::VerifyTitle,
        &verify_form(
            lang,
            &s.csrf,
            sms,
            user.user.pin.is_some(),
            message,
            "/verify",
            "",
        ),
    );
    html_response(status, body, p.cookie(s, now))
}

/// The session's user at the second-factor step.
pub(super) fn second_factor_user(
    p: &Portal,
    s: &Session,
    lang: Lang,
    now: u64,
) -> Result<Arc<CachedUser>, Box<Response>> {
    let Stage::SecondFactor { user, .. } = &s.stage else {
        return Err(Box::new(redirect("/signin", None)));
    };
    match p.node.portal_user(user) {
        Ok(Some(u)) if u.user.enabled => Ok(u),
        Ok(Some(_)) => Err(Box::new(p.to_signin(lang, Msg::AccountDisabled, now))),
        Ok(None) => Err(Box::new(p.to_signin(lang, Msg::SessionEnded, now))),
        Err(_) => Err(Box::new(message_page(
            lang,
            Msg::TryAgain,
            StatusCode::SERVICE_UNAVAILABLE,
        ))),
    }
}

pub(super) async fn verify_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let Some(s) = p.session(&headers, now) else {
        return redirect("/signin", None);
    };
    let lang = p.lang_of(&headers, Some(&s));
    match second_factor_user(&p, &s, lang, now) {
        Ok(user) => verify_response(&p, &s, &user, lang, "", StatusCode::OK, now),
        Err(r) => *r,
    }
}

pub(super) async fn verify(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let Some(s) = p.session(&headers, now) else {
        return p.to_signin(p.lang_of(&headers, None), Msg::SessionEnded, now);
    };
    let lang = p.lang_of(&headers, Some(&s));
    if !p.post_ok(&headers, &s, &form) {
        return forbidden(lang);
    }
    let cached = match second_factor_user(&p, &s, lang, now) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let user = &cached.user;
    let name = user.name.clone();
    if !p.allow(ip, Some(&name)) {
        return verify_response(
            &p,
            &s,
            &cached,
            lang,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    let Stage::SecondFactor { sms, .. } = &s.stage else {
        return redirect("/signin", None);
    };
    let mode = match (sms, cached.token.as_ref().map(|t| t.kind)) {
        (Some(_), _) => "portal+sms",
        (None, Some(TokenKind::Totp)) => "portal+totp",
        (None, Some(TokenKind::Hotp)) => "portal+hotp",
        (None, None) => return p.to_signin(lang, Msg::SessionEnded, now),
    };
    // Locked meanwhile (at RADIUS, in the portal, by an admin): no code is checked.
    if let Some(k) = p.node.portal_lock(&name) {
        p.node.portal_audit(&name, mode, "reject", "locked_out", ip);
        return p.to_signin(lang, lock_msg(k), now);
    }
    let given_pin = Zeroizing::new(form.remove("pin").unwrap_or_default());
    let code = Zeroizing::new(field(&form, "code").to_string());
    let pin_ok = match p.node.portal_pin(user) {
        Ok(Some(pin)) => ct_eq(pin.expose(), given_pin.trim().as_bytes()),
        Ok(None) => true,
        Err(_) => return message_page(lang, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE),
    };
    // Both parts are always checked: the answer does not say which was wrong.
    let (outcome, sms_left) = match sms {
        Some(sent) => {
            if now >= sent.until {
                p.node
                    .portal_audit(&name, mode, "reject", "sms_code_expired", ip);
                return p.to_signin(lang, Msg::CodeExpired, now);
            }
            let code_ok = radmfa_otp::codes_match(&sent.code, &code);
            match p.answer_code(sent, &code, pin_ok, now) {
                Verdict::Spent => {
                    p.node
                        .portal_audit(&name, mode, "reject", "sms_code_spent", ip);
                    return p.to_signin(lang, Msg::CodeExpired, now);
                }
                Verdict::Accepted => (Ok(()), None),
                Verdict::Wrong { left } => (
                    if code_ok {
                        Ok(())
                    } else {
                        Err(Reason::SmsCodeWrong)
                    },
                    Some(left),
                ),
            }
        }
        None => match cached.token.as_ref() {
            Some(token) => (p.node.portal_check_code(user, token, &code), None),
            None => return p.to_signin(lang, Msg::SessionEnded, now),
        },
    };
    let reason = match p
        .second_factor_outcome(&name, mode, ip, &outcome, pin_ok)
        .await
    {
        Ok(reason) => reason,
        Err(locked) => return p.to_signin(lang, locked, now),
    };
    let Some(reason) = reason else {
        p.node.portal_audit(&name, mode, "accept", "ok", ip);
        info!(user = %crate::text::Escaped(&name), mode, "portal sign-in");
        let mut next = Session::anonymous(now, lang.code());
        next.exp = now + p.settings.session_minutes * 60;
        next.stage = Stage::SignedIn { user: name };
        return redirect("/home", p.cookie(&next, now));
    };
    p.node
        .portal_audit(&name, mode, "reject", reason.as_str(), ip);
    if sms_left == Some(0) {
        return p.to_signin(lang, Msg::CodeExpired, now);
    }
    let msg = code_refusal(user.pin.is_some(), reason);
    verify_response(
        &p,
        &s,
        &cached,
        lang,
        &alert(msg.text(lang)),
        StatusCode::UNAUTHORIZED,
        now,
    )
}

/// What the user is told when a second factor is refused for `reason`.
pub(super) fn code_refusal(with_pin: bool, reason: Reason) -> Msg {
    match reason {
        _ if with_pin => Msg::PinOrCodeWrong,
        Reason::OtpReplayed => Msg::CodeReused,
        Reason::StoreError => Msg::TryAgain,
        _ => Msg::WrongCode,
    }
}
