//! Directory import and scheduled sync: what changes when the directory's
//! view of a set of users is laid over the store. New users are added with
//! the item's method and language, changed attributes (display name, email,
//! phone, groups) are updated, users that left the set are disabled. Tokens
//! and PINs are never touched, users are never deleted, and records an admin
//! created by hand (or another sync item manages) are left alone.
//!
//! Sync never undoes a local decision:
//! * It re-enables only users it disabled itself (left the set, disabled in
//!   the directory); a user an admin disabled, or who reported a sign-in as
//!   fraud, stays disabled whatever the directory says.
//! * Each attribute has an owner. A synced record keeps the directory's
//!   values of its last sync ([`SyncedFields`]); a current value that differs
//!   from them was set locally (portal, CLI, API) and is kept unless the
//!   item's [`FieldModes`] say the directory wins. An empty directory value
//!   never clears a locally set one.
//! * The plan is made from one read of every user, but the writes re-decide
//!   each record inside one store transaction from the record as it is then
//!   ([`radmfa_store::Store::modify_users`]), so a PIN change, lock, unlock or
//!   token change made while the directory was searched is not lost.

use std::collections::{BTreeMap, HashMap};

use radmfa_store::{DisabledReason, Method, SyncedFields, User};

use serde::{Deserialize, Serialize};

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

impl DirectoryEntry {
    /// The entry's attribute values as a sync writes them: phone normalised
    /// to E.164 (or empty), groups sorted without duplicates.
    fn values(&self) -> SyncedFields {
        SyncedFields {
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            phone: normalise_phone(&self.phone),
            groups: sorted(&self.groups),
        }
    }
}

fn sorted(groups: &[String]) -> Vec<String> {
    let mut g = groups.to_vec();
    g.sort();
    g.dedup();
    g
}

pub use crate::config::{FieldMode, FieldModes};

/// Defaults for users a sync item adds, and how it treats their attributes.
#[derive(Debug, Clone)]
pub struct SyncDefaults {
    /// The item's name; records it manages carry `source = "ldap:NAME"`.
    pub item: String,
    /// Second-factor method of new users.
    pub method: Method,
    /// Language of new users.
    pub language: String,
    /// Per-attribute behaviour on users that exist.
    pub fields: FieldModes,
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
    /// Existing users with new attribute values, and which fields changed
    /// (`enabled` when a user the sync had disabled is back in the set).
    pub update: Vec<(User, Vec<&'static str>)>,
    /// Users that left the directory set (or whose account is disabled
    /// there), with the reason recorded.
    pub disable: Vec<(String, DisabledReason)>,
    /// Users the directory lists but the store has from elsewhere (not managed).
    pub skipped: Vec<String>,
    /// Users whose only change is the directory values recorded for them.
    pub refresh: Vec<String>,
    /// Attributes where the directory differs but a locally set value is kept.
    pub kept_local: Vec<(String, Vec<&'static str>)>,
    /// Users in the set and enabled in the directory who stay disabled
    /// (an admin or a fraud report disabled them).
    pub left_disabled: Vec<(String, String)>,
}

impl SyncPlan {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.update.is_empty()
            && self.disable.is_empty()
            && self.refresh.is_empty()
    }

    /// The plan as admins read it (the dry-run output and the command's
    /// answer), before the refused entries and mail results are added.
    pub fn report(&self, dry_run: bool) -> SyncReport {
        SyncReport {
            dry_run,
            add: self
                .add
                .iter()
                .map(|u| SyncedUser {
                    name: u.name.clone(),
                    display_name: u.display_name.clone(),
                    email: u.email.clone(),
                    phone: u.phone.clone(),
                    method: u.method.to_string(),
                    groups: u.groups.clone(),
                })
                .collect(),
            update: self
                .update
                .iter()
                .map(|(u, fields)| SyncedUpdate {
                    name: u.name.clone(),
                    changed: fields.iter().map(|f| f.to_string()).collect(),
                })
                .collect(),
            disable: self.disable.iter().map(|(n, _)| n.clone()).collect(),
            disable_reasons: self
                .disable
                .iter()
                .map(|(n, r)| (n.clone(), r.as_str().to_string()))
                .collect(),
            skipped: self.skipped.clone(),
            refreshed: self.refresh.clone(),
            kept_local: self
                .kept_local
                .iter()
                .map(|(n, fields)| KeptLocal {
                    name: n.clone(),
                    fields: fields.iter().map(|f| f.to_string()).collect(),
                })
                .collect(),
            left_disabled: self
                .left_disabled
                .iter()
                .map(|(n, r)| LeftDisabled {
                    name: n.clone(),
                    disabled_reason: r.clone(),
                })
                .collect(),
            refused: Vec::new(),
            mailed: None,
            mail_errors: None,
        }
    }

    fn record(&mut self, name: &str, d: Decision) {
        if !d.kept.is_empty() {
            self.kept_local.push((name.to_string(), d.kept.clone()));
        }
        if let Some(why) = d.left_disabled {
            self.left_disabled.push((name.to_string(), why));
        }
        match d.action {
            Action::Nothing => {}
            Action::Skip => self.skipped.push(name.to_string()),
            Action::Add(u) => self.add.push(u),
            Action::Update(u, changed) if changed.is_empty() => self.refresh.push(u.name),
            Action::Update(u, changed) => self.update.push((u, changed)),
            Action::Disable(_, why) => self.disable.push((name.to_string(), why)),
        }
    }
}

/// What a sync did (or, as a dry run, would do): the answer of
/// `radmfa import-ldap`, the control socket and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Users added.
    pub add: Vec<SyncedUser>,
    /// Users whose attributes changed.
    pub update: Vec<SyncedUpdate>,
    /// Users disabled.
    pub disable: Vec<String>,
    /// Why each was disabled.
    pub disable_reasons: std::collections::BTreeMap<String, String>,
    /// Users the store has from elsewhere (left alone).
    pub skipped: Vec<String>,
    /// Users whose recorded directory values only were refreshed.
    pub refreshed: Vec<String>,
    /// Locally set values kept against the directory's.
    pub kept_local: Vec<KeptLocal>,
    /// Users in the set who stay disabled.
    pub left_disabled: Vec<LeftDisabled>,
    /// Directory entries left alone, and why.
    #[serde(default)]
    pub refused: Vec<String>,
    /// Enrollment mails sent (not on a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailed: Option<u64>,
    /// Enrollment mails that failed (not on a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_errors: Option<Vec<String>>,
}

