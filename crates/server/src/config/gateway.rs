//! `[gateway]`: the cloud gateway (radmfa protocol or Twilio) that sends
//! SMS, places calls and pushes, and how long an out-of-band verdict may
//! take.

use std::path::PathBuf;

use serde::Deserialize;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::files::GatewayFiles;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewaySection {
    #[serde(default = "default_provider")]
    provider: GatewayProvider,
    url: String,
    #[serde(default)]
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "default_gateway_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_gateway_retries")]
    retries: u32,
    #[serde(default)]
    send_names: bool,
    #[serde(default)]
    send_email: bool,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    from_number: String,
    #[serde(default = "default_verdict_timeout")]
    verdict_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum GatewayProvider {
    Radmfa,
    Twilio,
}

fn default_provider() -> GatewayProvider {
    GatewayProvider::Radmfa
}
fn default_gateway_timeout() -> u64 {
    5000
}
fn default_gateway_retries() -> u32 {
    2
}
fn default_verdict_timeout() -> u64 {
    60
}

/// The validated `[gateway]` section.
#[derive(Debug, Clone)]
pub(crate) struct GatewaySettings {
    /// The client configuration; its key is filled in by the load step.
    pub gateway: Option<radmfa_gateway::GatewayConfig>,
    pub verdict_timeout_secs: u64,
}

impl Section for Option<toml::Spanned<GatewaySection>> {
    type Settings = GatewaySettings;

    /// Checks the URL and the provider's settings; the API key file and CA
    /// are read by the load step.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<GatewaySettings, ConfigError> {
        let Some(g) = self else {
            return Ok(GatewaySettings {
                gateway: None,
                verdict_timeout_secs: default_verdict_timeout(),
            });
        };
        let place = cx.place_of(g.span());
        let g = g.into_inner();
        let fail = |reason: String| place.error(format!("[gateway]: {reason}"));
        if !g.url.starts_with("https://") {
            return Err(fail(format!("url {:?} must start with https://", g.url)));
        }
        let Some(api_key) = g.api_key_file.clone() else {
            return Err(fail(
                "api_key_file is required (the API key or Twilio auth token)".into(),
            ));
        };
        // The key itself comes from the load step.
        let key = radmfa_gateway::Secret::new(String::new());
        let provider = match g.provider {
            GatewayProvider::Radmfa => radmfa_gateway::Provider::Radmfa {
                base_url: g.url.clone(),
                api_key: key,
            },
            GatewayProvider::Twilio => {
                if g.account_sid.is_empty() || g.from_number.is_empty() {
                    return Err(fail("twilio needs account_sid and from_number".into()));
                }
                radmfa_gateway::Provider::Twilio {
                    base_url: g.url.clone(),
                    account_sid: g.account_sid.clone(),
                    auth_token: key,
                    from_number: g.from_number.clone(),
                    status_callback: None,
                }
            }
        };
        let mut gc = radmfa_gateway::GatewayConfig::new(provider);
        // Ranges: `bounds::BOUNDS`.
        gc.timeout = std::time::Duration::from_millis(g.timeout_ms);
        gc.retries = g.retries;
        gc.send_names = g.send_names;
        gc.send_email = g.send_email;
        cx.files.gateway = Some(GatewayFiles {
            api_key,
            ca: g.ca_file,
            place,
        });
        Ok(GatewaySettings {
            gateway: Some(gc),
            verdict_timeout_secs: g.verdict_timeout_secs,
        })
    }
}
