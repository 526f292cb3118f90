//! Whether the nodes of a cluster run the same configuration. Each node
//! sends its per-section digests ([`crate::config::section_digests`]:
//! cluster-wide keys only, secrets excluded) to its peers over the peer link
//! every [`ANNOUNCE_EVERY`], as an admin request between nodes
//! (`AdminRequest::ConfigDigest` in an Admin frame) whose answer carries the
//! peer's digests: both sides learn from one exchange, and a node of an older
//! version answers "bad request" instead of dropping the connection, as it
//! would for a frame kind it does not know. It keeps the last digests of
//! each peer. `radmfa status` and `GET /api/v1/cluster` show the sections
//! that differ per peer ([`Consistency::view`]); the log says so at WARN
//! once per change of what differs from a peer (not per message), and at
//! INFO when the two agree again.
//!
//! Its own file: the table depends only on the digests, so the peer link,
//! the node and the reload each use it without depending on each other.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::differing_sections;

/// How often a node sends its digests to each peer.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);

/// A peer whose last digests are older than this is shown as not heard
/// from (it may be down or run an older version).
const STALE_AFTER: Duration = Duration::from_secs(30);

/// What a node sends its peers and answers them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announce {
    /// The sender's `[server] node_name`.
    pub node_name: String,
    /// SHA-256 (hex) per section.
    pub sections: BTreeMap<String, String>,
}

/// One peer as last heard.
#[derive(Debug)]
struct Peer {
    name: String,
    sections: BTreeMap<String, String>,
    seen: Instant,
    /// The differing sections last said in the log.
    said: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct Inner {
    own: BTreeMap<String, String>,
    peers: BTreeMap<u16, Peer>,
}

/// This node's digests and the last ones of each peer.
#[derive(Debug, Default)]
pub struct Consistency {
    inner: Mutex<Inner>,
}

/// One peer in [`ConsistencyView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConsistency {
    /// The peer's node id.
    pub node_id: u16,
    /// Its `[server] node_name`.
    pub node_name: String,
    /// Seconds since its last digests arrived.
    pub last_seen_secs: u64,
    /// False when nothing arrived for a while: `differs` is then old news.
    pub current: bool,
    /// The sections whose digest differs from this node's (empty: agree).
    pub differs: Vec<String>,
}

/// The configuration consistency as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyView {
    /// True when every peer heard from agrees in every section.
    pub agree: bool,
    /// This node's digest per section (the first 16 hex digits).
    pub sections: BTreeMap<String, String>,
    /// The peers heard from, by node id.
    pub peers: Vec<PeerConsistency>,
}

/// After a failed connect, a peer is tried again for the digests only this
/// much later (each failed connect is logged by the peer link); an open
/// connection carries them every [`ANNOUNCE_EVERY`].
const RECONNECT_EVERY: Duration = Duration::from_secs(30);

/// Exchanges digests with every peer in `peers` every [`ANNOUNCE_EVERY`]
/// until `shutdown`: sends `announce()`, records the answer in `table`.
pub async fn announce_loop(
    client: crate::peer::PeerClient,
    peers: Vec<u16>,
    table: std::sync::Arc<Consistency>,
    announce: impl Fn() -> Announce,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_at: BTreeMap<u16, Instant> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Announce {
            node_name,
            sections,
        } = announce();
        let req = crate::admin::AdminRequest::ConfigDigest {
            node_name,
            sections,
        };
        let Ok(body) = serde_json::to_vec(&req) else {
            continue;
        };
        for &node in &peers {
            let now = Instant::now();
            if !client.is_connected(node) && retry_at.get(&node).is_some_and(|at| now < *at) {
                continue;
            }
            match exchange(&client, node, body.clone()).await {
                Ok(theirs) => {
                    retry_at.remove(&node);
                    table.received(node, theirs, Instant::now());
                }
                Err(e) => {
                    retry_at.insert(node, now + RECONNECT_EVERY);
                    tracing::debug!(peer = node, error = %e, "no configuration digests from peer");
                }
            }
        }
    }
}

