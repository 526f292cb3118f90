//! `[push]`: sign-in approvals by Web Push to browsers registered in the
//! portal: the cluster's VAPID key file (RFC 8292), the contact the push
//! services see, and whether plain-http push endpoints are allowed (tests).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

/// The `[push]` section as written (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushSection {
    #[serde(default)]
    vapid_key_file: Option<PathBuf>,
    #[serde(default)]
    subject: Option<Spanned<String>>,
    #[serde(default)]
    allow_http_endpoints: bool,
}

/// Validated `[push]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// The cluster's VAPID private key (PKCS#8 PEM, P-256), created when
    /// missing; every node needs the same file.
    pub vapid_key_file: PathBuf,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for the push
    /// services' operators.
    pub subject: String,
    /// Accept `http://` push endpoints (a local push service in tests);
    /// browsers' push services are all https.
    pub allow_http_endpoints: bool,
}

impl Section for PushSection {
    type Settings = PushSettings;

    /// The key file defaults to the data directory; the subject to the
    /// portal's public URL, else `mailto:postmaster@localhost`.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<PushSettings, ConfigError> {
        let subject = match self.subject {
            Some(s) => {
                let v = s.get_ref().trim();
                let ok = (v.starts_with("mailto:") && v.len() > 7 && v.contains('@'))
                    || (v.starts_with("https://") && v.len() > 8);
                if !ok || v.chars().any(char::is_control) {
                    return Err(cx.at(
                        s.span(),
                        format!("push.subject must be a mailto: address or an https: URL (RFC 8292), not {v:?}"),
                    ));
                }
                v.to_string()
            }
            None => cx
                .portal_url
                .clone()
                .unwrap_or_else(|| "mailto:postmaster@localhost".to_string()),
        };
        Ok(PushSettings {
            vapid_key_file: self
                .vapid_key_file
                .unwrap_or_else(|| cx.data_dir.join("vapid.key")),
            subject,
            allow_http_endpoints: self.allow_http_endpoints,
        })
    }
}
