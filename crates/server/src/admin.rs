//! Admin operations, one enum for all of them. The CLI runs them against the
//! store directly when no server holds it, or sends them to the running
//! server's control socket; later the HTTP API maps onto the same requests.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use radmfa_otp::{OtpKind, OtpauthParams};
use radmfa_store::{
    AuditFilter, Client, Method, Secret, Store, StoreError, Token, TokenAlgorithm, TokenKind, User,
};

use crate::config::{parse_cidr, RuntimeConfig};

/// The fields of an audit record in a CSV report, in column order (admin
/// API and CLI).
pub const REPORT_FIELDS: &[&str] = &[
    "time_ms",
    "user",
    "mode",
    "result",
    "reason",
    "server_name",
    "server_ip",
    "client_name",
    "client_ip",
    "calling_station",
];

/// One admin request.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminRequest {
    /// Adds a user.
    UserAdd {
        /// Login name.
        name: String,
        /// Display name.
        #[serde(default)]
        display_name: String,
        /// Email.
        #[serde(default)]
        email: String,
        /// Phone number.
        #[serde(default)]
        phone: String,
        /// Second-factor method.
        method: Method,
        /// Groups.
        #[serde(default)]
        groups: Vec<String>,
        /// Initial password (local first factor).
        #[serde(default)]
        password: Option<String>,
        /// Push device token of the authenticator app.
        #[serde(default)]
        device_token: String,
        /// PIN (PIN mode); none for standard mode.
        #[serde(default)]
        pin: Option<String>,
        /// Enabled at once.
        enabled: bool,
    },
    /// Changes fields of an existing user; absent fields stay as they are.
    UserSet {
        /// Login name.
        name: String,
        /// Display name.
        #[serde(default)]
        display_name: Option<String>,
        /// Email.
        #[serde(default)]
        email: Option<String>,
        /// Phone number (E.164; empty to clear).
        #[serde(default)]
        phone: Option<String>,
        /// Second-factor method.
        #[serde(default)]
        method: Option<Method>,
        /// Push device token (empty to clear).
        #[serde(default)]
        device_token: Option<String>,
        /// Replaces the groups.
        #[serde(default)]
        groups: Option<Vec<String>>,
    },
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
    /// Adds many users at once (each row: user, optional password and TOTP seed).
    UserImport {
        /// Rows to add; existing users are updated.
        rows: Vec<ImportRow>,
    },
    /// Enrolls a user's token; replaces one only with `replace`.
    TokenEnroll {
        /// Login name.
        user: String,
        /// Base32 seed to import; a new random seed when absent.
        #[serde(default)]
        secret: Option<String>,
        /// TOTP or HOTP.
        kind: TokenKind,
        /// HMAC algorithm.
        algorithm: TokenAlgorithm,
        /// 6 or 8.
        digits: u8,
        /// TOTP period in seconds.
        period: u64,
        /// Replace an existing token (without it, a user who has one is
        /// refused). Requests from before this field replace, as they did.
        #[serde(default = "yes")]
        replace: bool,
    },
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
    ClientAdd {
        /// Name.
        name: String,
        /// IP or CIDR.
        address: String,
        /// Shared secret.
        secret: String,
        /// Policy name.
        policy: String,
        /// BlastRADIUS protection.
        require_message_authenticator: bool,
        /// Add it even when its address overlaps another client's (the most
        /// specific prefix wins); the answer lists the overlaps as warnings.
        #[serde(default)]
        force: bool,
    },
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
    /// Replication: TOTP steps / HOTP counters consumed on a replica, raised
    /// (and logged for every node) on the primary.
    OtpAdvance {
        /// `(user, step or counter)` pairs.
        steps: Vec<(String, u64)>,
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

/// How far beyond the last used counter [`AdminRequest::TokenResync`]
/// searches for the two codes.
pub const HOTP_RESYNC_SEARCH: u64 = radmfa_otp::MAX_HOTP_RESYNC;

impl AdminRequest {
    /// The sync item a [`AdminRequest::DirectorySync`] describes.
    pub fn sync_item(&self, cfg: &RuntimeConfig) -> Result<crate::config::SyncItem, AdminError> {
        let AdminRequest::DirectorySync {
            item,
            base,
            filter,
            group,
            method,
            language,
            send_email,
            ..
        } = self
        else {
            return Err(AdminError::Invalid("not a directory sync request".into()));
        };
        if let Some(name) = item {
            return cfg
                .sync
                .iter()
                .find(|s| &s.name == name)
                .cloned()
                .ok_or_else(|| AdminError::Invalid(format!("no [[sync]] item named {name:?}")));
        }
        if filter.is_some() && group.is_some() {
            return Err(AdminError::Invalid(
                "give --filter or --group, not both".into(),
            ));
        }
        Ok(crate::config::SyncItem {
            name: "import".into(),
            base: base.clone(),
            filter: filter.clone(),
            group: group.clone(),
            method: *method,
            language: language.clone(),
            interval: None,
            send_enrollment_email: *send_email,
            fields: crate::sync::FieldModes::default(),
        })
    }
}

/// [`directory_sync`] on a blocking thread with its own single-threaded
/// runtime: the LDAP client's futures are not `Send` for every lifetime (a
/// rustc limitation with higher-ranked lifetimes), and a sync is rare and
/// slow, so it keeps off the request runtime entirely.
pub async fn directory_sync_detached(
    store: Store,
    cfg: std::sync::Arc<RuntimeConfig>,
    directory: Option<radmfa_directory::Directory>,
    req: AdminRequest,
) -> Result<Value, AdminError> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminError::Invalid(format!("cannot start the sync runtime: {e}")))?
            .block_on(directory_sync(store, cfg, directory, req))
    })
    .await
    .map_err(|e| AdminError::Invalid(format!("directory sync task failed: {e}")))?
}

