//! The outcome of one Access-Request before it is encoded: code, message,
//! the audit mode ([`Mode`]) and reason ([`Reason`]), what an Accept
//! carries. Decisions are typed so that lockout, counters and metrics match
//! on variants; each variant has one stable string for the audit log, the
//! metrics and the API. A leaf module: lockout (limits.rs) and the counters
//! read decisions without depending on the rest of the pipeline.

use std::fmt;

use radmfa_radius::{Attribute, Code};
use radmfa_store::{DisabledReason, User};

use crate::i18n::{Key, Text};

/// Declares [`Reason`] with one stable string per variant.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// Why a request was accepted, challenged or rejected: the audit
        /// log's `reason`. The strings are stable (logs, tests, the API and
        /// the README list them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable string of the audit log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $text,)*
                }
            }
        }
    };
}

reasons! {
    // ----- accepted
    /// The factors the policy asks for passed.
    Ok = "ok",
    /// The policy does not require MFA for the user's groups.
    MfaNotRequiredForGroup = "mfa_not_required_for_group",
    /// No token enrolled, and the policy lets such users in.
    NotEnrolledAllowed = "not_enrolled_allowed",
    /// No gateway configured; `fail_mode = "open"`.
    GatewayNotConfiguredFailOpen = "gateway_not_configured_fail_open",
    /// The gateway failed; `fail_mode = "open"`.
    GatewayUnreachableFailOpen = "gateway_unreachable_fail_open",
    /// Every factor passed and the user chose a new PIN at the forced PIN
    /// change (`pinchange.rs`).
    PinChanged = "pin_changed",
    // ----- challenged
    /// An Access-Challenge asks for the code.
    CodeRequested = "code_requested",
    /// The upstream RADIUS server's challenge, relayed.
    UpstreamChallenge = "upstream_challenge",
    /// A one-way SMS code was sent.
    SmsSent = "sms_sent",
    /// A push approval with number matching was sent; the challenge asks
    /// for the number.
    PushSent = "push_sent",
    /// A wrong one-way SMS code; attempts remain.
    SmsCodeWrongRetry = "sms_code_wrong_retry",
    /// No gateway configured; `fail_mode = "totp_only"` asks for a TOTP code.
    GatewayNotConfiguredTotpFallback = "gateway_not_configured_totp_fallback",
    /// The gateway failed; `fail_mode = "totp_only"` asks for a TOTP code.
    GatewayUnreachableTotpFallback = "gateway_unreachable_totp_fallback",
    /// Every factor passed, but the user must change their PIN: the
    /// challenge asks for a new one.
    PinChangeRequired = "pin_change_required",
    /// The new PIN passed the policy: the challenge asks for it again.
    PinChangeConfirm = "pin_change_confirm",
    /// A new PIN the policy refuses, or a second entry that differs: the
    /// challenge says why and asks again.
    PinChangeRetry = "pin_change_retry",
    // ----- rejected before any factor
    /// No User-Name.
    MissingUserName = "missing_user_name",
    /// A User-Name with control characters.
    InvalidUserName = "invalid_user_name",
    /// The user is locked.
    LockedOut = "locked_out",
    /// Over the per-user rate limit.
    RateLimited = "rate_limited",
    /// CHAP-Password instead of User-Password.
    ChapUnsupported = "chap_unsupported",
    /// EAP-Message instead of User-Password.
    EapUnsupported = "eap_unsupported",
    /// No User-Password.
    MissingPassword = "missing_password",
    /// A User-Password that does not decode.
    MalformedPassword = "malformed_password",
    // ----- challenge answers
    /// The node owning the challenge cannot be reached over the peer link.
    OwnerUnreachable = "owner_unreachable",
    /// A State that does not verify, or answered from another client or policy.
    BadState = "bad_state",
    /// A State of another node (not forwarded).
    ForeignState = "foreign_state",
    /// The State's session belongs to another user.
    StateUserMismatch = "state_user_mismatch",
    /// The State's session expired or was used.
    ChallengeExpired = "challenge_expired",
    /// The user or their token was removed since the challenge.
    UserGone = "user_gone",
    // ----- store and sessions
    /// The store could not be read or written.
    StoreError = "store_error",
    /// The user's PIN does not decrypt.
    PinUnreadable = "pin_unreadable",
    /// The session table is full.
    SessionsFull = "sessions_full",
    // ----- first factor
    /// Wrong password (local, or the directory's answer).
    WrongPassword = "wrong_password",
    /// No such user (local, or the directory's answer).
    UnknownUser = "unknown_user",
    /// The user has no password hash (first factor `local`).
    NoPassword = "no_password",
    /// The directory account is disabled.
    AccountDisabled = "account_disabled",
    /// The directory account is locked.
    AccountLocked = "account_locked",
    /// The directory account expired.
    AccountExpired = "account_expired",
    /// The directory password expired.
    PasswordExpired = "password_expired",
    /// No directory server answered.
    DirectoryUnreachable = "directory_unreachable",
    /// The directory answered with an error.
    DirectoryError = "directory_error",
    /// First factor `ldap` without a `[directory]`.
    NoDirectory = "no_directory",
    /// First factor `radius` without its upstream group.
    NoUpstream = "no_upstream",
    /// The upstream RADIUS server did not answer.
    UpstreamUnreachable = "upstream_unreachable",
    /// The upstream RADIUS server rejected the password.
    UpstreamReject = "upstream_reject",
    /// The upstream RADIUS server challenged without a State.
    UpstreamChallengeWithoutState = "upstream_challenge_without_state",
    /// MS-CHAPv2 for a user whose method needs a typed code.
    MethodNeedsCode = "method_needs_code",
    // ----- account and enrolment
    /// No token enrolled (or no record, after an external first factor).
    NotEnrolled = "not_enrolled",
    /// First factor `none` and no second factor.
    NoFactor = "no_factor",
    /// Disabled by an admin (or before reasons were recorded).
    UserDisabled = "user_disabled",
    /// Disabled after a fraud report.
    UserDisabledFraud = "user_disabled_fraud",
    /// Disabled because they left the directory.
    UserDisabledLeftDirectory = "user_disabled_left_directory",
    /// Disabled in the directory.
    UserDisabledInDirectory = "user_disabled_in_directory",
    /// No phone number for an SMS or call.
    PhoneMissing = "phone_missing",
    /// No device token for a push.
    NoDevice = "no_device",
    /// Over `[limits] push_per_user` push approvals in the window (push
    /// fatigue).
    PushRateLimited = "push_rate_limited",
    /// No push message reached any of the user's registered browsers.
    PushUndeliverable = "push_undeliverable",
    // ----- second factor
    /// The code is missing where the policy wants it inline.
    CodeMissing = "code_missing",
    /// Wrong PIN.
    WrongPin = "wrong_pin",
    /// A code that is not a code.
    OtpMalformed = "otp_malformed",
    /// A wrong code.
    OtpMismatch = "otp_mismatch",
    /// A code (step or counter) already used.
    OtpReplayed = "otp_replayed",
    /// A wrong one-way SMS code, no attempts left.
    SmsCodeWrong = "sms_code_wrong",
    /// No gateway configured.
    GatewayNotConfigured = "gateway_not_configured",
    /// The gateway failed.
    GatewayUnreachable = "gateway_unreachable",
    /// Denied on the phone, or a wrong PIN typed there.
    DeniedOrWrongPin = "denied_or_wrong_pin",
    /// Denied on the phone.
    DeniedByUser = "denied_by_user",
    /// No answer from the phone in time.
    NoAnswer = "no_answer",
    /// The user reported the sign-in as fraud.
    FraudReported = "fraud_reported",
    /// The forced PIN change: too many refused new PINs.
    PinChangeFailed = "pin_change_failed",
    /// The forced PIN change: the new PIN could not be stored (the store,
    /// or on a replica the primary, refused or was unreachable).
    PinChangeNotSaved = "pin_change_not_saved",
    /// Push with number matching: a wrong number typed at the prompt.
    PushNumberWrong = "push_number_wrong",
    /// Push with number matching: the number was typed but the sign-in
    /// was not approved on the approval page.
    PushNotApproved = "push_not_approved",
    /// The verification call was answered, but no key was pressed.
    CallNoKeyPressed = "call_no_key_pressed",
    /// The verification call found the line busy.
    CallBusy = "call_busy",
    /// The verification call rang out unanswered.
    CallNoAnswer = "call_no_answer",
    /// The verification call could not be placed (invalid number, carrier).
    CallFailed = "call_failed",
    /// The verification call was cancelled before it was answered.
    CallCanceled = "call_canceled",
}

