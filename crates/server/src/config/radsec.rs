//! The `[radsec]` section: parsed as written, validated into
//! [`RadsecSettings`]. Errors name the line and column of the value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

/// `[radsec]` as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadsecSection {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    #[serde(default = "default_idle_timeout")]
    idle_timeout_secs: Spanned<u64>,
    #[serde(default = "default_max_connections")]
    max_connections: Spanned<usize>,
    #[serde(default)]
    client: Vec<Spanned<ClientSection>>,
}

/// `[[radsec.client]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSection {
    name: Spanned<String>,
    cert_cn: Option<Spanned<String>>,
    cert_san_dns: Option<Spanned<String>>,
    cert_sha256: Option<Spanned<String>>,
    #[serde(default = "default_policy")]
    policy: Spanned<String>,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
}

/// IANA's RADIUS/TLS port (RFC 6614 §2.1).
fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "0.0.0.0:2083".to_string())
}
/// RFC 6613 §2.6.5 asks servers for a configurable idle timeout and clients
/// for Status-Server watchdogs when they keep idle connections; 60 s lets a
/// connection with a watchdog every 30 s (radsecproxy, FreeRADIUS) stay up
/// and closes abandoned ones within a minute.
fn default_idle_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}
fn default_max_connections() -> Spanned<usize> {
    Spanned::new(0..0, 256)
}
fn default_policy() -> Spanned<String> {
    Spanned::new(0..0, "default".to_string())
}
fn default_true() -> bool {
    true
}

/// Shortest idle timeout accepted.
const MIN_IDLE_SECS: u64 = 5;
/// Longest idle timeout accepted (one day).
const MAX_IDLE_SECS: u64 = 86_400;
/// Upper bound of `max_connections`.
const MAX_CONNECTIONS: usize = 65_536;

/// The validated `[radsec]` section.
#[derive(Debug, Clone)]
pub struct RadsecSettings {
    /// TCP address of the RADIUS/TLS listener.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (PEM).
    pub ca: PathBuf,
    /// A connection with no request for this long and none in progress is
    /// closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// The RadSec clients, in configuration order (the first match wins).
    pub clients: Vec<RadsecClient>,
}

/// One `[[radsec.client]]`: which certificates it stands for, and how its
/// requests are treated. Every matcher that is set must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadsecClient {
    /// Name in logs and the audit log.
    pub name: String,
    /// A common name of the certificate's subject (ASCII case-insensitive).
    pub cert_cn: Option<String>,
    /// A DNS name of the certificate's subjectAltName (ASCII
    /// case-insensitive, compared literally: no wildcard expansion).
    pub cert_san_dns: Option<String>,
    /// SHA-256 of the certificate (DER).
    pub cert_sha256: Option<[u8; 32]>,
    /// Policy name (validated to exist).
    pub policy: String,
    /// BlastRADIUS protection: drop Access-Requests without a valid
    /// Message-Authenticator.
    pub require_message_authenticator: bool,
}

/// Turns `"AB:cd:..."` or `"abcd..."` into 32 bytes.
fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

impl Section for Option<Spanned<RadsecSection>> {
    type Settings = Option<RadsecSettings>;

    /// Checks the listener and maps each `[[radsec.client]]` to a policy.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Option<RadsecSettings>, ConfigError> {
        match self {
            Some(r) => validate(r, cx).map(Some),
            None => Ok(None),
        }
    }
}

