//! `[directory]`: the LDAP or Active Directory server used for the `ldap`
//! first factor, imports and sync.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::files::DirectoryFiles;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DirectoryKindName {
    Ldap,
    Ad,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DirectoryTls {
    None,
    Starttls,
    Ldaps,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectorySection {
    kind: DirectoryKindName,
    servers: Vec<String>,
    #[serde(default = "default_directory_tls")]
    tls: DirectoryTls,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    bind_dn: String,
    #[serde(default)]
    bind_password_file: Option<PathBuf>,
    base_dn: String,
    #[serde(default)]
    user_filter: Option<String>,
    #[serde(default)]
    login_attr: Option<String>,
    #[serde(default)]
    display_name_attr: Option<String>,
    #[serde(default)]
    email_attr: Option<String>,
    #[serde(default)]
    phone_attr: Option<String>,
    #[serde(default)]
    disabled_filter: Option<String>,
    #[serde(default = "default_directory_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_directory_pool")]
    pool_size: usize,
    #[serde(default = "default_group_depth")]
    max_group_depth: usize,
}

fn default_directory_tls() -> DirectoryTls {
    DirectoryTls::None
}
fn default_directory_timeout() -> u64 {
    5000
}
fn default_directory_pool() -> usize {
    4
}
fn default_group_depth() -> usize {
    8
}

impl Section for Option<Spanned<DirectorySection>> {
    type Settings = Option<radmfa_directory::DirectoryConfig>;

    /// Checks the server URLs and maps the settings; the bind password and
    /// CA are read, and the client built, by the load step.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let Some(d) = self else {
            return Ok(None);
        };
        let place = cx.place_of(d.span());
        let d = d.into_inner();
        let fail = |reason: String| place.error(format!("[directory]: {reason}"));
        if d.servers.is_empty() {
            return Err(fail(
                "servers needs at least one ldap:// or ldaps:// URL".into(),
            ));
        }
        if let Some(bad) = d
            .servers
            .iter()
            .find(|u| !(u.starts_with("ldap://") || u.starts_with("ldaps://")))
        {
            return Err(fail(format!(
                "server {bad:?} must start with ldap:// or ldaps://"
            )));
        }
        let mut dc = radmfa_directory::DirectoryConfig::new(
            match d.kind {
                DirectoryKindName::Ldap => radmfa_directory::DirectoryKind::Ldap,
                DirectoryKindName::Ad => radmfa_directory::DirectoryKind::ActiveDirectory,
            },
            d.servers,
            d.base_dn,
            d.bind_dn,
            // Read by the load step.
            radmfa_directory::Secret::new(String::new()),
        );
        dc.tls = match d.tls {
            DirectoryTls::None => radmfa_directory::TlsMode::None,
            DirectoryTls::Starttls => radmfa_directory::TlsMode::StartTls,
            DirectoryTls::Ldaps => radmfa_directory::TlsMode::Ldaps,
        };
        dc.user_filter = d.user_filter;
        if let Some(a) = d.login_attr {
            dc.login_attr = a;
        }
        if let Some(a) = d.display_name_attr {
            dc.display_name_attr = a;
        }
        if let Some(a) = d.email_attr {
            dc.email_attr = a;
        }
        if let Some(a) = d.phone_attr {
            dc.phone_attr = a;
        }
        dc.disabled_filter = d.disabled_filter;
        // Ranges: `bounds::BOUNDS`.
        dc.timeout = std::time::Duration::from_millis(d.timeout_ms);
        dc.pool_size = d.pool_size;
        dc.max_group_depth = d.max_group_depth;
        cx.files.directory = Some(DirectoryFiles {
            bind_password: d.bind_password_file,
            ca: d.ca_file,
            place,
        });
        cx.directory = true;
        Ok(Some(dc))
    }
}
