//! Confirming the current second factor before replacing it (the app or
//! the phone number): a signed-in session alone may not change it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use radmfa_store::TokenKind;
use serde::Deserialize;
use tracing::info;
use zeroize::Zeroizing;

use crate::https::Peer;
use crate::pipeline::decision::Reason;

use super::codes::Verdict;
use super::html::{alert, csrf_field, esc, page};
use super::i18n::Msg;
use super::pin_policy::ct_eq;
use super::respond::{field, html_response, redirect, take_notice};
use super::state::{Portal, SignedIn};
use super::verify::{code_refusal, verify_form};

/// How long after confirming the current second factor the user may
/// replace their authenticator app or phone number.
pub(super) const CONFIRM_SECS: u64 = 10 * 60;

// ---------------------------------------------------------------- confirm

/// A change of second factor, made once the user has confirmed the current
/// one (`/confirm`): a signed-in session alone is not enough to replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// A new authenticator app (`/enroll`).
    App,
    /// A new phone number (`/phone`).
    Phone,
}

impl Change {
    pub(super) fn parse(s: &str) -> Option<Change> {
        match s {
            "enroll" => Some(Change::App),
            "phone" => Some(Change::Phone),
            _ => None,
        }
    }

    /// The `next` parameter.
    pub(super) fn key(self) -> &'static str {
        match self {
            Change::App => "enroll",
            Change::Phone => "phone",
        }
    }

    /// The page that makes the change.
    pub(super) fn page(self) -> &'static str {
        match self {
            Change::App => "/enroll",
            Change::Phone => "/phone",
        }
    }

    /// The confirmation page that leads to it.
    pub(super) fn confirm_url(self) -> &'static str {
        match self {
            Change::App => "/confirm?next=enroll",
            Change::Phone => "/confirm?next=phone",
        }
    }
}

/// The signed-in session of a page that replaces the second factor (with
/// `form`, a POST checked like [`Portal::signed_in_post`]), or the response
/// that sends the user elsewhere: the sign-in page, or `/confirm` while the
/// current factor is not confirmed ([`needs_confirm`]).
pub(super) fn signed_in_to_change(
    p: &Portal,
    headers: &HeaderMap,
    now: u64,
    form: Option<&HashMap<String, String>>,
    change: Change,
) -> Result<SignedIn, Box<Response>> {
    let si = match form {
        Some(form) => p.signed_in_post(headers, now, false, form)?,
        None => p.signed_in(headers, now, false)?,
    };
    if needs_confirm(&si, now) {
        return Err(Box::new(redirect(change.confirm_url(), None)));
    }
    Ok(si)
}

/// Whether replacing the second factor must wait for a confirmation of the
/// current one: the user has one (an app or a phone) and has not confirmed
/// it in this session within [`CONFIRM_SECS`]. A user without any (first
/// enrollment) goes ahead on the signed-in session alone.
fn needs_confirm(si: &SignedIn, now: u64) -> bool {
    let has_one = si.user.token.is_some() || !si.user.user.phone.is_empty();
    has_one && si.s.confirmed_until.is_none_or(|t| t <= now)
}

#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

