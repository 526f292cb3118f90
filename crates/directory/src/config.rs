//! The directory configuration and its validation: server kinds, TLS modes, the
//! service account's secret, defaults, and the URL and filter checks that
//! [`Directory::new`](crate::Directory::new) runs before any I/O.

use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::DirectoryError;

/// Default generic-LDAP user filter.
pub const LDAP_DEFAULT_USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={user}))";
/// Default Active Directory user filter.
pub const AD_DEFAULT_USER_FILTER: &str =
    "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={user})))";
/// How long a server that failed is tried only after the others.
pub const DOWN_BACKOFF: Duration = Duration::from_secs(30);
/// Default page size of paged searches.
pub const DEFAULT_PAGE_SIZE: i32 = 500;

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
    /// Generic LDAP only: users matching this filter are
    /// [`AuthFailure::AccountDisabled`](crate::AuthFailure::AccountDisabled), e.g.
    /// `(pwdAccountLockedTime=*)` or `(employeeType=disabled)`. Independently of it, an
    /// OpenLDAP ppolicy permanent lock (`pwdAccountLockedTime: 000001010000Z`) is
    /// [`AuthFailure::AccountLocked`](crate::AuthFailure::AccountLocked).
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

/// Checks a server URL and returns it (normalised) with its effective TLS mode.
pub(crate) fn check_url(url: &str, tls: TlsMode) -> Result<(String, TlsMode), String> {
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
pub(crate) fn is_loopback_url(url: &str) -> bool {
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

pub(crate) fn valid_port(p: &str) -> bool {
    p.parse::<u16>().is_ok_and(|n| n > 0)
}

pub(crate) fn check_filter(name: &str, filter: &str) -> Result<(), DirectoryError> {
    ldap3::parse_filter(filter)
        .map(|_| ())
        .map_err(|()| DirectoryError::Config(format!("{name}: not a valid LDAP filter: {filter}")))
}
