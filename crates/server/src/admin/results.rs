//! What admin operations answer, typed. The control socket, the HTTP API
//! and the peer link carry them as JSON (objects with their keys in
//! alphabetical order, as `serde_json::Value` writes them); the CLI reads
//! them back into these types instead of picking fields by name. A field
//! added here appears in every answer at once (docs/openapi.yaml lists them).

use serde::{Deserialize, Serialize};

use radmfa_store::{Client, Token, TokenAlgorithm, TokenKind, User};

/// Whether a user signs in with a PIN (PIN mode) or a code alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// A PIN is set.
    Pin,
    /// No PIN.
    Standard,
}

/// A user's token in a [`UserView`] (never the seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSummary {
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length.
    pub digits: u8,
    /// TOTP period in seconds.
    pub period: u64,
    /// Enrolled (unix seconds).
    pub created: u64,
}

/// A user as admins see it: never the password hash, and never the push
/// device token (a credential of the user's app: it is written, not read
/// back; `has_device_token` says whether there is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Phone (E.164).
    pub phone: String,
    /// Language ("nl", "de-CH"; empty: the policy's or the default).
    pub language: String,
    /// Phone extension dialled after a call connects; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub extension: String,
    /// Second-factor method.
    pub method: String,
    /// Enabled.
    pub enabled: bool,
    /// Why disabled ([`disabled_reason`]); `null` while enabled.
    pub disabled_reason: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Has a local password.
    pub has_password: bool,
    /// Has a push device token.
    pub has_device_token: bool,
    /// PIN or standard mode.
    pub pin_mode: PinMode,
    /// Must choose a new PIN at the next portal sign-in.
    pub pin_change_required: bool,
    /// Locked until (unix seconds; 0 unlocked, `u64::MAX` until an admin unlocks).
    pub locked_until: u64,
    /// Why locked.
    pub lock_reason: String,
    /// The token, if enrolled.
    pub token: Option<TokenSummary>,
    /// Created (unix seconds).
    pub created: u64,
    /// Last changed (unix seconds).
    pub updated: u64,
}

impl UserView {
    /// The view of `u` with its token `token`.
    pub fn new(u: &User, token: Option<&Token>) -> Self {
        UserView {
            name: u.name.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            phone: u.phone.clone(),
            language: u.language.clone(),
            extension: u.extension.clone(),
            method: u.method.to_string(),
            enabled: u.enabled,
            disabled_reason: disabled_reason(u).map(str::to_string),
            groups: u.groups.clone(),
            has_password: u.password_hash.is_some(),
            has_device_token: !u.device_token.is_empty(),
            pin_mode: if u.pin.is_some() {
                PinMode::Pin
            } else {
                PinMode::Standard
            },
            pin_change_required: u.pin_change_required,
            locked_until: u.locked_until,
            lock_reason: u.lock_reason.clone(),
            token: token.map(|t| TokenSummary {
                kind: t.kind,
                algorithm: algorithm_name(t.algorithm).to_string(),
                digits: t.digits,
                period: t.period,
                created: t.created,
            }),
            created: u.created,
            updated: u.updated,
        }
    }
}

/// Why `u` is disabled, as `user show` and the API say it: `None` while
/// enabled, else [`radmfa_store::DisabledReason::as_str`], or "unknown" for
/// a user disabled before reasons were recorded.
pub fn disabled_reason(u: &User) -> Option<&'static str> {
    (!u.enabled).then(|| {
        u.disabled_reason
            .map_or("unknown", radmfa_store::DisabledReason::as_str)
    })
}

/// A new user, and why they cannot log in yet (if so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdded {
    /// The user as stored.
    #[serde(flatten)]
    pub user: UserView,
    /// What the admin still has to do, in words they act on.
    pub warnings: Vec<String>,
    /// The enrollment mail, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_mail: Option<EnrollmentMail>,
}

/// What became of an enrollment mail (never the PIN it carried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentMail {
    /// Handed to the SMTP relay.
    pub sent: bool,
    /// The template it used or would have used: `call`, `sms`, `app` or
    /// `portal` (none when the user has no address).
    pub template: Option<String>,
    /// An initial PIN was generated, told in this mail and stored with a
    /// change required. False when no mail could be sent: the user is then
    /// left without a PIN.
    pub pin_generated: bool,
}

