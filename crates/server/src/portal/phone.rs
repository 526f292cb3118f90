//! Setting and verifying the phone number: a code sent by text message
//! must come back before the number is saved.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use tracing::info;

use crate::admin::{AdminRequest, UserChange};
use crate::https::Peer;

use super::codes::Verdict;
use super::confirm::{signed_in_to_change, Change, CONFIRM_SECS};
use super::html::{alert, csrf_field, esc, page};
use super::i18n::Msg;
use super::respond::{field, html_response, redirect, take_notice};
use super::state::{Portal, SignedIn};

// ---------------------------------------------------------------- phone

/// An E.164 number: `+` and 8 to 15 digits (spaces and dashes dropped).
pub(super) fn normalize_phone(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = compact.strip_prefix('+')?;
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(compact)
}

pub(super) fn phone_response(
    p: &Portal,
    si: &SignedIn,
    value: &str,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let mut body = format!(
        "{message}<form method=\"post\" action=\"/phone\">{csrf}\
<label for=\"phone\">{lp}</label><input id=\"phone\" name=\"phone\" type=\"tel\" autocomplete=\"tel\" required value=\"{value}\" aria-describedby=\"phone-hint\">\
<p class=\"hint\" id=\"phone-hint\">{hint}</p><button type=\"submit\">{go}</button></form>",
        csrf = csrf_field(&si.s.csrf),
        lp = t(Msg::Phone),
        value = esc(value),
        hint = t(Msg::PhoneHint),
        go = t(Msg::SendCode),
    );
    if let Some(sent) = &si.s.phone {
        let digits: Vec<char> = sent.phone.chars().filter(char::is_ascii_digit).collect();
        let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        body.push_str(&format!(
            "<p>{intro}</p><form method=\"post\" action=\"/phone/verify\">{csrf}\
<label for=\"phone-code\">{lc}</label><input id=\"phone-code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
<button type=\"submit\">{go}</button></form>",
            intro = esc(&Msg::CodeSentTo.text(lang).replace("{tail}", &tail)),
            csrf = csrf_field(&si.s.csrf),
            lc = t(Msg::Code),
            go = t(Msg::Confirm),
        ));
    }
    let html = page(&p.chrome(si), Msg::PhoneTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

pub(super) async fn phone_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let now = p.clock.now_unix();
    let mut si = match signed_in_to_change(&p, &headers, now, None, Change::Phone) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let mut message = take_notice(&mut si.s, lang);
    if !p.node.portal_can_send_sms() {
        message.push_str(&alert(Msg::NoGateway.text(lang)));
    }
    let value =
        si.s.phone
            .as_ref()
            .map_or_else(|| si.user.user.phone.clone(), |s| s.phone.clone());
    phone_response(&p, &si, &value, &message, StatusCode::OK, now)
}

pub(super) async fn phone_send(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match signed_in_to_change(&p, &headers, now, Some(&form), Change::Phone) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let typed = field(&form, "phone").to_string();
    // The form again with the number as typed and why it was refused.
    let refuse = |si: &SignedIn, msg: Msg, status: StatusCode| {
        phone_response(&p, si, &typed, &alert(msg.text(lang)), status, now)
    };
    let Some(phone) = normalize_phone(&typed) else {
        si.s.phone = None;
        return refuse(&si, Msg::PhoneInvalid, StatusCode::UNPROCESSABLE_ENTITY);
    };
    if !p.node.portal_can_send_sms() {
        return refuse(&si, Msg::NoGateway, StatusCode::SERVICE_UNAVAILABLE);
    }
    // Every text message costs money: the per-user rate covers sends too.
    if !p.allow(peer.0.ip(), Some(si.name())) {
        return refuse(&si, Msg::TooMany, StatusCode::TOO_MANY_REQUESTS);
    }
    let sent = p.new_code(&phone, now);
    let body = p.node.config().sms.text(si.lang(), &sent.code);
    if p.node
        .portal_send_sms(&si.user.user, &phone, body, Some(peer.0.ip()))
        .await
        .is_err()
    {
        return refuse(&si, Msg::SmsFailed, StatusCode::SERVICE_UNAVAILABLE);
    }
    si.s.phone = Some(sent);
    phone_response(&p, &si, &phone, "", StatusCode::OK, now)
}

pub(super) async fn phone_verify(
    State(p): State<Arc<Portal>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let mut si = match signed_in_to_change(&p, &headers, now, Some(&form), Change::Phone) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let lang = si.lang();
    let Some(sent) = si.s.phone.take() else {
        return redirect("/phone", None);
    };
    if !p.allow(peer.0.ip(), Some(si.name())) {
        let value = sent.phone.clone();
        si.s.phone = Some(sent);
        return phone_response(
            &p,
            &si,
            &value,
            &alert(Msg::TooMany.text(lang)),
            StatusCode::TOO_MANY_REQUESTS,
            now,
        );
    }
    if now >= sent.until {
        return phone_response(
            &p,
            &si,
            &sent.phone,
            &alert(Msg::CodeExpired.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    // Counted on the server: a copy of the cookie does not get more tries.
    let verdict = p.answer_code(&sent, field(&form, "code"), true, now);
    if verdict != Verdict::Accepted {
        let value = sent.phone.clone();
        let msg = match verdict {
            Verdict::Wrong { left } if left > 0 => {
                si.s.phone = Some(sent);
                Msg::WrongCode
            }
            _ => Msg::CodeExpired,
        };
        return phone_response(
            &p,
            &si,
            &value,
            &alert(msg.text(lang)),
            StatusCode::UNPROCESSABLE_ENTITY,
            now,
        );
    }
    let name = si.name().to_string();
    let req = AdminRequest::UserSet(UserChange {
        name: name.clone(),
        display_name: None,
        email: None,
        language: None,
        phone: Some(sent.phone.clone()),
        method: None,
        device_token: None,
        groups: None,
    });
    if !p.write(&name, "save the phone number", req).await {
        let value = sent.phone.clone();
        return phone_response(
            &p,
            &si,
            &value,
            &alert(Msg::TryAgain.text(lang)),
            StatusCode::SERVICE_UNAVAILABLE,
            now,
        );
    }
    info!(user = %crate::text::Escaped(&name), "phone number verified and saved in the portal");
    // The code just typed proved the (new) current second factor.
    si.s.confirmed_until.get_or_insert(now + CONFIRM_SECS);
    p.home_with(si.s, Msg::PhoneSaved, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        assert_eq!(
            normalize_phone("+31 6 1234-5678").as_deref(),
            Some("+31612345678")
        );
        assert_eq!(normalize_phone("0612345678"), None);
        assert_eq!(normalize_phone("+1234"), None);
        assert_eq!(normalize_phone("+3161234567x"), None);
    }
}