/// Runs a directory sync against `store` (the CLI without a server, the
/// control socket, the scheduler).
pub async fn directory_sync(
    store: Store,
    cfg: std::sync::Arc<RuntimeConfig>,
    directory: Option<radmfa_directory::Directory>,
    req: AdminRequest,
) -> Result<Value, AdminError> {
    let item = req.sync_item(&cfg)?;
    let dry_run = matches!(req, AdminRequest::DirectorySync { dry_run: true, .. });
    let directory = match directory {
        Some(d) => d,
        None => {
            let dc = cfg.directory.clone().ok_or_else(|| {
                AdminError::Invalid("no [directory] section in the configuration".into())
            })?;
            radmfa_directory::Directory::new(dc).map_err(|e| AdminError::Invalid(e.to_string()))?
        }
    };
    let mailer = match &cfg.mail {
        Some(m) if item.send_enrollment_email => Some(
            crate::mail::Mailer::new(m.clone()).map_err(|e| AdminError::Invalid(e.to_string()))?,
        ),
        None if item.send_enrollment_email => {
            return Err(AdminError::Invalid(
                "sending enrollment mail needs a [mail] section".into(),
            ))
        }
        _ => None,
    };
    crate::sync::run(store, directory, item, dry_run, mailer).await
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

/// One row of a bulk import.
#[derive(Clone, Serialize, Deserialize)]
pub struct ImportRow {
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
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Needs a running server.
    #[error("{0}")]
    NeedsServer(String),
    /// A write on a replica that could not be forwarded to the primary.
    #[error("{0}")]
    ReadOnly(String),
}

/// The one wording of a missing user, everywhere: "user not found: NAME".
fn user_not_found(name: &str) -> AdminError {
    AdminError::Store(StoreError::NotFound {
        what: "user",
        name: name.to_string(),
    })
}

/// A token as admins see it (never the seed); `last` is the last accepted
/// TOTP step or HOTP counter.
fn token_view(user: &str, t: &Token, last: Option<u64>) -> Value {
    json!({
        "user": user,
        "kind": match t.kind { TokenKind::Totp => "totp", TokenKind::Hotp => "hotp" },
        "algorithm": algorithm_name(t.algorithm),
        "digits": t.digits,
        "period": t.period,
        "created": t.created,
        "last_used": last,
    })
}

/// Why a new user cannot log in yet, in words an admin acts on: a method
/// that needs a phone without one, or no password while a policy in use
/// checks a local password. The login's audit reason says the same.
fn user_add_warnings(store: &Store, cfg: &RuntimeConfig, u: &User) -> Vec<String> {
    let mut out = Vec::new();
    if matches!(u.method, Method::Sms | Method::SmsTwoWay | Method::Call) && u.phone.is_empty() {
        out.push(format!(
            "user {} has method {} but no phone number: logins are rejected (audit reason phone_missing) until `radmfa user set {} --phone +E164`",
            u.name, u.method, u.name
        ));
    }
    if u.password_hash.is_none() {
        let mut used: Vec<String> = cfg.clients.iter().map(|c| c.policy.clone()).collect();
        used.extend(
            store
                .list_clients()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.policy),
        );
        if let Some(r) = &cfg.radsec {
            used.extend(r.clients.iter().map(|c| c.policy.clone()));
        }
        if used.is_empty() {
            used.push("default".to_string());
        }
        used.sort();
        used.dedup();
        let local: Vec<String> = used
            .into_iter()
            .filter(|p| cfg.policy(p).first_factor == crate::config::FirstFactor::Local)
            .map(|p| format!("{p:?}"))
            .collect();
        if !local.is_empty() {
            out.push(format!(
                "user {} has no password, and policy {} checks a local password (first_factor = \"local\"): those logins are rejected (audit reason no_password) until `radmfa user passwd {} --password-stdin`",
                u.name,
                local.join(", "),
                u.name
            ));
        }
    }
    out
}