/// The enrollment mails of a bulk import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMail {
    /// Mails handed to the SMTP relay.
    pub sent: u64,
    /// Users added without a mail, one line each, saying why.
    pub warnings: Vec<String>,
}

/// A user's PIN mode after a PIN was set or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinSet {
    /// Login name.
    pub name: String,
    /// The mode now.
    pub pin_mode: PinMode,
}

/// A user enabled or disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEnabled {
    /// Login name.
    pub name: String,
    /// The state now.
    pub enabled: bool,
    /// Given when a fraud report disabled the user (`fraud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

/// A user or client deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// Its name.
    pub deleted: String,
}

/// A user's lock lifted, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlocked {
    /// Login name.
    pub name: String,
    /// The lock that was recorded (0: none).
    pub was_locked_until: u64,
    /// Its reason.
    pub was_lock_reason: String,
}

/// A lock written into a user's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    /// Login name.
    pub name: String,
    /// Locked until (unix seconds).
    pub locked_until: u64,
    /// Why.
    pub lock_reason: String,
}

/// A password changed (`password` is always `changed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    /// Login name.
    pub name: String,
    /// `changed`.
    pub password: String,
}

/// A bulk import done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// New users.
    pub added: u64,
    /// Users that existed.
    pub updated: u64,
    /// Nothing was written: `changes` says what would have been.
    #[serde(default)]
    pub dry_run: bool,
    /// Per row, what would be created or changed (a dry run only; an
    /// import answers with its counts); never a secret.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Rows refused (`--continue-on-error`), each naming its line and column.
    #[serde(default)]
    pub failed: Vec<String>,
}

/// Tokens imported by serial ([`super::AdminRequest::TokenImport`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensImported {
    /// How many tokens were (or would be) imported.
    pub imported: u64,
    /// Nothing was written.
    #[serde(default)]
    pub dry_run: bool,
    /// Per token, what was (or would be) done; never a seed.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Keys of the file that are not OTP tokens, with why.
    #[serde(default)]
    pub skipped: Vec<String>,
}

/// An imported token assigned to a user, or revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolChanged {
    /// The token's serial.
    pub serial: String,
    /// The user it is now assigned to (assign) or was (revoke).
    pub user: Option<String>,
}

/// A token enrolled: the one time its seed leaves the server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// Login name.
    pub user: String,
    /// The otpauth:// URI (holds the seed).
    pub uri: String,
    /// The seed in base32.
    pub secret: String,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolled")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A token as admins see it (never the seed); `last_used` is the last
/// accepted TOTP step or HOTP counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Login name.
    pub user: String,
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length.
    pub digits: u8,
    /// TOTP period in seconds.
    pub period: u64,
    /// Enrolled (unix seconds).
    pub created: u64,
    /// Last accepted step or counter, if any.
    pub last_used: Option<u64>,
}

impl TokenView {
    /// The view of `user`'s token `t`.
    pub fn new(user: &str, t: &Token, last_used: Option<u64>) -> Self {
        TokenView {
            user: user.to_string(),
            kind: t.kind,
            algorithm: algorithm_name(t.algorithm).to_string(),
            digits: t.digits,
            period: t.period,
            created: t.created,
            last_used,
        }
    }
}

/// A token deleted (`token` is always `deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDeleted {
    /// Login name.
    pub user: String,
    /// `deleted`.
    pub token: String,
}

/// An HOTP token resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resynced {
    /// Login name.
    pub user: String,
    /// The counter now recorded as the last used.
    pub last_used: u64,
}

/// Where a RADIUS client is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientSource {
    /// A `[[client]]` of the configuration file.
    Config,
    /// Added at run time (`radmfa client add`, the API).
    Store,
}

/// A client as admins see it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// Name.
    pub name: String,
    /// IP or CIDR.
    pub address: String,
    /// Policy name.
    pub policy: String,
    /// BlastRADIUS protection.
    pub require_message_authenticator: bool,
    /// Configuration file or store.
    pub source: ClientSource,
}

