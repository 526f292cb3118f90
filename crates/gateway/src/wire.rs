//! JSON bodies of the radmfa gateway protocol (`docs/gateway-protocol.md`), shared by
//! the client and the simulator.

use serde::{Deserialize, Serialize};

/// Longest `wait` a client may ask for in `GET /v1/verifications/{id}`, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

/// Header carrying the idempotency key on POSTs.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `POST /v1/sms` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsBody {
    /// Unique request id (equals the Idempotency-Key header).
    pub id: String,
    /// Recipient, E.164.
    pub to: String,
    /// Message text.
    pub body: String,
    /// The user's unique id.
    pub unique_id: String,
    /// radmfa server name.
    pub server_name: String,
    /// radmfa server IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<String>,
    /// End-user IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// First name (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `POST /v1/verifications` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationBody {
    /// Unique request id (equals the Idempotency-Key header).
    pub id: String,
    /// `two_way_sms`, `call` or `push`.
    pub mode: String,
    /// The user's unique id.
    pub unique_id: String,
    /// Phone (E.164), for `two_way_sms` and `call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// App device token, for `push`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// radmfa server name.
    pub server_name: String,
    /// radmfa server IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<String>,
    /// End-user IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `standard` or `pin`.
    pub pin_mode: String,
    /// The PIN, only with `pin_mode = "pin"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// First name (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email (only when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `202` answer to `POST /v1/sms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsAccepted {
    /// Gateway message id.
    pub message_id: String,
}

/// `201` answer to `POST /v1/verifications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationCreated {
    /// Gateway verification id.
    pub verification_id: String,
}

/// `200` answer to `GET /v1/verifications/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationStatus {
    /// Gateway verification id.
    pub verification_id: String,
    /// `pending`, `approved`, `denied`, `timed_out` or `fraud`.
    pub status: String,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code (`unauthorized`, `invalid_request`, `not_found`,
    /// `idempotency_conflict`, `internal`).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}