/// A user as admins see it: never the password hash, and never the push
/// device token (a credential of the user's app: it is written, not read
/// back; `has_device_token` says whether there is one).
pub fn user_view(u: &User, token: Option<&Token>) -> Value {
    json!({
        "name": u.name,
        "display_name": u.display_name,
        "email": u.email,
        "phone": u.phone,
        "method": u.method.to_string(),
        "enabled": u.enabled,
        "disabled_reason": disabled_reason(u),
        "groups": u.groups,
        "has_password": u.password_hash.is_some(),
        "has_device_token": !u.device_token.is_empty(),
        "pin_mode": if u.pin.is_some() { "pin" } else { "standard" },
        "pin_change_required": u.pin_change_required,
        "locked_until": u.locked_until,
        "lock_reason": u.lock_reason,
        "token": token.map(|t| json!({
            "kind": match t.kind { TokenKind::Totp => "totp", TokenKind::Hotp => "hotp" },
            "algorithm": algorithm_name(t.algorithm),
            "digits": t.digits,
            "period": t.period,
            "created": t.created,
        })),
        "created": u.created,
        "updated": u.updated,
    })
}

/// Why `u` is disabled, as `user show` and the API say it: `null` while
/// enabled, else [`radmfa_store::DisabledReason::as_str`], or "unknown" for
/// a user disabled before reasons were recorded.
pub fn disabled_reason(u: &User) -> Option<&'static str> {
    (!u.enabled).then(|| {
        u.disabled_reason
            .map_or("unknown", radmfa_store::DisabledReason::as_str)
    })
}

/// A backup or restore as admins see it.
pub fn backup_view(path: &std::path::Path, info: &radmfa_store::BackupInfo) -> Value {
    json!({
        "path": path.display().to_string(),
        "seq": info.seq,
        "epoch": info.epoch,
        "role": match info.role {
            radmfa_store::repl::Role::Primary => "primary",
            _ => "replica",
        },
        "repl_epoch": info.repl_epoch,
        "entries": info.entries,
        "audit_files": info.audit_files,
    })
}

/// Checks the contact fields a user's method needs, when they are given: an
/// E.164 phone number (`+` and 8 to 15 digits), a printable device token.
/// Missing ones are allowed (the user is told at login), wrong ones are not.
fn check_contact(u: &User) -> Result<(), AdminError> {
    if !u.phone.is_empty() {
        let digits = u.phone.strip_prefix('+').unwrap_or("");
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AdminError::Invalid(format!(
                "phone {:?} is not an E.164 number (+ and 8 to 15 digits, e.g. +31612345678)",
                u.phone
            )));
        }
    }
    if u.device_token.len() > 4096 || u.device_token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AdminError::Invalid(
            "device token must be at most 4096 printable characters without spaces".to_string(),
        ));
    }
    Ok(())
}