/// A user a sync adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedUser {
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// Phone.
    pub phone: String,
    /// Second-factor method.
    pub method: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// A user a sync changes, and which fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedUpdate {
    /// Login name.
    pub name: String,
    /// The changed fields.
    pub changed: Vec<String>,
}

/// Fields set locally that a sync keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptLocal {
    /// Login name.
    pub name: String,
    /// The kept fields.
    pub fields: Vec<String>,
}

/// A user a sync leaves disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftDisabled {
    /// Login name.
    pub name: String,
    /// Why disabled.
    pub disabled_reason: String,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The store refused the write (read-only on a replica: the caller
    /// forwards the request to the primary).
    #[error(transparent)]
    Store(#[from] radmfa_store::StoreError),
    /// The directory or the task failed.
    #[error("{0}")]
    Invalid(String),
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

/// What a sync does to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Nothing,
    /// Listed by the directory, but not managed by this item.
    Skip,
    Add(User),
    /// The new record and the visible fields that changed (none: only the
    /// recorded directory values did).
    Update(User, Vec<&'static str>),
    Disable(User, DisabledReason),
}

/// [`Action`] plus what the sync leaves alone on purpose (reported).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    action: Action,
    kept: Vec<&'static str>,
    left_disabled: Option<String>,
}

impl From<Action> for Decision {
    fn from(action: Action) -> Decision {
        Decision {
            action,
            kept: Vec::new(),
            left_disabled: None,
        }
    }
}

/// One attribute's new value, if it changes. `local`: the current value
/// was set locally since the last sync (with no record of that sync: a
/// non-empty value the directory does not have).
fn merge_field<T: PartialEq + Clone>(
    mode: FieldMode,
    current: &T,
    synced: Option<&T>,
    dir: &T,
    current_empty: bool,
    dir_empty: bool,
) -> Merge<T> {
    if current == dir {
        return Merge::Same;
    }
    let local = match synced {
        Some(s) => current != s,
        None => !current_empty,
    };
    let write = match mode {
        FieldMode::AddOnly => return Merge::Same,
        FieldMode::KeepLocal => !local,
        FieldMode::DirectoryWins => !local || !dir_empty,
    };
    if write {
        Merge::Set(dir.clone())
    } else {
        Merge::KeptLocal
    }
}

enum Merge<T> {
    Same,
    Set(T),
    KeptLocal,
}

/// Decides what a sync does to the record `current` (`None`: no such user)
/// given the directory's `entry` for that login (`None`: not in the set).
/// Pure, so the store can run it again inside its transaction.
fn decide(current: Option<&User>, entry: Option<&DirectoryEntry>, d: &SyncDefaults) -> Decision {
    let source = d.source();
    let Some(u) = current else {
        return match entry {
            Some(e) if e.enabled => {
                let v = e.values();
                let mut u = User::new(&e.login);
                u.display_name.clone_from(&v.display_name);
                u.email.clone_from(&v.email);
                u.phone.clone_from(&v.phone);
                u.groups.clone_from(&v.groups);
                u.method = d.method;
                u.language.clone_from(&d.language);
                u.source.clone_from(&source);
                u.synced = Some(v);
                Action::Add(u).into()
            }
            _ => Action::Nothing.into(),
        };
    };
    if u.source != source {
        return if entry.is_some() {
            Action::Skip.into()
        } else {
            Action::Nothing.into()
        };
    }
    let e = match entry {
        None if u.enabled => return disable(u, DisabledReason::LeftDirectory),
        None => return Action::Nothing.into(),
        Some(e) if !e.enabled && u.enabled => return disable(u, DisabledReason::DirectoryDisabled),
        Some(e) if !e.enabled => return Action::Nothing.into(),
        Some(e) => e,
    };
    let v = e.values();
    let old = u.synced.as_ref();
    let mut n = u.clone();
    let mut changed = Vec::new();
    let mut kept = Vec::new();
    let mut note = |name: &'static str, m: Merge<()>| match m {
        Merge::Same => {}
        Merge::Set(()) => changed.push(name),
        Merge::KeptLocal => kept.push(name),
    };
    macro_rules! string_field {
        ($f:ident) => {{
            let m = merge_field(
                d.fields.$f,
                &u.$f,
                old.map(|o| &o.$f),
                &v.$f,
                u.$f.is_empty(),
                v.$f.is_empty(),
            );
            if let Merge::Set(x) = &m {
                n.$f.clone_from(x);
            }
            note(stringify!($f), unit(m));
        }};
    }
    string_field!(display_name);
    string_field!(email);
    string_field!(phone);
    let current_groups = sorted(&u.groups);
    let m = merge_field(
        d.fields.groups,
        &current_groups,
        old.map(|o| &o.groups),
        &v.groups,
        current_groups.is_empty(),
        v.groups.is_empty(),
    );
    if let Merge::Set(g) = &m {
        n.groups.clone_from(g);
    }
    note("groups", unit(m));
    let mut left_disabled = None;
    if !n.enabled {
        match n.disabled_reason {
            Some(r) if r.by_sync() => {
                // Back in the set: the sync's own disable is lifted.
                n.enable();
                changed.push("enabled");
            }
            r => {
                left_disabled = Some(r.map_or("unknown", DisabledReason::as_str).to_string());
            }
        }
    }
    let refresh = u.synced.as_ref() != Some(&v);
    n.synced = Some(v);
    let action = if changed.is_empty() && !refresh {
        Action::Nothing
    } else {
        Action::Update(n, changed)
    };
    Decision {
        action,
        kept,
        left_disabled,
    }
}

