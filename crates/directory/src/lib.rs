//! radmfa-directory: Active Directory / LDAP first factor, groups and user search.
//!
//! - **First factor** ([`Directory::authenticate`]): the service account finds the user
//!   (AD: `sAMAccountName`, UPN or `DOMAIN\user`; LDAP: a search filter), the account state
//!   is checked, then the user's own DN binds on a fresh connection. Every outcome has a
//!   stable audit reason ([`AuthFailure::reason`]).
//! - **Groups**: AD uses `LDAP_MATCHING_RULE_IN_CHAIN` (1.2.840.113556.1.4.1941) and falls
//!   back to walking `memberOf`; LDAP walks `memberOf` and reverse `member`/`uniqueMember`
//!   look-ups, bounded by [`DirectoryConfig::max_group_depth`] and cycle-safe.
//! - **Import / sync** ([`Directory::search_users`]): RFC 2696 paged searches.
//!
//! Connections: several servers tried in order with failover (a failed server is tried
//! last for [`DOWN_BACKOFF`]); pooled service-account connections; `ldap://`, StartTLS or
//! `ldaps://` with rustls (ring), trusting the system store (rustls-native-certs) plus an
//! optional extra CA. Every connect and operation runs under [`DirectoryConfig::timeout`].
//!
//! Passwords never reach a log or an error message. Server data is parsed without panics;
//! the LDAP library's own decoder runs in separate tasks, so a malformed PDU that it
//! rejects by panicking is contained and reported as an error.

mod ad;
mod conn;
mod entry;
mod filter;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use ldap3::{Ldap, Scope};
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use conn::{OpError, SearchReq, Security};
use entry::{first_rdn_value, norm_dn, Entry};
pub use filter::escape_filter_value;
use filter::{all_users_filter, login_candidates, render_user_filter, wrap_filter};

/// Default generic-LDAP user filter.
pub const LDAP_DEFAULT_USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={user}))";
/// Default Active Directory user filter.
pub const AD_DEFAULT_USER_FILTER: &str =
    "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={user})))";
/// How long a server that failed is tried only after the others.
pub const DOWN_BACKOFF: Duration = Duration::from_secs(30);
/// Default page size of paged searches.
pub const DEFAULT_PAGE_SIZE: i32 = 500;

/// `pwdAccountLockedTime` value that OpenLDAP ppolicy reads as "locked until an admin unlocks".
const PPOLICY_PERMANENT_LOCK: &str = "000001010000Z";
/// The group object classes whose `member`/`uniqueMember` values are DNs.
const GROUP_FILTER: &str =
    "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";
/// AD's transitive-membership matching rule.
const IN_CHAIN_OID: &str = "1.2.840.113556.1.4.1941";
/// Frontier DNs per reverse-membership search.
const REVERSE_CHUNK: usize = 32;
/// Upper bound on pages of one paged search (a runaway server cannot loop us forever).
const MAX_PAGES: usize = 100_000;

/// Which kind of directory server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryKind {
    /// Microsoft Active Directory (or Samba AD).
    ActiveDirectory,
    /// A generic LDAPv3 server (OpenLDAP, 389-ds, ...).
    Ldap,
}

/// Transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain `ldap://` (an `ldaps://` URL still uses LDAPS).
    None,
    /// `ldap://` upgraded with the StartTLS extended operation.
    StartTls,
    /// TLS from the first byte; `ldap://` URLs are dialled as `ldaps://` (default port 636).
    Ldaps,
}

/// A secret string (the service account's password): `Debug` prints `***`, the bytes are
/// zeroized on drop, equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Secret(secret)
    }

    /// The secret itself (keep the borrow short; never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

/// Directory connection and mapping settings.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// AD or generic LDAP.
    pub kind: DirectoryKind,
    /// `ldap://host:port` / `ldaps://host:port` URLs, tried in order (failover).
    pub servers: Vec<String>,
    /// Transport security (`ldaps://` URLs imply [`TlsMode::Ldaps`]).
    pub tls: TlsMode,
    /// Extra trusted CA certificate(s), PEM text; added to the system store.
    pub ca_pem: Option<String>,
    /// Service account DN used for searches (empty: anonymous searches).
    pub bind_dn: String,
    /// Service account password.
    pub bind_password: Secret,
    /// Search base.
    pub base_dn: String,
    /// User filter with `{user}` (RFC 4515-escaped); `None` is [`LDAP_DEFAULT_USER_FILTER`]
    /// or [`AD_DEFAULT_USER_FILTER`].
    pub user_filter: Option<String>,
    /// The canonical login attribute: AD `sAMAccountName`, LDAP `uid`.
    pub login_attr: String,
    /// Display name attribute (`displayName`; falls back to `cn`).
    pub display_name_attr: String,
    /// E-mail attribute (`mail`).
    pub email_attr: String,
    /// Phone attribute (`mobile`; falls back to `telephoneNumber`).
    pub phone_attr: String,
    /// Generic LDAP only: users matching this filter are [`AuthFailure::AccountDisabled`],
    /// e.g. `(pwdAccountLockedTime=*)` or `(employeeType=disabled)`. Independently of it,
    /// an OpenLDAP ppolicy permanent lock (`pwdAccountLockedTime: 000001010000Z`) is
    /// [`AuthFailure::AccountLocked`].
    pub disabled_filter: Option<String>,
    /// Deadline for each connect and each operation.
    pub timeout: Duration,
    /// Idle service-account connections kept open per server (0: no pooling).
    pub pool_size: usize,
    /// Nesting bound when groups are resolved by walking (1 = direct groups only, 0 = no
    /// groups). AD's in-chain rule resolves the whole chain server-side (only 0 applies).
    pub max_group_depth: usize,
}