fn algorithm_name(a: TokenAlgorithm) -> &'static str {
    match a {
        TokenAlgorithm::Sha1 => "SHA1",
        TokenAlgorithm::Sha256 => "SHA256",
        TokenAlgorithm::Sha512 => "SHA512",
    }
}

fn otp_algorithm(a: TokenAlgorithm) -> radmfa_otp::Algorithm {
    match a {
        TokenAlgorithm::Sha1 => radmfa_otp::Algorithm::Sha1,
        TokenAlgorithm::Sha256 => radmfa_otp::Algorithm::Sha256,
        TokenAlgorithm::Sha512 => radmfa_otp::Algorithm::Sha512,
    }
}

/// Runs a request against the store and returns its result as JSON.
pub fn execute(store: &Store, cfg: &RuntimeConfig, req: AdminRequest) -> Result<Value, AdminError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match req {
        AdminRequest::UserAdd {
            name,
            display_name,
            email,
            phone,
            method,
            groups,
            password,
            device_token,
            pin,
            enabled,
        } => {
            let mut u = User::new(&name);
            u.display_name = display_name;
            u.email = email;
            u.phone = phone;
            u.method = method;
            u.groups = groups;
            u.device_token = device_token;
            if !enabled {
                u.disable(radmfa_store::DisabledReason::Admin);
            }
            check_contact(&u)?;
            radmfa_store::check_user_text(None, &u)?;
            let pin = pin.map(zeroize::Zeroizing::new);
            if let Some(pin) = &pin {
                radmfa_store::validate_pin(pin.as_bytes())?;
            }
            if let Some(pw) = password.as_deref() {
                check_password(pw)?;
                u.password_hash = Some(radmfa_store::hash_password(
                    pw.as_bytes(),
                    &cfg.password_params(),
                )?);
            }
            let warnings = user_add_warnings(store, cfg, &u);
            store.add_user(&u)?;
            if let Some(pin) = &pin {
                store.set_pin_required(&name, Some(pin.as_bytes()), true)?;
            }
            let u = store.get_user(&name)?.unwrap_or(u);
            let mut v = user_view(&u, None);
            v["warnings"] = json!(warnings);
            Ok(v)
        }
        AdminRequest::UserSet {
            name,
            display_name,
            email,
            phone,
            method,
            device_token,
            groups,
        } => {
            let mut probe = store
                .get_user(&name)?
                .ok_or_else(|| user_not_found(&name))?;
            let change = |u: &mut User| {
                if let Some(v) = &display_name {
                    u.display_name.clone_from(v);
                }
                if let Some(v) = &email {
                    u.email.clone_from(v);
                }
                if let Some(v) = &phone {
                    u.phone.clone_from(v);
                }
                if let Some(m) = method {
                    u.method = m;
                }
                if let Some(v) = &device_token {
                    u.device_token.clone_from(v);
                }
                if let Some(g) = &groups {
                    u.groups.clone_from(g);
                }
            };
            change(&mut probe);
            check_contact(&probe)?;
            store.update_user(&name, change)?;
            let u = store
                .get_user(&name)?
                .ok_or_else(|| user_not_found(&name))?;
            let t = store.get_token(&name)?;
            Ok(user_view(&u, t.as_ref()))
        }
        AdminRequest::UserPin { name, pin } => {
            let pin = pin.map(zeroize::Zeroizing::new);
            store.set_pin_required(&name, pin.as_ref().map(|p| p.as_bytes()), true)?;
            Ok(json!({"name": name, "pin_mode": if pin.is_some() { "pin" } else { "standard" }}))
        }
        AdminRequest::UserPinChange { name, pin } => {
            let pin = zeroize::Zeroizing::new(pin);
            store.set_pin_required(&name, Some(pin.as_bytes()), false)?;
            Ok(json!({"name": name, "pin_mode": "pin"}))
        }
        AdminRequest::UserList => {
            let users = store.list_users()?;
            let mut out = Vec::with_capacity(users.len());
            for u in &users {
                let t = store.get_token(&u.name)?;
                out.push(user_view(u, t.as_ref()));
            }
            Ok(Value::Array(out))
        }
        AdminRequest::UserShow { name } => {
            let u = store
                .get_user(&name)?
                .ok_or_else(|| user_not_found(&name))?;
            let t = store.get_token(&name)?;
            Ok(user_view(&u, t.as_ref()))
        }
        AdminRequest::UserSetEnabled { name, enabled } => {
            store.set_user_enabled(&name, enabled)?;
            Ok(json!({"name": name, "enabled": enabled}))
        }
        AdminRequest::UserDisableFraud { name } => {
            store.disable_user(&name, radmfa_store::DisabledReason::Fraud)?;
            Ok(json!({"name": name, "enabled": false, "disabled_reason": "fraud"}))
        }
        AdminRequest::UserDelete { name } => {
            store.delete_user(&name)?;
            Ok(json!({"deleted": name}))
        }
        AdminRequest::UserUnlock { name } => {
            let was = store
                .get_user(&name)?
                .ok_or_else(|| user_not_found(&name))?;
            crate::limits::persist_lock(store, &name, 0, "")?;
            Ok(
                json!({"name": name, "was_locked_until": was.locked_until, "was_lock_reason": was.lock_reason}),
            )
        }
        AdminRequest::UserLock {
            name,
            until,
            reason,
        } => {
            crate::limits::persist_lock(store, &name, until, &reason)?;
            Ok(json!({"name": name, "locked_until": until, "lock_reason": reason}))
        }
        AdminRequest::UserPasswd { name, password } => {
            check_password(&password)?;
            store.set_password(&name, password.as_bytes(), &cfg.password_params())?;
            Ok(json!({"name": name, "password": "changed"}))
        }
        AdminRequest::UserImport { rows } => import(store, cfg, rows),
        AdminRequest::TokenEnroll {
            user,
            secret,
            kind,
            algorithm,
            digits,
            period,
            replace,
        } => {
            if !(6..=8).contains(&digits) {
                return Err(AdminError::Invalid(format!(
                    "digits must be 6, 7 or 8, not {digits}"
                )));
            }
            if !(10..=300).contains(&period) {
                return Err(AdminError::Invalid(format!(
                    "period must be between 10 and 300 seconds, not {period}"
                )));
            }
            let seed = zeroize::Zeroizing::new(match secret.as_deref() {
                Some(s) => radmfa_otp::base32_decode(s).map_err(|_| {
                    AdminError::Invalid("the secret is not valid base32 (RFC 4648)".to_string())
                })?,
                None => radmfa_otp::generate_secret(match algorithm {
                    TokenAlgorithm::Sha1 => 20,
                    TokenAlgorithm::Sha256 => 32,
                    TokenAlgorithm::Sha512 => 64,
                }),
            });
            if seed.len() < 10 {
                return Err(AdminError::Invalid(
                    "the secret is too short: at least 80 bits (16 base32 characters)".to_string(),
                ));
            }
            if store.get_user(&user)?.is_none() {
                return Err(user_not_found(&user));
            }
            if !replace {
                if let Some(old) = store.get_token(&user)? {
                    return Err(AdminError::Invalid(format!(
                        "user {user} already has a {} token (enrolled {}); give --replace to replace it (the old one stops working)",
                        token_view(&user, &old, None)["kind"].as_str().unwrap_or_default(),
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(old.created)
                        )
                    )));
                }
            }
            let token = Token {
                kind,
                algorithm,
                digits,
                period,
                secret: Secret::new(seed.to_vec()),
                created: now,
            };
            store.put_token(&user, &token)?;
            let uri = radmfa_otp::otpauth_uri(&OtpauthParams {
                issuer: &cfg.otp_issuer,
                account: &user,
                secret: &seed,
                algorithm: otp_algorithm(algorithm),
                digits,
                kind: match kind {
                    TokenKind::Totp => OtpKind::Totp { period },
                    TokenKind::Hotp => OtpKind::Hotp { counter: 0 },
                },
            });
            let secret_b32 = radmfa_otp::base32_encode(&seed);
            Ok(json!({"user": user, "uri": uri, "secret": secret_b32}))
        }
        AdminRequest::TokenList => {
            let mut out = Vec::new();
            for u in store.list_users()? {
                if let Some(t) = store.get_token(&u.name)? {
                    out.push(token_view(&u.name, &t, store.otp_state(&u.name)?));
                }
            }
            Ok(Value::Array(out))
        }
        AdminRequest::TokenShow { user } => {
            if store.get_user(&user)?.is_none() {
                return Err(user_not_found(&user));
            }
            let t = store
                .get_token(&user)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "token",
                    name: user.clone(),
                })?;
            Ok(token_view(&user, &t, store.otp_state(&user)?))
        }
        AdminRequest::TokenDelete { user } => {
            if store.get_user(&user)?.is_none() {
                return Err(user_not_found(&user));
            }
            store.delete_token(&user)?;
            Ok(json!({"user": user, "token": "deleted"}))
        }
        AdminRequest::TokenResync {
            user,
            first,
            second,
        } => {
            if store.get_user(&user)?.is_none() {
                return Err(user_not_found(&user));
            }
            let t = store
                .get_token(&user)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "token",
                    name: user.clone(),
                })?;
            if t.kind != TokenKind::Hotp {
                return Err(AdminError::Invalid(format!(
                    "user {user} has a TOTP token: only HOTP counters are resynchronised (a TOTP token follows the clock)"
                )));
            }
            let next = store.otp_state(&user)?.map_or(0, |c| c.saturating_add(1));
            let hotp = radmfa_otp::Hotp {
                algorithm: otp_algorithm(t.algorithm),
                digits: t.digits,
                look_ahead: 0,
            };
            let used = hotp
                .resync(t.secret.expose(), &first, &second, next, HOTP_RESYNC_SEARCH)
                .map_err(|_| {
                    AdminError::Invalid(format!(
                        "the two codes are not consecutive codes of {user}'s token within {HOTP_RESYNC_SEARCH} counters of the last one used; press the button twice and give both codes in order"
                    ))
                })?;
            store.advance_otp_states_logged(&[(user.clone(), used)])?;
            Ok(json!({"user": user, "last_used": used}))
        }
        AdminRequest::ClientAdd {
            name,
            address,
            secret,
            policy,
            require_message_authenticator,
            force,
        } => {
            let address = parse_cidr(&address).ok_or_else(|| {
                AdminError::Invalid(format!(
                    "{address:?} is not an IP address or CIDR (for example 10.0.0.0/24)"
                ))
            })?;
            if !cfg.policies.contains_key(&policy) {
                return Err(AdminError::Invalid(format!(
                    "policy {policy:?} is not defined in {}",
                    cfg.origin
                )));
            }
            if secret.len() < 8 {
                return Err(AdminError::Invalid(
                    "the shared secret is too short: use at least 8 characters (16+ recommended)"
                        .to_string(),
                ));
            }
            let warnings = check_client_clash(store, cfg, &name, address, force)?;
            let c = Client {
                name: name.clone(),
                address,
                secret,
                policy: policy.clone(),
                require_message_authenticator,
            };
            store.add_client(&c)?;
            let mut v = client_view(&c, "store");
            v["warnings"] = json!(warnings);
            Ok(v)
        }
        AdminRequest::ClientList => Ok(Value::Array(
            store
                .list_clients()?
                .iter()
                .map(|c| client_view(c, "store"))
                .collect(),
        )),
        AdminRequest::ClientDelete { name } => {
            store.delete_client(&name)?;
            Ok(json!({"deleted": name}))
        }
        AdminRequest::Report {
            user,
            result,
            since_ms,
            limit,
            until_ms,
            method,
            client,
        } => {
            let filter = AuditFilter {
                user,
                since_ms,
                until_ms,
                result,
                limit,
            };
            let recs = store.query_audit_where(&filter, |r| {
                method
                    .as_deref()
                    .is_none_or(|m| crate::counters::method_of(&r.mode) == m)
                    && client.as_deref().is_none_or(|c| r.client_name == c)
            })?;
            Ok(serde_json::to_value(recs).map_err(|e| AdminError::Invalid(e.to_string()))?)
        }
        AdminRequest::AdminTokenCreate { name, scopes } => {
            let scopes =
                crate::api::auth::normalize_scopes(&scopes).map_err(AdminError::Invalid)?;
            let token = crate::api::auth::new_token();
            store.add_admin_token(&radmfa_store::AdminToken {
                name: name.clone(),
                scopes: scopes.clone(),
                hash: radmfa_store::admin_token_hash(token.as_bytes()),
                created: now,
            })?;
            Ok(json!({"name": name, "scopes": scopes, "created": now, "token": token.as_str()}))
        }
        AdminRequest::AdminTokenList => Ok(Value::Array(
            store
                .list_admin_tokens()?
                .iter()
                .map(|t| json!({"name": t.name, "scopes": t.scopes, "created": t.created}))
                .collect(),
        )),
        AdminRequest::AdminTokenRevoke { name } => {
            store.delete_admin_token(&name)?;
            Ok(json!({"revoked": name}))
        }
        AdminRequest::OtpAdvance { steps } => {
            let raised = store.advance_otp_states_logged(&steps)?;
            Ok(json!({ "raised": raised }))
        }
        AdminRequest::Stats | AdminRequest::ReplStatus | AdminRequest::Promote { .. } => {
            Err(AdminError::NeedsServer(
                "no radmfa server is running on this data directory".to_string(),
            ))
        }
        AdminRequest::Backup { path } => {
            let path = std::path::Path::new(&path);
            if !path.is_absolute() {
                return Err(AdminError::Invalid(format!(
                    "backup path {} must be absolute",
                    path.display()
                )));
            }
            let info = store.backup(path)?;
            Ok(backup_view(path, &info))
        }
        AdminRequest::DirectorySync { .. } => Err(AdminError::Invalid(
            "directory sync runs through radmfa_server::admin::directory_sync".to_string(),
        )),
    }
}

