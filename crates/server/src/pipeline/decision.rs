//! The outcome of one Access-Request before it is encoded: code, message,
//! audit mode and reason, what an Accept carries. A leaf module: lockout
//! (limits.rs) reads decisions without depending on the pipeline.

use radmfa_radius::{Attribute, Code};
use radmfa_store::{DisabledReason, User};

/// What an Accept carries besides the reply message and the user's stored
/// groups: the upstream RADIUS server's Accept attributes (first factor
/// `radius`) and the user's live directory groups (first factor `ldap`).
/// Every path to an Accept (inline, Access-Challenge, one-way SMS, out of
/// band, gateway fallbacks) applies the same one.
#[derive(Debug, Clone, Default)]
pub struct OnAccept {
    /// Attributes copied into the Accept.
    pub attrs: Vec<Attribute>,
    /// Groups whose `[[group_attributes]]` go into the Accept.
    pub groups: Vec<String>,
}

/// The outcome of one Access-Request, before encoding.
#[derive(Debug)]
pub struct Decision {
    /// Access-Accept, -Reject or -Challenge.
    pub code: Code,
    /// The Reply-Message.
    pub message: String,
    /// The State of an Access-Challenge.
    pub state: Option<Vec<u8>>,
    /// The Session-Timeout of an Access-Challenge.
    pub session_timeout: Option<u32>,
    /// Audit fields.
    pub user: String,
    /// Audit mode.
    pub mode: String,
    /// Audit reason.
    pub reason: String,
    /// Extra reply attributes (upstream Accept attributes, relayed challenge).
    pub attrs: Vec<Attribute>,
    /// Groups whose configured attributes go into an Accept.
    pub groups: Vec<String>,
}

impl Decision {
    pub fn reject(user: &str, mode: &str, reason: &str, message: &str) -> Decision {
        Decision {
            code: Code::ACCESS_REJECT,
            message: message.to_string(),
            state: None,
            session_timeout: None,
            user: user.to_string(),
            mode: mode.to_string(),
            reason: reason.to_string(),
            attrs: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn accept(user: &User, mode: &str, reason: &str) -> Decision {
        let who = if user.display_name.is_empty() {
            &user.name
        } else {
            &user.display_name
        };
        Decision {
            code: Code::ACCESS_ACCEPT,
            message: format!("Welcome, {who}."),
            state: None,
            session_timeout: None,
            user: user.name.clone(),
            mode: mode.to_string(),
            reason: reason.to_string(),
            attrs: Vec::new(),
            groups: user.groups.clone(),
        }
    }

    /// This decision with `extra` attributes and groups when it is an Accept.
    pub fn with_on_accept(mut self, extra: &OnAccept) -> Decision {
        if self.code == Code::ACCESS_ACCEPT {
            self.attrs.extend_from_slice(&extra.attrs);
            self.groups.extend_from_slice(&extra.groups);
        }
        self
    }
}

pub(super) const MSG_WRONG_CREDENTIALS: &str = "Wrong user name or password.";
pub(super) const MSG_WRONG_CODE: &str =
    "The code is not correct. Please sign in again with a new code.";
pub(super) const MSG_REUSED_CODE: &str =
    "This code was already used. Wait for your app to show a new code, then sign in again.";
pub(super) const MSG_WRONG_PIN: &str = "The PIN or code is not correct. Please sign in again.";
pub(super) const MSG_TRY_AGAIN: &str =
    "Sign-in is temporarily unavailable. Please try again in a minute.";
pub(super) const MSG_SESSION_GONE: &str =
    "Your sign-in attempt expired or is no longer valid. Please sign in again.";

pub(super) fn disabled(name: &str, user: &User, mode: &str) -> Decision {
    Decision::reject(
        name,
        mode,
        disabled_audit_reason(user),
        "Your account is disabled. Contact your administrator.",
    )
}

/// The audit reason of a refusal to a disabled user, by why they are
/// disabled (stable strings, listed in the README):
/// `user_disabled` (by an admin, or before reasons were recorded),
/// `user_disabled_fraud`, `user_disabled_left_directory`,
/// `user_disabled_in_directory`.
pub fn disabled_audit_reason(user: &User) -> &'static str {
    match user.disabled_reason {
        None | Some(DisabledReason::Admin) => "user_disabled",
        Some(DisabledReason::Fraud) => "user_disabled_fraud",
        Some(DisabledReason::LeftDirectory) => "user_disabled_left_directory",
        Some(DisabledReason::DirectoryDisabled) => "user_disabled_in_directory",
    }
}
