//! The bulk user search behind [`Directory::search_users`] (import and sync):
//! one paged read of all groups, membership resolved in memory, account state
//! read from the entries. Separate from `directory.rs` because it is the one
//! place that combines the look-up, group and account-state parts.

use std::collections::HashSet;
use std::time::SystemTime;

use ldap3::Ldap;

use super::groups::{GroupIndex, GROUP_FILTER};
use super::lookup::ldap_state;
use super::{DirUser, Directory};
use crate::conn::OpError;
use crate::entry::norm_dn;
use crate::filter::wrap_filter;
use crate::{ad, DirectoryKind};

impl Directory {
    /// Runs the search of [`Directory::search_users`] on one service
    /// connection: decides which users match (filter and group closure) and
    /// whether each is enabled.
    pub(super) async fn search_users_on(
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
}