pub(super) fn confirm_response(
    p: &Portal,
    si: &SignedIn,
    change: Change,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let hidden = format!(
        "<input type=\"hidden\" name=\"next\" value=\"{}\">",
        change.key()
    );
    let with_pin = si.user.user.pin.is_some();
    let form = if si.user.token.is_some() || si.s.confirm_sms.is_some() {
        verify_form(
            lang,
            &si.s.csrf,
            si.s.confirm_sms
                .as_ref()
                .filter(|_| si.user.token.is_none()),
            with_pin,
            message,
            "/confirm",
            &hidden,
        )
    } else {
        let digits: Vec<char> = si
            .user
            .user
            .phone
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        format!(
            "{message}<p>{intro}</p><form method=\"post\" action=\"/confirm\">{csrf}{hidden}\
<input type=\"hidden\" name=\"send\" value=\"1\"><button type=\"submit\">{go}</button></form>",
            intro = esc(&Msg::ConfirmSendTo.text(lang).replace("{tail}", &tail)),
            csrf = csrf_field(&si.s.csrf),
            go = t(Msg::SendCode),
        )
    };
    let body = format!("<p>{}</p>{form}", t(Msg::ConfirmIntro));
    let html = page(&p.chrome(si), Msg::ConfirmTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

pub(super) async fn confirm_page(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match p.signed_in(&headers, now, false) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let Some(change) = q.next.as_deref().and_then(Change::parse) else {
        return redirect("/home", None);
    };
    if !needs_confirm(&si, now) {
        return redirect(change.page(), None);
    }
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    confirm_response(&p, &si, change, &message, StatusCode::OK, now)
}

/// Confirms the current second factor: a code of the user's token, or of a
/// text message sent to their phone on file (with the PIN in PIN mode),
/// checked and counted exactly as at sign-in (replay state, lockout,
/// answers counted on the server).
pub(super) async fn confirm(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let ip = peer.0.ip();
    let mut si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let Some(change) = Change::parse(field(&form, "next")) else {
        return redirect("/home", None);
    };
    if !needs_confirm(&si, now) {
        return redirect(change.page(), None);
    }
    let lang = si.lang();
    let name = si.name().to_string();
    let refuse = |si: &SignedIn, msg: Msg, status: StatusCode| {
        confirm_response(&p, si, change, &alert(msg.text(lang)), status, now)
    };
    if !p.allow(ip, Some(&name)) {
        return refuse(&si, Msg::TooMany, StatusCode::TOO_MANY_REQUESTS);
    }
    let cached = si.user.clone();
    let user = &cached.user;
    let given_pin = Zeroizing::new(form.remove("pin").unwrap_or_default());
    let code = Zeroizing::new(field(&form, "code").to_string());
    let pin_ok = match p.node.portal_pin(user) {
        Ok(Some(pin)) => ct_eq(pin.expose(), given_pin.trim().as_bytes()),
        Ok(None) => true,
        Err(_) => return refuse(&si, Msg::TryAgain, StatusCode::SERVICE_UNAVAILABLE),
    };
    let (mode, outcome, sms_left) = if let Some(token) = cached.token.as_ref() {
        let mode = match token.kind {
            TokenKind::Totp => "portal+totp",
            TokenKind::Hotp => "portal+hotp",
        };
        (mode, p.node.portal_check_code(user, token, &code), None)
    } else {
        let mode = "portal+sms";
        let pending = si.s.confirm_sms.take();
        let Some(sent) = pending.filter(|_| field(&form, "send") != "1") else {
            // Send a code to the phone on file.
            if !p.node.portal_can_send_sms() {
                return refuse(&si, Msg::NoGateway, StatusCode::SERVICE_UNAVAILABLE);
            }
            let sent = p.new_code(&user.phone, now);
            let body = p.node.config().sms.text(si.lang(), &sent.code);
            if p.node
                .portal_send_sms(user, &user.phone, body, Some(ip))
                .await
                .is_err()
            {
                return refuse(&si, Msg::SmsFailed, StatusCode::SERVICE_UNAVAILABLE);
            }
            si.s.confirm_sms = Some(sent);
            return confirm_response(&p, &si, change, "", StatusCode::OK, now);
        };
        let code_ok = radmfa_otp::codes_match(&sent.code, &code);
        match p.answer_code(&sent, &code, pin_ok, now) {
            Verdict::Spent => {
                p.node
                    .portal_audit(&name, mode, "reject", "sms_code_spent", ip);
                return refuse(&si, Msg::CodeExpired, StatusCode::UNPROCESSABLE_ENTITY);
            }
            Verdict::Accepted => (mode, Ok(()), None),
            Verdict::Wrong { left } => {
                if left > 0 {
                    si.s.confirm_sms = Some(sent);
                }
                let outcome = if code_ok {
                    Ok(())
                } else {
                    Err(Reason::SmsCodeWrong)
                };
                (mode, outcome, Some(left))
            }
        }
    };
    let reason = match p
        .second_factor_outcome(&name, mode, ip, &outcome, pin_ok)
        .await
    {
        Ok(reason) => reason,
        Err(locked) => return p.to_signin(lang, locked, now),
    };
    let Some(reason) = reason else {
        p.node
            .portal_audit(&name, mode, "accept", "second_factor_confirmed", ip);
        info!(user = %crate::text::Escaped(&name), mode, "current second factor confirmed in the portal");
        si.s.confirmed_until = Some(now + CONFIRM_SECS);
        si.s.confirm_sms = None;
        return redirect(change.page(), p.cookie(&si.s, now));
    };
    p.node
        .portal_audit(&name, mode, "reject", reason.as_str(), ip);
    let msg = if sms_left == Some(0) {
        Msg::CodeExpired
    } else {
        code_refusal(user.pin.is_some(), reason)
    };
    refuse(&si, msg, StatusCode::UNAUTHORIZED)
}
