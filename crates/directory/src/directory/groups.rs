//! Group membership: AD's in-chain matching rule with a `memberOf` walk as the
//! fallback, and for generic LDAP a bounded, cycle-safe walk over `memberOf` and
//! reverse `member`/`uniqueMember` look-ups.

use std::collections::HashMap;

use ldap3::Ldap;

use super::Directory;
use crate::conn::OpError;
use crate::entry::{first_rdn_value, norm_dn, Entry};
use crate::{escape_filter_value, DirectoryKind};

/// The group object classes whose `member`/`uniqueMember` values are DNs.
pub(super) const GROUP_FILTER: &str =
    "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";
/// AD's transitive-membership matching rule.
const IN_CHAIN_OID: &str = "1.2.840.113556.1.4.1941";
/// Frontier DNs per reverse-membership search.
const REVERSE_CHUNK: usize = 32;

impl Directory {
    /// The CNs of the user's groups, nested included, sorted and deduplicated.
    pub(super) async fn groups_of(
        &self,
        ldap: &Ldap,
        entry: &Entry,
    ) -> Result<Vec<String>, OpError> {
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
    pub(super) async fn walk_groups(
        &self,
        ldap: &Ldap,
        entry: &Entry,
    ) -> Result<Vec<String>, OpError> {
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
}

/// A group's CN (`cn` attribute, else the first RDN's value).
fn group_cn(g: &Entry) -> Option<String> {
    g.first("cn").or_else(|| first_rdn_value(&g.dn))
}

/// All groups in memory, for bulk membership resolution.
#[derive(Debug, Default)]
pub(crate) struct GroupIndex {
    /// normalised DN -> CN.
    cn: HashMap<String, String>,
    /// normalised group DN -> (normalised, original) parent DNs (from `memberOf`).
    parents: HashMap<String, Vec<(String, String)>>,
    /// normalised member DN -> (normalised, original) DNs of groups listing it in `member`.
    reverse: HashMap<String, Vec<(String, String)>>,
}

impl GroupIndex {
    pub(crate) fn new(groups: &[Entry], kind: DirectoryKind) -> Self {
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
    pub(crate) fn resolve(&self, group: &str) -> Result<String, OpError> {
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
    pub(crate) fn closure(
        &self,
        dn: &str,
        member_of: &[String],
        depth: usize,
    ) -> HashMap<String, String> {
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