impl Reason {
    /// The reason of a stable string (audit records and the portal's
    /// outcomes read back), if it is one.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// A failed second factor: counts towards the lockout.
    pub fn is_second_factor_failure(self) -> bool {
        matches!(
            self,
            Reason::OtpMismatch
                | Reason::OtpMalformed
                | Reason::SmsCodeWrong
                | Reason::SmsCodeWrongRetry
                | Reason::WrongPin
                | Reason::DeniedByUser
                | Reason::DeniedOrWrongPin
                | Reason::PushNumberWrong
        )
    }

    /// The reason of a directory's refusal.
    pub fn of_directory(f: &radmfa_directory::AuthFailure) -> Reason {
        use radmfa_directory::AuthFailure as F;
        match f {
            F::WrongPassword => Reason::WrongPassword,
            F::UnknownUser => Reason::UnknownUser,
            F::AccountDisabled => Reason::AccountDisabled,
            F::AccountLocked => Reason::AccountLocked,
            F::AccountExpired => Reason::AccountExpired,
            F::PasswordExpired => Reason::PasswordExpired,
            F::Unreachable(_) => Reason::DirectoryUnreachable,
            _ => Reason::DirectoryError,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the gateway could not be used (a method then falls back as the
/// policy's `fail_mode` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayTrouble {
    /// No `[gateway]` configured.
    NotConfigured,
    /// The gateway failed or timed out.
    Unreachable,
}

impl GatewayTrouble {
    /// The Reject's reason.
    pub fn reason(self) -> Reason {
        match self {
            GatewayTrouble::NotConfigured => Reason::GatewayNotConfigured,
            GatewayTrouble::Unreachable => Reason::GatewayUnreachable,
        }
    }

    /// The Accept's reason under `fail_mode = "open"`.
    pub fn fail_open(self) -> Reason {
        match self {
            GatewayTrouble::NotConfigured => Reason::GatewayNotConfiguredFailOpen,
            GatewayTrouble::Unreachable => Reason::GatewayUnreachableFailOpen,
        }
    }

    /// The challenge's reason under `fail_mode = "totp_only"`.
    pub fn totp_fallback(self) -> Reason {
        match self {
            GatewayTrouble::NotConfigured => Reason::GatewayNotConfiguredTotpFallback,
            GatewayTrouble::Unreachable => Reason::GatewayUnreachableTotpFallback,
        }
    }
}

/// How the first factor was checked: the audit mode's first part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// A password, checked locally (first factor `local`).
    Pap,
    /// No password: the code alone (first factor `none`).
    Otp,
    /// By the upstream RADIUS server (PAP).
    Radius,
    /// By the upstream RADIUS server (MS-CHAPv2).
    MsChapV2,
    /// By a bind to the directory.
    Ldap,
}

impl First {
    /// The audit string.
    pub fn as_str(self) -> &'static str {
        match self {
            First::Pap => "pap",
            First::Otp => "otp",
            First::Radius => "radius",
            First::MsChapV2 => "mschapv2",
            First::Ldap => "ldap",
        }
    }
}

/// The second-factor method a decision used (the metrics' `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecondFactor {
    /// TOTP code.
    Totp,
    /// HOTP code.
    Hotp,
    /// One-way SMS code.
    Sms,
    /// Two-way SMS.
    SmsTwoWay,
    /// Phone call.
    Call,
    /// Push to the app.
    Push,
}

