//! The optional `[portal]` section: where the self-service portal listens,
//! its TLS material and its session and PIN rules.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

/// `[portal]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSection {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    public_url: Option<Spanned<String>>,
    #[serde(default = "default_policy")]
    policy: Spanned<String>,
    #[serde(default = "default_session_minutes")]
    session_minutes: Spanned<u64>,
    #[serde(default = "default_pin_min")]
    pin_min_length: Spanned<usize>,
    #[serde(default = "default_per_ip")]
    signin_per_minute_per_ip: Spanned<u32>,
    #[serde(default = "default_per_user")]
    signin_per_minute_per_user: Spanned<u32>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "0.0.0.0:8444".to_string())
}
fn default_policy() -> Spanned<String> {
    Spanned::new(0..0, "default".to_string())
}
fn default_session_minutes() -> Spanned<u64> {
    Spanned::new(0..0, 15)
}
fn default_pin_min() -> Spanned<usize> {
    Spanned::new(0..0, 4)
}
fn default_per_ip() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}
fn default_per_user() -> Spanned<u32> {
    Spanned::new(0..0, 10)
}

/// The validated portal settings.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// The address users reach the portal at (`https://...`), when set; the
    /// enrollment mail links to it unless `[mail] portal_url` says otherwise.
    pub public_url: Option<String>,
    /// The policy whose first factor signs users in.
    pub policy: String,
    /// Lifetime of a signed-in session.
    pub session_minutes: u64,
    /// Shortest PIN a user may choose (4 to 10).
    pub pin_min_length: usize,
    /// Sign-in and code attempts per minute from one address.
    pub signin_per_minute_per_ip: u32,
    /// Sign-in and code attempts (and SMS sends) per minute for one user.
    pub signin_per_minute_per_user: u32,
}

/// `public_url` as written (before validation), for the `[mail]` default.
pub(crate) fn raw_public_url(section: &Option<Spanned<PortalSection>>) -> Option<String> {
    section
        .as_ref()
        .and_then(|s| s.get_ref().public_url.as_ref())
        .map(|u| u.get_ref().trim().to_string())
}

impl Section for Option<Spanned<PortalSection>> {
    type Settings = Option<PortalSettings>;

    /// Checks the listen address, public URL, policy, session and PIN rules
    /// and sign-in rates.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Option<PortalSettings>, ConfigError> {
        match self {
            Some(p) => validate(p, cx).map(Some),
            None => Ok(None),
        }
    }
}

fn validate(section: Spanned<PortalSection>, cx: &Ctx<'_>) -> Result<PortalSettings, ConfigError> {
    let at = super::context::spot;
    let whole = at(section.span());
    let p = section.into_inner();
    let fail =
        |span: Option<Range<usize>>, reason: String| cx.error(span, format!("[portal]: {reason}"));
    let listen: SocketAddr = p.listen.get_ref().parse().map_err(|_| {
        fail(
            at(p.listen.span()),
            format!(
                "listen {:?} is not IP:PORT (for example \"0.0.0.0:8444\")",
                p.listen.get_ref()
            ),
        )
    })?;
    let public_url = match &p.public_url {
        None => None,
        Some(u) => {
            let url = u.get_ref().trim().trim_end_matches('/').to_string();
            let rest = url.strip_prefix("https://").unwrap_or("");
            if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(fail(
                    at(u.span()),
                    format!(
                        "public_url {:?} must be an https:// URL (for example \"https://mfa.example.com\")",
                        u.get_ref()
                    ),
                ));
            }
            Some(url)
        }
    };
    if !cx.policies.contains(p.policy.get_ref()) {
        return Err(fail(
            at(p.policy.span()).or(whole.clone()),
            format!(
                "policy {:?} is not defined (add a [[policy]] with that name)",
                p.policy.get_ref()
            ),
        ));
    }
    let minutes = *p.session_minutes.get_ref();
    if !(1..=720).contains(&minutes) {
        return Err(fail(
            at(p.session_minutes.span()),
            format!("session_minutes must be between 1 and 720, not {minutes}"),
        ));
    }
    let pin_min = *p.pin_min_length.get_ref();
    if !radmfa_store::PIN_LEN.contains(&pin_min) {
        return Err(fail(
            at(p.pin_min_length.span()),
            format!("pin_min_length must be between 4 and 10, not {pin_min}"),
        ));
    }
    for rate in [&p.signin_per_minute_per_ip, &p.signin_per_minute_per_user] {
        if !(1..=10_000).contains(rate.get_ref()) {
            return Err(fail(
                at(rate.span()),
                format!(
                    "sign-in rates must be between 1 and 10000 per minute, not {}",
                    rate.get_ref()
                ),
            ));
        }
    }
    Ok(PortalSettings {
        listen,
        cert: p.cert,
        key: p.key,
        public_url,
        policy: p.policy.into_inner(),
        session_minutes: minutes,
        pin_min_length: pin_min,
        signin_per_minute_per_ip: *p.signin_per_minute_per_ip.get_ref(),
        signin_per_minute_per_user: *p.signin_per_minute_per_user.get_ref(),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::RuntimeConfig;

    const BASE: &str =
        "[portal]\ncert = \"/etc/radmfa/portal.pem\"\nkey = \"/etc/radmfa/portal.key\"\n";

    #[test]
    fn defaults_and_mail_link() {
        let text = format!(
            "{BASE}public_url = \"https://mfa.example.com/\"\n\n[mail]\nhost = \"smtp.example.com\"\nfrom = \"mfa@example.com\"\n"
        );
        let cfg = RuntimeConfig::parse(&text, "t.toml").expect("parses");
        let p = cfg.portal.expect("portal");
        assert_eq!(p.listen.to_string(), "0.0.0.0:8444");
        assert_eq!(p.session_minutes, 15);
        assert_eq!(p.pin_min_length, 4);
        assert_eq!(p.policy, "default");
        assert_eq!(p.public_url.as_deref(), Some("https://mfa.example.com"));
        assert_eq!(
            cfg.mail.expect("mail").portal_url,
            "https://mfa.example.com/"
        );
        assert!(RuntimeConfig::parse("", "t.toml").unwrap().portal.is_none());
    }

    #[test]
    fn errors_are_located() {
        let cases = [
            ("listen = \"nowhere\"\n", 4, "listen"),
            ("session_minutes = 0\n", 4, "session_minutes"),
            ("pin_min_length = 11\n", 4, "pin_min_length"),
            ("policy = \"vpn\"\n", 4, "policy \"vpn\" is not defined"),
            ("public_url = \"http://x\"\n", 4, "https://"),
            ("signin_per_minute_per_ip = 0\n", 4, "rates"),
            ("colour = \"blue\"\n", 4, "unknown field"),
        ];
        for (extra, line, words) in cases {
            let e = RuntimeConfig::parse(&format!("{BASE}{extra}"), "t.toml").unwrap_err();
            assert_eq!(e.line, line, "{extra}: {e}");
            assert!(e.reason.contains(words), "{extra}: {e}");
        }
        let e = RuntimeConfig::parse("[portal]\ncert = \"a\"\n", "t.toml").unwrap_err();
        assert!(e.reason.contains("key"), "{e}");
        let e = RuntimeConfig::parse(
            "[mail]\nhost = \"smtp.example.com\"\nfrom = \"mfa@example.com\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.reason.contains("portal_url is required"), "{e}");
    }
}
