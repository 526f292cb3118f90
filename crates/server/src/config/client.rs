//! `[[client]]`: the static RADIUS clients (NAS) of the configuration file,
//! their addresses, shared secrets and policies.

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;
use super::files::MIN_SECRET_LEN;
use crate::secret::SharedSecret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSection {
    name: Spanned<String>,
    address: Spanned<String>,
    secret: Spanned<String>,
    #[serde(default = "default_policy_name")]
    policy: Spanned<String>,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
}

fn default_policy_name() -> Spanned<String> {
    Spanned::new(0..0, "default".to_string())
}
pub(crate) fn default_true() -> bool {
    true
}

/// A validated static client (NAS).
#[derive(Debug, Clone)]
pub struct StaticClient {
    /// Name shown in logs and the audit log.
    pub name: String,
    /// Source addresses it may send from.
    pub address: IpNet,
    /// Shared secret.
    pub secret: SharedSecret,
    /// Policy name (validated to exist).
    pub policy: String,
    /// BlastRADIUS protection: drop requests without a valid Message-Authenticator.
    pub require_message_authenticator: bool,
}

impl Section for Vec<ClientSection> {
    type Settings = Vec<StaticClient>;

    /// Checks each client's address, secret and policy, and that no name or
    /// address is used twice.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Vec<StaticClient>, ConfigError> {
        let mut clients: Vec<StaticClient> = Vec::new();
        for c in self {
            let address = parse_cidr(c.address.get_ref()).ok_or_else(|| {
                cx.at(
                    c.address.span(),
                    format!(
                        "client {:?}: address {:?} is not an IP address or CIDR (for example \"10.0.0.0/24\")",
                        c.name.get_ref(),
                        c.address.get_ref()
                    ),
                )
            })?;
            if c.secret.get_ref().len() < MIN_SECRET_LEN {
                return Err(cx.at(
                    c.secret.span(),
                    format!(
                        "client {:?}: the shared secret is too short: use at least {MIN_SECRET_LEN} characters (16+ recommended); \
                         it keys the User-Password hiding and the Message-Authenticator, so a short one is guessed offline from one captured request",
                        c.name.get_ref()
                    ),
                ));
            }
            if !cx.policies.contains(c.policy.get_ref()) {
                return Err(cx.at(
                    c.policy.span(),
                    format!(
                        "client {:?}: policy {:?} is not defined (add a [[policy]] with that name)",
                        c.name.get_ref(),
                        c.policy.get_ref()
                    ),
                ));
            }
            if let Some(other) = clients.iter().find(|o| o.name == *c.name.get_ref()) {
                return Err(cx.at(
                    c.name.span(),
                    format!("client {:?} is defined twice", other.name),
                ));
            }
            if let Some(other) = clients.iter().find(|o| o.address == address) {
                return Err(cx.at(
                    c.address.span(),
                    format!(
                        "client {:?}: address {address} is already the address of client {:?}",
                        c.name.get_ref(),
                        other.name
                    ),
                ));
            }
            clients.push(StaticClient {
                name: c.name.into_inner(),
                address,
                secret: SharedSecret::new(c.secret.into_inner().into_bytes()),
                policy: c.policy.into_inner(),
                require_message_authenticator: c.require_message_authenticator,
            });
        }
        Ok(clients)
    }
}

/// Parses "10.0.0.0/24", "10.0.0.1" or "::1" into a network.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}