/// A client as admins see it (never the secret); `source` is `config` for
/// a `[[client]]` of the configuration file, `store` for one added at run time.
pub fn client_view(c: &Client, source: &str) -> Value {
    json!({
        "name": c.name,
        "address": c.address.to_string(),
        "policy": c.policy,
        "require_message_authenticator": c.require_message_authenticator,
        "source": source,
    })
}

/// A `[[client]]` of the configuration file as admins see it.
pub fn static_client_view(c: &crate::config::StaticClient) -> Value {
    json!({
        "name": c.name,
        "address": c.address.to_string(),
        "policy": c.policy,
        "require_message_authenticator": c.require_message_authenticator,
        "source": "config",
    })
}

/// A new client must not take the name or the exact address of another
/// (configuration file or store); an address that overlaps another's
/// network is refused unless `force` (then the most specific prefix wins,
/// and the overlaps come back as warnings).
fn check_client_clash(
    store: &Store,
    cfg: &RuntimeConfig,
    name: &str,
    address: ipnet::IpNet,
    force: bool,
) -> Result<Vec<String>, AdminError> {
    let mut others: Vec<(String, ipnet::IpNet, &str)> = cfg
        .clients
        .iter()
        .map(|c| (c.name.clone(), c.address, "the configuration file"))
        .collect();
    others.extend(
        store
            .list_clients()?
            .into_iter()
            .map(|c| (c.name, c.address, "the store")),
    );
    if let Some((n, _, from)) = others.iter().find(|(n, _, _)| n == name) {
        return Err(AdminError::Store(StoreError::AlreadyExists {
            what: "client",
            name: format!("{n} (in {from})"),
        }));
    }
    if let Some((n, _, from)) = others.iter().find(|(_, a, _)| *a == address) {
        return Err(AdminError::Invalid(format!(
            "address {address} is already the address of client {n:?} (in {from})"
        )));
    }
    let overlaps: Vec<String> = others
        .iter()
        .filter(|(_, a, _)| a.contains(&address) || address.contains(a))
        .map(|(n, a, from)| {
            let wins = if a.prefix_len() > address.prefix_len() {
                format!("{n:?} answers for {a}")
            } else {
                format!("{name:?} answers for {address}")
            };
            format!("address {address} overlaps client {n:?} ({a}, in {from}); the most specific prefix wins: {wins}")
        })
        .collect();
    if !overlaps.is_empty() && !force {
        return Err(AdminError::Invalid(format!(
            "{}; give --force to add it anyway",
            overlaps.join("; ")
        )));
    }
    Ok(overlaps)
}