impl SecondFactor {
    /// The audit string.
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::Hotp => "hotp",
            SecondFactor::Sms => "sms",
            SecondFactor::SmsTwoWay => "sms_two_way",
            SecondFactor::Call => "call",
            SecondFactor::Push => "push",
        }
    }
}

/// How a code is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// In the User-Password, after the password.
    Inline,
    /// In answer to an Access-Challenge.
    Challenge,
}

/// How a request was authenticated: the audit log's `mode` (e.g.
/// `pap+totp-inline`, `ldap+push`, `totp-challenge`, `radius-challenge`,
/// `pap+sms>totp-challenge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refused before the first factor was known (`""`).
    Unknown,
    /// A challenge answer whose session is unknown here (`"challenge"`).
    Challenge,
    /// A login: its first factor, second-factor method and code entry, each
    /// when known, and whether the gateway failed over to a TOTP challenge
    /// (`>totp-challenge`).
    Login {
        /// The first factor (none for a code-only policy's code).
        first: Option<First>,
        /// The second-factor method.
        second: Option<SecondFactor>,
        /// How the code is entered.
        entry: Option<Entry>,
        /// A gateway method fell back to a TOTP challenge.
        totp_fallback: bool,
    },
}

impl Mode {
    /// The first factor alone (`pap`, `ldap`...).
    pub fn first(first: First) -> Mode {
        Mode::Login {
            first: Some(first),
            second: None,
            entry: None,
            totp_fallback: false,
        }
    }

