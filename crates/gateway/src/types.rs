//! Requests and results of the gateway API.

use std::fmt;
use std::net::IpAddr;

use crate::error::GatewayError;
use crate::secret::Secret;

/// The gateway's identifier of a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(pub String);

/// The gateway's identifier of a verification, used to wait for its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerificationId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for VerificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gateway knows about the user. `first_name`, `last_name` and `email` are
/// only sent when enabled in [`crate::GatewayConfig`] (`send_names`, `send_email`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFields {
    /// The user's unique id (e.g. the RADIUS User-Name as stored). Always sent.
    pub unique_id: String,
    /// First name (sent only with `send_names`).
    pub first_name: Option<String>,
    /// Last name (sent only with `send_names`).
    pub last_name: Option<String>,
    /// Email address (sent only with `send_email`).
    pub email: Option<String>,
    /// Phone number in E.164 form (`+` and 8 to 15 digits); needed for SMS and calls.
    pub phone: Option<String>,
    /// Device token of the authenticator app; needed for push.
    pub device_token: Option<String>,
    /// Phone extension (`0-9 * # w`) dialled once a call connects (Twilio
    /// `SendDigits`); not sent to the radmfa gateway.
    pub extension: Option<String>,
}

/// A one-way SMS (e.g. carrying a one-time code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRequest {
    /// Unique id of this request; the idempotency key.
    pub id: String,
    /// The recipient; `user.phone` must be set.
    pub user: UserFields,
    /// Message text. May hold a one-time code: never logged by this crate.
    pub body: String,
    /// Name of the radmfa server sending the request.
    pub server_name: String,
    /// IP address of the radmfa server.
    pub server_ip: Option<IpAddr>,
    /// IP address of the RADIUS client's end user (e.g. the VPN user), when known.
    pub client_ip: Option<IpAddr>,
    /// Sender number (E.164) instead of the configured `from_number`
    /// (Twilio; a policy's own number).
    pub from_number: Option<String>,
}

/// Kind of out-of-band verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationMode {
    /// An SMS the user answers by replying.
    TwoWaySms,
    /// A phone call where the user presses `#` (or enters a PIN).
    Call,
    /// A push notification to the authenticator app.
    Push,
}

impl VerificationMode {
    /// Name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationMode::TwoWaySms => "two_way_sms",
            VerificationMode::Call => "call",
            VerificationMode::Push => "push",
        }
    }
}

/// How the user approves: just acknowledge, or enter their PIN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PinMode {
    /// Press `#` (call), reply (SMS) or tap approve (push).
    #[default]
    Standard,
    /// The user must enter this PIN.
    Pin(Secret),
}

/// An out-of-band verification to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationRequest {
    /// Unique id of this request; the idempotency key.
    pub id: String,
    /// SMS, call or push.
    pub mode: VerificationMode,
    /// The user (phone for SMS/call, device token for push).
    pub user: UserFields,
    /// Name of the radmfa server.
    pub server_name: String,
    /// IP address of the radmfa server.
    pub server_ip: Option<IpAddr>,
    /// IP address of the end user, when known.
    pub client_ip: Option<IpAddr>,
    /// Standard or PIN mode. With Twilio only whether a PIN is asked for
    /// matters: the PIN is checked by the radmfa server, never sent.
    pub pin_mode: PinMode,
    /// Where a provider that reports back (Twilio) posts the user's answer;
    /// `None` for the radmfa gateway, which is asked for the verdict.
    pub callbacks: Option<Callbacks>,
    /// Two-way SMS through Twilio: the text to send (it names the reference
    /// the reply may carry).
    pub message: Option<String>,
    /// Caller ID / sender number (E.164) instead of the configured
    /// `from_number` (Twilio; a policy's own number).
    pub from_number: Option<String>,
    /// The key that reports fraud on a call (Twilio; `0-9` or `*`).
    pub fraud_key: Option<char>,
    /// A call through Twilio: what is said, in the user's language (it
    /// names the keys to press, the fraud key included).
    pub speech: Option<Speech>,
}

/// What a verification call says (Twilio `<Say>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    /// The language tag of the voice ("nl-NL").
    pub language: String,
    /// The voice ("alice" speaks every language radmfa has).
    pub voice: String,
    /// The words.
    pub text: String,
}

/// The callback URLs of one verification (Twilio).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callbacks {
    /// The `<Gather action>` of the call: receives the keys pressed.
    pub gather: String,
    /// The call's `StatusCallback`: receives its final status.
    pub status: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user approved.
    Approved,
    /// The user denied (or entered a wrong PIN).
    Denied,
    /// No answer before the deadline (ours or the gateway's).
    TimedOut,
    /// The user reported the attempt as fraud.
    FraudReported,
}

/// Checks an E.164 phone number: `+` then 8 to 15 digits.
pub(crate) fn check_phone(phone: Option<&str>) -> Result<&str, GatewayError> {
    let phone =
        phone.ok_or_else(|| GatewayError::InvalidRequest("the user has no phone number".into()))?;
    let digits = phone.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(phone)
    } else {
        Err(GatewayError::InvalidRequest(
            "phone number is not in E.164 form (+ and 8 to 15 digits)".into(),
        ))
    }
}

/// Checks an id used as idempotency key / URL segment: 1 to 128 of `[A-Za-z0-9_.-]`.
pub(crate) fn check_id(id: &str) -> Result<(), GatewayError> {
    if (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(())
    } else {
        Err(GatewayError::InvalidRequest(
            "id must be 1 to 128 characters of A-Z a-z 0-9 - _ .".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_validation() {
        assert!(check_phone(Some("+4915112345678")).is_ok());
        assert!(check_phone(Some("4915112345678")).is_err());
        assert!(check_phone(Some("+49 151")).is_err());
        assert!(check_phone(Some("+1234567")).is_err());
        assert!(check_phone(Some("+1234567890123456")).is_err());
        assert!(check_phone(None).is_err());
    }

    #[test]
    fn id_validation() {
        assert!(check_id("abc-123_x.y").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
        assert!(check_id(&"a".repeat(129)).is_err());
    }
}
