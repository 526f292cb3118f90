//! What every request step shares: the [`Node`] (configuration, store,
//! caches, sessions, limits, gateway, peers) and how it is built and told
//! about changes made elsewhere (admin writes, replication, unlocks). The
//! steps add their own `impl Node` blocks in their files.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use radmfa_otp::{Clock, Sessions, StateKey};
use radmfa_store::Store;

use super::session::PendingChallenge;
use crate::audit::AuditSink;
use crate::clients::Clients;
use crate::config::RuntimeConfig;
use crate::consistency::Consistency;
use crate::counters::Counters;
use crate::credcache::CredentialCache;
use crate::dedup::DuplicateCache;
use crate::droplog::DropLog;
use crate::hot::HotState;
use crate::peer::{PeerClient, PeerStats};
use crate::swap::Swap;
use crate::upstream::Upstream;

/// Everything the pipeline needs; shared by all listeners.
pub struct Node {
    /// The running configuration (replaced by a reload).
    pub(super) cfg: Swap<Arc<RuntimeConfig>>,
    pub(super) store: Store,
    /// Static clients of the configuration plus the store's (rebuilt by a
    /// reload).
    pub(super) clients: Swap<Arc<Clients>>,
    pub(super) dedup: DuplicateCache,
    pub(super) sessions: Sessions<PendingChallenge>,
    pub(super) sms_sessions: Sessions<PendingChallenge>,
    /// Forced PIN changes in progress (`pinchange.rs`).
    pub(super) pin_changes: Sessions<super::session::PendingPinChange>,
    pub(super) gateway: Swap<Option<Arc<radmfa_gateway::Gateway>>>,
    pub(super) state_key: StateKey,
    pub(super) creds: CredentialCache,
    pub(super) hot: HotState,
    pub(super) counters: Arc<Counters>,
    pub(super) audit: AuditSink,
    pub(super) clock: Arc<dyn Clock>,
    /// Bounds concurrent argon2 verifications (one per core).
    pub(super) argon2_slots: tokio::sync::Semaphore,
    /// A hash made with the configured parameters, verified to pad a
    /// rejected local login to its fixed argon2 cost (unknown user, no
    /// password hash, no candidate checked; see `local_first_leg`).
    pub(super) decoy_hash: String,
    /// The peer link to the other nodes, when clustered.
    pub(super) peers: Option<PeerClient>,
    /// Peer-link counters.
    pub(super) peer_stats: Arc<PeerStats>,
    /// Upstream RADIUS groups (first factor `radius`).
    pub(super) upstreams: Swap<Arc<HashMap<String, Upstream>>>,
    /// The directory (first factor `ldap`).
    pub(super) directory: Swap<Option<radmfa_directory::Directory>>,
    /// Store replication, when clustered (set once at start).
    pub(super) replication: std::sync::OnceLock<Arc<crate::replication::Replication>>,
    /// Rate limits and lockout.
    pub(super) limits: Swap<Arc<crate::limits::Limits>>,
    /// Dropped requests, logged at WARN at most once a minute per key.
    pub(super) drops: Arc<DropLog>,
    /// The Web Push sender (set once at start).
    pub(super) pusher: std::sync::OnceLock<Arc<crate::push::Pusher>>,
    /// Number matching: numbers and waiters of push challenges in progress.
    pub(super) push_numbers: crate::push::MatchNumbers,
    /// Out-of-band verifications (call, two-way SMS, push) waiting for a verdict.
    pub(super) verifications: crate::verifications::Verifications,
    /// One WARN a minute about a gateway that cannot start or finish an
    /// out-of-band verification (`oob.rs`).
    pub(super) gateway_trouble: crate::throttle::Throttle,
    /// This node's configuration digests and its peers' (`consistency.rs`).
    pub(super) consistency: Arc<Consistency>,
    /// Held by a reload, so two never interleave.
    pub(super) reloading: tokio::sync::Mutex<()>,
    /// Restarts the directory sync loops for new `[[sync]]` items (set once
    /// at start; `reload.rs`).
    pub(super) sync_restart: std::sync::OnceLock<SyncRestart>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node", &self.cfg().node_name)
            .finish_non_exhaustive()
    }
}

