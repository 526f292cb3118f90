//! The admin vocabulary: every operation as one [`AdminRequest`] variant,
//! the form it has on the control socket, the HTTP API's mapping and the
//! peer link (a replica forwards writes as these). Kept apart from the code
//! that runs them so the wire form has no dependencies beyond the store's
//! types, and each variant states its [`Effect`] on the running node here.

use serde::{Deserialize, Serialize};

use radmfa_store::{Method, TokenAlgorithm, TokenKind};

/// One admin request.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminRequest {
    /// Adds a user.
    UserAdd(NewUser),
    /// Changes fields of an existing user; absent fields stay as they are.
    UserSet(UserChange),
    /// Sets (PIN mode) or clears (standard mode) a user's PIN.
    UserPin {
        /// Login name.
        name: String,
        /// The PIN; none clears it.
        #[serde(default)]
        pin: Option<String>,
    },
    /// The user chose a new PIN (self-service portal): sets it and clears
    /// `pin_change_required`. The caller checks the PIN policy first.
    UserPinChange {
        /// Login name.
        name: String,
        /// The new PIN.
        pin: String,
    },
    /// Lists users.
    UserList,
    /// Shows one user.
    UserShow {
        /// Login name.
        name: String,
    },
    /// Enables or disables a user.
    UserSetEnabled {
        /// Login name.
        name: String,
        /// New state.
        enabled: bool,
    },
    /// Disables a user who reported a sign-in as not theirs (portal "This
    /// was not me"): reason `fraud`, which no directory sync lifts.
    UserDisableFraud {
        /// Login name.
        name: String,
    },
    /// Lists a user's Web Push devices (never their endpoints or keys).
    UserDevices {
        /// Login name.
        name: String,
    },
    /// Registers a browser for sign-in approvals (the portal's devices page).
    UserDeviceAdd(NewDevice),
    /// Removes one of a user's Web Push devices.
    UserDeviceRemove {
        /// Login name.
        name: String,
        /// The device's id.
        id: String,
    },
    /// Deletes a user and their token.
    UserDelete {
        /// Login name.
        name: String,
    },
    /// Lifts a user's lockout (the lock in the record, and on the running
    /// node its failure count and in-memory lock).
    UserUnlock {
        /// Login name.
        name: String,
    },
    /// Writes a lockout into a user's record (`until` unix seconds, 0 =
    /// unlocked, `u64::MAX` = until an admin unlocks). Sent by a node's
    /// lockout, forwarded to the primary from a replica.
    UserLock {
        /// Login name.
        name: String,
        /// Locked until (unix seconds).
        until: u64,
        /// Why (`too_many_failures`, `fraud_reported`).
        reason: String,
    },
    /// Sets a user's password.
    UserPasswd {
        /// Login name.
        name: String,
        /// New password.
        password: String,
    },
    /// Adds many users at once (each row: user, optional password, PIN,
    /// token, ...). All or nothing unless `continue_on_error`.
    UserImport {
        /// Rows to add; existing users are updated.
        rows: Vec<ImportRow>,
        /// After a successful import, send the enrollment mail to each user
        /// it added (`admin/enroll.rs`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        send_email: bool,
        /// Check and report what would change; write nothing.
        #[serde(default)]
        dry_run: bool,
        /// Import the good rows and list the bad ones (rows the caller
        /// could not parse are in `rejected`).
        #[serde(default)]
        continue_on_error: bool,
        /// Where the rows come from (a file name), for error messages.
        #[serde(default)]
        source: String,
        /// Rows the caller already refused (CSV parse errors), reported
        /// with the others.
        #[serde(default)]
        rejected: Vec<String>,
    },
    /// Imports tokens by serial (a parsed PSKC file); all or nothing.
    TokenImport(TokenImport),
    /// Assigns an imported token to a user.
    TokenAssign {
        /// The token's serial.
        serial: String,
        /// Login name.
        user: String,
    },
    /// Lists imported tokens (never their seeds).
    TokenPoolList {
        /// Only those not assigned to a user.
        #[serde(default)]
        unassigned: bool,
    },
    /// Revokes an imported token: removed from the pool and from its user.
    TokenRevoke {
        /// The token's serial.
        serial: String,
    },
    /// Enrolls a user's token; replaces one only with `replace`.
    TokenEnroll(NewToken),
    /// Lists the enrolled tokens (never their seeds).
    TokenList,
    /// Shows one user's token (never its seed) and its replay state.
    TokenShow {
        /// Login name.
        user: String,
    },
    /// Deletes a user's token (the user stays).
    TokenDelete {
        /// Login name.
        user: String,
    },
    /// Resynchronises an HOTP token whose counter ran beyond the look-ahead
    /// (RFC 4226 §7.4): two consecutive codes from the token.
    TokenResync {
        /// Login name.
        user: String,
        /// A code from the token.
        first: String,
        /// The code the token shows next.
        second: String,
    },
    /// Adds a RADIUS client.
    ClientAdd(NewClient),
    /// Lists stored RADIUS clients.
    ClientList,
    /// Deletes a stored RADIUS client.
    ClientDelete {
        /// Name.
        name: String,
    },
    /// Reads the audit log.
    Report {
        /// Only this user.
        #[serde(default)]
        user: Option<String>,
        /// Only this result.
        #[serde(default)]
        result: Option<String>,
        /// Since (unix ms).
        #[serde(default)]
        since_ms: Option<u64>,
        /// The last N matching records.
        #[serde(default)]
        limit: Option<usize>,
        /// Until (unix ms, exclusive).
        #[serde(default)]
        until_ms: Option<u64>,
        /// Only this second-factor method (see [`crate::counters::method_of`]).
        #[serde(default)]
        method: Option<String>,
        /// Only this RADIUS client (name).
        #[serde(default)]
        client: Option<String>,
        /// Leave out the records of admin actions (the portal's recent
        /// sign-ins).
        #[serde(default)]
        sign_ins_only: bool,
    },
    /// Aggregated report: sign-ins per period, method, result and client, the
    /// users with the most rejects, locked, fraud-reported and never
    /// enrolled users ([`crate::admin::summary::AuditSummary`]).
    ReportSummary {
        /// Since (unix ms).
        #[serde(default)]
        since_ms: Option<u64>,
        /// Until (unix ms, exclusive).
        #[serde(default)]
        until_ms: Option<u64>,
        /// Count sign-ins per hour or per day (default).
        #[serde(default)]
        bucket: crate::admin::summary::Bucket,
        /// How many of the most failing users (default 10).
        #[serde(default)]
        top: Option<usize>,
    },
    /// Reads the accounting records of the audit log (Accounting-Requests
    /// stored under `accounting = "store"`).
    AccountingReport {
        /// Only this user.
        #[serde(default)]
        user: Option<String>,
        /// Since (unix ms).
        #[serde(default)]
        since_ms: Option<u64>,
        /// Until (unix ms, exclusive).
        #[serde(default)]
        until_ms: Option<u64>,
        /// The last N matching records.
        #[serde(default)]
        limit: Option<usize>,
        /// Only this RADIUS client (name).
        #[serde(default)]
        client: Option<String>,
    },
    /// Creates an admin API token; the result holds the token, shown once.
    AdminTokenCreate {
        /// Unique name (logged with every API write made with the token).
        name: String,
        /// Scopes ([`crate::api::SCOPES`]).
        scopes: Vec<String>,
    },
    /// Lists admin API tokens (names and scopes, never the tokens).
    AdminTokenList,
    /// Revokes an admin API token.
    AdminTokenRevoke {
        /// Its name.
        name: String,
    },
    /// Counters of the running server (control socket only).
    Stats,
    /// Replication status: role, epoch, log position, replicas and their
    /// lag, primary reachability (control socket only).
    ReplStatus,
    /// Re-reads the configuration file and applies it, or refuses it with
    /// the reason (control socket only; `radmfa reload`, SIGHUP).
    Reload,
    /// Configuration digests of this node and the sections each peer
    /// differs in (control socket only).
    ConfigStatus,
    /// Between nodes only (over the peer link, every 2 s): the sender's
    /// configuration digests per section; the answer is the receiver's
    /// (`crate::consistency::Announce`). A node of an older version answers
    /// "bad request" and is not compared.
    ConfigDigest {
        /// The sender's `[server] node_name`.
        node_name: String,
        /// SHA-256 (hex) per section.
        sections: std::collections::BTreeMap<String, String>,
    },
    /// Replication: TOTP steps / HOTP counters consumed on a replica, raised
    /// (and logged for every node) on the primary.
    OtpAdvance {
        /// `(user, step or counter)` pairs.
        steps: Vec<(String, u64)>,
    },
    /// Lockout across nodes: a failed second factor on a replica, counted
    /// on the primary (which writes the lock at the limit). Peer link only.
    LockoutFailure {
        /// Login name.
        name: String,
        /// An Accept of the user on that replica, not yet sent, came first.
        #[serde(default)]
        reset_first: bool,
    },
    /// Lockout across nodes: Accepts on a replica, which reset the users'
    /// failure counts on the primary. Peer link only.
    LockoutReset {
        /// Login names.
        names: Vec<String>,
    },
    /// Makes this replica the primary at epoch + 1 (control socket only).
    Promote {
        /// Promote even if the node has not confirmed its copy is complete.
        #[serde(default)]
        force: bool,
    },
    /// Online backup to a file on the server's machine (absolute path; the
    /// file must not exist yet; the audit journal goes to `<path>.audit/`).
    Backup {
        /// Where to write.
        path: String,
    },
    /// Imports or syncs users from the directory (a configured [[sync]] item
    /// by name, or a one-off import described here).
    DirectorySync {
        /// A configured sync item; the fields below are then ignored.
        #[serde(default)]
        item: Option<String>,
        /// Search base.
        #[serde(default)]
        base: Option<String>,
        /// LDAP filter.
        #[serde(default)]
        filter: Option<String>,
        /// Or the (nested) members of this group.
        #[serde(default)]
        group: Option<String>,
        /// Method of new users.
        method: Method,
        /// Language of new users.
        #[serde(default)]
        language: String,
        /// Print the changes without making them.
        dry_run: bool,
        /// Mail new users their enrollment instructions.
        #[serde(default)]
        send_email: bool,
    },
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Requests carry passwords, secrets and seeds: name the operation only.
        let op = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("op").and_then(|o| o.as_str().map(str::to_string)))
            .unwrap_or_default();
        write!(f, "AdminRequest({op})")
    }
}