/// One exchange with `node`: its digests, or why there are none.
async fn exchange(
    client: &crate::peer::PeerClient,
    node: u16,
    body: Vec<u8>,
) -> Result<Announce, String> {
    let answer = client
        .admin(node, body, ANNOUNCE_EVERY)
        .await
        .map_err(|e| e.to_string())?;
    let answer: crate::admin::Answer =
        serde_json::from_slice(&answer).map_err(|e| format!("unreadable answer: {e}"))?;
    match (answer.ok, answer.result) {
        (true, Some(v)) => {
            serde_json::from_value(v).map_err(|e| format!("unreadable digests: {e}"))
        }
        // An older version does not know the request.
        _ => Err(answer.error.unwrap_or_else(|| "no digests".into())),
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Logs what differs from `node` when it changed since the last time.
fn say(own: &BTreeMap<String, String>, node: u16, peer: &mut Peer) {
    let differs = differing_sections(own, &peer.sections);
    if peer.said.as_ref() == Some(&differs) {
        return;
    }
    let name = crate::text::escape(&peer.name);
    if !differs.is_empty() {
        let list = differs.join(", ");
        warn!(
            peer = node,
            peer_name = %name,
            sections = %list,
            "configuration differs from node {node} ({name}) in: {list}; make these sections \
             the same in every node's file, then reload each changed node (`radmfa reload` or SIGHUP)"
        );
    } else if peer.said.is_some() {
        info!(peer = node, peer_name = %name, "configuration agrees with node {node} ({name}) again");
    }
    peer.said = Some(differs);
}

impl Consistency {
    /// A table for a node whose digests are `own`.
    pub fn new(own: BTreeMap<String, String>) -> Consistency {
        Consistency {
            inner: Mutex::new(Inner {
                own,
                peers: BTreeMap::new(),
            }),
        }
    }

    /// This node's digests changed (a reload): compared again with every
    /// peer's.
    pub fn set_own(&self, own: BTreeMap<String, String>) {
        let mut inner = lock(&self.inner);
        let Inner { own: mine, peers } = &mut *inner;
        *mine = own;
        for (node, peer) in peers.iter_mut() {
            say(mine, *node, peer);
        }
    }

    /// What this node sends its peers and answers them.
    pub fn announce(&self, node_name: &str) -> Announce {
        Announce {
            node_name: node_name.to_string(),
            sections: lock(&self.inner).own.clone(),
        }
    }

    /// Digests from peer `node` (authenticated by the peer link) arrived.
    pub fn received(&self, node: u16, a: Announce, now: Instant) {
        let mut inner = lock(&self.inner);
        let Inner { own, peers } = &mut *inner;
        let peer = peers.entry(node).or_insert_with(|| Peer {
            name: String::new(),
            sections: BTreeMap::new(),
            seen: now,
            said: None,
        });
        (peer.name, peer.sections, peer.seen) = (a.node_name, a.sections, now);
        say(own, node, peer);
    }

    /// The view `radmfa status` and the API show.
    pub fn view(&self, now: Instant) -> ConsistencyView {
        let inner = lock(&self.inner);
        let peers: Vec<PeerConsistency> = inner
            .peers
            .iter()
            .map(|(id, p)| {
                let age = now.saturating_duration_since(p.seen);
                PeerConsistency {
                    node_id: *id,
                    node_name: p.name.clone(),
                    last_seen_secs: age.as_secs(),
                    current: age < STALE_AFTER,
                    differs: differing_sections(&inner.own, &p.sections),
                }
            })
            .collect();
        ConsistencyView {
            agree: peers.iter().all(|p| p.differs.is_empty()),
            sections: inner
                .own
                .iter()
                .map(|(s, d)| (s.clone(), d.chars().take(16).collect()))
                .collect(),
            peers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(s, d)| (s.to_string(), d.to_string()))
            .collect()
    }

    fn from(name: &str, pairs: &[(&str, &str)]) -> Announce {
        Announce {
            node_name: name.into(),
            sections: digests(pairs),
        }
    }

    #[test]
    fn a_peer_differing_in_one_section_is_shown_until_the_own_side_changes() {
        let t0 = Instant::now();
        let c = Consistency::new(digests(&[("policy", "aa"), ("limits", "bb")]));
        c.received(2, from("b", &[("policy", "cc"), ("limits", "bb")]), t0);
        let v = c.view(t0);
        assert!(!v.agree);
        assert_eq!(v.peers[0].differs, vec!["policy".to_string()]);
        assert_eq!(v.peers[0].node_name, "b");
        // The same news again changes nothing; the own side catching up clears it.
        c.received(2, from("b", &[("policy", "cc"), ("limits", "bb")]), t0);
        c.set_own(digests(&[("policy", "cc"), ("limits", "bb")]));
        let v = c.view(t0 + STALE_AFTER);
        assert!(v.agree);
        assert!(!v.peers[0].current);
        // A section only one side reports differs.
        c.received(3, from("c", &[("policy", "cc")]), t0);
        assert_eq!(c.view(t0).peers[1].differs, vec!["limits".to_string()]);
    }
}