/// Starts the directory sync loops of the `[[sync]]` items given, stopping
/// those started before (the server's start-up sets it; a reload that
/// changes `[[sync]]` calls it).
pub type SyncRestart = Box<dyn Fn(&[crate::config::SyncItem]) + Send + Sync>;

/// What a [`Node`] is built from, besides its configuration.
pub struct NodeParts {
    /// The open store.
    pub store: Store,
    /// The cluster key for State tokens.
    pub state_key: StateKey,
    /// Hot-path caches over the store.
    pub hot: HotState,
    /// The cloud gateway client, when configured.
    pub gateway: Option<radmfa_gateway::Gateway>,
    /// Counters to update.
    pub counters: Arc<Counters>,
    /// Where audit records go.
    pub audit: AuditSink,
    /// The clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
    /// The peer link to the other nodes (challenge forwarding), when clustered.
    pub peers: Option<PeerClient>,
    /// Peer-link counters (shared with the peer-link listener).
    pub peer_stats: Arc<PeerStats>,
}

impl std::fmt::Debug for NodeParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeParts").finish_non_exhaustive()
    }
}

impl Node {
    /// Builds a node over an open store.
    pub fn new(
        cfg: Arc<RuntimeConfig>,
        parts: NodeParts,
    ) -> Result<Node, radmfa_store::StoreError> {
        let NodeParts {
            store,
            state_key,
            hot,
            gateway,
            counters,
            audit,
            clock,
            peers,
            peer_stats,
        } = parts;
        let Pieces {
            clients,
            upstreams,
            directory,
        } = Pieces::build(&cfg, &store, &clock)?;
        let decoy_hash =
            radmfa_store::hash_password(b"radmfa decoy password", &cfg.password_params())?;
        let verifications =
            crate::verifications::Verifications::new(cfg.node_id, cfg.challenge_max_sessions);
        let digests = crate::config::section_digests(&cfg);
        Ok(Node {
            limits: Swap::new(Arc::new(crate::limits::Limits::new(
                cfg.limits.clone(),
                counters.clone(),
            ))),
            dedup: DuplicateCache::new(
                Duration::from_secs(cfg.duplicate_window_secs),
                cfg.duplicate_cache_entries,
            ),
            sessions: Sessions::new(cfg.challenge_lifetime_secs, cfg.challenge_max_sessions),
            sms_sessions: Sessions::new(cfg.sms.lifetime_secs, cfg.challenge_max_sessions),
            pin_changes: Sessions::new(cfg.challenge_lifetime_secs, cfg.challenge_max_sessions),
            gateway: Swap::new(gateway.map(Arc::new)),
            creds: CredentialCache::new(
                Duration::from_secs(cfg.password_cache_ttl_secs),
                cfg.password_cache_max_entries,
            ),
            clients: Swap::new(clients),
            hot,
            argon2_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            cfg: Swap::new(cfg),
            store,
            state_key,
            counters,
            audit,
            clock,
            decoy_hash,
            peers,
            peer_stats,
            upstreams: Swap::new(upstreams),
            directory: Swap::new(directory),
            replication: std::sync::OnceLock::new(),
            drops: Arc::new(DropLog::default()),
            pusher: std::sync::OnceLock::new(),
            push_numbers: crate::push::MatchNumbers::default(),
            verifications,
            gateway_trouble: crate::throttle::Throttle::default(),
            consistency: Arc::new(Consistency::new(digests)),
            reloading: tokio::sync::Mutex::new(()),
            sync_restart: std::sync::OnceLock::new(),
        })
    }

