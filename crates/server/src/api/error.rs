//! The API's error value and the one place that decides what an admin
//! error means on the wire (status and stable code). A leaf file: the
//! handlers in `mod.rs` and the import helpers use it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::warn;

use crate::admin::AdminError;
use radmfa_store::StoreError;

/// An API error: HTTP status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"radmfa\""),
            );
        }
        resp
    }
}

/// What an admin error means on the wire. Errors relayed as text (from the
/// control socket or, later, from the primary) are classified by their
/// message.
pub fn classify(e: &AdminError) -> ApiError {
    let msg = e.to_string();
    match e {
        AdminError::Store(StoreError::NotFound { .. }) => ApiError::not_found(msg),
        AdminError::Store(StoreError::AlreadyExists { .. }) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", msg)
        }
        AdminError::Store(StoreError::ReadOnly(_)) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", msg)
        }
        AdminError::Store(StoreError::Invalid(_)) => ApiError::invalid(msg),
        AdminError::Store(_) => {
            warn!(error = %msg, "admin api: store error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error (see the server log)",
            )
        }
        _ if msg.starts_with("no user named") || msg.contains(" not found: ") => {
            ApiError::not_found(msg)
        }
        _ if msg.contains(" already exists: ") => {
            ApiError::new(StatusCode::CONFLICT, "conflict", msg)
        }
        _ if msg.starts_with("read-only") => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", msg)
        }
        AdminError::NeedsServer(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "read_only", msg)
        }
        _ => ApiError::invalid(msg),
    }
}