impl DirectoryConfig {
    /// A configuration with the defaults of `kind`: no TLS unless a URL says `ldaps://`,
    /// default filter, `sAMAccountName`/`uid`, `displayName`, `mail`, `mobile`, a 5 s
    /// timeout, 4 pooled connections per server, group depth 8.
    pub fn new(
        kind: DirectoryKind,
        servers: Vec<String>,
        base_dn: impl Into<String>,
        bind_dn: impl Into<String>,
        bind_password: Secret,
    ) -> Self {
        let login_attr = match kind {
            DirectoryKind::ActiveDirectory => "sAMAccountName",
            DirectoryKind::Ldap => "uid",
        };
        DirectoryConfig {
            kind,
            servers,
            tls: TlsMode::None,
            ca_pem: None,
            bind_dn: bind_dn.into(),
            bind_password,
            base_dn: base_dn.into(),
            user_filter: None,
            login_attr: login_attr.into(),
            display_name_attr: "displayName".into(),
            email_attr: "mail".into(),
            phone_attr: "mobile".into(),
            disabled_filter: None,
            timeout: Duration::from_secs(5),
            pool_size: 4,
            max_group_depth: 8,
        }
    }

    /// The user filter template in force.
    pub fn effective_user_filter(&self) -> &str {
        match (&self.user_filter, self.kind) {
            (Some(f), _) => f,
            (None, DirectoryKind::ActiveDirectory) => AD_DEFAULT_USER_FILTER,
            (None, DirectoryKind::Ldap) => LDAP_DEFAULT_USER_FILTER,
        }
    }
}

/// A directory user as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirUser {
    /// The entry's DN.
    pub dn: String,
    /// The canonical login name ([`DirectoryConfig::login_attr`]).
    pub login: String,
    /// Display name (empty attribute: `cn`, then the login).
    pub display_name: String,
    /// E-mail address, or empty.
    pub email: String,
    /// Phone number (`phone_attr`, else `telephoneNumber`), or empty.
    pub phone: String,
    /// Group CNs, nested included, sorted, deduplicated.
    pub groups: Vec<String>,
    /// False when the account is disabled, expired or locked by an administrator.
    pub enabled: bool,
}

/// Why a first-factor authentication failed. [`AuthFailure::reason`] is the audit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The password is wrong (or empty).
    #[error("wrong password")]
    WrongPassword,
    /// No such user in the directory.
    #[error("unknown user")]
    UnknownUser,
    /// The account is disabled (or not permitted to log on now / here).
    #[error("account disabled")]
    AccountDisabled,
    /// The account is locked out.
    #[error("account locked")]
    AccountLocked,
    /// The account has expired.
    #[error("account expired")]
    AccountExpired,
    /// The password has expired or must be changed.
    #[error("password expired")]
    PasswordExpired,
    /// Every server failed or timed out.
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    /// The directory answered with an error that says nothing about the user
    /// (refused service account, ambiguous login, unexpected result code, malformed reply).
    #[error("directory error: {0}")]
    Directory(String),
}

impl AuthFailure {
    /// The stable audit-log reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::AccountDisabled => "account_disabled",
            AuthFailure::AccountLocked => "account_locked",
            AuthFailure::AccountExpired => "account_expired",
            AuthFailure::PasswordExpired => "password_expired",
            AuthFailure::Unreachable(_) => "directory_unreachable",
            AuthFailure::Directory(_) => "directory_error",
        }
    }
}

/// Errors of look-ups and searches (and of configuration).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Every server failed or timed out.
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    /// The configuration or a parameter is invalid.
    #[error("directory configuration: {0}")]
    Config(String),
    /// The server answered with an error, or with something unusable.
    #[error("directory: {0}")]
    Ldap(String),
    /// The service account's bind was refused on every reachable server.
    #[error("directory service account: {0}")]
    ServiceBind(String),
}

/// Outcome of trying every server.
#[derive(Debug)]
enum Failed {
    /// No server could run the operation.
    All {
        errors: Vec<String>,
        service_bind: bool,
    },
    /// A server answered with a definitive error.
    Op(OpError),
}

impl From<Failed> for AuthFailure {
    fn from(f: Failed) -> Self {
        match f {
            Failed::All {
                errors,
                service_bind: true,
            } => AuthFailure::Directory(errors.join("; ")),
            Failed::All { errors, .. } => AuthFailure::Unreachable(errors.join("; ")),
            Failed::Op(e) => AuthFailure::Directory(e.to_string()),
        }
    }
}

impl From<Failed> for DirectoryError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::All {
                errors,
                service_bind: true,
            } => DirectoryError::ServiceBind(errors.join("; ")),
            Failed::All { errors, .. } => DirectoryError::Unreachable(errors.join("; ")),
            Failed::Op(OpError::Config(m)) => DirectoryError::Config(m),
            Failed::Op(e) => DirectoryError::Ldap(e.to_string()),
        }
    }
}