    /// `first` then `second`, entered as `entry` (`first` `None`: the code
    /// alone, first factor `none`).
    pub fn with(first: Option<First>, second: SecondFactor, entry: Option<Entry>) -> Mode {
        Mode::Login {
            first,
            second: Some(second),
            entry,
            totp_fallback: false,
        }
    }

    /// The upstream RADIUS server's challenge relayed (`radius-challenge`).
    pub fn upstream_challenge() -> Mode {
        Mode::Login {
            first: Some(First::Radius),
            second: None,
            entry: Some(Entry::Challenge),
            totp_fallback: false,
        }
    }

    /// This mode, failed over from its gateway method to a TOTP challenge.
    pub fn totp_fallback(self) -> Mode {
        match self {
            Mode::Login {
                first,
                second,
                entry,
                ..
            } => Mode::Login {
                first,
                second,
                entry,
                totp_fallback: true,
            },
            other => other,
        }
    }

    /// The metrics' `method` label: the second-factor method, `none`
    /// without one; a gateway method that fell back to TOTP is labelled
    /// `<method>>totp`.
    pub fn method(self) -> MethodLabel {
        match self {
            Mode::Login {
                second: Some(m),
                totp_fallback,
                ..
            } => MethodLabel {
                second: Some(m),
                totp_fallback,
            },
            _ => MethodLabel {
                second: None,
                totp_fallback: false,
            },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Unknown => Ok(()),
            Mode::Challenge => f.write_str("challenge"),
            Mode::Login {
                first,
                second,
                entry,
                totp_fallback,
            } => {
                if let Some(first) = first {
                    f.write_str(first.as_str())?;
                }
                if let Some(second) = second {
                    if first.is_some() {
                        f.write_str("+")?;
                    }
                    f.write_str(second.as_str())?;
                }
                match entry {
                    Some(Entry::Inline) => f.write_str("-inline")?,
                    Some(Entry::Challenge) => f.write_str("-challenge")?,
                    None => {}
                }
                if *totp_fallback {
                    f.write_str(">totp-challenge")?;
                }
                Ok(())
            }
        }
    }
}

/// The metrics' `method` label of a decision ([`Mode::method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MethodLabel {
    /// The second-factor method, if any.
    pub second: Option<SecondFactor>,
    /// A gateway method that fell back to a TOTP challenge.
    pub totp_fallback: bool,
}

impl MethodLabel {
    /// The label: `none`, `totp`, ..., `sms>totp`.
    pub fn as_str(self) -> &'static str {
        use SecondFactor as S;
        match (self.second, self.totp_fallback) {
            (None, _) => "none",
            (Some(m), false) => m.as_str(),
            (Some(S::Sms), true) => "sms>totp",
            (Some(S::SmsTwoWay), true) => "sms_two_way>totp",
            (Some(S::Call), true) => "call>totp",
            (Some(S::Push), true) => "push>totp",
            (Some(S::Totp), true) => "totp>totp",
            (Some(S::Hotp), true) => "hotp>totp",
        }
    }

    /// Every label.
    pub fn all() -> impl Iterator<Item = MethodLabel> {
        let methods = [
            SecondFactor::Totp,
            SecondFactor::Hotp,
            SecondFactor::Sms,
            SecondFactor::SmsTwoWay,
            SecondFactor::Call,
            SecondFactor::Push,
        ];
        std::iter::once(MethodLabel {
            second: None,
            totp_fallback: false,
        })
        .chain(methods.into_iter().flat_map(|m| {
            [false, true]
                .into_iter()
                .map(move |totp_fallback| MethodLabel {
                    second: Some(m),
                    totp_fallback,
                })
        }))
    }
}