impl ClientView {
    /// A stored client.
    pub fn stored(c: &Client) -> Self {
        ClientView {
            name: c.name.clone(),
            address: c.address.to_string(),
            policy: c.policy.clone(),
            require_message_authenticator: c.require_message_authenticator,
            source: ClientSource::Store,
        }
    }

    /// A `[[client]]` of the configuration file.
    pub fn configured(c: &crate::config::StaticClient) -> Self {
        ClientView {
            name: c.name.clone(),
            address: c.address.to_string(),
            policy: c.policy.clone(),
            require_message_authenticator: c.require_message_authenticator,
            source: ClientSource::Config,
        }
    }
}

/// A new client, and the overlaps it was added with (`--force`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAdded {
    /// The client as stored.
    #[serde(flatten)]
    pub client: ClientView,
    /// Overlapping addresses, and which client answers for them.
    pub warnings: Vec<String>,
}

/// An admin API token created: the one time the token is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenCreated {
    /// Its name.
    pub name: String,
    /// Its scopes, normalised.
    pub scopes: Vec<String>,
    /// Created (unix seconds).
    pub created: u64,
    /// The bearer token.
    pub token: String,
}

impl std::fmt::Debug for AdminTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokenCreated")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// An admin API token as listed (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenView {
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Created (unix seconds).
    pub created: u64,
}

/// An admin API token revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Its name.
    pub revoked: String,
}

/// OTP steps a replica reported, raised on the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpAdvanced {
    /// How many were higher than the recorded ones.
    pub raised: usize,
}

/// A backup or restore as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// The backup file.
    pub path: String,
    /// Last change in it.
    pub seq: u64,
    /// Its epoch.
    pub epoch: u64,
    /// `primary` or `replica`.
    pub role: String,
    /// Replication epoch.
    pub repl_epoch: u64,
    /// Records in it.
    pub entries: u64,
    /// Audit journal files copied.
    pub audit_files: usize,
}

impl BackupView {
    /// The view of a backup written to (or restored from) `path`.
    pub fn new(path: &std::path::Path, info: &radmfa_store::BackupInfo) -> Self {
        BackupView {
            path: path.display().to_string(),
            seq: info.seq,
            epoch: info.epoch,
            role: match info.role {
                radmfa_store::repl::Role::Primary => "primary",
                _ => "replica",
            }
            .to_string(),
            repl_epoch: info.repl_epoch,
            entries: info.entries,
            audit_files: info.audit_files,
        }
    }
}

/// The name admins see for a token's HMAC.
pub fn algorithm_name(a: TokenAlgorithm) -> &'static str {
    match a {
        TokenAlgorithm::Sha1 => "SHA1",
        TokenAlgorithm::Sha256 => "SHA256",
        TokenAlgorithm::Sha512 => "SHA512",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radmfa_store::{DisabledReason, Method, Secret};

    /// The JSON of a user as the API and the control socket carried it
    /// before the results were typed (keys in alphabetical order, `null`
    /// for absent values), byte for byte.
    #[test]
    fn user_view_json_is_unchanged() {
        let mut u = User::new("ann");
        u.display_name = "Ann \"A\"".into();
        u.method = Method::SmsTwoWay;
        u.groups = vec!["vpn".into()];
        u.device_token = "dev".into();
        u.disable(DisabledReason::Admin);
        u.locked_until = u64::MAX;
        u.lock_reason = "too_many_failures".into();
        u.created = 7;
        u.updated = 8;
        let t = Token {
            kind: TokenKind::Hotp,
            algorithm: TokenAlgorithm::Sha256,
            digits: 8,
            period: 30,
            secret: Secret::new(vec![1; 20]),
            created: 9,
        };
        let got = serde_json::to_value(UserView::new(&u, Some(&t)))
            .expect("json")
            .to_string();
        assert_eq!(
            got,
            r#"{"created":7,"disabled_reason":"admin","display_name":"Ann \"A\"","email":"","enabled":false,"groups":["vpn"],"has_device_token":true,"has_password":false,"language":"","lock_reason":"too_many_failures","locked_until":18446744073709551615,"method":"sms_two_way","name":"ann","phone":"","pin_change_required":false,"pin_mode":"standard","token":{"algorithm":"SHA256","created":9,"digits":8,"kind":"hotp","period":30},"updated":8}"#
        );
        let added = UserAdded {
            user: UserView::new(&User::new("bob"), None),
            warnings: vec!["w".into()],
            enrollment_mail: None,
        };
        let v = serde_json::to_value(&added).expect("json");
        assert_eq!(v["token"], serde_json::Value::Null);
        assert_eq!(v["pin_mode"], "standard");
        assert_eq!(v["warnings"], serde_json::json!(["w"]));
        let back: UserAdded = serde_json::from_value(v).expect("read back");
        assert_eq!(back, added);
    }

    /// Optional fields that were absent stay absent, and `null` ones stay.
    #[test]
    fn enabled_and_token_json_are_unchanged() {
        let on = UserEnabled {
            name: "ann".into(),
            enabled: true,
            disabled_reason: None,
        };
        assert_eq!(
            serde_json::to_value(&on).expect("json").to_string(),
            r#"{"enabled":true,"name":"ann"}"#
        );
        let t = TokenView {
            user: "ann".into(),
            kind: TokenKind::Totp,
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
            created: 1,
            last_used: None,
        };
        assert_eq!(
            serde_json::to_value(&t).expect("json").to_string(),
            r#"{"algorithm":"SHA1","created":1,"digits":6,"kind":"totp","last_used":null,"period":30,"user":"ann"}"#
        );
    }
}