    /// The out-of-band verifications this node is waiting for (the callback
    /// handlers, the approval page and the peer link decide them).
    pub fn verifications(&self) -> &crate::verifications::Verifications {
        &self.verifications
    }

    /// The peer link to the other nodes, when clustered.
    pub fn peers(&self) -> Option<&PeerClient> {
        self.peers.as_ref()
    }

    /// Attaches the running replication (once, at start).
    pub fn set_replication(&self, r: Arc<crate::replication::Replication>) {
        let _ = self.replication.set(r);
    }

    /// Attaches the Web Push sender (once, at start).
    pub fn set_pusher(&self, p: Arc<crate::push::Pusher>) {
        let _ = self.pusher.set(p);
    }

    /// The Web Push sender, once started.
    pub fn pusher(&self) -> Option<&Arc<crate::push::Pusher>> {
        self.pusher.get()
    }

    /// The running replication, when clustered.
    pub fn replication(&self) -> Option<&Arc<crate::replication::Replication>> {
        self.replication.get()
    }

    /// Hands every batch of TOTP steps / HOTP counters consumed on this node
    /// to `sink` (replication sends them to the primary).
    pub fn set_otp_sink(&self, sink: crate::hot::OtpSink) {
        self.hot.set_otp_sink(sink);
    }

    /// Called after replication changed `users` (their record, token or
    /// replay state): forgets what is cached about them; for `otp_users`
    /// also the in-memory replay state, so the (raised) stored one counts.
    pub fn after_replication(&self, users: &[String], otp_users: &[String]) {
        for u in users {
            self.hot.forget_user(u);
            self.creds.forget(u);
        }
        for u in otp_users {
            self.hot.reset_otp(u);
        }
    }

    /// The running configuration, shared.
    pub fn config_arc(&self) -> Arc<RuntimeConfig> {
        self.cfg.get()
    }

    /// The running configuration, for one request step: taken once, it
    /// stays the same for that step whatever a reload does meanwhile.
    pub(super) fn cfg(&self) -> Arc<RuntimeConfig> {
        self.cfg.get()
    }

    /// The directory client, when configured.
    pub fn directory(&self) -> Option<radmfa_directory::Directory> {
        self.directory.get()
    }

    /// The cloud gateway client, when configured.
    pub(super) fn gateway(&self) -> Option<Arc<radmfa_gateway::Gateway>> {
        self.gateway.get()
    }

    /// The upstream RADIUS groups by name.
    pub(super) fn upstreams(&self) -> Arc<HashMap<String, Upstream>> {
        self.upstreams.get()
    }

    /// The client table.
    pub(super) fn clients(&self) -> Arc<Clients> {
        self.clients.get()
    }

    /// The configuration digests of this node and its peers.
    pub fn consistency(&self) -> &Arc<Consistency> {
        &self.consistency
    }

    /// The peer link's client side, when clustered.
    pub fn peer_client(&self) -> Option<PeerClient> {
        self.peers.clone()
    }

    /// Peer-link counters.
    pub fn peer_stats(&self) -> &Arc<PeerStats> {
        &self.peer_stats
    }

    /// Counters, peer-link counters and gateway metrics as one flat JSON
    /// object (`radmfa stats`).
    pub fn stats_json(&self) -> serde_json::Value {
        let mut all = self.counters.to_json();
        if let (Some(m), serde_json::Value::Object(peer)) =
            (all.as_object_mut(), self.peer_stats.to_json())
        {
            m.extend(peer);
            if let Some(g) = self.gateway() {
                m.extend(crate::counters::gateway_json(&g.metrics()));
            }
            m.extend(self.limits().stats_json());
        }
        all
    }

