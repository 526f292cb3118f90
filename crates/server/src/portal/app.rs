//! The installable web app's static files, built into the binary: the web
//! app manifest, the service worker (shows a pushed sign-in approval and
//! opens the approval page), the devices page's script (Push API
//! subscription) and the icon. The portal's only JavaScript, allowed by its
//! CSP as `script-src 'self'` / `worker-src 'self'`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::respond::secure;

/// The files: path, content type, body.
const FILES: &[(&str, &str, &str)] = &[
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_str!("static/manifest.webmanifest"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_str!("static/sw.js"),
    ),
    (
        "devices.js",
        "text/javascript; charset=utf-8",
        include_str!("static/devices.js"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("static/icon.svg")),
];

/// Adds `GET /<name>` for each file to `router`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for (name, _, _) in FILES {
        router = router.route(&format!("/{name}"), get(move || app_file(name)));
    }
    router
}

/// One of the files above.
async fn app_file(file: &str) -> Response {
    let Some((_, ctype, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return secure(StatusCode::NOT_FOUND.into_response(), None);
    };
    let r = (
        [
            (header::CONTENT_TYPE, *ctype),
            // Browsers check a service worker for updates themselves; the
            // rest changes only with the binary.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response();
    secure(r, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_json_with_the_fields_browsers_need() {
        let m: serde_json::Value = serde_json::from_str(FILES[0].2).unwrap();
        for k in ["name", "short_name", "start_url", "display", "icons"] {
            assert!(m.get(k).is_some(), "{k}");
        }
        for (name, _, _) in FILES {
            assert!(!name.contains('/'));
        }
    }
}
