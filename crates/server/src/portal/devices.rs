//! The devices page: the signed-in user registers this browser for sign-in
//! approvals by Web Push (the page's script subscribes with the Push API
//! and posts the subscription in a normal form, CSRF token included), and
//! sees and removes their registered devices. The subscription's endpoint
//! is a capability: the page shows only the push service's host.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use tracing::info;

use crate::admin::{AdminRequest, NewDevice};

use super::html::{alert, csrf_field, esc, page, utc};
use super::i18n::Msg;
use super::method::notice_page;
use super::respond::{field, html_response};
use super::state::{Portal, SignedIn};

pub(super) fn devices_response(
    p: &Portal,
    si: &SignedIn,
    message: &str,
    status: StatusCode,
    now: u64,
) -> Response {
    let lang = si.lang();
    let t = |m: Msg| esc(m.text(lang));
    let csrf = csrf_field(&si.s.csrf);
    let mut body = format!("{message}<p>{}</p>", t(Msg::DevicesIntro));
    let devices = &si.user.user.push_devices;
    if devices.is_empty() {
        body.push_str(&format!("<p id=\"no-devices\">{}</p>", t(Msg::NoDevices)));
    } else {
        body.push_str(&format!(
            "<table id=\"devices\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>",
            t(Msg::DeviceName),
            t(Msg::PushService),
            t(Msg::Registered),
        ));
        for d in devices {
            body.push_str(&format!(
                "<tr><td>{name}</td><td>{host}</td><td>{when}</td><td><form method=\"post\" action=\"/devices/remove\">{csrf}<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" aria-label=\"{rm}: {name}\">{rm}</button></form></td></tr>",
                name = esc(&d.name),
                host = esc(d.endpoint_host()),
                when = esc(&utc(d.created.saturating_mul(1000))),
                id = esc(&d.id),
                rm = t(Msg::Remove),
            ));
        }
        body.push_str("</tbody></table>");
    }
    match p.node.pusher() {
        Some(pusher) => body.push_str(&format!(
            "<form id=\"register\" method=\"post\" action=\"/devices\" data-key=\"{key}\" \
data-unsupported=\"{unsupported}\" data-denied=\"{denied}\" data-failed=\"{failed}\">{csrf}\
<label for=\"device-name\">{label}</label><input id=\"device-name\" name=\"name\" type=\"text\" maxlength=\"64\" value=\"{default}\" required>\
<input type=\"hidden\" name=\"endpoint\"><input type=\"hidden\" name=\"p256dh\"><input type=\"hidden\" name=\"auth\">\
<button type=\"submit\">{go}</button><p id=\"push-status\" role=\"status\"></p></form>\
<script src=\"/devices.js\"></script>",
            key = esc(pusher.public_key()),
            unsupported = t(Msg::PushUnsupported),
            denied = t(Msg::PushDenied),
            failed = t(Msg::PushFailed),
            label = t(Msg::DeviceName),
            default = t(Msg::DeviceDefaultName),
            go = t(Msg::RegisterDevice),
        )),
        None => body.push_str(&format!("<p>{}</p>", t(Msg::PushUnsupported))),
    }
    let html = page(&p.chrome(si), Msg::DevicesTitle, &body);
    html_response(status, html, p.cookie(&si.s, now))
}

/// The devices page again with `msg` as an alert, answered with `status`.
fn devices_alert(p: &Portal, si: &SignedIn, msg: Msg, status: StatusCode, now: u64) -> Response {
    devices_response(p, si, &alert(msg.text(si.lang())), status, now)
}

pub(super) async fn devices_page(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    notice_page(&p, &headers, false, devices_response)
}

/// `POST /devices`: the subscription the page's script made.
pub(super) async fn device_add(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let endpoint = field(&form, "endpoint");
    let allowed = p
        .node
        .pusher()
        .is_some_and(|x| x.endpoint_allowed(endpoint));
    let name = si.name().to_string();
    let req = AdminRequest::UserDeviceAdd(NewDevice {
        user: name.clone(),
        name: field(&form, "name").to_string(),
        endpoint: endpoint.to_string(),
        p256dh: field(&form, "p256dh").to_string(),
        auth: field(&form, "auth").to_string(),
    });
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    if !allowed {
        return devices_alert(&p, &si, Msg::DeviceInvalid, invalid, now);
    }
    match crate::control::dispatch(&p.node, req).await {
        Ok(_) => {
            info!(
                user = %crate::text::Escaped(&name),
                push_service = %crate::text::Escaped(radmfa_store::endpoint_host(endpoint)),
                "push device registered in the portal"
            );
            p.with_notice(si.s, "/devices", Msg::DeviceRegistered, now)
        }
        Err(
            crate::admin::AdminError::Invalid(_)
            | crate::admin::AdminError::Store(radmfa_store::StoreError::Invalid(_)),
        ) => devices_alert(&p, &si, Msg::DeviceInvalid, invalid, now),
        Err(e) => {
            tracing::warn!(user = %crate::text::Escaped(&name), error = %e, "portal: cannot register a push device");
            let unavailable = StatusCode::SERVICE_UNAVAILABLE;
            devices_alert(&p, &si, Msg::TryAgain, unavailable, now)
        }
    }
}

/// `POST /devices/remove`: one of the signed-in user's own devices.
pub(super) async fn device_remove(
    State(p): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let now = p.clock.now_unix();
    let si = match p.signed_in_post(&headers, now, false, &form) {
        Ok(si) => si,
        Err(r) => return *r,
    };
    let name = si.name().to_string();
    let req = AdminRequest::UserDeviceRemove {
        name: name.clone(),
        id: field(&form, "id").to_string(),
    };
    if !p.write(&name, "remove a push device", req).await {
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        return devices_alert(&p, &si, Msg::TryAgain, unavailable, now);
    }
    p.with_notice(si.s, "/devices", Msg::DeviceRemoved, now)
}