#[derive(Debug)]
struct Server {
    url: String,
    mode: TlsMode,
    pool: Mutex<Vec<Ldap>>,
    down_until: Mutex<Option<Instant>>,
}

struct Inner {
    cfg: DirectoryConfig,
    servers: Vec<Server>,
    extra_roots: Vec<CertificateDer<'static>>,
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
}

/// A directory client. Cheap to clone (shared pools).
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
    page_size: i32,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("kind", &self.inner.cfg.kind)
            .field("servers", &self.inner.cfg.servers)
            .field("base_dn", &self.inner.cfg.base_dn)
            .finish_non_exhaustive()
    }
}

/// Checks a server URL and returns it (normalised) with its effective TLS mode.
fn check_url(url: &str, tls: TlsMode) -> Result<(String, TlsMode), String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let (rest, mode) = if lower.starts_with("ldaps://") {
        (url.get(8..).unwrap_or(""), TlsMode::Ldaps)
    } else if lower.starts_with("ldap://") {
        (url.get(7..).unwrap_or(""), tls)
    } else {
        return Err(format!("server {url:?}: expected ldap:// or ldaps://"));
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    let bad = |why: &str| format!("server {url:?}: {why}");
    if host_port.is_empty() {
        return Err(bad("no host"));
    }
    if host_port
        .chars()
        .any(|c| c.is_whitespace() || "/?#@\\".contains(c))
    {
        return Err(bad("only scheme://host[:port] is supported"));
    }
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return Err(bad("bad port"));
        }
        h
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) if valid_port(p) => h,
            Some(_) => return Err(bad("bad port")),
            None => host_port,
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let scheme = if mode == TlsMode::Ldaps {
        "ldaps"
    } else {
        "ldap"
    };
    Ok((format!("{scheme}://{host_port}"), mode))
}

/// Whether a normalised `scheme://host[:port]` URL names this machine
/// (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback_url(url: &str) -> bool {
    let host_port = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_port(p: &str) -> bool {
    p.parse::<u16>().is_ok_and(|n| n > 0)
}

