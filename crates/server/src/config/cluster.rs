//! `[cluster]` and `[[cluster.peer]]`: the peer link between the nodes of a
//! cluster, replication and the initial role.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    listen: Spanned<String>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default = "default_forward_timeout")]
    forward_timeout_ms: u64,
    #[serde(default)]
    role: InitialRole,
    #[serde(default = "default_true_cluster")]
    replication: bool,
    #[serde(default = "default_changelog_keep")]
    changelog_keep: Spanned<u64>,
    #[serde(default)]
    peer: Vec<PeerSection>,
}

fn default_true_cluster() -> bool {
    true
}

fn default_changelog_keep() -> Spanned<u64> {
    Spanned::new(0..0, 100_000)
}

/// The role a node takes when its store has never replicated (a fresh data
/// directory); afterwards the persisted role and epoch win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialRole {
    /// The writable node (the first node of a cluster).
    #[default]
    Primary,
    /// A read-only copy that fetches everything from the primary.
    Replica,
}

fn default_forward_timeout() -> u64 {
    3000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerSection {
    node_id: Spanned<u32>,
    address: Spanned<String>,
}

/// The peer link between the nodes of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// TCP address the peer link listens on.
    pub listen: SocketAddr,
    /// Cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM), signed by the cluster CA.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// How long a forwarded request may take before the user is told to retry.
    pub forward_timeout: std::time::Duration,
    /// The other nodes: id and peer-link address.
    pub peers: Vec<(u16, SocketAddr)>,
    /// The role of a node whose store has never replicated.
    pub role: InitialRole,
    /// Replicate the store over the peer link.
    pub replication: bool,
    /// Changelog entries kept for replicas that fall behind (older ones are
    /// trimmed; a replica further behind gets a snapshot).
    pub changelog_keep: u64,
}

impl Section for Option<Spanned<ClusterSection>> {
    type Settings = Option<ClusterSettings>;

    /// Checks the listen address, the changelog bound and the peers (none
    /// with this node's id, none twice).
    fn validate(self, cx: &mut Ctx<'_>) -> Result<Self::Settings, ConfigError> {
        let Some(c) = self else {
            return Ok(None);
        };
        let c = c.into_inner();
        let listen: SocketAddr = c.listen.get_ref().parse().map_err(|_| {
            cx.at(
                c.listen.span(),
                format!(
                    "cluster.listen {:?} is not IP:PORT (for example \"0.0.0.0:4443\")",
                    c.listen.get_ref()
                ),
            )
        })?;
        let mut peers: Vec<(u16, SocketAddr)> = Vec::new();
        for p in &c.peer {
            peers.push(peer(p, &peers, cx)?);
        }
        let keep = cx.within(
            &c.changelog_keep,
            1_000..=100_000_000,
            "cluster.changelog_keep",
        )?;
        Ok(Some(ClusterSettings {
            listen,
            ca: c.ca,
            cert: c.cert,
            key: c.key,
            // Range: `bounds::BOUNDS`.
            forward_timeout: std::time::Duration::from_millis(c.forward_timeout_ms),
            peers,
            role: c.role,
            replication: c.replication,
            changelog_keep: keep,
        }))
    }
}

/// One `[[cluster.peer]]`, checked against this node and the peers before it.
fn peer(
    p: &PeerSection,
    peers: &[(u16, SocketAddr)],
    cx: &Ctx<'_>,
) -> Result<(u16, SocketAddr), ConfigError> {
    let id = *p.node_id.get_ref();
    let id = u16::try_from(id).ok().filter(|n| *n != 0).ok_or_else(|| {
        cx.at(
            p.node_id.span(),
            format!("peer node_id must be between 1 and 65535, not {id}"),
        )
    })?;
    if id == cx.node_id {
        return Err(cx.at(
            p.node_id.span(),
            format!("peer node_id {id} is this node's own node_id"),
        ));
    }
    if peers.iter().any(|(other, _)| *other == id) {
        return Err(cx.at(
            p.node_id.span(),
            format!("peer node_id {id} is listed twice"),
        ));
    }
    let addr: SocketAddr = p.address.get_ref().parse().map_err(|_| {
        cx.at(
            p.address.span(),
            format!(
                "peer address {:?} is not IP:PORT (for example \"10.0.0.12:4443\")",
                p.address.get_ref()
            ),
        )
    })?;
    Ok((id, addr))
}
