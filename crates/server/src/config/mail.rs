//! `[mail]`: the SMTP relay that sends enrollment mail, and the portal
//! address the mail links to.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::files::MailFiles;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum MailTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailSection {
    host: String,
    #[serde(default = "default_mail_port")]
    port: u16,
    #[serde(default = "default_mail_tls")]
    security: MailTls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    from: String,
    #[serde(default)]
    portal_url: String,
    #[serde(default)]
    templates_dir: Option<PathBuf>,
    #[serde(default = "default_mail_language")]
    default_language: String,
    #[serde(default = "default_mail_timeout")]
    timeout_ms: u64,
}

fn default_mail_port() -> u16 {
    587
}
fn default_mail_tls() -> MailTls {
    MailTls::Starttls
}
fn default_mail_language() -> String {
    "en".into()
}
fn default_mail_timeout() -> u64 {
    10_000
}

impl Section for Option<Spanned<MailSection>> {
    type Settings = Option<crate::mail::MailConfig>;

    /// Maps the settings and finds the portal address; the password and CA
    /// are read, and the mailer built, by the load step.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let Some(m) = self else {
            return Ok(None);
        };
        let place = cx.place_of(m.span());
        let m = m.into_inner();
        let portal_url = if m.portal_url.is_empty() {
            // The portal's own address, when [portal] names one.
            cx.portal_url.clone().ok_or_else(|| {
                place.error(
                    "[mail]: portal_url is required (or set [portal] public_url)".to_string(),
                )
            })?
        } else {
            m.portal_url
        };
        cx.files.mail = Some(MailFiles {
            password: m.password_file,
            ca: m.ca_file,
            place,
        });
        Ok(Some(crate::mail::MailConfig {
            host: m.host,
            port: m.port,
            security: match m.security {
                MailTls::None => crate::mail::SmtpSecurity::None,
                MailTls::Starttls => crate::mail::SmtpSecurity::StartTls,
                MailTls::Tls => crate::mail::SmtpSecurity::Tls,
            },
            username: m.username,
            // Read by the load step.
            password: None,
            ca_pem: None,
            from: m.from,
            portal_url,
            templates_dir: m.templates_dir,
            default_language: m.default_language,
            // Range: `bounds::BOUNDS`.
            timeout: std::time::Duration::from_millis(m.timeout_ms),
        }))
    }
}
