//! The error type of the crate.

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid (bad URL, bad CA certificate, missing field).
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The request cannot be sent as given (missing phone number, bad number format).
    #[error("invalid gateway request: {0}")]
    InvalidRequest(String),
    /// The circuit breaker is open: the gateway failed repeatedly and is not called.
    #[error("gateway unavailable (circuit breaker open)")]
    Unavailable,
    /// The request did not complete within the configured timeout.
    #[error("gateway request timed out")]
    Timeout,
    /// Connection, TLS or I/O failure.
    #[error("gateway transport error: {0}")]
    Transport(String),
    /// The gateway refused our credentials (HTTP 401 or 403).
    #[error("gateway refused the credentials (HTTP {status})")]
    Auth {
        /// HTTP status code.
        status: u16,
    },
    /// The gateway rejected the request (HTTP 4xx other than 401/403/429).
    #[error("gateway rejected the request (HTTP {status}, {code}): {message}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Error code from the body (`code` field), or empty.
        code: String,
        /// Error message from the body, or empty.
        message: String,
    },
    /// The gateway failed (HTTP 5xx or 429).
    #[error("gateway failed (HTTP {status}, {code}): {message}")]
    Upstream {
        /// HTTP status code.
        status: u16,
        /// Error code from the body, or empty.
        code: String,
        /// Error message from the body, or empty.
        message: String,
    },
    /// The gateway answered something that does not follow the protocol.
    #[error("gateway protocol error: {0}")]
    Protocol(String),
    /// The provider cannot do this (e.g. push through Twilio).
    #[error("not supported by this gateway provider: {0}")]
    Unsupported(&'static str),
    /// The provider cannot report the verdict itself; it is delivered to the status
    /// callback instead (Twilio calls in production).
    #[error("verdict not available from the provider: {0}")]
    VerdictUnavailable(String),
}

impl GatewayError {
    /// True for failures that say the gateway is unhealthy (timeouts, transport errors,
    /// 5xx, 429): they count against the circuit breaker and may be retried.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GatewayError::Timeout | GatewayError::Transport(_) | GatewayError::Upstream { .. }
        )
    }
}