    /// The counters of this node.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The store this node serves from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<RuntimeConfig> {
        self.cfg.get()
    }

    /// Called after an admin write: forgets cached users and, for `user`,
    /// cached credentials and replay state.
    pub fn after_admin_write(&self, user: Option<&str>, token_changed: bool) {
        self.hot.invalidate();
        if let Some(u) = user {
            self.creds.forget(u);
            if token_changed {
                self.hot.reset_otp(u);
            }
        } else if token_changed {
            self.hot.reset_all_otp();
        }
    }

    /// Rate limits and lockout of this node (replaced by a reload that
    /// changes `[limits]`).
    pub fn limits(&self) -> Arc<crate::limits::Limits> {
        self.limits.get()
    }

    /// The clock the node reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The cloud gateway's metrics, when one is configured.
    pub fn gateway_metrics(&self) -> Option<radmfa_gateway::GatewayMetrics> {
        self.gateway().map(|g| g.metrics())
    }

    /// The table that writes dropped requests to the log.
    pub fn drop_log(&self) -> &Arc<DropLog> {
        &self.drops
    }

    /// Called when an admin unlocks `user`: forgets the node's failure count
    /// and in-memory lock, and the cached record.
    pub fn after_unlock(&self, user: &str) {
        self.limits().unlock(user);
        self.after_admin_write(Some(user), false);
    }

    /// Lockout bookkeeping on `decision` ([`crate::limits::Limits::after_decision`]),
    /// locks written through [`Node::persist_lock`]: `Some` is the Reject
    /// to send instead.
    pub(super) async fn lockout_after(
        &self,
        decision: &super::decision::Decision,
    ) -> Option<crate::limits::Override> {
        let now = self.clock.now_unix();
        self.limits()
            .after_decision(
                &self.store,
                &self.hot,
                decision,
                now,
                self,
                |name, until, why| self.persist_lock(name, until, why),
            )
            .await
    }

    /// Writes a lockout into `name`'s record: here on the primary (or a
    /// standalone node), through the primary on a replica. `Err` says why
    /// it could not be written (the caller then keeps it in memory).
    pub(super) async fn persist_lock(
        &self,
        name: String,
        until: u64,
        why: &'static str,
    ) -> Result<(), String> {
        let (store, user) = (self.store.clone(), name.clone());
        let local = tokio::task::spawn_blocking(move || {
            crate::limits::persist_lock(&store, &user, until, why)
        })
        .await
        .map_err(|e| format!("lock writer task failed: {e}"))?;
        match local {
            Ok(()) => Ok(()),
            Err(radmfa_store::StoreError::ReadOnly(here)) => {
                let req = crate::admin::AdminRequest::UserLock {
                    name,
                    until,
                    reason: why.to_string(),
                };
                let replication = self.replication().map(|r| &**r);
                crate::admin::forward_to_primary(replication, self.config().node_id, &req, here)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What a node builds from its configuration's clients, upstreams and
/// directory: at start and again at every reload (which also re-reads the
/// secrets they hold).
pub(super) struct Pieces {
    pub clients: Arc<Clients>,
    pub upstreams: Arc<HashMap<String, Upstream>>,
    pub directory: Option<radmfa_directory::Directory>,
}

impl Pieces {
    /// Builds them from `cfg` (no I/O beyond reading the store's clients).
    pub fn build(
        cfg: &RuntimeConfig,
        store: &Store,
        clock: &Arc<dyn Clock>,
    ) -> Result<Pieces, radmfa_store::StoreError> {
        let clients = Arc::new(Clients::new(cfg.clients.clone(), store)?);
        let directory = match &cfg.directory {
            Some(d) => Some(
                radmfa_directory::Directory::new(d.clone())
                    .map_err(|e| radmfa_store::StoreError::Invalid(format!("[directory]: {e}")))?,
            ),
            None => None,
        };
        let upstreams = cfg
            .upstreams
            .iter()
            .map(|(name, u)| (name.clone(), Upstream::new(u.clone(), clock.clone())))
            .collect();
        Ok(Pieces {
            clients,
            upstreams: Arc::new(upstreams),
            directory,
        })
    }
}