/// The fields of a new user ([`AdminRequest::UserAdd`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Phone number.
    #[serde(default)]
    pub phone: String,
    /// Language ("nl", "de-CH"; empty: the policy's or the default). Left
    /// out of the wire form when empty, which stays as it was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// Second-factor method.
    pub method: Method,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Initial password (local first factor).
    #[serde(default)]
    pub password: Option<String>,
    /// Push device token of the authenticator app.
    #[serde(default)]
    pub device_token: String,
    /// PIN (PIN mode); none for standard mode.
    #[serde(default)]
    pub pin: Option<String>,
    /// Enabled at once.
    pub enabled: bool,
    /// Send the enrollment mail once the user is added (`admin/enroll.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub send_email: bool,
    /// PIN mode with an initial PIN radmfa generates and tells only in the
    /// enrollment mail (needs `send_email`, excludes `pin`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generate_pin: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May carry a password, PIN, seed or shared secret: name it only.
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The fields a [`AdminRequest::UserSet`] changes (absent: unchanged).
#[derive(Clone, Serialize, Deserialize)]
pub struct UserChange {
    /// Login name.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Phone number (E.164; empty to clear).
    #[serde(default)]
    pub phone: Option<String>,
    /// Language (empty to clear; absent: unchanged, and left out of the
    /// wire form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Second-factor method.
    #[serde(default)]
    pub method: Option<Method>,
    /// Push device token (empty to clear).
    #[serde(default)]
    pub device_token: Option<String>,
    /// Replaces the groups.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

impl std::fmt::Debug for UserChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May carry a password, PIN, seed or shared secret: name it only.
        f.debug_struct("UserChange")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The token a [`AdminRequest::TokenEnroll`] asks for.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewToken {
    /// Login name.
    pub user: String,
    /// Base32 seed to import; a new random seed when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// TOTP or HOTP.
    pub kind: TokenKind,
    /// HMAC algorithm.
    pub algorithm: TokenAlgorithm,
    /// 6 or 8.
    pub digits: u8,
    /// TOTP period in seconds.
    pub period: u64,
    /// Replace an existing token (without it, a user who has one is
    /// refused). Requests from before this field replace, as they did.
    #[serde(default = "yes")]
    pub replace: bool,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May carry a password, PIN, seed or shared secret: name it only.
        f.debug_struct("NewToken")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The fields of a [`AdminRequest::ClientAdd`].
#[derive(Clone, Serialize, Deserialize)]
pub struct NewClient {
    /// Name.
    pub name: String,
    /// IP or CIDR.
    pub address: String,
    /// Shared secret.
    pub secret: String,
    /// Policy name.
    pub policy: String,
    /// BlastRADIUS protection.
    pub require_message_authenticator: bool,
    /// Add it even when its address overlaps another client's (the most
    /// specific prefix wins); the answer lists the overlaps as warnings.
    #[serde(default)]
    pub force: bool,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May carry a password, PIN, seed or shared secret: name it only.
        f.debug_struct("NewClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A browser's Push API subscription ([`AdminRequest::UserDeviceAdd`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct NewDevice {
    /// Login name.
    pub user: String,
    /// Name the user gives the device.
    pub name: String,
    /// The push resource URL (a capability: never logged).
    pub endpoint: String,
    /// The browser's P-256 key, base64url.
    pub p256dh: String,
    /// The browser's authentication secret, base64url.
    pub auth: String,
}

impl std::fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint is a capability: name the user and device only.
        f.debug_struct("NewDevice")
            .field("user", &self.user)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Tokens to import by serial ([`AdminRequest::TokenImport`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenImport {
    /// The tokens.
    pub tokens: Vec<ImportedToken>,
    /// Keys of the file that are not OTP tokens, with why (reported back).
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Check and report; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl std::fmt::Debug for TokenImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenImport")
            .field("tokens", &self.tokens.len())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// One token of a [`TokenImport`].
#[derive(Clone, Serialize, Deserialize)]
pub struct ImportedToken {
    /// Serial (the key it is kept by).
    pub serial: String,
    /// Manufacturer; may be empty.
    #[serde(default)]
    pub manufacturer: String,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// HMAC hash.
    pub algorithm: TokenAlgorithm,
    /// Code length.
    pub digits: u8,
    /// TOTP time step.
    pub period: u64,
    /// HOTP: the next counter.
    #[serde(default)]
    pub counter: u64,
    /// TOTP drift in intervals (reported; not applied).
    #[serde(default)]
    pub time_drift: i64,
    /// The user to assign it to, if the file names one.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The seed, hex.
    pub secret_hex: String,
}

impl std::fmt::Debug for ImportedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedToken")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// One row of a bulk import.
#[derive(Clone, Serialize, Deserialize)]
pub struct ImportRow {
    /// The row's line in the file (1 = the header), 0 when unknown.
    #[serde(default)]
    pub line: u64,
    /// Login name.
    pub name: String,
    /// Password; none leaves it unset (or unchanged).
    #[serde(default)]
    pub password: Option<String>,
    /// Base32 TOTP seed; none leaves the token unset (or unchanged).
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Phone.
    #[serde(default)]
    pub phone: String,
    /// Second-factor method; none leaves it unchanged (TOTP for new users).
    #[serde(default)]
    pub method: Option<Method>,
    /// Push device token.
    #[serde(default)]
    pub device_token: String,
    /// Language (`en`, `nl-BE`, ...); empty leaves it unchanged.
    #[serde(default)]
    pub language: String,
    /// Initial PIN: sealed, and the user must change it; none leaves it.
    #[serde(default)]
    pub pin: Option<String>,
    /// Groups (replace the user's); none leaves them.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Enabled or disabled; none leaves it (enabled for new users).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Phone extension dialled after a call connects; empty leaves it.
    #[serde(default)]
    pub extension: String,
    /// Token type of `totp_secret` (TOTP when absent).
    #[serde(default)]
    pub token_type: Option<TokenKind>,
    /// Token hash (SHA-1 when absent).
    #[serde(default)]
    pub algorithm: Option<TokenAlgorithm>,
    /// Token digits (the configured default when absent).
    #[serde(default)]
    pub digits: Option<u8>,
    /// TOTP period (30 when absent).
    #[serde(default)]
    pub period: Option<u64>,
    /// HOTP: the next counter the token will use (0 when absent).
    #[serde(default)]
    pub counter: Option<u64>,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a request changes that a running node caches, so it refreshes
/// afterwards: declared by every request in [`AdminRequest::effect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Nothing the node caches (reads; clients and admin tokens are read
    /// from the store on use).
    None,
    /// One user's record.
    User(String),
    /// One user's record and token.
    UserToken(String),
    /// One user's lock: the node's own failure count and in-memory lock go
    /// first (whatever the store says), then the record as for [`Effect::User`].
    Unlock(String),
    /// Possibly any user's record (a directory sync).
    Users,
    /// Possibly any user's record and token (a bulk import).
    UsersTokens,
}

impl Effect {
    /// The user a write touched (`None`: possibly any) and whether tokens
    /// changed, as the node's refresh takes them; `None` when nothing to do.
    pub fn refresh(&self) -> Option<(Option<&str>, bool)> {
        match self {
            Effect::None => None,
            Effect::User(n) | Effect::Unlock(n) => Some((Some(n), false)),
            Effect::UserToken(n) => Some((Some(n), true)),
            Effect::Users => Some((None, false)),
            Effect::UsersTokens => Some((None, true)),
        }
    }
}

impl AdminRequest {
    /// What this request changes that a running node caches. Every variant
    /// is listed (no wildcard): a new operation must say it to compile.
    pub fn effect(&self) -> Effect {
        match self {
            AdminRequest::UserList
            | AdminRequest::UserShow { .. }
            | AdminRequest::UserDevices { .. }
            | AdminRequest::TokenList
            | AdminRequest::TokenShow { .. }
            | AdminRequest::TokenPoolList { .. }
            | AdminRequest::ClientAdd(_)
            | AdminRequest::ClientList
            | AdminRequest::ClientDelete { .. }
            | AdminRequest::Report { .. }
            | AdminRequest::AccountingReport { .. }
            | AdminRequest::ReportSummary { .. }
            | AdminRequest::AdminTokenCreate { .. }
            | AdminRequest::AdminTokenList
            | AdminRequest::AdminTokenRevoke { .. }
            | AdminRequest::Stats
            | AdminRequest::ReplStatus
            | AdminRequest::ConfigStatus
            | AdminRequest::ConfigDigest { .. }
            | AdminRequest::OtpAdvance { .. }
            | AdminRequest::LockoutFailure { .. }
            | AdminRequest::LockoutReset { .. }
            | AdminRequest::Promote { .. }
            | AdminRequest::Backup { .. } => Effect::None,
            // The reload refreshes what it replaces itself (`pipeline/reload.rs`).
            AdminRequest::Reload => Effect::None,
            AdminRequest::UserAdd(NewUser { name, .. })
            | AdminRequest::UserSet(UserChange { name, .. })
            | AdminRequest::UserPin { name, .. }
            | AdminRequest::UserPinChange { name, .. }
            | AdminRequest::UserSetEnabled { name, .. }
            | AdminRequest::UserDisableFraud { name }
            | AdminRequest::UserLock { name, .. }
            | AdminRequest::UserPasswd { name, .. }
            | AdminRequest::UserDeviceAdd(NewDevice { user: name, .. })
            | AdminRequest::UserDeviceRemove { name, .. } => Effect::User(name.clone()),
            AdminRequest::UserUnlock { name } => Effect::Unlock(name.clone()),
            AdminRequest::UserDelete { name } => Effect::UserToken(name.clone()),
            AdminRequest::TokenEnroll(NewToken { user, .. })
            | AdminRequest::TokenDelete { user }
            | AdminRequest::TokenResync { user, .. } => Effect::UserToken(user.clone()),
            AdminRequest::TokenAssign { user, .. } => Effect::UserToken(user.clone()),
            AdminRequest::UserImport { .. }
            | AdminRequest::TokenImport(_)
            | AdminRequest::TokenRevoke { .. } => Effect::UsersTokens,
            AdminRequest::DirectorySync { .. } => Effect::Users,
        }
    }

    /// For the audit log: the action (the request's `op`) and what it acts
    /// on (a user, client or token name), or `None` for a read, which is
    /// not audited. Never a secret. Every variant is listed (no wildcard):
    /// a new operation must say whether it is audited to compile.
    pub fn audited(&self) -> Option<(&'static str, String)> {
        let (op, target) = match self {
            AdminRequest::UserList
            | AdminRequest::UserShow { .. }
            | AdminRequest::TokenList
            | AdminRequest::TokenShow { .. }
            | AdminRequest::TokenPoolList { .. }
            | AdminRequest::UserImport { dry_run: true, .. }
            | AdminRequest::TokenImport(TokenImport { dry_run: true, .. })
            | AdminRequest::ClientList
            | AdminRequest::Report { .. }
            | AdminRequest::ReportSummary { .. }
            | AdminRequest::AdminTokenList
            | AdminRequest::Stats
            | AdminRequest::ReplStatus
            | AdminRequest::AccountingReport { .. }
            | AdminRequest::UserDevices { .. }
            | AdminRequest::ConfigStatus
            // Between nodes: digests, and lockout failures and resets that
            // the sign-ins they come from are recorded by.
            | AdminRequest::ConfigDigest { .. }
            | AdminRequest::LockoutFailure { .. }
            | AdminRequest::LockoutReset { .. }
            // Consumed OTP steps: recorded by the sign-in they belong to.
            | AdminRequest::OtpAdvance { .. } => return None,
            AdminRequest::Reload => return Some(("reload", String::new())),
            AdminRequest::DirectorySync { dry_run: true, .. } => return None,
            AdminRequest::UserAdd(NewUser { name, .. }) => ("user_add", name),
            AdminRequest::UserSet(UserChange { name, .. }) => ("user_set", name),
            AdminRequest::UserPin { name, pin } => (
                if pin.is_some() { "user_pin_set" } else { "user_pin_clear" },
                name,
            ),
            AdminRequest::UserPinChange { name, .. } => ("user_pin_change", name),
            AdminRequest::UserSetEnabled { name, enabled } => (
                if *enabled { "user_enable" } else { "user_disable" },
                name,
            ),
            AdminRequest::UserDisableFraud { name } => ("user_disable_fraud", name),
            AdminRequest::UserDelete { name } => ("user_delete", name),
            AdminRequest::UserDeviceAdd(NewDevice { user, .. }) => ("user_device_add", user),
            AdminRequest::UserDeviceRemove { name, .. } => ("user_device_remove", name),
            AdminRequest::UserUnlock { name } => ("user_unlock", name),
            AdminRequest::UserLock { name, .. } => ("user_lock", name),
            AdminRequest::UserPasswd { name, .. } => ("user_passwd", name),
            AdminRequest::UserImport { rows, .. } => {
                return Some(("user_import", format!("{} rows", rows.len())))
            }
            AdminRequest::TokenImport(t) => {
                return Some(("token_import", format!("{} tokens", t.tokens.len())))
            }
            AdminRequest::TokenAssign { serial, user } => {
                return Some(("token_assign", format!("{serial} to {user}")))
            }
            AdminRequest::TokenRevoke { serial } => ("token_revoke_serial", serial),
            AdminRequest::TokenEnroll(NewToken { user, .. }) => ("token_enroll", user),
            AdminRequest::TokenDelete { user } => ("token_revoke", user),
            AdminRequest::TokenResync { user, .. } => ("token_resync", user),
            AdminRequest::ClientAdd(NewClient { name, .. }) => ("client_add", name),
            AdminRequest::ClientDelete { name } => ("client_delete", name),
            AdminRequest::AdminTokenCreate { name, .. } => ("admin_token_create", name),
            AdminRequest::AdminTokenRevoke { name } => ("admin_token_revoke", name),
            AdminRequest::Promote { .. } => return Some(("promote", String::new())),
            AdminRequest::Backup { .. } => return Some(("backup", String::new())),
            AdminRequest::DirectorySync { item, .. } => {
                return Some(("directory_sync", item.clone().unwrap_or_default()))
            }
        };
        Some((op, target.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form (control socket, peer link between nodes of different
    /// versions) of the requests whose fields live in their own struct is
    /// the flat object it always was: `op` beside the fields.
    #[test]
    fn requests_with_a_field_struct_keep_their_flat_wire_form() {
        let cases = [
            r#"{"op":"user_add","name":"alice","display_name":"Alice","email":"","phone":"","method":"totp","groups":["vpn"],"password":"pw-123456","device_token":"","pin":null,"enabled":true}"#,
            r#"{"op":"user_set","name":"alice","display_name":null,"email":"a@example.org","phone":null,"method":null,"device_token":null,"groups":null}"#,
            r#"{"op":"token_enroll","user":"alice","secret":null,"kind":"totp","algorithm":"sha1","digits":6,"period":30,"replace":false}"#,
            r#"{"op":"client_add","name":"vpn","address":"10.0.0.0/24","secret":"s3cret-s3cret","policy":"default","require_message_authenticator":true,"force":false}"#,
        ];
        for text in cases {
            let req: AdminRequest = serde_json::from_str(text).expect(text);
            let back = serde_json::to_value(&req).unwrap();
            let want: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(back, want, "{text}");
            // Debug names the operation, never the password or secret.
            let dbg = format!("{req:?}");
            assert!(
                !dbg.contains("pw-123456") && !dbg.contains("s3cret"),
                "{dbg}"
            );
        }
        // Fields with defaults may be left out, as before.
        let req: AdminRequest = serde_json::from_str(
            r#"{"op":"token_enroll","user":"bob","kind":"hotp","algorithm":"sha256","digits":8,"period":30}"#,
        )
        .unwrap();
        match req {
            AdminRequest::TokenEnroll(t) => assert!(t.replace && t.secret.is_none()),
            other => panic!("{other:?}"),
        }
        let n = NewUser {
            name: "carol".into(),
            display_name: String::new(),
            email: String::new(),
            phone: String::new(),
            language: String::new(),
            method: Method::Totp,
            groups: Vec::new(),
            password: Some("hunter2-hunter2".into()),
            device_token: String::new(),
            pin: Some("4711".into()),
            enabled: true,
            send_email: false,
            generate_pin: false,
        };
        let dbg = format!("{n:?}");
        assert!(dbg.contains("carol") && !dbg.contains("hunter2") && !dbg.contains("4711"));
    }
}