/// One accounting record as reports show it (flat: the audit record's
/// who/where and the Accounting-Request's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingRow {
    /// When it was stored, unix milliseconds.
    pub time_ms: u64,
    /// User-Name.
    pub user: String,
    /// Acct-Status-Type (`start`, `stop`, `interim-update`, ...).
    pub status: String,
    /// Acct-Session-Id.
    pub session_id: String,
    /// Acct-Session-Time, seconds.
    pub session_time: u64,
    /// Octets from the user (Acct-Input-Octets with Gigawords).
    pub input_octets: u64,
    /// Octets to the user (Acct-Output-Octets with Gigawords).
    pub output_octets: u64,
    /// Acct-Terminate-Cause.
    pub terminate_cause: String,
    /// Framed-IP-Address.
    pub framed_ip: String,
    /// Calling-Station-Id.
    pub calling_station: String,
    /// NAS-IP-Address.
    pub nas_ip: String,
    /// NAS-Identifier.
    pub nas_identifier: String,
    /// RADIUS client (name) that sent it.
    pub client_name: String,
    /// Its source address.
    pub client_ip: String,
    /// Node that stored it.
    pub server_name: String,
}

impl AccountingRow {
    /// The row of an accounting record (`None` for an authentication one).
    pub fn from_record(r: radmfa_store::AuditRecord) -> Option<AccountingRow> {
        let a = r.accounting?;
        Some(AccountingRow {
            time_ms: r.time_ms,
            user: r.user,
            status: a.status,
            session_id: a.session_id,
            session_time: a.session_time,
            input_octets: a.input_octets,
            output_octets: a.output_octets,
            terminate_cause: a.terminate_cause,
            framed_ip: a.framed_ip,
            calling_station: r.calling_station,
            nas_ip: a.nas_ip,
            nas_identifier: a.nas_identifier,
            client_name: r.client_name,
            client_ip: r.client_ip,
            server_name: r.server_name,
        })
    }
}

/// One Web Push device as shown (never its endpoint URL or keys: the URL is
/// a capability; only its host is shown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceView {
    /// Id (hex).
    pub id: String,
    /// Name the user gave it.
    pub name: String,
    /// Host of the push service the browser uses.
    pub push_service: String,
    /// Registered (unix seconds).
    pub created: u64,
}

impl DeviceView {
    /// The view of `d`.
    pub fn new(d: &radmfa_store::PushDevice) -> Self {
        DeviceView {
            id: d.id.clone(),
            name: d.name.clone(),
            push_service: d.endpoint_host().to_string(),
            created: d.created,
        }
    }
}

/// A user's Web Push devices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceList {
    /// Login name.
    pub user: String,
    /// The devices, oldest first.
    pub devices: Vec<DeviceView>,
}

/// A device removed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceRemoved {
    /// Login name.
    pub user: String,
    /// The device's id.
    pub removed: String,
}
