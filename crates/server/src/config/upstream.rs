//! `[[upstream]]`: the RADIUS server groups a policy with
//! `first_factor = "radius"` proxies the password to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::client::default_true;
use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::files::MIN_SECRET_LEN;
use crate::secret::SharedSecret;
use crate::upstream::UpstreamConfig;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamSection {
    name: Spanned<String>,
    servers: Spanned<Vec<String>>,
    #[serde(default)]
    secret: Option<Spanned<String>>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default = "default_upstream_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_upstream_retries")]
    retries: u32,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
}

fn default_upstream_timeout() -> u64 {
    3000
}
fn default_upstream_retries() -> u32 {
    1
}

impl Section for Vec<UpstreamSection> {
    type Settings = HashMap<String, UpstreamConfig>;

    /// Checks each group's servers and secret (a `secret_file` is read by the
    /// load step) and records the names in `cx`.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let mut upstreams = HashMap::new();
        for u in self {
            let name = u.name.get_ref().clone();
            let mut servers = Vec::new();
            for a in u.servers.get_ref() {
                servers.push(a.parse::<SocketAddr>().map_err(|_| {
                    cx.at(
                        u.servers.span(),
                        format!("upstream {name:?}: server {a:?} is not IP:PORT (for example \"10.0.0.5:1812\")"),
                    )
                })?);
            }
            if servers.is_empty() {
                return Err(cx.at(
                    u.servers.span(),
                    format!("upstream {name:?} needs at least one server"),
                ));
            }
            let secret = match (&u.secret, &u.secret_file) {
                (Some(s), None) => s.get_ref().clone(),
                (None, Some(f)) => {
                    let place = cx.place_of(u.name.span());
                    cx.files.upstream.push((name.clone(), f.clone(), place));
                    String::new()
                }
                _ => {
                    return Err(cx.at(
                        u.name.span(),
                        format!("upstream {name:?}: give exactly one of secret and secret_file"),
                    ))
                }
            };
            if u.secret.is_some() && secret.len() < MIN_SECRET_LEN {
                return Err(cx.at(
                    u.secret.as_ref().map_or(u.name.span(), |s| s.span()),
                    format!(
                        "upstream {name:?}: the shared secret is too short: use at least {MIN_SECRET_LEN} characters \
                         (set the same longer secret on the upstream server)"
                    ),
                ));
            }
            let cfg = UpstreamConfig {
                name: name.clone(),
                servers,
                secret: SharedSecret::new(secret.into_bytes()),
                // Ranges: `bounds::BOUNDS`.
                timeout: std::time::Duration::from_millis(u.timeout_ms),
                retries: u.retries,
                require_message_authenticator: u.require_message_authenticator,
            };
            if upstreams.insert(name.clone(), cfg).is_some() {
                return Err(cx.at(u.name.span(), format!("upstream {name:?} is defined twice")));
            }
            cx.upstreams.insert(name);
        }
        Ok(upstreams)
    }
}
