//! Setting up an authenticator app: a new TOTP secret shown as a QR code,
//! saved once the user types a code from it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use radmfa_store::{TokenAlgorithm, TokenKind};
use tracing::info;
use zeroize::Zeroizing;

use crate::admin::{AdminRequest, NewToken};
use crate::https::Peer;

use super::confirm::{signed_in_to_change, Change, CONFIRM_SECS};
use super::html::{self, alert, csrf_field, esc, page};
use super::i18n::Msg;
use super::respond::{field, html_response, redirect, take_notice};
use super::state::{Portal, SignedIn};

/// TOTP period of tokens set up in the portal.
pub(super) const PERIOD: u64 = 30;

// ---------------------------------------------------------------- authenticator app

pub(super) fn totp_params(p: &Portal) -> radmfa_otp::Totp {
    radmfa_otp::Totp {
        algorithm: radmfa_otp::Algorithm::Sha1,
        digits: p.node.config().otp_digits,
        period: PERIOD,
        t0: 0,
        window: p.node.config().otp_window,
    }
}

pub(super) fn enroll_response(
    p: &Portal,
    si: &mut SignedIn,
    secret_b32: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let seed = Zeroizing::new(radmfa_otp::base32_decode(secret_b32).unwrap_or_default());
    let cfg = p.node.config();
    let uri = Zeroizing::new(radmfa_otp::otpauth_uri(&radmfa_otp::OtpauthParams {
        issuer: &cfg.otp_issuer,
        account: si.name(),
        secret: &seed,
        algorithm: radmfa_otp::Algorithm::Sha1,
        digits: cfg.otp_digits,
        kind: radmfa_otp::OtpKind::Totp { period: PERIOD },
    }));
    let qr = html::qr_svg(&uri, Msg::QrLabel.text(lang)).unwrap_or_default();
    let replaces = if si.user.token.is_some() {
        format!("<p class=\"hint\">{}</p>", t(Msg::ReplacesApp))
    } else {
        String::new()
    };
    let body = format!(
        "{message}{replaces}<p>{scan}</p>{qr}<p>{manual} <code class=\"secret\" id=\"secret\">{secret}</code></p>\
<p>{confirm}</p><form method=\"post\" action=\"/enroll\">{csrf}\
<label for=\"code\">{lc}</label><input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
        scan = t(Msg::ScanQr),
        manual = t(Msg::ManualEntry),
        secret = esc(secret_b32),
        confirm = t(Msg::EnrollConfirm),
        csrf = csrf_field(&si.s.csrf),
        lc = t(Msg::Code),
        go = t(Msg::Confirm),
    );
    si.s.enroll = Some(secret_b32.to_string());
    let html = page(&p.chrome(si), Msg::EnrollTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

pub(super) async fn enroll_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match signed_in_to_change(&p, &headers, now, None, Change::App) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let seed = Zeroizing::new(radmfa_otp::generate_secret(20));
    let secret = Zeroizing::new(radmfa_otp::base32_encode(&seed));
    let lang = si.lang();
    let message = take_notice(&mut si.s, lang);
    enroll_response(&p, &mut si, &secret, &message, StatusCode::OK, now)
}

pub(super) async fn enroll(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match signed_in_to_change(&p, &headers, now, Some(&form), Change::App) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let Some(secret) = si.s.enroll.clone().map(Zeroizing::new) else {
        return redirect("/enroll", None);
    };
    if !p.allow(peer.0.ip(), Some(si.name())) {
        return enroll_response(
            &p,
            &mut si,
            &secret,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    let seed = Zeroizing::new(radmfa_otp::base32_decode(&secret).unwrap_or_default());
    let step = match totp_params(&p).verify(&seed, field(&form, "code"), now, None) {
        Ok(step) => step,
        Err(_) => {
            return enroll_response(
                &p,
                &mut si,
                &secret,
                &alert(Msg::WrongCode.text(lang)),
                StatusCode::UNPROCESSABLE_ENTITY,
                now,
            );
        }
    };
    let name = si.name().to_string();
    let req = AdminRequest::TokenEnroll(NewToken {
        user: name.clone(),
        secret: Some(secret.to_string()),
        kind: TokenKind::Totp,
        algorithm: TokenAlgorithm::Sha1,
        digits: p.node.config().otp_digits,
        period: PERIOD,
        replace: true,
    });
    if !p.write(&name, "enroll the token", req).await {
        return enroll_response(
            &p,
            &mut si,
            &secret,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    // The confirmation code cannot be used again for a sign-in.
    p.node.portal_mark_step_used(&name, step);
    info!(user = %crate::text::Escaped(&name), "authenticator app enrolled in the portal");
    si.s.enroll = None;
    // The code just typed proved the (new) current second factor.
    si.s.confirmed_until.get_or_insert(now + CONFIRM_SECS);
    p.home_with(si.s, Msg::AppEnrolled, now)
}
