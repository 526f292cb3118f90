//! `[radius]`: the UDP listen addresses, duplicate detection and how many
//! requests are processed at once.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RadiusSection {
    #[serde(default = "default_listen")]
    listen: Spanned<Vec<String>>,
    #[serde(default = "default_duplicate_window")]
    duplicate_window_secs: u64,
    #[serde(default = "default_duplicate_entries")]
    duplicate_cache_entries: usize,
    #[serde(default)]
    workers: usize,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
}

impl Default for RadiusSection {
    fn default() -> Self {
        RadiusSection {
            listen: default_listen(),
            duplicate_window_secs: default_duplicate_window(),
            duplicate_cache_entries: default_duplicate_entries(),
            workers: 0,
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_listen() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["0.0.0.0:1812".to_string()])
}
fn default_duplicate_window() -> u64 {
    10
}
fn default_duplicate_entries() -> usize {
    250_000
}
fn default_max_in_flight() -> usize {
    4096
}

/// The validated `[radius]` section.
#[derive(Debug, Clone)]
pub(crate) struct RadiusSettings {
    pub listen: Vec<SocketAddr>,
    pub duplicate_window_secs: u64,
    pub duplicate_cache_entries: usize,
    pub workers: usize,
    pub max_in_flight: usize,
}

impl Section for RadiusSection {
    type Settings = RadiusSettings;

    /// Parses the listen addresses and records them in `cx`.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<RadiusSettings, ConfigError> {
        let mut listen = Vec::new();
        for a in self.listen.get_ref() {
            let addr: SocketAddr = a.parse().map_err(|_| {
                cx.at(
                    self.listen.span(),
                    format!("listen address {a:?} is not IP:PORT (for example \"0.0.0.0:1812\")"),
                )
            })?;
            listen.push(addr);
        }
        if listen.is_empty() {
            return Err(cx.at(
                self.listen.span(),
                "radius.listen needs at least one address".to_string(),
            ));
        }
        cx.listen = listen.clone();
        // Ranges: `bounds::BOUNDS`.
        Ok(RadiusSettings {
            listen,
            duplicate_window_secs: self.duplicate_window_secs,
            duplicate_cache_entries: self.duplicate_cache_entries,
            workers: self.workers,
            max_in_flight: self.max_in_flight,
        })
    }
}

/// The address recorded as "server IP" in the audit log when `[server]`
/// names none: the first specific listen address.
pub(crate) fn default_server_ip(listen: &[SocketAddr]) -> String {
    listen
        .iter()
        .map(|a| a.ip())
        .find(|ip| !ip.is_unspecified())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "0.0.0.0".to_string())
}