fn check_password(pw: &str) -> Result<(), AdminError> {
    if pw.is_empty() || pw.len() > 120 {
        return Err(AdminError::Invalid(
            "a password must have 1 to 120 characters (RADIUS carries at most 128 bytes, and the inline code needs room)".to_string(),
        ));
    }
    Ok(())
}

fn import(store: &Store, cfg: &RuntimeConfig, rows: Vec<ImportRow>) -> Result<Value, AdminError> {
    // Validate everything before writing anything.
    let mut seeds = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if let Some(pw) = r.password.as_deref().filter(|p| !p.is_empty()) {
            check_password(pw).map_err(|e| AdminError::Invalid(format!("row {}: {e}", i + 1)))?;
        }
        let seed = match r.totp_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(radmfa_otp::base32_decode(s).map_err(|_| {
                AdminError::Invalid(format!(
                    "row {} ({:?}): totp_secret is not base32",
                    i + 1,
                    r.name
                ))
            })?),
            None => None,
        };
        seeds.push(seed);
    }
    // argon2 is the slow part: hash on every core.
    let params = cfg.password_params();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.len().div_ceil(threads).max(1);
    let hashes: Vec<Result<Option<String>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|r| match r.password.as_deref().filter(|p| !p.is_empty()) {
                            Some(pw) => {
                                radmfa_store::hash_password(pw.as_bytes(), &params).map(Some)
                            }
                            None => Ok(None),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if hashes.len() != rows.len() {
        return Err(AdminError::Invalid("password hashing failed".to_string()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut items = Vec::with_capacity(rows.len());
    for (i, ((r, hash), seed)) in rows.iter().zip(hashes).zip(seeds).enumerate() {
        let hash = hash?;
        let old = store.get_user(&r.name)?;
        let mut u = old.clone().unwrap_or_else(|| User::new(&r.name));
        if !r.display_name.is_empty() {
            u.display_name = r.display_name.clone();
        }
        if !r.email.is_empty() {
            u.email = r.email.clone();
        }
        if !r.phone.is_empty() {
            u.phone = r.phone.clone();
        }
        if let Some(m) = r.method {
            u.method = m;
        }
        if !r.device_token.is_empty() {
            u.device_token = r.device_token.clone();
        }
        radmfa_store::check_user_text(old.as_ref(), &u)
            .map_err(|e| AdminError::Invalid(format!("row {}: {e}", i + 1)))?;
        check_contact(&u).map_err(|e| AdminError::Invalid(format!("user {:?}: {e}", u.name)))?;
        if hash.is_some() {
            u.password_hash = hash;
        }
        let token = seed.map(|seed| Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: cfg.otp_digits,
            period: 30,
            secret: Secret::new(seed),
            created: now,
        });
        items.push((u, token));
    }
    // Every row was validated above. Written in transactions of IMPORT_BATCH
    // rows (one huge sled transaction would hold the whole import in memory
    // several times over); a storage failure midway keeps the batches before
    // it and says how far it got.
    const IMPORT_BATCH: usize = 10_000;
    let mut added = 0u64;
    for (i, batch) in items.chunks(IMPORT_BATCH).enumerate() {
        added += store.put_users(batch).map_err(|e| {
            AdminError::Invalid(format!(
                "import stopped after {} of {} rows: {e}",
                i * IMPORT_BATCH,
                items.len()
            ))
        })? as u64;
    }
    let updated = items.len() as u64 - added;
    Ok(json!({"added": added, "updated": updated}))
}
