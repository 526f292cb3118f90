//! `[gateway]`: the cloud gateway (radmfa protocol or Twilio) that sends
//! SMS, places calls and pushes, and how long an out-of-band verdict may
//! take.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

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
    #[serde(default)]
    callback_url: Option<Spanned<String>>,
    #[serde(default = "default_fraud_key")]
    fraud_key: Spanned<String>,
    #[serde(default)]
    two_way_sms_text: BTreeMap<String, Spanned<String>>,
}

fn default_fraud_key() -> Spanned<String> {
    Spanned::new(0..0, "0".to_string())
}

/// Out-of-band settings besides the gateway client: where Twilio reaches
/// this cluster, the fraud key, the two-way SMS texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OobSettings {
    /// Base URL (`https://host[:port][/prefix]`, no trailing slash) Twilio
    /// posts its callbacks to: `[gateway] callback_url`, else `[portal]
    /// public_url`. `None`: Twilio calls and two-way SMS cannot be answered.
    pub callback_url: Option<String>,
    /// The key that reports fraud on a call (`None`: disabled).
    pub fraud_key: Option<char>,
    /// The admin's two-way SMS texts by language code, over the
    /// translated `[sms] two_way` text.
    pub two_way_sms_text: BTreeMap<String, String>,
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
    pub oob: OobSettings,
}

/// Checks `callback_url`, `fraud_key` and `two_way_sms_text`.
fn oob_settings(g: &GatewaySection, cx: &Ctx<'_>) -> Result<OobSettings, ConfigError> {
    let callback_url = match &g.callback_url {
        Some(u) => Some(check_callback_url(u.get_ref()).map_err(|r| cx.at(u.span(), r))?),
        None => cx
            .portal_url
            .as_deref()
            .and_then(|u| check_callback_url(u).ok()),
    };
    if g.callback_url.is_some() && !cx.portal {
        let span = g.callback_url.as_ref().map_or(0..0, |u| u.span());
        return Err(cx.at(
            span,
            "[gateway]: callback_url needs a [portal] section: the callbacks are served on the portal listener".into(),
        ));
    }
    let fraud_key = match g.fraud_key.get_ref().as_str() {
        "" => None,
        k => {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if radmfa_gateway::valid_fraud_key(c) => Some(c),
                _ => {
                    return Err(cx.at(
                        g.fraud_key.span(),
                        format!("[gateway]: fraud_key {k:?} must be one key, 0-9 or * (\"\" turns fraud reports off; # approves)"),
                    ))
                }
            }
        }
    };
    let mut texts = BTreeMap::new();
    for (lang, text) in &g.two_way_sms_text {
        let t = text.get_ref();
        let lang_ok = (2..=8).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !lang_ok {
            return Err(cx.at(
                text.span(),
                format!("[gateway.two_way_sms_text]: {lang:?} is not a language code (\"en\", \"nl\", \"pt-br\")"),
            ));
        }
        if !t.contains("{reference}") || t.len() > 1000 {
            return Err(cx.at(
                text.span(),
                format!("[gateway.two_way_sms_text] {lang}: the text must contain {{reference}} (the user types it back) and be at most 1000 bytes"),
            ));
        }
        texts.insert(lang.clone(), t.clone());
    }
    Ok(OobSettings {
        callback_url,
        fraud_key,
        two_way_sms_text: texts,
    })
}

/// A callback base URL: `https://` and a host, no query, fragment or
/// credentials; returned without a trailing slash.
fn check_callback_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url.strip_prefix("https://").unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || rest.contains(['?', '#', '@'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "[gateway]: callback_url {url:?} must be https://HOST[:PORT][/PATH], the address Twilio reaches (the reverse proxy)"
        ));
    }
    Ok(url.to_string())
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
                oob: OobSettings::default(),
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
                }
            }
        };
        let oob = oob_settings(&g, cx)?;
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
            oob,
        })
    }
}