fn validate(section: Spanned<RadsecSection>, cx: &Ctx<'_>) -> Result<RadsecSettings, ConfigError> {
    let whole = section.span();
    let s = section.into_inner();
    let listen: SocketAddr = s.listen.get_ref().parse().map_err(|_| {
        cx.at(
            s.listen.span(),
            format!(
                "radsec.listen {:?} is not IP:PORT (for example \"0.0.0.0:2083\")",
                s.listen.get_ref()
            ),
        )
    })?;
    let idle = cx.within(
        &s.idle_timeout_secs,
        MIN_IDLE_SECS..=MAX_IDLE_SECS,
        "radsec.idle_timeout_secs",
    )?;
    let max_connections = cx.within(
        &s.max_connections,
        1..=MAX_CONNECTIONS,
        "radsec.max_connections",
    )?;
    if s.client.is_empty() {
        return Err(cx.at(
            whole,
            "[radsec] needs at least one [[radsec.client]] (cert_cn, cert_san_dns or cert_sha256) \
             to map client certificates to"
                .to_string(),
        ));
    }
    let mut clients: Vec<RadsecClient> = Vec::new();
    for c in s.client {
        let span = c.span();
        let c = c.into_inner();
        let name = c.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(cx.at(c.name.span(), "radsec.client name must not be empty".into()));
        }
        if clients.iter().any(|o| o.name == name) {
            return Err(cx.at(
                c.name.span(),
                format!("radsec.client {name:?} is defined twice"),
            ));
        }
        let text =
            |v: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, ConfigError> {
                match v {
                    None => Ok(None),
                    Some(v) if v.get_ref().trim().is_empty() => {
                        Err(cx.at(v.span(), format!("radsec.client {key} must not be empty")))
                    }
                    Some(v) => Ok(Some(v.get_ref().trim().to_string())),
                }
            };
        let cert_cn = text(&c.cert_cn, "cert_cn")?;
        let cert_san_dns = text(&c.cert_san_dns, "cert_san_dns")?;
        let cert_sha256 = match &c.cert_sha256 {
            None => None,
            Some(v) => Some(parse_fingerprint(v.get_ref()).ok_or_else(|| {
                cx.at(
                    v.span(),
                    "radsec.client cert_sha256 must be 64 hex digits (colons allowed), the SHA-256 \
                     of the certificate"
                        .to_string(),
                )
            })?),
        };
        if cert_cn.is_none() && cert_san_dns.is_none() && cert_sha256.is_none() {
            return Err(cx.at(
                span,
                format!(
                    "radsec.client {name:?} needs cert_cn, cert_san_dns or cert_sha256 to match \
                     certificates"
                ),
            ));
        }
        let policy = c.policy.get_ref().clone();
        if !cx.policies.contains(&policy) {
            return Err(cx.at(
                c.policy.span(),
                format!("radsec.client {name:?} names the unknown policy {policy:?}"),
            ));
        }
        clients.push(RadsecClient {
            name,
            cert_cn,
            cert_san_dns,
            cert_sha256,
            policy,
            require_message_authenticator: c.require_message_authenticator,
        });
    }
    Ok(RadsecSettings {
        listen,
        cert: s.cert,
        key: s.key,
        ca: s.ca,
        idle_timeout: Duration::from_secs(idle),
        max_connections,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::RuntimeConfig;

    const BASE: &str = "[radsec]\ncert = \"s.pem\"\nkey = \"s.key\"\nca = \"ca.pem\"\n";

    #[test]
    fn defaults_and_clients() {
        let text = format!(
            "{BASE}[[radsec.client]]\nname = \"proxy\"\ncert_cn = \"proxy.example.com\"\n\
             [[radsec.client]]\nname = \"pinned\"\ncert_sha256 = \"{}\"\n\
             require_message_authenticator = false\n",
            "AB:".repeat(31) + "AB"
        );
        let cfg = RuntimeConfig::parse(&text, "c.toml").expect("parses");
        let r = cfg.radsec.expect("radsec");
        assert_eq!(r.listen, "0.0.0.0:2083".parse().unwrap());
        assert_eq!(r.idle_timeout, std::time::Duration::from_secs(60));
        assert_eq!(r.max_connections, 256);
        assert_eq!(r.clients.len(), 2);
        assert_eq!(r.clients[0].cert_cn.as_deref(), Some("proxy.example.com"));
        assert_eq!(r.clients[0].policy, "default");
        assert!(r.clients[0].require_message_authenticator);
        assert_eq!(r.clients[1].cert_sha256, Some([0xAB; 32]));
        assert!(!r.clients[1].require_message_authenticator);
        assert!(RuntimeConfig::parse("", "c.toml")
            .expect("empty")
            .radsec
            .is_none());
    }

    #[test]
    fn errors_are_located() {
        let line = |text: &str| {
            let err = RuntimeConfig::parse(text, "c.toml").expect_err("must fail");
            assert_eq!(err.origin, "c.toml");
            (err.line, err.reason)
        };
        let client = "[[radsec.client]]\nname = \"p\"\ncert_cn = \"p\"\n";

        let (l, why) = line(&format!("{BASE}listen = \"nowhere\"\n{client}"));
        assert_eq!(l, 5, "{why}");
        assert!(why.contains("IP:PORT"), "{why}");

        let (l, why) = line(&format!("{BASE}idle_timeout_secs = 1\n{client}"));
        assert_eq!(l, 5, "{why}");
        assert!(why.contains("idle_timeout_secs"), "{why}");

        let (l, why) = line(&format!("{BASE}max_connections = 0\n{client}"));
        assert_eq!(l, 5, "{why}");
        assert!(why.contains("max_connections"), "{why}");

        let (l, why) = line(BASE);
        assert_eq!(l, 1, "{why}");
        assert!(why.contains("at least one"), "{why}");

        let (l, why) = line(&format!("{BASE}[[radsec.client]]\nname = \"p\"\n"));
        assert_eq!(l, 5, "{why}");
        assert!(why.contains("needs cert_cn"), "{why}");

        let (l, why) = line(&format!(
            "{BASE}[[radsec.client]]\nname = \"p\"\ncert_sha256 = \"abcd\"\n"
        ));
        assert_eq!(l, 7, "{why}");
        assert!(why.contains("64 hex digits"), "{why}");

        let (l, why) = line(&format!("{BASE}{client}policy = \"nope\"\n"));
        assert_eq!(l, 8, "{why}");
        assert!(why.contains("unknown policy"), "{why}");

        let (l, why) = line(&format!("{BASE}{client}{client}"));
        assert_eq!(l, 9, "{why}");
        assert!(why.contains("twice"), "{why}");

        let (l, why) = line(&format!("{BASE}{client}cert_subject = \"x\"\n"));
        assert_eq!(l, 8, "{why}");
        assert!(why.contains("unknown field"), "{why}");

        // Mandatory keys.
        assert!(
            RuntimeConfig::parse(&format!("[radsec]\ncert = \"s.pem\"\n{client}"), "c.toml")
                .is_err()
        );
    }
}
