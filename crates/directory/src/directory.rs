//! The [`Directory`] client: its construction from a checked configuration and
//! the public operations (first factor, look-up, user search). How servers are
//! chosen and pooled, how users are found and bound, and how groups are resolved
//! live in the child modules.

pub(crate) mod groups;
mod import;
pub(crate) mod lookup;
mod pool;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use ldap3::Ldap;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::{check_filter, check_url, is_loopback_url};
use crate::filter::{all_users_filter, login_candidates, render_user_filter, wrap_filter};
use crate::{conn, AuthFailure, DirectoryConfig, DirectoryError, TlsMode, DEFAULT_PAGE_SIZE};

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
    pub(crate) page_size: i32,
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
}