fn check_filter(name: &str, filter: &str) -> Result<(), DirectoryError> {
    ldap3::parse_filter(filter)
        .map(|_| ())
        .map_err(|()| DirectoryError::Config(format!("{name}: not a valid LDAP filter: {filter}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Directory {
    /// Validates the configuration. No I/O happens here.
    pub fn new(cfg: DirectoryConfig) -> Result<Directory, DirectoryError> {
        if cfg.servers.is_empty() {
            return Err(DirectoryError::Config("no server configured".into()));
        }
        let mut servers = Vec::with_capacity(cfg.servers.len());
        for url in &cfg.servers {
            let (url, mode) = check_url(url, cfg.tls).map_err(DirectoryError::Config)?;
            servers.push(Server {
                url,
                mode,
                pool: Mutex::new(Vec::new()),
                down_until: Mutex::new(None),
            });
        }
        if cfg.base_dn.trim().is_empty() {
            return Err(DirectoryError::Config("base_dn is empty".into()));
        }
        if !cfg.bind_dn.trim().is_empty() && cfg.bind_password.is_empty() {
            // RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind.
            return Err(DirectoryError::Config(
                "bind_password is empty (that would be an unauthenticated bind)".into(),
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(DirectoryError::Config("timeout must be above zero".into()));
        }
        let template = cfg.effective_user_filter();
        if !template.contains("{user}") {
            return Err(DirectoryError::Config(
                "user_filter has no {user} placeholder".into(),
            ));
        }
        check_filter("user_filter", &render_user_filter(template, "x"))?;
        if let Some(f) = &cfg.disabled_filter {
            check_filter("disabled_filter", &wrap_filter(f))?;
        }
        for (name, attr) in [
            ("login_attr", &cfg.login_attr),
            ("display_name_attr", &cfg.display_name_attr),
            ("email_attr", &cfg.email_attr),
            ("phone_attr", &cfg.phone_attr),
        ] {
            if attr.trim().is_empty() {
                return Err(DirectoryError::Config(format!("{name} is empty")));
            }
        }
        let extra_roots = match &cfg.ca_pem {
            Some(pem) => conn::parse_ca_pem(pem).map_err(DirectoryError::Config)?,
            None => Vec::new(),
        };
        Ok(Directory {
            inner: Arc::new(Inner {
                cfg,
                servers,
                extra_roots,
                tls: OnceLock::new(),
            }),
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// The servers reached without TLS on another machine: the service
    /// account's password, every user's password (first factor `ldap`) and
    /// the directory's answers (phone numbers, groups) would cross the
    /// network in clear and unauthenticated. The server refuses such a
    /// configuration; plain LDAP is for a directory on the same host.
    pub fn cleartext_servers(&self) -> Vec<&str> {
        self.inner
            .servers
            .iter()
            .filter(|s| s.mode == TlsMode::None && !is_loopback_url(&s.url))
            .map(|s| s.url.as_str())
            .collect()
    }

    /// The same directory with another page size for paged searches (minimum 1).
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &DirectoryConfig {
        &self.inner.cfg
    }

    fn cfg(&self) -> &DirectoryConfig {
        &self.inner.cfg
    }

    /// First factor: accepts "user", "user@domain" (UPN) and "DOMAIN\user" (AD; the domain
    /// part is dropped for the sAMAccountName search). Search with the service account, check
    /// the account state (AD userAccountControl bits 2 disabled / 16 lockout, accountExpires,
    /// lockoutTime; LDAP disabled_filter), then bind as the user's DN on a fresh (unpooled)
    /// connection; map AD bind diagnostics (data 52e/525/530/531/532/533/701/773/775) too.
    /// An empty password is WrongPassword without any bind (RFC 4513 unauthenticated bind!).
    ///
    /// A password that is not UTF-8 is WrongPassword without a bind. On success the user's
    /// groups are resolved with the service account.
    pub async fn authenticate(&self, login: &str, password: &[u8]) -> Result<DirUser, AuthFailure> {
        if password.is_empty() {
            return Err(AuthFailure::WrongPassword);
        }
        let candidates = login_candidates(self.cfg().kind, login);
        if candidates.is_empty() {
            return Err(AuthFailure::UnknownUser);
        }
        let Ok(password) = std::str::from_utf8(password) else {
            tracing::debug!(user = login, "password is not UTF-8");
            return Err(AuthFailure::WrongPassword);
        };
        let password = Zeroizing::new(password.to_owned());

        let found = self
            .with_service(|ldap| {
                let candidates = &candidates;
                async move {
                    match self.find_user(&ldap, candidates).await? {
                        Some(entry) => {
                            let state = self.account_state(&ldap, &entry).await?;
                            Ok(Some((entry, state)))
                        }
                        None => Ok(None),
                    }
                }
            })
            .await?;
        let Some((entry, state)) = found else {
            return Err(AuthFailure::UnknownUser);
        };
        state?;
        self.user_bind(&entry, password).await?;
        let groups = self
            .with_service(|ldap| {
                let entry = &entry;
                async move { self.groups_of(&ldap, entry).await }
            })
            .await?;
        Ok(self.dir_user(&entry, groups, true))
    }

    /// The user and groups without a password (for group policy when the first factor is
    /// elsewhere). `Ok(None)` when no entry matches.
    pub async fn lookup(&self, login: &str) -> Result<Option<DirUser>, DirectoryError> {
        let candidates = login_candidates(self.cfg().kind, login);
        if candidates.is_empty() {
            return Ok(None);
        }
        let user = self
            .with_service(|ldap| {
                let candidates = &candidates;
                async move {
                    let Some(entry) = self.find_user(&ldap, candidates).await? else {
                        return Ok(None);
                    };
                    let state = self.account_state(&ldap, &entry).await?;
                    let groups = self.groups_of(&ldap, &entry).await?;
                    Ok(Some(self.dir_user(&entry, groups, state.is_ok())))
                }
            })
            .await?;
        Ok(user)
    }

    /// Import/sync: users under `base` (default base_dn) matching `filter` (default: all
    /// users of the kind), or — when `group` is Some(cn or dn) — the (nested) members of that group.
    ///
    /// `filter` is ANDed with the "all users" filter (the user filter with `{user}` = `*`),
    /// so it only narrows. Groups are read once (all groups under `base_dn`) and nesting is
    /// resolved in memory up to `max_group_depth` (at least 1 here). A `group` given by CN
    /// must name exactly one group. Every search is paged (RFC 2696).
    pub async fn search_users(
        &self,
        base: Option<&str>,
        filter: Option<&str>,
        group: Option<&str>,
    ) -> Result<Vec<DirUser>, DirectoryError> {
        let cfg = self.cfg();
        let base = base
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .unwrap_or(&cfg.base_dn);
        let all = all_users_filter(cfg.effective_user_filter());
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => {
                let f = wrap_filter(f);
                check_filter("filter", &f)?;
                format!("(&{all}{f})")
            }
            None => all,
        };
        let users = self
            .with_service(|ldap| {
                let filter = &filter;
                async move { self.search_users_on(&ldap, base, filter, group).await }
            })
            .await?;
        Ok(users)
    }

    async fn search_users_on(
        &self,
        ldap: &Ldap,
        base: &str,
        filter: &str,
        group: Option<&str>,
    ) -> Result<Vec<DirUser>, OpError> {
        let cfg = self.cfg();
        let mut group_attrs = vec!["cn", "memberOf"];
        if cfg.kind == DirectoryKind::Ldap {
            group_attrs.extend(["member", "uniqueMember"]);
        }
        let groups = self
            .paged_search(ldap, &cfg.base_dn, GROUP_FILTER, &group_attrs)
            .await?;
        let index = GroupIndex::new(&groups, cfg.kind);
        let target = match group {
            Some(g) => Some(index.resolve(g)?),
            None => None,
        };
        let user_attrs = self.user_attrs();
        let user_attrs: Vec<&str> = user_attrs.iter().map(String::as_str).collect();
        let entries = self.paged_search(ldap, base, filter, &user_attrs).await?;
        let disabled: HashSet<String> = match (&cfg.disabled_filter, cfg.kind) {
            (Some(d), DirectoryKind::Ldap) => {
                let f = format!("(&{filter}{})", wrap_filter(d));
                self.paged_search(ldap, base, &f, &["1.1"])
                    .await?
                    .iter()
                    .map(|e| norm_dn(&e.dn))
                    .collect()
            }
            _ => HashSet::new(),
        };
        let depth = cfg.max_group_depth.max(1);
        let now = ad::filetime(SystemTime::now());
        let mut out = Vec::new();
        for e in &entries {
            let closure = index.closure(&e.dn, &e.values("memberOf"), depth);
            if let Some(t) = &target {
                if !closure.contains_key(t) {
                    continue;
                }
            }
            let enabled = match cfg.kind {
                DirectoryKind::ActiveDirectory => ad::account_state(
                    ad::parse_int(e.first("userAccountControl").as_deref()),
                    None,
                    ad::parse_int(e.first("accountExpires").as_deref()),
                    now,
                )
                .is_ok(),
                DirectoryKind::Ldap => ldap_state(e, disabled.contains(&norm_dn(&e.dn))).is_ok(),
            };
            let groups = if cfg.max_group_depth == 0 {
                Vec::new()
            } else {
                closure.into_values().collect()
            };
            out.push(self.dir_user(e, groups, enabled));
        }
        Ok(out)
    }

    // ---- servers, pool, failover -------------------------------------------------------

    fn security(&self, mode: TlsMode) -> Result<Security, OpError> {
        if mode == TlsMode::None {
            return Ok(Security::Plain);
        }
        let cfg = self
            .inner
            .tls
            .get_or_init(|| conn::client_config(&self.inner.extra_roots))
            .clone()
            .map_err(OpError::Unreachable)?;
        Ok(match mode {
            TlsMode::StartTls => Security::StartTls(cfg),
            _ => Security::Ldaps(cfg),
        })
    }

    async fn connect(&self, server: &Server) -> Result<Ldap, OpError> {
        let security = self.security(server.mode)?;
        conn::connect(&server.url, security, self.cfg().timeout).await
    }

    /// Servers in the order to try: healthy ones in configured order, then those that
    /// failed within [`DOWN_BACKOFF`].
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let (mut up, down): (Vec<usize>, Vec<usize>) =
            (0..self.inner.servers.len()).partition(|&i| {
                self.inner
                    .servers
                    .get(i)
                    .is_none_or(|s| lock(&s.down_until).is_none_or(|t| t <= now))
            });
        up.extend(down);
        up
    }

    fn mark(&self, server: &Server, ok: bool) {
        let until = (!ok).then(|| Instant::now() + DOWN_BACKOFF);
        *lock(&server.down_until) = until;
        if !ok {
            lock(&server.pool).clear();
        }
    }

    /// A bound service-account connection: a pooled one unless `fresh`.
    async fn acquire(&self, server: &Server, fresh: bool) -> Result<(Ldap, bool), OpError> {
        if fresh {
            lock(&server.pool).clear();
        } else {
            loop {
                let pooled = lock(&server.pool).pop();
                match pooled {
                    Some(mut l) => {
                        if !l.is_closed() {
                            return Ok((l, true));
                        }
                    }
                    None => break,
                }
            }
        }
        let ldap = self.connect(server).await?;
        let cfg = self.cfg();
        if !cfg.bind_dn.trim().is_empty() {
            let pw = Zeroizing::new(cfg.bind_password.expose().to_owned());
            match conn::bind(&ldap, &cfg.bind_dn, pw, cfg.timeout).await? {
                (0, _) => {}
                (rc @ (51 | 52), text) => {
                    return Err(OpError::Unreachable(format!(
                        "bind: {rc} {}",
                        conn::clean(&text)
                    )))
                }
                (rc, text) => {
                    return Err(OpError::ServiceBind(format!(
                        "{} on {}: result {rc} ({})",
                        cfg.bind_dn,
                        server.url,
                        conn::clean(&text)
                    )))
                }
            }
        }
        Ok((ldap, false))
    }

    fn release(&self, server: &Server, mut ldap: Ldap) {
        if ldap.is_closed() {
            return;
        }
        let mut pool = lock(&server.pool);
        if pool.len() < self.cfg().pool_size {
            pool.push(ldap);
        } else {
            drop(pool);
            conn::unbind(ldap);
        }
    }

    /// Runs `op` on a service-account connection, server after server until one answers.
    /// A pooled connection that turns out dead is replaced once before moving on.
    ///
    /// `op` returns a plain `Send` future (not an async closure): the futures
    /// of this client must be spawnable on a multi-threaded runtime, and an
    /// async closure's future cannot be bounded `Send` on stable Rust.
    async fn with_service<T, F, Fut>(&self, op: F) -> Result<T, Failed>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<T, OpError>> + Send,
    {
        let mut errors = Vec::new();
        let mut service_bind = false;
        for idx in self.order() {
            let Some(server) = self.inner.servers.get(idx) else {
                continue;
            };
            let mut fresh = false;
            loop {
                let (ldap, reused) = match self.acquire(server, fresh).await {
                    Ok(c) => c,
                    Err(e) => {
                        service_bind |= matches!(e, OpError::ServiceBind(_));
                        tracing::warn!(server = %server.url, error = %e, "directory server failed");
                        errors.push(format!("{}: {e}", server.url));
                        self.mark(server, false);
                        break;
                    }
                };
                match op(ldap.clone()).await {
                    Ok(v) => {
                        self.mark(server, true);
                        self.release(server, ldap);
                        return Ok(v);
                    }
                    Err(e) if e.failover() => {
                        drop(ldap);
                        if reused && !fresh {
                            fresh = true;
                            continue;
                        }
                        tracing::warn!(server = %server.url, error = %e, "directory server failed");
                        errors.push(format!("{}: {e}", server.url));
                        self.mark(server, false);
                        break;
                    }
                    Err(e) => {
                        self.release(server, ldap);
                        return Err(Failed::Op(e));
                    }
                }
            }
        }
        Err(Failed::All {
            errors,
            service_bind,
        })
    }

    /// Binds as the user on a fresh connection, server after server while unreachable.
    async fn user_bind(
        &self,
        entry: &Entry,
        password: Zeroizing<String>,
    ) -> Result<(), AuthFailure> {
        let timeout = self.cfg().timeout;
        let mut errors = Vec::new();
        for idx in self.order() {
            let Some(server) = self.inner.servers.get(idx) else {
                continue;
            };
            let ldap = match self.connect(server).await {
                Ok(l) => l,
                Err(e) => {
                    errors.push(format!("{}: {e}", server.url));
                    self.mark(server, false);
                    continue;
                }
            };
            let result = conn::bind(&ldap, &entry.dn, password.clone(), timeout).await;
            conn::unbind(ldap);
            match result {
                Ok((0, _)) => return Ok(()),
                Ok((rc @ (51 | 52), text)) => {
                    errors.push(format!(
                        "{}: bind result {rc} ({})",
                        server.url,
                        conn::clean(&text)
                    ));
                    self.mark(server, false);
                }
                Ok((rc, text)) => {
                    let failure = self.bind_failure(rc, &text, entry);
                    tracing::debug!(dn = ?entry.dn, rc, reason = failure.reason(), "user bind refused");
                    return Err(failure);
                }
                Err(e) if e.failover() => {
                    errors.push(format!("{}: {e}", server.url));
                    self.mark(server, false);
                }
                Err(e) => return Err(AuthFailure::Directory(e.to_string())),
            }
        }
        Err(AuthFailure::Unreachable(errors.join("; ")))
    }

    /// What a refused user bind means.
    fn bind_failure(&self, rc: u32, text: &str, entry: &Entry) -> AuthFailure {
        let kind = self.cfg().kind;
        if kind == DirectoryKind::ActiveDirectory {
            if let Some(f) = ad::map_bind_diagnostic(text) {
                return f;
            }
        }
        match rc {
            49 => {
                let locked = match kind {
                    DirectoryKind::ActiveDirectory => {
                        ad::locked_hint(ad::parse_int(entry.first("lockoutTime").as_deref()))
                    }
                    DirectoryKind::Ldap => entry.has("pwdAccountLockedTime"),
                };
                if locked {
                    AuthFailure::AccountLocked
                } else {
                    AuthFailure::WrongPassword
                }
            }
            48 => AuthFailure::WrongPassword,
            _ => AuthFailure::Directory(format!("bind result {rc} ({})", conn::clean(text))),
        }
    }

    // ---- searches ----------------------------------------------------------------------

    fn user_attrs(&self) -> Vec<String> {
        let cfg = self.cfg();
        let mut attrs: Vec<String> = vec![
            cfg.login_attr.clone(),
            cfg.display_name_attr.clone(),
            "cn".into(),
            cfg.email_attr.clone(),
            cfg.phone_attr.clone(),
            "telephoneNumber".into(),
            "memberOf".into(),
        ];
        match cfg.kind {
            DirectoryKind::ActiveDirectory => {
                attrs.extend(
                    ["userAccountControl", "accountExpires", "lockoutTime"].map(String::from),
                );
            }
            DirectoryKind::Ldap => attrs.push("pwdAccountLockedTime".into()),
        }
        attrs.sort_by_key(|a| a.to_ascii_lowercase());
        attrs.dedup_by_key(|a| a.to_ascii_lowercase());
        attrs
    }

    async fn search_once(&self, ldap: &Ldap, req: SearchReq) -> Result<conn::Page, OpError> {
        conn::search(ldap, req, self.cfg().timeout).await
    }

    /// A subtree search, paged; every page must succeed.
    async fn paged_search(
        &self,
        ldap: &Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<Entry>, OpError> {
        let mut out = Vec::new();
        let mut cookie = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = SearchReq {
                base: base.to_owned(),
                scope: Scope::Subtree,
                filter: filter.to_owned(),
                attrs: attrs.iter().map(|a| (*a).to_owned()).collect(),
                size_limit: 0,
                page: Some((self.page_size, std::mem::take(&mut cookie))),
            };
            let page = self.search_once(ldap, req).await?;
            if page.rc != 0 {
                return Err(OpError::Ldap {
                    rc: page.rc,
                    text: page.text,
                });
            }
            out.extend(page.entries);
            match page.cookie {
                Some(c) if !c.is_empty() => cookie = c,
                _ => return Ok(out),
            }
        }
        Err(OpError::Malformed("paged search did not end".into()))
    }

    /// Reads one entry; `None` when it does not exist (or is not visible).
    async fn read_entry(
        &self,
        ldap: &Ldap,
        dn: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<Entry>, OpError> {
        let req = SearchReq {
            base: dn.to_owned(),
            scope: Scope::Base,
            filter: filter.to_owned(),
            attrs: attrs.iter().map(|a| (*a).to_owned()).collect(),
            size_limit: 0,
            page: None,
        };
        let page = self.search_once(ldap, req).await?;
        match page.rc {
            0 => Ok(page.entries.into_iter().next()),
            // noSuchObject, referral, invalidDNSyntax
            32 | 10 | 34 => Ok(None),
            rc => Err(OpError::Ldap {
                rc,
                text: page.text,
            }),
        }
    }

    /// Finds the one entry for the login candidates (first match wins).
    async fn find_user(
        &self,
        ldap: &Ldap,
        candidates: &[String],
    ) -> Result<Option<Entry>, OpError> {
        let cfg = self.cfg();
        let attrs = self.user_attrs();
        for name in candidates {
            let req = SearchReq {
                base: cfg.base_dn.clone(),
                scope: Scope::Subtree,
                filter: render_user_filter(cfg.effective_user_filter(), name),
                attrs: attrs.clone(),
                size_limit: 2,
                page: None,
            };
            let page = self.search_once(ldap, req).await?;
            if !matches!(page.rc, 0 | 4) {
                return Err(OpError::Ldap {
                    rc: page.rc,
                    text: page.text,
                });
            }
            let mut entries = page.entries;
            match entries.len() {
                0 => continue,
                1 => return Ok(entries.pop()),
                n => {
                    tracing::warn!(user = ?name, matches = n, "login matches several directory entries");
                    return Err(OpError::Data(format!(
                        "login {name:?} matches several entries"
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The account state before any bind.
    async fn account_state(
        &self,
        ldap: &Ldap,
        entry: &Entry,
    ) -> Result<Result<(), AuthFailure>, OpError> {
        let cfg = self.cfg();
        match cfg.kind {
            DirectoryKind::ActiveDirectory => {
                // Constructed attribute: AD only returns it for base-scope reads.
                let computed = self
                    .read_entry(
                        ldap,
                        &entry.dn,
                        "(objectClass=*)",
                        &["msDS-User-Account-Control-Computed"],
                    )
                    .await?
                    .and_then(|e| {
                        ad::parse_int(e.first("msDS-User-Account-Control-Computed").as_deref())
                    });
                Ok(ad::account_state(
                    ad::parse_int(entry.first("userAccountControl").as_deref()),
                    computed,
                    ad::parse_int(entry.first("accountExpires").as_deref()),
                    ad::filetime(SystemTime::now()),
                ))
            }
            DirectoryKind::Ldap => {
                let disabled = match &cfg.disabled_filter {
                    Some(f) => self
                        .read_entry(ldap, &entry.dn, &wrap_filter(f), &["1.1"])
                        .await?
                        .is_some(),
                    None => false,
                };
                Ok(ldap_state(entry, disabled))
            }
        }
    }

    /// The CNs of the user's groups, nested included, sorted and deduplicated.
    async fn groups_of(&self, ldap: &Ldap, entry: &Entry) -> Result<Vec<String>, OpError> {
        let cfg = self.cfg();
        if cfg.max_group_depth == 0 {
            return Ok(Vec::new());
        }
        if cfg.kind == DirectoryKind::ActiveDirectory {
            let filter = format!(
                "(member:{IN_CHAIN_OID}:={})",
                escape_filter_value(&entry.dn)
            );
            match self
                .paged_search(ldap, &cfg.base_dn, &filter, &["cn"])
                .await
            {
                Ok(groups) => {
                    let mut cns: Vec<String> = groups.iter().filter_map(group_cn).collect();
                    cns.sort();
                    cns.dedup();
                    return Ok(cns);
                }
                Err(e) if e.failover() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "in-chain group search failed; walking memberOf")
                }
            }
        }
        self.walk_groups(ldap, entry).await
    }

    /// Breadth-first walk up the group graph, `max_group_depth` levels, each group once.
    async fn walk_groups(&self, ldap: &Ldap, entry: &Entry) -> Result<Vec<String>, OpError> {
        let cfg = self.cfg();
        let mut seen: HashMap<String, String> = HashMap::new();
        seen.insert(norm_dn(&entry.dn), String::new());
        let mut frontier: Vec<(String, Vec<String>)> =
            vec![(entry.dn.clone(), entry.values("memberOf"))];
        for _ in 0..cfg.max_group_depth {
            if frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            if cfg.kind == DirectoryKind::Ldap {
                for chunk in frontier.chunks(REVERSE_CHUNK) {
                    let ors: String = chunk
                        .iter()
                        .map(|(dn, _)| {
                            let v = escape_filter_value(dn);
                            format!("(member={v})(uniqueMember={v})")
                        })
                        .collect();
                    let filter = format!("(&{GROUP_FILTER}(|{ors}))");
                    for g in self
                        .paged_search(ldap, &cfg.base_dn, &filter, &["cn", "memberOf"])
                        .await?
                    {
                        let key = norm_dn(&g.dn);
                        if seen.contains_key(&key) {
                            continue;
                        }
                        if let Some(cn) = group_cn(&g) {
                            seen.insert(key, cn);
                            next.push((g.dn.clone(), g.values("memberOf")));
                        }
                    }
                }
            }
            let parents: Vec<String> = frontier
                .iter()
                .flat_map(|(_, p)| p.iter().cloned())
                .collect();
            for parent in parents {
                let key = norm_dn(&parent);
                if seen.contains_key(&key) {
                    continue;
                }
                match self
                    .read_entry(ldap, &parent, "(objectClass=*)", &["cn", "memberOf"])
                    .await?
                {
                    Some(g) => {
                        let cn = group_cn(&g).unwrap_or_default();
                        seen.insert(key, cn);
                        next.push((g.dn.clone(), g.values("memberOf")));
                    }
                    None => {
                        seen.insert(key, first_rdn_value(&parent).unwrap_or_default());
                    }
                }
            }
            frontier = next;
        }
        let mut cns: Vec<String> = seen.into_values().filter(|cn| !cn.is_empty()).collect();
        cns.sort();
        cns.dedup();
        Ok(cns)
    }

    fn dir_user(&self, e: &Entry, mut groups: Vec<String>, enabled: bool) -> DirUser {
        let cfg = self.cfg();
        let login = e
            .first(&cfg.login_attr)
            .or_else(|| first_rdn_value(&e.dn))
            .unwrap_or_default();
        let display_name = e
            .first(&cfg.display_name_attr)
            .or_else(|| e.first("cn"))
            .unwrap_or_else(|| login.clone());
        groups.sort();
        groups.dedup();
        DirUser {
            dn: e.dn.clone(),
            login,
            display_name,
            email: e.first(&cfg.email_attr).unwrap_or_default(),
            phone: e
                .first(&cfg.phone_attr)
                .or_else(|| e.first("telephoneNumber"))
                .unwrap_or_default(),
            groups,
            enabled,
        }
    }
}

/// Generic LDAP account state: `disabled_filter` match, then a ppolicy permanent lock.
fn ldap_state(entry: &Entry, disabled_match: bool) -> Result<(), AuthFailure> {
    if disabled_match {
        return Err(AuthFailure::AccountDisabled);
    }
    if entry
        .values("pwdAccountLockedTime")
        .iter()
        .any(|v| v.trim() == PPOLICY_PERMANENT_LOCK)
    {
        return Err(AuthFailure::AccountLocked);
    }
    Ok(())
}

/// A group's CN (`cn` attribute, else the first RDN's value).
fn group_cn(g: &Entry) -> Option<String> {
    g.first("cn").or_else(|| first_rdn_value(&g.dn))
}

/// All groups in memory, for bulk membership resolution.
#[derive(Debug, Default)]
struct GroupIndex {
    /// normalised DN -> CN.
    cn: HashMap<String, String>,
    /// normalised group DN -> (normalised, original) parent DNs (from `memberOf`).
    parents: HashMap<String, Vec<(String, String)>>,
    /// normalised member DN -> (normalised, original) DNs of groups listing it in `member`.
    reverse: HashMap<String, Vec<(String, String)>>,
}

impl GroupIndex {
    fn new(groups: &[Entry], kind: DirectoryKind) -> Self {
        let mut idx = GroupIndex::default();
        for g in groups {
            let key = norm_dn(&g.dn);
            if let Some(cn) = group_cn(g) {
                idx.cn.insert(key.clone(), cn);
            }
            let parents = g
                .values("memberOf")
                .into_iter()
                .map(|p| (norm_dn(&p), p))
                .collect();
            idx.parents.insert(key.clone(), parents);
            if kind == DirectoryKind::Ldap {
                for m in g
                    .values("member")
                    .into_iter()
                    .chain(g.values("uniqueMember"))
                {
                    idx.reverse
                        .entry(norm_dn(&m))
                        .or_default()
                        .push((key.clone(), g.dn.clone()));
                }
            }
        }
        idx
    }

    /// The normalised DN of a group named by DN or CN.
    fn resolve(&self, group: &str) -> Result<String, OpError> {
        let group = group.trim();
        if group.contains('=') {
            return Ok(norm_dn(group));
        }
        let matches: Vec<&String> = self
            .cn
            .iter()
            .filter(|(_, cn)| cn.eq_ignore_ascii_case(group))
            .map(|(dn, _)| dn)
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(OpError::Config(format!("group {group:?} not found"))),
            _ => Err(OpError::Config(format!(
                "group {group:?} is ambiguous; give its DN"
            ))),
        }
    }

    /// Normalised group DN -> CN for every group of `dn` up to `depth` levels.
    fn closure(&self, dn: &str, member_of: &[String], depth: usize) -> HashMap<String, String> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut frontier: Vec<(String, String)> =
            member_of.iter().map(|p| (norm_dn(p), p.clone())).collect();
        if let Some(r) = self.reverse.get(&norm_dn(dn)) {
            frontier.extend(r.iter().cloned());
        }
        for _ in 0..depth {
            let mut next = Vec::new();
            for (key, original) in frontier {
                if seen.contains_key(&key) {
                    continue;
                }
                let cn = self
                    .cn
                    .get(&key)
                    .cloned()
                    .or_else(|| first_rdn_value(&original))
                    .unwrap_or_default();
                if let Some(p) = self.parents.get(&key) {
                    next.extend(p.iter().cloned());
                }
                if let Some(r) = self.reverse.get(&key) {
                    next.extend(r.iter().cloned());
                }
                seen.insert(key, cn);
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        seen.retain(|_, cn| !cn.is_empty());
        seen
    }
}

#[cfg(test)]
mod tests;
