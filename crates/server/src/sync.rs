//! Directory import and scheduled sync: what changes when the directory's
//! view of a set of users is laid over the store. New users are added with
//! the item's method and language, changed attributes (display name, email,
//! phone, groups) are updated, users that left the set are disabled. Tokens
//! and PINs are never touched, users are never deleted, and records an admin
//! created by hand (or another sync item manages) are left alone.

use std::collections::{BTreeMap, HashMap};

use radmfa_store::{Method, User};
use serde_json::{json, Value};

/// One user as the directory sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// Login name (sAMAccountName / uid).
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// Email address.
    pub email: String,
    /// Phone number (as stored in the directory).
    pub phone: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Whether the directory account is enabled.
    pub enabled: bool,
}

/// Defaults for users a sync item adds.
#[derive(Debug, Clone)]
pub struct SyncDefaults {
    /// The item's name; records it manages carry `source = "ldap:NAME"`.
    pub item: String,
    /// Second-factor method of new users.
    pub method: Method,
    /// Language of new users.
    pub language: String,
}

impl SyncDefaults {
    /// The `source` value of the records this item manages.
    pub fn source(&self) -> String {
        format!("ldap:{}", self.item)
    }
}

/// What a sync would do (and, applied, did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Users to add.
    pub add: Vec<User>,
    /// Existing users with new attribute values, and which fields changed.
    pub update: Vec<(User, Vec<&'static str>)>,
    /// Users that left the directory set (or whose account is disabled there).
    pub disable: Vec<String>,
    /// Users the directory lists but the store has from elsewhere (not managed).
    pub skipped: Vec<String>,
}

impl SyncPlan {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.disable.is_empty()
    }

    /// The plan as JSON (the dry-run output and the command's answer).
    pub fn to_json(&self, dry_run: bool) -> Value {
        json!({
            "dry_run": dry_run,
            "add": self.add.iter().map(|u| json!({
                "name": u.name, "display_name": u.display_name, "email": u.email,
                "phone": u.phone, "method": u.method.to_string(), "groups": u.groups,
            })).collect::<Vec<_>>(),
            "update": self.update.iter().map(|(u, fields)| json!({
                "name": u.name, "changed": fields,
            })).collect::<Vec<_>>(),
            "disable": self.disable,
            "skipped": self.skipped,
        })
    }
}

