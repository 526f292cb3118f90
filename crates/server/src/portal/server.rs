//! Serving the portal: the check `radmfa check-config` runs, the task that
//! serves it over the shared HTTPS loop, the routes, and the two answers that
//! need no session (the stylesheet, 404).

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{Quota, RateLimiter};
use radmfa_otp::Clock;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::https::load_tls;
use crate::pipeline::Node;

use super::approve::{approve_decide, approve_page};
use super::codes::CodeAttempts;
use super::confirm::{confirm, confirm_page};
use super::devices::{device_add, device_remove, devices_page};
use super::enroll::{enroll, enroll_page};
use super::home::{home, not_me, signout};
use super::html::{self, page, Chrome};
use super::i18n::Msg;
use super::method::{method_page, method_set};
use super::phone::{phone_page, phone_send, phone_verify};
use super::pin::{pin_page, pin_set};
use super::respond::{html_response, redirect, secure};
use super::session::CookieKeys;
use super::signin::{signin, signin_page};
use super::state::Portal;
use super::verify::{verify, verify_page};
use crate::config::PortalSettings;

/// Largest request body (forms are small).
pub(super) const MAX_BODY: usize = 16 * 1024;

/// Checks the TLS files `[portal]` names (`radmfa check-config`).
pub fn check(settings: &PortalSettings) -> Result<(), String> {
    load_tls(&settings.cert, &settings.key)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// How the portal is served ([`crate::https::serve`]): browsers keep a few
/// connections open each.
pub(super) const HTTPS: crate::https::HttpsOptions = crate::https::HttpsOptions {
    service: "portal",
    max_connections: 1024,
    drain: std::time::Duration::from_secs(10),
};

/// Serves the portal on an already-bound listener until `shutdown`, then lets
/// requests in flight finish (at most 10 seconds).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    node: Arc<Node>,
    keys: CookieKeys,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let Some(settings) = node.config().portal.clone() else {
        return;
    };
    let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
    let portal = Arc::new(Portal {
        per_ip: RateLimiter::keyed(quota(settings.signin_per_minute_per_ip)),
        per_user: RateLimiter::keyed(quota(settings.signin_per_minute_per_user)),
        codes: CodeAttempts::new(node.limits().settings().max_tracked_keys),
        settings,
        keys,
        node,
        clock,
    });
    let local = listener.local_addr().ok();
    info!(listen = ?local, "portal listening (https)");
    let cleaner = {
        let p = portal.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                }
                p.per_ip.retain_recent();
                p.per_user.retain_recent();
                p.per_ip.shrink_to_fit();
                p.per_user.shrink_to_fit();
                p.codes.prune(p.clock.now_unix());
            }
        })
    };
    let callbacks = crate::callback::router(portal.node.clone());
    let app = match callbacks {
        Some(c) => router(portal).merge(c),
        None => router(portal),
    };
    crate::https::serve(listener, tls, app, HTTPS, shutdown).await;
    cleaner.abort();
}

pub(super) fn router(portal: Arc<Portal>) -> Router {
    super::app::routes(Router::new())
        .route("/", get(|| async { redirect("/home", None) }))
        .route("/portal.css", get(css))
        .route("/signin", get(signin_page).post(signin))
        .route("/verify", get(verify_page).post(verify))
        .route("/confirm", get(confirm_page).post(confirm))
        .route("/home", get(home))
        .route("/enroll", get(enroll_page).post(enroll))
        .route("/phone", get(phone_page).post(phone_send))
        .route("/phone/verify", post(phone_verify))
        .route("/method", get(method_page).post(method_set))
        .route("/pin", get(pin_page).post(pin_set))
        .route("/not-me", post(not_me))
        .route("/signout", post(signout))
        .route("/devices", get(devices_page).post(device_add))
        .route("/devices/remove", post(device_remove))
        .route("/approve/{id}", get(approve_page).post(approve_decide))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Also on what axum answers by itself (405, 413, 415).
        .layer(axum::middleware::map_response(|r: Response| async move {
            secure(r, None)
        }))
        .with_state(portal)
}

pub(super) async fn css() -> Response {
    let r = (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        html::CSS,
    )
        .into_response();
    secure(r, None)
}

pub(super) async fn not_found(State(p): State<Arc<Portal>>, headers: HeaderMap) -> Response {
    let lang = p.lang_of(&headers, None);
    let body = page(
        &Chrome {
            lang,
            signed_in_csrf: None,
            lang_switch: None,
        },
        Msg::NotFound,
        "<p><a href=\"/home\">/home</a></p>",
    );
    html_response(StatusCode::NOT_FOUND, body, None)
}
