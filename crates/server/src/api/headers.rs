//! Security headers on every API response (a leaf: only axum).

use axum::http::header;
use axum::response::Response;

/// Headers every API response carries, including the ones axum's extractors
/// answer by themselves (405, 413, 415): nothing here is to be sniffed,
/// framed, cached, or fetched again over plain HTTP.
pub(super) async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(k, header::HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    r
}
