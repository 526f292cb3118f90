//! The `[api]` configuration section: the admin HTTPS API.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use crate::secret::SharedSecret;

/// `[api]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default = "default_max_body")]
    max_body_bytes: Spanned<usize>,
    #[serde(default)]
    metrics_token: Option<Spanned<String>>,
    #[serde(default)]
    metrics_loopback: Option<Spanned<bool>>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8443".to_string())
}

fn default_max_body() -> Spanned<usize> {
    Spanned::new(0..0, 1024 * 1024)
}

/// The validated `[api]` section.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// TCP address of the HTTPS listener.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// When set, `/metrics` needs `Authorization: Bearer <this>`.
    pub metrics_token: Option<SharedSecret>,
    /// Without a token: `/metrics` answers loopback clients (true) or no
    /// one (false, the default: any local user could read it otherwise).
    pub metrics_loopback: bool,
}

impl Section for Option<Spanned<ApiSection>> {
    type Settings = Option<ApiSettings>;

    /// Checks the listen address, the body bound and the `/metrics` access.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Option<ApiSettings>, ConfigError> {
        let Some(sec) = self else {
            return Ok(None);
        };
        let sec = sec.into_inner();
        let listen: SocketAddr = sec.listen.get_ref().parse().map_err(|_| {
            cx.at(
                sec.listen.span(),
                format!(
                    "api.listen {:?} is not IP:PORT (for example \"127.0.0.1:8443\")",
                    sec.listen.get_ref()
                ),
            )
        })?;
        let max_body_bytes = cx.within(
            &sec.max_body_bytes,
            1024..=64 * 1024 * 1024,
            "api.max_body_bytes",
        )?;
        let metrics_token = match sec.metrics_token {
            Some(t) if t.get_ref().len() < 16 => {
                return Err(cx.at(
                    t.span(),
                    "api.metrics_token must have at least 16 characters".to_string(),
                ))
            }
            Some(t) => Some(SharedSecret::new(t.into_inner().into_bytes())),
            None => None,
        };
        let metrics_loopback = match sec.metrics_loopback {
        Some(l) if *l.get_ref() && metrics_token.is_some() => return Err(cx.at(l.span(),
            "api.metrics_loopback = true has no effect with api.metrics_token: remove one of them"
                .to_string(),
        )),
        Some(l) => l.into_inner(),
        None => false,
    };
        Ok(Some(ApiSettings {
            listen,
            cert: sec.cert,
            key: sec.key,
            max_body_bytes,
            metrics_token,
            metrics_loopback,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::RuntimeConfig;

    const POLICY: &str = "[[policy]]\nname = \"default\"\nfirst_factor = \"local\"\n";

    #[test]
    fn api_section_defaults_and_errors() {
        let ok = format!("{POLICY}[api]\ncert = \"c.pem\"\nkey = \"k.pem\"\n");
        let cfg = RuntimeConfig::parse(&ok, "t.toml").expect("valid");
        let api = cfg.api.expect("api");
        assert_eq!(api.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(api.max_body_bytes, 1024 * 1024);
        assert!(api.metrics_token.is_none());
        assert!(!api.metrics_loopback, "/metrics is closed by default");

        let both = format!(
            "{POLICY}[api]\ncert = \"c.pem\"\nkey = \"k.pem\"\nmetrics_token = \"0123456789abcdef\"\nmetrics_loopback = true\n"
        );
        let e = RuntimeConfig::parse(&both, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml:8:") && e.contains("metrics_loopback"),
            "{e}"
        );

        let bad =
            format!("{POLICY}[api]\nlisten = \"nowhere\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n");
        let e = RuntimeConfig::parse(&bad, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:5:"), "{e}");
        assert!(e.contains("api.listen"), "{e}");

        let short =
            format!("{POLICY}[api]\ncert = \"c.pem\"\nkey = \"k.pem\"\nmetrics_token = \"x\"\n");
        let e = RuntimeConfig::parse(&short, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics_token"), "{e}");

        let unknown =
            format!("{POLICY}[api]\ncert = \"c.pem\"\nkey = \"k.pem\"\nlisten_port = 1\n");
        let e = RuntimeConfig::parse(&unknown, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");

        let keep = format!("{POLICY}[log]\naudit_retention_days = 0\n");
        let e = RuntimeConfig::parse(&keep, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("audit_retention_days"), "{e}");
    }
}
