//! The PIN page, where a user chooses a PIN by the rules of
//! [`super::pin_policy`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use tracing::info;
use zeroize::Zeroizing;

use crate::admin::AdminRequest;

use super::html::{alert, csrf_field, esc, page};
use super::i18n::Msg;
use super::method::notice_page;
use super::pin_policy::{check_pin, PinProblem};
use super::respond::html_response;
use super::state::{Portal, SignedIn};

// ---------------------------------------------------------------- PIN

pub(super) fn pin_response(
    p: &Portal,
    si: &SignedIn,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let u = &si.user.user;
    let body = if u.pin.is_none() {
        format!("{message}<p>{}</p>", t(Msg::NoPinMode))
    } else {
        let hint = esc(&Msg::PinHint
            .text(lang)
            .replace("{min}", &p.settings.pin_min_length.to_string()));
        let required = if u.pin_change_required {
            format!(
                "<div class=\"alert\" id=\"pin-required\" role=\"status\">{}</div>",
                t(Msg::PinChangeRequired)
            )
        } else {
            String::new()
        };
        format!(
            "{message}{required}<form method=\"post\" action=\"/pin\">{csrf}\
<p class=\"hint\" id=\"pin-hint\">{hint}</p>\
<label for=\"pin\">{l1}</label><input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"new-password\" required aria-describedby=\"pin-hint\">\
<label for=\"pin2\">{l2}</label><input id=\"pin2\" name=\"pin2\" type=\"password\" inputmode=\"numeric\" autocomplete=\"new-password\" required>\
<button type=\"submit\">{go}</button></form>",
            csrf = csrf_field(&si.s.csrf),
            l1 = t(Msg::NewPin),
            l2 = t(Msg::NewPinAgain),
            go = t(Msg::SavePin),
        )
    };
    let html = page(&p.chrome(si), Msg::PinTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

pub(super) async fn pin_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    notice_page(&p, &headers, true, pin_response)
}

pub(super) async fn pin_set(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, true, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let u = &si.user.user;
    if u.pin.is_none() {
        return pin_response(&p, &si, "", StatusCode::UNPROCESSABLE_ENTITY, now);
    }
    let new = Zeroizing::new(form.remove("pin").unwrap_or_default().trim().to_string());
    let again = Zeroizing::new(form.remove("pin2").unwrap_or_default().trim().to_string());
    let current = match p.node.portal_pin(u) {
        Ok(c) => c,
        Err(_) => {
            return pin_response(
                &p,
                &si,
                &alert(Msg::TryAgain.text(lang)),
                StatusCode::SERVICE_UNAVAILABLE,
                now,
            )
        }
    };
    let checked = check_pin(
        &new,
        &again,
        p.settings.pin_min_length,
        &u.phone,
        current.as_ref().map(|c| c.expose()),
    );
    if let Err(problem) = checked {
        use PinProblem as P;
        let msg = match problem {
            P::Format => Msg::PinFormat,
            P::Repeated => Msg::PinRepeated,
            P::Sequence => Msg::PinSequence,
            P::PhoneDigits => Msg::PinPhone,
            P::Mismatch => Msg::PinMismatch,
            P::Unchanged => Msg::PinUnchanged,
        };
        let text = msg
            .text(lang)
            .replace("{min}", &p.settings.pin_min_length.to_string());
        return pin_response(
            &p,
            &si,
            &alert(&text),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    let name = si.name().to_string();
    let req = AdminRequest::UserPinChange {
        name: name.clone(),
        pin: new.to_string(),
    };
    if !p.write(&name, "change the PIN", req).await {
        return pin_response(
            &p,
            &si,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), "PIN changed in the portal");
    p.home_with(si.s, Msg::PinChanged, now)
}
