//! The PIN page, and the PIN a user may choose there: `min_len` to 10
//! digits, and not one an attacker tries first.

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
use super::respond::html_response;
use super::state::{Portal, SignedIn};

/// Why a PIN is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinProblem {
    /// Not only digits, or too short or long.
    Format,
    /// Every digit the same ("1111").
    Repeated,
    /// An ascending or descending run ("1234", "9876").
    Sequence,
    /// The end of the user's phone number.
    PhoneDigits,
    /// The two entries differ.
    Mismatch,
    /// The same as the current PIN.
    Unchanged,
}

/// Checks a new PIN against the policy. `phone` is the user's number (its
/// digits are compared), `current` the PIN being replaced.
pub(crate) fn check_pin(
    pin: &str,
    again: &str,
    min_len: usize,
    phone: &str,
    current: Option<&[u8]>,
) -> Result<(), PinProblem> {
    let b = pin.as_bytes();
    if !(min_len.max(4)..=10).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(PinProblem::Format);
    }
    if b.iter().all(|d| *d == b[0]) {
        return Err(PinProblem::Repeated);
    }
    let run = |step: i16| {
        b.windows(2)
            .all(|w| i16::from(w[1]) - i16::from(w[0]) == step)
    };
    if run(1) || run(-1) {
        return Err(PinProblem::Sequence);
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() && digits.ends_with(pin) {
        return Err(PinProblem::PhoneDigits);
    }
    if !ct_eq(pin.as_bytes(), again.as_bytes()) {
        return Err(PinProblem::Mismatch);
    }
    if current.is_some_and(|c| ct_eq(c, pin.as_bytes())) {
        return Err(PinProblem::Unchanged);
    }
    Ok(())
}

/// Constant-time equality of two byte strings (lengths may differ).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pin: &str) -> Result<(), PinProblem> {
        check_pin(pin, pin, 4, "+31612345678", Some(b"2468"))
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"1234", b"1234"));
        assert!(!ct_eq(b"1234", b"1235"));
        assert!(!ct_eq(b"1234", b"12345"));
    }

    #[test]
    fn trivial_pins_are_refused() {
        assert_eq!(check("123"), Err(PinProblem::Format));
        assert_eq!(check("12345678901"), Err(PinProblem::Format));
        assert_eq!(check("12a4"), Err(PinProblem::Format));
        assert_eq!(check(""), Err(PinProblem::Format));
        assert_eq!(check("0000"), Err(PinProblem::Repeated));
        assert_eq!(check("9999999"), Err(PinProblem::Repeated));
        assert_eq!(check("1234"), Err(PinProblem::Sequence));
        assert_eq!(check("0123456789"), Err(PinProblem::Sequence));
        assert_eq!(check("9876"), Err(PinProblem::Sequence));
        assert_eq!(check("5678"), Err(PinProblem::Sequence));
        assert_eq!(check("5679"), Ok(()));
        assert_eq!(check("45678"), Err(PinProblem::Sequence));
        assert_eq!(check("2345678"), Err(PinProblem::Sequence));
        assert_eq!(check("12345678"), Err(PinProblem::Sequence));
        assert_eq!(check("2468"), Err(PinProblem::Unchanged));
        assert_eq!(
            check_pin("4711", "4712", 4, "", None),
            Err(PinProblem::Mismatch)
        );
    }

    #[test]
    fn phone_suffix_and_minimum_length() {
        assert_eq!(
            check_pin("5670", "5670", 4, "+31 6 1234 5670", None),
            Err(PinProblem::PhoneDigits)
        );
        assert_eq!(
            check_pin("4711", "4711", 6, "", None),
            Err(PinProblem::Format)
        );
        assert_eq!(check_pin("471108", "471108", 6, "", None), Ok(()));
    }

    #[test]
    fn good_pins_pass() {
        for pin in ["4711", "1357", "8020", "1243", "90210", "3141592653"] {
            assert_eq!(check(pin), Ok(()), "{pin}");
        }
    }
}
