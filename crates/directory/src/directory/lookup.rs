//! Finding, reading and binding users: the searches (single page and RFC 2696
//! paged), the user look-up by login, the account state checks (AD in `ad.rs`,
//! generic LDAP here) and the user's own bind.

use std::time::SystemTime;

use ldap3::{Ldap, Scope};
use zeroize::Zeroizing;

use super::{DirUser, Directory};
use crate::conn::{self, OpError, SearchReq};
use crate::entry::{first_rdn_value, Entry};
use crate::filter::{render_user_filter, wrap_filter};
use crate::{ad, AuthFailure, DirectoryKind};

/// `pwdAccountLockedTime` value that OpenLDAP ppolicy reads as "locked until an admin unlocks".
const PPOLICY_PERMANENT_LOCK: &str = "000001010000Z";

/// Upper bound on pages of one paged search (a runaway server cannot loop us forever).
const MAX_PAGES: usize = 100_000;

impl Directory {
    /// Binds as the user on a fresh connection, server after server while unreachable.
    pub(super) async fn user_bind(
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
    pub(crate) fn bind_failure(&self, rc: u32, text: &str, entry: &Entry) -> AuthFailure {
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

    pub(super) fn user_attrs(&self) -> Vec<String> {
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

    pub(super) async fn search_once(
        &self,
        ldap: &Ldap,
        req: SearchReq,
    ) -> Result<conn::Page, OpError> {
        conn::search(ldap, req, self.cfg().timeout).await
    }

    /// A subtree search, paged; every page must succeed.
    pub(super) async fn paged_search(
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
    pub(super) async fn read_entry(
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
    pub(super) async fn find_user(
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
    pub(super) async fn account_state(
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

    pub(crate) fn dir_user(&self, e: &Entry, mut groups: Vec<String>, enabled: bool) -> DirUser {
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
pub(crate) fn ldap_state(entry: &Entry, disabled_match: bool) -> Result<(), AuthFailure> {
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