fn unit<T>(m: Merge<T>) -> Merge<()> {
    match m {
        Merge::Same => Merge::Same,
        Merge::Set(_) => Merge::Set(()),
        Merge::KeptLocal => Merge::KeptLocal,
    }
}

fn disable(u: &User, why: DisabledReason) -> Decision {
    let mut n = u.clone();
    n.disable(why);
    Action::Disable(n, why).into()
}

/// The entries by login, first one wins; entries without a login dropped.
fn by_login(entries: &[DirectoryEntry]) -> BTreeMap<&str, &DirectoryEntry> {
    let mut m = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.login.is_empty()) {
        m.entry(e.login.as_str()).or_insert(e);
    }
    m
}

/// Plans a sync of `entries` (the complete set the item covers) over
/// `existing` (every user in the store).
pub fn plan(existing: &[User], entries: &[DirectoryEntry], d: &SyncDefaults) -> SyncPlan {
    let source = d.source();
    let by_name: HashMap<&str, &User> = existing.iter().map(|u| (u.name.as_str(), u)).collect();
    let entries = by_login(entries);
    let mut out = SyncPlan::default();
    for (login, e) in &entries {
        if refused(e).is_some() {
            // Left alone: neither written nor disabled (`run` says why).
            continue;
        }
        out.record(login, decide(by_name.get(login).copied(), Some(e), d));
    }
    for u in existing {
        if u.source == source && !entries.contains_key(u.name.as_str()) {
            out.record(&u.name, decide(Some(u), None, d));
        }
    }
    out.disable.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The users a plan writes, by name.
fn touched_names(plan: &SyncPlan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .add
        .iter()
        .map(|u| u.name.clone())
        .chain(plan.update.iter().map(|(u, _)| u.name.clone()))
        .chain(plan.disable.iter().map(|(n, _)| n.clone()))
        .chain(plan.refresh.iter().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
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

/// Runs one sync item (or one-off import): search the directory, plan,
/// apply unless `dry_run`, then mail the new users when the item says so.
/// Returns the plan as a [`SyncReport`] with `mailed` / `mail_errors`. On a replica the
/// write fails with [`radmfa_store::StoreError::ReadOnly`], which
/// the admin service answers by forwarding the whole request to
/// the primary (which searches the directory itself).
pub async fn run(
    store: radmfa_store::Store,
    directory: radmfa_directory::Directory,
    item: crate::config::SyncItem,
    dry_run: bool,
    mailer: Option<crate::mail::Mailer>,
) -> Result<SyncReport, SyncError> {
    let found = directory
        .search_users(
            item.base.as_deref(),
            item.filter.as_deref(),
            item.group.as_deref(),
        )
        .await
        .map_err(|e| SyncError::Invalid(format!("directory search failed: {e}")))?;
    let entries: Vec<DirectoryEntry> = found.into_iter().map(DirectoryEntry::from).collect();
    let defaults = SyncDefaults {
        item: item.name.clone(),
        method: item.method,
        language: item.language.clone(),
        fields: item.fields,
    };
    let st = store.clone();
    let existing = tokio::task::spawn_blocking(move || st.list_users())
        .await
        .map_err(|e| SyncError::Invalid(e.to_string()))??;
    let refused: Vec<String> = entries.iter().filter_map(refused).collect();
    for why in &refused {
        tracing::warn!(sync = %item.name, reason = %why, "directory entry left alone: fix it in the directory");
    }
    let plan = plan(&existing, &entries, &defaults);
    if dry_run {
        let mut out = plan.report(dry_run);
        out.refused = refused;
        return Ok(out);
    }
    let st = store.clone();
    let plan = tokio::task::spawn_blocking(move || apply(&st, &entries, &defaults, plan))
        .await
        .map_err(|e| SyncError::Invalid(e.to_string()))?
        .map_err(|e| match e {
            radmfa_store::StoreError::ReadOnly(_) => SyncError::Store(e),
            e => SyncError::Invalid(format!("cannot write the changes: {e}")),
        })?;
    let mut out = plan.report(dry_run);
    let mut mailed = 0u64;
    let mut errors = Vec::new();
    if let (true, Some(mailer)) = (item.send_enrollment_email, &mailer) {
        for u in plan.add.iter().filter(|u| !u.email.is_empty()) {
            let e = crate::mail::Enrollment::of_user(u, None);
            match mailer.send_enrollment(&e).await {
                Ok(()) => mailed += 1,
                Err(err) => errors.push(format!("{}: {err}", u.name)),
            }
        }
    }
    out.refused = refused;
    out.mailed = Some(mailed);
    out.mail_errors = Some(errors);
    Ok(out)
}

/// Applies `plan` (made from an earlier read of the store) in one store
/// transaction (one flush): each user it touches is decided again from the
/// record as stored at that moment, so concurrent writes to other fields
/// (PIN, lock, token, a local edit) survive, and a change the record no
/// longer needs is dropped. Disabled users keep their tokens and PINs.
/// Returns the plan as carried out.
pub fn apply(
    store: &radmfa_store::Store,
    entries: &[DirectoryEntry],
    d: &SyncDefaults,
    plan: SyncPlan,
) -> Result<SyncPlan, radmfa_store::StoreError> {
    let names = touched_names(&plan);
    let mut done = SyncPlan {
        skipped: plan.skipped,
        kept_local: plan.kept_local,
        left_disabled: plan.left_disabled,
        ..SyncPlan::default()
    };
    if names.is_empty() {
        return Ok(done);
    }
    let entries = by_login(entries);
    let written = store.modify_users(&names, |name, current| {
        let action = decide(current, entries.get(name).copied(), d).action;
        match &action {
            Action::Add(u) | Action::Update(u, _) | Action::Disable(u, _) => {
                Some((u.clone(), action))
            }
            Action::Nothing | Action::Skip => None,
        }
    })?;
    for action in written {
        let name = match &action {
            Action::Add(u) | Action::Update(u, _) | Action::Disable(u, _) => u.name.clone(),
            Action::Nothing | Action::Skip => continue,
        };
        done.record(
            &name,
            Decision {
                action,
                kept: Vec::new(),
                left_disabled: None,
            },
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use radmfa_store::{Secret, Token, TokenAlgorithm, TokenKind};

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
            fields: FieldModes::default(),
        }
    }

    fn names(v: &[(String, DisabledReason)]) -> Vec<(&str, DisabledReason)> {
        v.iter().map(|(n, r)| (n.as_str(), *r)).collect()
    }

    /// A record as a previous sync of `e` left it.
    fn synced(e: &DirectoryEntry) -> User {
        let p = plan(&[], std::slice::from_ref(e), &defaults());
        let mut u = p.add[0].clone();
        u.created = 1;
        u
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
        assert_eq!(
            names(&p.disable),
            vec![("carol", DisabledReason::LeftDirectory)]
        );
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
        assert_eq!(
            names(&p.disable),
            vec![("dave", DisabledReason::DirectoryDisabled)]
        );
    }

    #[test]
    fn only_its_own_disables_are_lifted() {
        let d = defaults();
        let e = entry("erin", "+15550107005", &["vpn"]);
        for (reason, lifted) in [
            (Some(DisabledReason::LeftDirectory), true),
            (Some(DisabledReason::DirectoryDisabled), true),
            (Some(DisabledReason::Admin), false),
            (Some(DisabledReason::Fraud), false),
            (None, false),
        ] {
            let mut u = synced(&e);
            u.enabled = false;
            u.disabled_reason = reason;
            let p = plan(&[u], std::slice::from_ref(&e), &d);
            if lifted {
                assert_eq!(p.update.len(), 1, "{reason:?}: {p:?}");
                assert_eq!(p.update[0].1, vec!["enabled"]);
                assert!(p.update[0].0.enabled);
                assert_eq!(p.update[0].0.disabled_reason, None);
            } else {
                assert!(p.is_empty(), "{reason:?}: {p:?}");
                let shown = reason.map_or("unknown", DisabledReason::as_str);
                assert_eq!(p.left_disabled, vec![("erin".into(), shown.into())]);
            }
        }
        // An admin's disable is never replaced by a sync's reason.
        let mut u = synced(&e);
        u.disable(DisabledReason::Admin);
        assert!(plan(&[u.clone()], &[], &d).is_empty());
        let mut off = e.clone();
        off.enabled = false;
        assert!(plan(&[u], &[off], &d).is_empty());
    }

    #[test]
    fn local_values_are_kept_and_empty_never_clears_them() {
        let d = defaults();
        let e = entry("fay", "+15550107006", &["vpn"]);
        let mut u = synced(&e);
        // Set locally after that sync (portal, CLI): phone and groups.
        u.phone = "+15550100000".into();
        u.groups = vec!["admins".into()];
        // The directory has no usable phone now and other groups.
        let mut now = entry("fay", "0612345678", &["staff"]);
        now.email = "fay@new.example.org".into();
        let p = plan(std::slice::from_ref(&u), std::slice::from_ref(&now), &d);
        assert_eq!(p.update.len(), 1, "{p:?}");
        let (n, changed) = &p.update[0];
        assert_eq!(changed, &vec!["email"]);
        assert_eq!(n.phone, "+15550100000");
        assert_eq!(n.groups, vec!["admins".to_string()]);
        assert_eq!(p.kept_local, vec![("fay".into(), vec!["phone", "groups"])]);

        // directory_wins: a non-empty directory value replaces the local
        // one; an empty one still does not clear it.
        let wins = SyncDefaults {
            fields: FieldModes {
                phone: FieldMode::DirectoryWins,
                groups: FieldMode::DirectoryWins,
                ..FieldModes::default()
            },
            ..defaults()
        };
        let p = plan(std::slice::from_ref(&u), std::slice::from_ref(&now), &wins);
        let (n, changed) = &p.update[0];
        assert_eq!(changed, &vec!["email", "groups"]);
        assert_eq!(n.phone, "+15550100000");
        assert_eq!(n.groups, vec!["staff".to_string()]);

        // add_only: never touched after the add.
        let add_only = SyncDefaults {
            fields: FieldModes {
                email: FieldMode::AddOnly,
                ..FieldModes::default()
            },
            ..defaults()
        };
        let s = synced(&e);
        let p = plan(
            std::slice::from_ref(&s),
            std::slice::from_ref(&now),
            &add_only,
        );
        let (n, changed) = &p.update[0];
        assert_eq!(n.email, "fay@example.org");
        assert!(!changed.contains(&"email"), "{changed:?}");

        // A value the sync wrote follows the directory, empty included.
        let p = plan(&[s], &[now], &d);
        let (n, changed) = &p.update[0];
        assert_eq!(changed, &vec!["email", "phone", "groups"]);
        assert_eq!(n.phone, "");
        assert_eq!(n.groups, vec!["staff".to_string()]);
    }

    #[test]
    fn records_from_before_field_owners_are_migrated() {
        let d = defaults();
        let e = entry("gus", "+15550107007", &["vpn"]);
        let mut u = synced(&e);
        u.synced = None;
        u.phone = String::new();
        u.email = "gus@local.example.org".into();
        // Empty fields are filled, differing non-empty ones kept, and the
        // directory's values are recorded.
        let p = plan(&[u], std::slice::from_ref(&e), &d);
        let (n, changed) = &p.update[0];
        assert_eq!(changed, &vec!["phone"]);
        assert_eq!(n.email, "gus@local.example.org");
        assert_eq!(n.synced, Some(e.values()));
        // Only the recorded values differ: a refresh, not an update.
        let mut r = synced(&e);
        r.synced = None;
        let p = plan(&[r], &[e], &d);
        assert!(p.update.is_empty());
        assert_eq!(p.refresh, vec!["gus".to_string()]);
    }

    fn totp() -> Token {
        Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 30,
            secret: Secret::new(b"12345678901234567890".to_vec()),
            created: 0,
        }
    }

    /// A PIN change, lock and token change made between the plan and the
    /// write survive; so does a local edit of a field the plan would change,
    /// and a user an admin disabled meanwhile stays disabled.
    #[test]
    fn writes_made_between_plan_and_apply_are_not_lost() {
        let (_dir, store) = crate::testing::temp_store();
        let d = defaults();
        let e_h = entry("hana", "+15550107008", &["vpn"]);
        let e_i = entry("ivan", "+15550107009", &["vpn"]);
        let first = plan(&[], &[e_h.clone(), e_i.clone()], &d);
        apply(&store, &[e_h.clone(), e_i.clone()], &d, first).expect("first sync");

        // The directory changes hana's phone and ivan's email.
        let mut h2 = e_h.clone();
        h2.phone = "+15550108888".into();
        let mut i2 = e_i.clone();
        i2.email = "ivan@new.example.org".into();
        let entries = vec![h2, i2];
        let existing = store.list_users().expect("list");
        let p = plan(&existing, &entries, &d);
        assert_eq!(p.update.len(), 2, "{p:?}");

        // Meanwhile: PIN, lock and token for hana; ivan's email set locally
        // and ivan disabled by an admin.
        store.set_pin("hana", Some(b"4711")).expect("pin");
        crate::limits::persist_lock(&store, "hana", u64::MAX, "fraud_reported").expect("lock");
        store.put_token("hana", &totp()).expect("token");
        store
            .update_user("ivan", |u| u.email = "ivan@local.example.org".into())
            .expect("local edit");
        store.set_user_enabled("ivan", false).expect("disable");

        let done = apply(&store, &entries, &d, p).expect("apply");
        let hana = store.get_user("hana").expect("get").expect("hana");
        assert_eq!(hana.phone, "+15550108888");
        assert!(hana.pin.is_some(), "PIN lost");
        assert_eq!(
            store
                .open_pin(&hana)
                .expect("open")
                .map(|p| p.expose().to_vec()),
            Some(b"4711".to_vec())
        );
        assert_eq!(hana.locked_until, u64::MAX, "lock lost");
        assert_eq!(hana.lock_reason, "fraud_reported");
        assert!(store.get_token("hana").expect("token").is_some());
        let ivan = store.get_user("ivan").expect("get").expect("ivan");
        assert_eq!(ivan.email, "ivan@local.example.org");
        assert!(!ivan.enabled);
        assert_eq!(ivan.disabled_reason, Some(DisabledReason::Admin));
        // What was carried out: hana's phone; ivan only has the directory's
        // new values recorded.
        assert_eq!(done.update.len(), 1, "{done:?}");
        assert_eq!(done.update[0].0.name, "hana");
        assert_eq!(done.refresh, vec!["ivan".to_string()]);
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