/// Normalises a directory phone number to E.164 where it clearly is one
/// ("+31 6 1234 5678" -> "+31612345678"); anything else is dropped (a
/// wrong number must not receive codes).
pub fn normalise_phone(raw: &str) -> String {
    let trimmed = raw.trim();
    if !trimmed.starts_with('+') {
        return String::new();
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let only_separators = trimmed
        .chars()
        .skip(1)
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    if only_separators && (8..=15).contains(&digits.len()) {
        format!("+{digits}")
    } else {
        String::new()
    }
}

/// Plans a sync of `entries` (the complete set the item covers) over
/// `existing` (every user in the store).
pub fn plan(existing: &[User], entries: &[DirectoryEntry], d: &SyncDefaults) -> SyncPlan {
    let source = d.source();
    let by_name: HashMap<&str, &User> = existing.iter().map(|u| (u.name.as_str(), u)).collect();
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    let mut out = SyncPlan::default();
    for e in entries {
        if e.login.is_empty() || seen.insert(e.login.as_str(), ()).is_some() {
            continue;
        }
        if refused(e).is_some() {
            // Left alone: neither written nor disabled (`run` says why).
            continue;
        }
        let mut groups = e.groups.clone();
        groups.sort();
        groups.dedup();
        let phone = normalise_phone(&e.phone);
        match by_name.get(e.login.as_str()) {
            None if e.enabled => {
                let mut u = User::new(&e.login);
                u.display_name = e.display_name.clone();
                u.email = e.email.clone();
                u.phone = phone;
                u.groups = groups;
                u.method = d.method;
                u.language = d.language.clone();
                u.source = source.clone();
                out.add.push(u);
            }
            None => {}
            Some(u) if u.source != source => out.skipped.push(e.login.clone()),
            Some(u) => {
                if !e.enabled {
                    if u.enabled {
                        out.disable.push(u.name.clone());
                    }
                    continue;
                }
                let mut n = (*u).clone();
                let mut changed = Vec::new();
                if n.display_name != e.display_name {
                    n.display_name = e.display_name.clone();
                    changed.push("display_name");
                }
                if n.email != e.email {
                    n.email = e.email.clone();
                    changed.push("email");
                }
                if n.phone != phone {
                    n.phone = phone;
                    changed.push("phone");
                }
                if n.groups != groups {
                    n.groups = groups;
                    changed.push("groups");
                }
                if !n.enabled {
                    // Back in the set: enabled again.
                    n.enabled = true;
                    changed.push("enabled");
                }
                if !changed.is_empty() {
                    out.update.push((n, changed));
                }
            }
        }
    }
    for u in existing {
        if u.source == source && u.enabled && !seen.contains_key(u.name.as_str()) {
            out.disable.push(u.name.clone());
        }
    }
    out.disable.sort();
    out.disable.dedup();
    out
}

/// Why the store would refuse an entry's text (control characters in the
/// login, display name, email or a group: see
/// [`radmfa_store::check_user_text`]), if it would.
fn refused(e: &DirectoryEntry) -> Option<String> {
    let mut u = User::new(&e.login);
    u.display_name.clone_from(&e.display_name);
    u.email.clone_from(&e.email);
    u.groups.clone_from(&e.groups);
    radmfa_store::check_user_text(None, &u)
        .err()
        .map(|e| e.to_string())
}

impl From<radmfa_directory::DirUser> for DirectoryEntry {
    fn from(u: radmfa_directory::DirUser) -> DirectoryEntry {
        DirectoryEntry {
            login: u.login,
            display_name: u.display_name,
            email: u.email,
            phone: u.phone,
            groups: u.groups,
            enabled: u.enabled,
        }
    }
}

fn mail_method(m: Method) -> Option<crate::mail::MailMethod> {
    match m {
        Method::Call => Some(crate::mail::MailMethod::Call),
        Method::Sms | Method::SmsTwoWay => Some(crate::mail::MailMethod::Sms),
        Method::Totp | Method::Hotp | Method::Push => Some(crate::mail::MailMethod::App),
        Method::None => None,
    }
}

/// Runs one sync item (or one-off import): search the directory, plan,
/// apply unless `dry_run`, then mail the new users when the item says so.
/// Returns the plan as JSON with `mailed` / `mail_errors`.
pub async fn run(
    store: radmfa_store::Store,
    directory: radmfa_directory::Directory,
    item: crate::config::SyncItem,
    dry_run: bool,
    mailer: Option<crate::mail::Mailer>,
) -> Result<Value, String> {
    let found = directory
        .search_users(
            item.base.as_deref(),
            item.filter.as_deref(),
            item.group.as_deref(),
        )
        .await
        .map_err(|e| format!("directory search failed: {e}"))?;
    let entries: Vec<DirectoryEntry> = found.into_iter().map(DirectoryEntry::from).collect();
    let defaults = SyncDefaults {
        item: item.name.clone(),
        method: item.method,
        language: item.language.clone(),
    };
    let st = store.clone();
    let existing = tokio::task::spawn_blocking(move || st.list_users())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let refused: Vec<String> = entries.iter().filter_map(refused).collect();
    for why in &refused {
        tracing::warn!(sync = %item.name, reason = %why, "directory entry left alone: fix it in the directory");
    }
    let plan = plan(&existing, &entries, &defaults);
    let mut out = plan.to_json(dry_run);
    if let Some(m) = out.as_object_mut() {
        m.insert("refused".into(), refused.into());
    }
    if dry_run {
        return Ok(out);
    }
    let st = store.clone();
    let (ex, pl) = (existing, plan.clone());
    tokio::task::spawn_blocking(move || apply(&st, &ex, &pl))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write the changes: {e}"))?;
    let mut mailed = 0u64;
    let mut errors = Vec::new();
    if let (true, Some(mailer)) = (item.send_enrollment_email, &mailer) {
        for u in plan.add.iter().filter(|u| !u.email.is_empty()) {
            let Some(method) = mail_method(u.method) else {
                continue;
            };
            let e = crate::mail::Enrollment {
                to: &u.email,
                display_name: &u.display_name,
                login: &u.name,
                method,
                language: &u.language,
                phone: &u.phone,
                pin: None,
                otpauth_uri: None,
            };
            match mailer.send_enrollment(&e).await {
                Ok(()) => mailed += 1,
                Err(err) => errors.push(format!("{}: {err}", u.name)),
            }
        }
    }
    if let Some(m) = out.as_object_mut() {
        m.insert("mailed".into(), mailed.into());
        m.insert("mail_errors".into(), errors.into());
    }
    Ok(out)
}

/// Applies a plan in one store transaction (one flush). Disabled users keep
/// their tokens and PINs. `existing` is the list the plan was made from.
pub fn apply(
    store: &radmfa_store::Store,
    existing: &[User],
    plan: &SyncPlan,
) -> Result<(), radmfa_store::StoreError> {
    let mut items: Vec<(User, Option<radmfa_store::Token>)> = Vec::new();
    items.extend(plan.add.iter().cloned().map(|u| (u, None)));
    items.extend(plan.update.iter().map(|(u, _)| (u.clone(), None)));
    for name in &plan.disable {
        if let Some(u) = existing.iter().find(|u| &u.name == name) {
            let mut u = u.clone();
            u.enabled = false;
            items.push((u, None));
        }
    }
    if !items.is_empty() {
        store.put_users(&items)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(login: &str, phone: &str, groups: &[&str]) -> DirectoryEntry {
        DirectoryEntry {
            login: login.into(),
            display_name: format!("{login} Example"),
            email: format!("{login}@example.org"),
            phone: phone.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            enabled: true,
        }
    }

    fn defaults() -> SyncDefaults {
        SyncDefaults {
            item: "corp".into(),
            method: Method::Sms,
            language: "nl".into(),
        }
    }

    #[test]
    fn adds_updates_disables_and_leaves_others_alone() {
        let d = defaults();
        let first = plan(&[], &[entry("alice", "+31 6 1234 5678", &["vpn"])], &d);
        assert_eq!(first.add.len(), 1);
        let mut alice = first.add[0].clone();
        assert_eq!(alice.phone, "+31612345678");
        assert_eq!(alice.method, Method::Sms);
        assert_eq!(alice.language, "nl");
        assert_eq!(alice.source, "ldap:corp");

        // A hand-made user with the same name as a directory user is not taken over.
        let manual = User::new("bob");
        // A managed user who left the directory set.
        let mut gone = User::new("carol");
        gone.source = "ldap:corp".into();
        alice.created = 1;
        let existing = vec![alice.clone(), manual, gone];
        let p = plan(
            &existing,
            &[
                entry("alice", "+31612345679", &["vpn", "staff"]),
                entry("bob", "", &[]),
            ],
            &d,
        );
        assert!(p.add.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].1, vec!["phone", "groups"]);
        assert_eq!(
            p.update[0].0.groups,
            vec!["staff".to_string(), "vpn".to_string()]
        );
        assert_eq!(p.disable, vec!["carol".to_string()]);
        assert_eq!(p.skipped, vec!["bob".to_string()]);

        // Nothing changed: an empty plan.
        let same = plan(&[alice], &[entry("alice", "+31 6 1234 5678", &["vpn"])], &d);
        assert!(same.is_empty(), "{same:?}");
    }

    #[test]
    fn disabled_in_the_directory_is_disabled_here_and_never_added() {
        let d = defaults();
        let mut e = entry("dave", "", &[]);
        e.enabled = false;
        assert!(plan(&[], std::slice::from_ref(&e), &d).is_empty());
        let mut dave = User::new("dave");
        dave.source = d.source();
        dave.display_name = e.display_name.clone();
        dave.email = e.email.clone();
        let p = plan(&[dave], &[e], &d);
        assert_eq!(p.disable, vec!["dave".to_string()]);
    }

    #[test]
    fn entries_with_control_characters_are_left_alone() {
        let d = defaults();
        let mut forged = entry("mallory", "", &[]);
        forged.display_name = "Mallory\r\nsign-in user=admin".into();
        let mut bad_group = entry("trudy", "", &["vpn\u{1b}[2J"]);
        let p = plan(&[], &[forged.clone(), bad_group.clone()], &d);
        assert!(p.is_empty(), "{p:?}");
        // A managed user whose entry turns bad is neither updated nor disabled.
        let mut trudy = User::new("trudy");
        trudy.source = d.source();
        bad_group.groups = vec!["ok".into(), "bad\n".into()];
        let p = plan(&[trudy], &[bad_group], &d);
        assert!(p.update.is_empty() && p.disable.is_empty(), "{p:?}");
        assert!(refused(&forged).is_some_and(|r| r.contains("display name")));
    }

    #[test]
    fn phone_normalisation() {
        assert_eq!(normalise_phone("+1 (555) 010-7001"), "+15550107001");
        assert_eq!(normalise_phone("0612345678"), "");
        assert_eq!(normalise_phone("+31 6 12x4"), "");
        assert_eq!(normalise_phone("+123"), "");
    }
}