/// What a decision answers (the audit log's `result`, the metrics'
/// `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Answer {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
    /// Access-Challenge.
    Challenge,
}

impl Answer {
    /// The audit string.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Accept => "accept",
            Answer::Reject => "reject",
            Answer::Challenge => "challenge",
        }
    }
}

/// The audit reason of `reason`, followed by `+locked_out` when that
/// failure started a lock.
pub fn audit_reason(reason: Reason, lock_started: bool) -> std::borrow::Cow<'static, str> {
    if lock_started {
        format!("{}+locked_out", reason.as_str()).into()
    } else {
        reason.as_str().into()
    }
}

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
    /// Accept, Reject or Challenge.
    pub answer: Answer,
    /// The Reply-Message, rendered in the reader's language by the reply
    /// step.
    pub message: Text,
    /// The State of an Access-Challenge.
    pub state: Option<Vec<u8>>,
    /// The Session-Timeout of an Access-Challenge.
    pub session_timeout: Option<u32>,
    /// Audit user.
    pub user: String,
    /// Audit mode.
    pub mode: Mode,
    /// Audit reason.
    pub reason: Reason,
    /// This Reject's failure started a lock (audit reason
    /// `<reason>+locked_out`).
    pub lock_started: bool,
    /// Extra reply attributes (upstream Accept attributes).
    pub attrs: Vec<Attribute>,
    /// Groups whose configured attributes go into an Accept.
    pub groups: Vec<String>,
}

