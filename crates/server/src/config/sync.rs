//! `[[sync]]`: scheduled directory sync items, and the per-attribute
//! [`FieldModes`] that say whether a locally set value or the directory's
//! wins (the sync itself is `crate::sync`).

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncSection {
    name: Spanned<String>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default = "default_sync_method")]
    method: String,
    #[serde(default)]
    language: String,
    #[serde(default = "default_sync_interval")]
    interval_secs: Spanned<u64>,
    #[serde(default)]
    send_enrollment_email: bool,
    #[serde(default)]
    fields: FieldModes,
}

fn default_sync_method() -> String {
    "totp".into()
}
fn default_sync_interval() -> Spanned<u64> {
    Spanned::new(0..0, 3600)
}

/// A scheduled directory sync item (and the shape of a one-off import).
#[derive(Debug, Clone)]
pub struct SyncItem {
    /// Name; records it manages carry `source = "ldap:NAME"`.
    pub name: String,
    /// Search base (default: the directory's base DN).
    pub base: Option<String>,
    /// LDAP filter for the users.
    pub filter: Option<String>,
    /// Or: the (nested) members of this group.
    pub group: Option<String>,
    /// Method of new users.
    pub method: radmfa_store::Method,
    /// Language of new users.
    pub language: String,
    /// Time between runs (`None` for a one-off import).
    pub interval: Option<std::time::Duration>,
    /// Mail new users their enrollment instructions.
    pub send_enrollment_email: bool,
    /// Per attribute: whether a locally set value or the directory's wins.
    pub fields: FieldModes,
}

/// How a sync item treats one attribute of the users it manages (the
/// `[sync.fields]` table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldMode {
    /// The directory's value is written while the field still holds what
    /// the last sync wrote (including an empty value, which clears it); a
    /// value set locally since then is kept.
    #[default]
    KeepLocal,
    /// A non-empty directory value replaces a locally set one too; an
    /// empty directory value clears only a synced value, never a local one.
    DirectoryWins,
    /// Written when the sync adds the user, never changed afterwards.
    AddOnly,
}

/// The [`FieldMode`] of each synced attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldModes {
    /// Display name.
    #[serde(default)]
    pub display_name: FieldMode,
    /// Email address.
    #[serde(default)]
    pub email: FieldMode,
    /// Phone number.
    #[serde(default)]
    pub phone: FieldMode,
    /// Groups.
    #[serde(default)]
    pub groups: FieldMode,
}

impl Section for Vec<SyncSection> {
    type Settings = Vec<SyncItem>;

    /// Checks each item (a `[directory]` is needed, filter or group, the
    /// method and the interval) and that no name is used twice.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Vec<SyncItem>, ConfigError> {
        let mut sync = Vec::new();
        for item in self {
            let name = item.name.get_ref().clone();
            let fail =
                |reason: String| cx.at(item.name.span(), format!("[[sync]] {name:?}: {reason}"));
            if !cx.directory {
                return Err(fail("needs a [directory] section".into()));
            }
            if item.filter.is_some() && item.group.is_some() {
                return Err(fail("give filter or group, not both".into()));
            }
            let method: radmfa_store::Method = item
                .method
                .parse()
                .map_err(|e: radmfa_store::StoreError| fail(e.to_string()))?;
            let interval = *item.interval_secs.get_ref();
            if !(60..=86_400).contains(&interval) {
                return Err(cx.at(
                    item.interval_secs.span(),
                    format!("[[sync]] {name:?}: interval_secs must be between 60 (1 minute) and 86400 (24 hours), not {interval}"),
                ));
            }
            if sync.iter().any(|s: &SyncItem| s.name == name) {
                return Err(fail("defined twice".into()));
            }
            sync.push(SyncItem {
                name: name.clone(),
                base: item.base,
                filter: item.filter,
                group: item.group,
                method,
                language: item.language,
                interval: Some(std::time::Duration::from_secs(interval)),
                send_enrollment_email: item.send_enrollment_email,
                fields: item.fields,
            });
        }
        Ok(sync)
    }
}