impl Decision {
    fn new(answer: Answer, user: String, mode: Mode, reason: Reason, message: Text) -> Decision {
        Decision {
            answer,
            message,
            state: None,
            session_timeout: None,
            user,
            mode,
            reason,
            lock_started: false,
            attrs: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// An Access-Reject telling the user `message`.
    pub fn reject(user: &str, mode: Mode, reason: Reason, message: impl Into<Text>) -> Decision {
        Decision::new(
            Answer::Reject,
            user.to_string(),
            mode,
            reason,
            message.into(),
        )
    }

    /// An Access-Accept welcoming `user` by name, with their groups'
    /// attributes.
    pub fn accept(user: &User, mode: Mode, reason: Reason) -> Decision {
        let who = if user.display_name.is_empty() {
            &user.name
        } else {
            &user.display_name
        };
        let mut d = Decision::new(
            Answer::Accept,
            user.name.clone(),
            mode,
            reason,
            Text::with(Key::Welcome, &[("name", who)]),
        );
        d.groups = user.groups.clone();
        d
    }

    /// An Access-Accept for `name`, who may have no record here (an
    /// external first factor sufficed): a plain welcome, with `groups`'
    /// attributes.
    pub fn accept_name(name: &str, mode: Mode, reason: Reason, groups: Vec<String>) -> Decision {
        let mut d = Decision::new(
            Answer::Accept,
            name.to_string(),
            mode,
            reason,
            Key::WelcomeAnonymous.into(),
        );
        d.groups = groups;
        d
    }

    /// An Access-Challenge asking `message`, answered with `state` within
    /// `session_timeout` seconds.
    pub fn challenge(
        user: &str,
        mode: Mode,
        reason: Reason,
        message: impl Into<Text>,
        state: Vec<u8>,
        session_timeout: Option<u32>,
    ) -> Decision {
        let mut d = Decision::new(
            Answer::Challenge,
            user.to_string(),
            mode,
            reason,
            message.into(),
        );
        d.state = Some(state);
        d.session_timeout = session_timeout;
        d
    }

    /// The RADIUS code of the reply.
    pub fn code(&self) -> Code {
        match self.answer {
            Answer::Accept => Code::ACCESS_ACCEPT,
            Answer::Reject => Code::ACCESS_REJECT,
            Answer::Challenge => Code::ACCESS_CHALLENGE,
        }
    }

    /// The audit log's reason ([`audit_reason`]).
    pub fn audit_reason(&self) -> std::borrow::Cow<'static, str> {
        audit_reason(self.reason, self.lock_started)
    }

    /// This decision with `extra` attributes and groups when it is an Accept.
    pub fn with_on_accept(mut self, extra: &OnAccept) -> Decision {
        if self.answer == Answer::Accept {
            self.attrs.extend_from_slice(&extra.attrs);
            self.groups.extend_from_slice(&extra.groups);
        }
        self
    }
}

pub(super) const MSG_WRONG_CREDENTIALS: Key = Key::BadCredentials;
pub(super) const MSG_WRONG_CODE: Key = Key::CodeWrong;
pub(super) const MSG_REUSED_CODE: Key = Key::ReusedCode;
pub(super) const MSG_WRONG_PIN: Key = Key::WrongPinOrCode;
pub(super) const MSG_TRY_AGAIN: Key = Key::Unavailable;
pub(super) const MSG_SESSION_GONE: Key = Key::SessionGone;

pub(super) fn disabled(name: &str, user: &User, mode: Mode) -> Decision {
    Decision::reject(name, mode, disabled_reason(user), Key::Disabled)
}

/// The reason of a refusal to a disabled user, by why they are disabled.
pub fn disabled_reason(user: &User) -> Reason {
    match user.disabled_reason {
        None | Some(DisabledReason::Admin) => Reason::UserDisabled,
        Some(DisabledReason::Fraud) => Reason::UserDisabledFraud,
        Some(DisabledReason::LeftDirectory) => Reason::UserDisabledLeftDirectory,
        Some(DisabledReason::DirectoryDisabled) => Reason::UserDisabledInDirectory,
    }
}

/// The audit reason of a refusal to a disabled user, by why they are
/// disabled (stable strings, listed in the README):
/// `user_disabled` (by an admin, or before reasons were recorded),
/// `user_disabled_fraud`, `user_disabled_left_directory`,
/// `user_disabled_in_directory`.
pub fn disabled_audit_reason(user: &User) -> &'static str {
    disabled_reason(user).as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each audit string, as the audit log, the README and the API tests
    /// know it, from the typed mode.
    #[test]
    fn modes_render_as_before() {
        use Entry::{Challenge, Inline};
        use First::*;
        use SecondFactor::*;
        let cases = [
            (Mode::Unknown, ""),
            (Mode::Challenge, "challenge"),
            (Mode::first(Pap), "pap"),
            (Mode::first(MsChapV2), "mschapv2"),
            (Mode::upstream_challenge(), "radius-challenge"),
            (Mode::with(Some(Pap), Totp, Some(Inline)), "pap+totp-inline"),
            (
                Mode::with(Some(Ldap), Hotp, Some(Challenge)),
                "ldap+hotp-challenge",
            ),
            (Mode::with(None, Totp, None), "totp"),
            (Mode::with(None, Hotp, Some(Challenge)), "hotp-challenge"),
            (Mode::with(Some(Otp), Sms, None), "otp+sms"),
            (
                Mode::with(Some(Radius), SmsTwoWay, None),
                "radius+sms_two_way",
            ),
            (
                Mode::with(Some(Pap), Push, None).totp_fallback(),
                "pap+push>totp-challenge",
            ),
        ];
        for (mode, text) in cases {
            assert_eq!(mode.to_string(), text);
            assert_eq!(
                mode.method().as_str(),
                crate::counters::method_of(text),
                "{text}"
            );
        }
    }

    #[test]
    fn reasons_have_distinct_strings_that_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r:?} repeats {}", r.as_str());
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::parse("otp_mismatch+locked_out"), None);
        use radmfa_directory::AuthFailure as F;
        for f in [
            F::WrongPassword,
            F::UnknownUser,
            F::AccountDisabled,
            F::AccountLocked,
            F::AccountExpired,
            F::PasswordExpired,
            F::Unreachable("x".into()),
            F::Directory("x".into()),
        ] {
            assert_eq!(Reason::of_directory(&f).as_str(), f.reason());
        }
        assert_eq!(
            audit_reason(Reason::OtpMismatch, true),
            "otp_mismatch+locked_out"
        );
    }
}
