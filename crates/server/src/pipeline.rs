//! The authentication pipeline (DESIGN.md §4): one datagram in, at most one
//! reply out. Client lookup, Message-Authenticator, duplicate detection, first
//! factor, second factor, reply and audit record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use radmfa_otp::{Clock, Hotp, OtpError, Sessions, StateKey, Take, Totp};
use radmfa_radius::{
    check_request_message_authenticator, encode_reply, reply_messages, verify_accounting_request,
    AttrType, Attribute, Code, MessageAuthenticator, Packet,
};
use radmfa_store::{
    AuditRecord, DisabledReason, Method, Store, Token, TokenAlgorithm, TokenKind, User,
};
use tracing::{debug, field, info, warn, Instrument, Level, Span};
use zeroize::Zeroizing;

use crate::audit::AuditSink;
use crate::clients::{ClientEntry, Clients};
use crate::config::{FailMode, FirstFactor, OtpMode, Policy, RuntimeConfig, Unenrolled};
use crate::counters::{bump, Counters};
use crate::credcache::CredentialCache;
use crate::debuglog::{Received, Sending};
use crate::dedup::{DuplicateCache, RequestKey, Seen};
use crate::droplog::{DropLog, DropReason, Who};
use crate::hot::HotState;
use crate::peer::{PeerClient, PeerStats};
use crate::upstream::{Upstream, UpstreamAnswer};

/// How a request reached the pipeline (logs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A datagram from the NAS.
    Udp,
    /// A RadSec (RADIUS/TLS) connection.
    RadSec,
    /// Forwarded over the peer link by this node id (challenge forwarding).
    Peer(u16),
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Udp => f.write_str("udp"),
            Via::RadSec => f.write_str("radsec"),
            Via::Peer(n) => write!(f, "peer node {n}"),
        }
    }
}

/// The span of one Access-Request: the fields every line about it carries
/// (the per-request line in [`Node::finish`] adds `user` and `outcome`).
fn access_span(client: &ClientEntry, packet: &Packet, source: SocketAddr, via: Via) -> Span {
    let text = |t| packet.attr(t).and_then(|a| a.as_str().ok());
    let span = tracing::info_span!(
        "access",
        client = %client.name,
        id = packet.identifier,
        source = %source,
        via = field::Empty,
        nas_ip = field::Empty,
        nas_id = field::Empty,
        calling_station = field::Empty,
        user = field::Empty,
        outcome = field::Empty
    );
    if span.is_disabled() {
        return span;
    }
    if via != Via::Udp {
        span.record("via", field::display(via));
    }
    if let Some(ip) = packet
        .attr(AttrType::NAS_IP_ADDRESS)
        .and_then(|a| a.as_ipv4().ok())
    {
        span.record("nas_ip", field::display(ip));
    } else if let Some(ip) = packet
        .attr(AttrType::NAS_IPV6_ADDRESS)
        .and_then(|a| a.as_ipv6().ok())
    {
        span.record("nas_ip", field::display(ip));
    }
    if let Some(id) = text(AttrType::NAS_IDENTIFIER) {
        span.record("nas_id", id);
    }
    if let Some(cs) = text(AttrType::CALLING_STATION_ID) {
        span.record("calling_station", cs);
    }
    span
}

/// An Access-Challenge in progress, kept on this node until answered.
#[derive(Debug, Clone)]
pub struct PendingChallenge {
    /// The user who passed the first factor.
    pub user: String,
    /// Where the challenge was issued; only an answer from there counts.
    pub origin: ChallengeOrigin,
    /// How the first leg was authenticated (audit "mode").
    pub mode: String,
    /// For one-way SMS: the code that was sent.
    pub sms_code: Option<Zeroizing<String>>,
    /// For one-way SMS: wrong answers still allowed.
    pub attempts_left: u8,
    /// What the final Accept carries (the upstream RADIUS server's
    /// attributes, the user's live directory groups), kept until the code is
    /// checked.
    pub on_accept: OnAccept,
    /// A chained challenge: the upstream server's State to send back with
    /// the user's answer.
    pub upstream_state: Option<Vec<u8>>,
}

/// The client and policy a challenge was issued under. The answer must come
/// through the same configured client entry (by name; for RadSec also the
/// same certificate) under the same policy, else it is `bad_state`: a
/// challenge started where the first factor is `none` cannot be finished
/// where a password is required. A forwarded answer is checked by the owner
/// against the client its own table maps the NAS address (carried in the
/// Forward frame) to, and against that datagram's Message-Authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeOrigin {
    client: String,
    cert_sha256: Option<[u8; 32]>,
    policy: String,
}

impl ChallengeOrigin {
    /// The origin of a request from `client`.
    pub fn of(client: &ClientEntry) -> ChallengeOrigin {
        ChallengeOrigin {
            client: client.name.clone(),
            cert_sha256: client.cert_sha256,
            policy: client.policy.clone(),
        }
    }
}

/// What an Accept carries besides the reply message and the user's stored
/// groups: the upstream RADIUS server's Accept attributes (first factor
/// `radius`) and the user's live directory groups (first factor `ldap`).
/// Every path to an Accept (inline, Access-Challenge, one-way SMS, out of
/// band, gateway fallbacks) applies the same one.
#[derive(Debug, Clone, Default)]
pub struct OnAccept {
    /// Attributes copied into the Accept.
    pub attrs: Vec<Attribute>,
    /// Groups whose `[[group_attributes]]` go into the Accept.
    pub groups: Vec<String>,
}

/// Everything the pipeline needs; shared by all listeners.
pub struct Node {
    cfg: Arc<RuntimeConfig>,
    store: Store,
    clients: Clients,
    dedup: DuplicateCache,
    sessions: Sessions<PendingChallenge>,
    sms_sessions: Sessions<PendingChallenge>,
    gateway: Option<radmfa_gateway::Gateway>,
    state_key: StateKey,
    creds: CredentialCache,
    hot: HotState,
    counters: Arc<Counters>,
    audit: AuditSink,
    clock: Arc<dyn Clock>,
    /// Bounds concurrent argon2 verifications (one per core).
    argon2_slots: tokio::sync::Semaphore,
    /// A hash made with the configured parameters, verified to pad a
    /// rejected local login to its fixed argon2 cost (unknown user, no
    /// password hash, no candidate checked; see `local_first_leg`).
    decoy_hash: String,
    /// The peer link to the other nodes, when clustered.
    peers: Option<PeerClient>,
    /// Peer-link counters.
    peer_stats: Arc<PeerStats>,
    /// Upstream RADIUS groups (first factor `radius`).
    upstreams: std::collections::HashMap<String, Upstream>,
    /// The directory (first factor `ldap`).
    directory: Option<radmfa_directory::Directory>,
    /// Store replication, when clustered (set once at start).
    replication: std::sync::OnceLock<Arc<crate::replication::Replication>>,
    /// Rate limits and lockout.
    limits: crate::limits::Limits,
    /// Dropped requests, logged at WARN at most once a minute per key.
    drops: Arc<DropLog>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node", &self.cfg.node_name)
            .finish_non_exhaustive()
    }
}

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

/// The outcome of one Access-Request, before encoding.
#[derive(Debug)]
struct Decision {
    code: Code,
    message: String,
    state: Option<Vec<u8>>,
    session_timeout: Option<u32>,
    /// Audit fields.
    user: String,
    mode: String,
    reason: String,
    /// Extra reply attributes (upstream Accept attributes, relayed challenge).
    attrs: Vec<Attribute>,
    /// Groups whose configured attributes go into an Accept.
    groups: Vec<String>,
}

impl Decision {
    fn reject(user: &str, mode: &str, reason: &str, message: &str) -> Decision {
        Decision {
            code: Code::ACCESS_REJECT,
            message: message.to_string(),
            state: None,
            session_timeout: None,
            user: user.to_string(),
            mode: mode.to_string(),
            reason: reason.to_string(),
            attrs: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn accept(user: &User, mode: &str, reason: &str) -> Decision {
        let who = if user.display_name.is_empty() {
            &user.name
        } else {
            &user.display_name
        };
        Decision {
            code: Code::ACCESS_ACCEPT,
            message: format!("Welcome, {who}."),
            state: None,
            session_timeout: None,
            user: user.name.clone(),
            mode: mode.to_string(),
            reason: reason.to_string(),
            attrs: Vec::new(),
            groups: user.groups.clone(),
        }
    }

    /// This decision with `extra` attributes and groups when it is an Accept.
    fn with_on_accept(mut self, extra: &OnAccept) -> Decision {
        if self.code == Code::ACCESS_ACCEPT {
            self.attrs.extend_from_slice(&extra.attrs);
            self.groups.extend_from_slice(&extra.groups);
        }
        self
    }
}

const MSG_WRONG_CREDENTIALS: &str = "Wrong user name or password.";
const MSG_WRONG_CODE: &str = "The code is not correct. Please sign in again with a new code.";
const MSG_REUSED_CODE: &str =
    "This code was already used. Wait for your app to show a new code, then sign in again.";
const MSG_WRONG_PIN: &str = "The PIN or code is not correct. Please sign in again.";
const MSG_TRY_AGAIN: &str = "Sign-in is temporarily unavailable. Please try again in a minute.";
const MSG_SESSION_GONE: &str =
    "Your sign-in attempt expired or is no longer valid. Please sign in again.";

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
        let clients = Clients::new(cfg.clients.clone(), &store)?;
        let directory = match &cfg.directory {
            Some(d) => Some(
                radmfa_directory::Directory::new(d.clone())
                    .map_err(|e| radmfa_store::StoreError::Invalid(format!("[directory]: {e}")))?,
            ),
            None => None,
        };
        let cfg_upstreams = cfg
            .upstreams
            .iter()
            .map(|(name, u)| (name.clone(), Upstream::new(u.clone())))
            .collect();
        let decoy_hash =
            radmfa_store::hash_password(b"radmfa decoy password", &cfg.password_params())?;
        Ok(Node {
            limits: crate::limits::Limits::new(cfg.limits.clone(), counters.clone()),
            dedup: DuplicateCache::new(
                Duration::from_secs(cfg.duplicate_window_secs),
                cfg.duplicate_cache_entries,
            ),
            sessions: Sessions::new(cfg.challenge_lifetime_secs, cfg.challenge_max_sessions),
            sms_sessions: Sessions::new(cfg.sms.lifetime_secs, cfg.challenge_max_sessions),
            gateway,
            creds: CredentialCache::new(
                Duration::from_secs(cfg.password_cache_ttl_secs),
                cfg.password_cache_max_entries,
            ),
            clients,
            hot,
            argon2_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            cfg,
            store,
            state_key,
            counters,
            audit,
            clock,
            decoy_hash,
            peers,
            peer_stats,
            upstreams: cfg_upstreams,
            directory,
            replication: std::sync::OnceLock::new(),
            drops: Arc::new(DropLog::default()),
        })
    }

    /// Attaches the running replication (once, at start).
    pub fn set_replication(&self, r: Arc<crate::replication::Replication>) {
        let _ = self.replication.set(r);
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
        self.cfg.clone()
    }

    /// The directory client, when configured.
    pub fn directory(&self) -> Option<&radmfa_directory::Directory> {
        self.directory.as_ref()
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
            if let Some(g) = &self.gateway {
                m.extend(crate::counters::gateway_json(&g.metrics()));
            }
            m.extend(self.limits.stats_json());
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
    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
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

    /// Rate limits and lockout of this node.
    pub fn limits(&self) -> &crate::limits::Limits {
        &self.limits
    }

    /// The table that writes dropped requests to the log.
    pub fn drop_log(&self) -> &Arc<DropLog> {
        &self.drops
    }

    /// A datagram from `source` dropped because too many requests are in
    /// progress (counted by the caller): logged like the other drops.
    pub fn note_overload(&self, source: SocketAddr) {
        debug!(%source, "dropped: too many requests in progress");
        if let Some(line) =
            self.drops
                .record(Who::Server, DropReason::Overload, source, Instant::now())
        {
            line.emit();
        }
    }

    /// Counts a request dropped without a reply and logs it: every drop at
    /// DEBUG, at WARN at most once a minute per client (or source) and
    /// reason, with the remedy (droplog.rs).
    fn dropped(
        &self,
        reason: DropReason,
        client: Option<&ClientEntry>,
        source: SocketAddr,
        via: Via,
    ) {
        let c = &self.counters;
        match reason {
            DropReason::UnknownClient => bump(&c.dropped_unknown_client),
            DropReason::Malformed => bump(&c.dropped_malformed),
            DropReason::MissingMessageAuthenticator
            | DropReason::StatusServerWithoutMessageAuthenticator => {
                bump(&c.dropped_missing_message_authenticator)
            }
            DropReason::BadMessageAuthenticator => bump(&c.dropped_bad_message_authenticator),
            DropReason::BadAccountingAuthenticator => bump(&c.dropped_bad_accounting_authenticator),
            DropReason::UnsupportedCode => bump(&c.dropped_unsupported_code),
            DropReason::Overload => bump(&c.dropped_overload),
            // Counted by the limiter itself (limits.rs).
            DropReason::RateLimitedClient | DropReason::RateLimitedSource => {}
        }
        let name = client.map_or("", |c| c.name.as_str());
        debug!(client = name, %source, %via, reason = reason.counter(), "dropped: {}", reason.what());
        let who = match client {
            Some(c) => Who::Client {
                name: Arc::from(c.name.as_str()),
                radsec: via == Via::RadSec,
            },
            None => Who::Source(source.ip()),
        };
        if let Some(line) = self.drops.record(who, reason, source, Instant::now()) {
            line.emit();
        }
    }

    /// Called when an admin unlocks `user`: forgets the node's failure count
    /// and in-memory lock, and the cached record.
    pub fn after_unlock(&self, user: &str) {
        self.limits.unlock(user);
        self.after_admin_write(Some(user), false);
    }

    /// Writes a lockout into `name`'s record: here on the primary (or a
    /// standalone node), through the primary on a replica. `Err` says why
    /// it could not be written (the caller then keeps it in memory).
    async fn persist_lock(
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
                crate::control::forward_to_primary(self, &req, here)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Handles one datagram from `source`; returns the reply to send, if any.
    pub async fn handle_datagram(&self, buf: &[u8], source: SocketAddr) -> Option<Arc<[u8]>> {
        self.handle(buf, source, None, None).await
    }

    /// Handles one packet that `client` sent on a stream (RADIUS/TLS) from
    /// `source`: the same checks and processing as a datagram, but the client
    /// is the one its certificate maps to, not looked up by address, and a
    /// challenge answer is never forwarded to a peer.
    pub async fn handle_stream(
        &self,
        buf: &[u8],
        source: SocketAddr,
        client: Arc<ClientEntry>,
    ) -> Option<Arc<[u8]>> {
        self.handle(buf, source, None, Some(client)).await
    }

    /// Handles a datagram that peer `from_node` received from `source` and
    /// forwarded here because its State names this node. It runs the same
    /// checks as a datagram from the NAS itself, and is never forwarded again.
    pub async fn handle_forwarded(
        &self,
        from_node: u16,
        buf: &[u8],
        source: SocketAddr,
    ) -> Option<Arc<[u8]>> {
        self.handle(buf, source, Some(from_node), None).await
    }

    async fn handle(
        &self,
        buf: &[u8],
        source: SocketAddr,
        forwarded_by: Option<u16>,
        stream_client: Option<Arc<ClientEntry>>,
    ) -> Option<Arc<[u8]>> {
        bump(&self.counters.requests_received);
        if let Err(e) = self.clients.refresh(&self.store) {
            warn!(error = %e, "cannot reload clients from the store; using the previous table");
        }
        let stream = stream_client.is_some();
        let via = match (forwarded_by, stream) {
            (Some(n), _) => Via::Peer(n),
            (None, true) => Via::RadSec,
            (None, false) => Via::Udp,
        };
        let Some(client) = stream_client.or_else(|| self.clients.lookup(source.ip())) else {
            self.dropped(DropReason::UnknownClient, None, source, via);
            return None;
        };
        if tracing::enabled!(Level::DEBUG) {
            let policy = self.cfg.policy(&client.policy);
            debug!(
                "{}\n  -> client {} (policy {}: first factor {:?}, otp mode {:?}, require_message_authenticator = {})",
                Received { buf, source, via: &via },
                client.name,
                client.policy,
                policy.first_factor,
                policy.otp_mode,
                client.require_message_authenticator
            );
        }
        let secret = client.secret.expose();
        let discard = |reason| {
            self.dropped(reason, Some(&client), source, via);
            None
        };

        // Header fields without a full decode: the MA check validates structure.
        let code = Code(*buf.first()?);
        match code {
            Code::ACCESS_REQUEST | Code::STATUS_SERVER => {
                match check_request_message_authenticator(buf, secret) {
                    Err(_) => return discard(DropReason::Malformed),
                    Ok(MessageAuthenticator::Invalid) => {
                        return discard(DropReason::BadMessageAuthenticator)
                    }
                    Ok(MessageAuthenticator::Absent) if code == Code::STATUS_SERVER => {
                        return discard(DropReason::StatusServerWithoutMessageAuthenticator)
                    }
                    Ok(MessageAuthenticator::Absent) if client.require_message_authenticator => {
                        return discard(DropReason::MissingMessageAuthenticator)
                    }
                    Ok(ma) => debug!("  -> Message-Authenticator: {ma:?}, accepted"),
                }
            }
            Code::ACCOUNTING_REQUEST => {
                match verify_accounting_request(buf, secret).and_then(|ok| {
                    // A Message-Authenticator, when present, must verify too.
                    check_request_message_authenticator(buf, secret)
                        .map(|ma| ok && ma != MessageAuthenticator::Invalid)
                }) {
                    Err(_) => return discard(DropReason::Malformed),
                    Ok(false) => return discard(DropReason::BadAccountingAuthenticator),
                    Ok(true) => {}
                }
            }
            _ => return discard(DropReason::UnsupportedCode),
        }
        // Per-client and per-source rate limits (limits.rs): dropped, counted.
        if forwarded_by.is_none() {
            if let Err(reason) = self.limits.check_datagram(&client.name, source.ip()) {
                return discard(reason);
            }
        }
        let packet = match Packet::decode(buf) {
            Ok(p) => p,
            Err(e) => {
                debug!(client = %client.name, error = %e, "malformed packet");
                return discard(DropReason::Malformed);
            }
        };

        let key = RequestKey {
            source,
            identifier: packet.identifier,
            authenticator: packet.authenticator,
        };
        let now = Instant::now();
        match self.dedup.begin(key, now) {
            Seen::New => debug!("  -> within the rate limits; not a retransmission"),
            Seen::InFlight => {
                bump(&self.counters.duplicates_in_flight_dropped);
                debug!(client = %client.name, id = packet.identifier, "retransmission while the first copy is in flight: ignored");
                return None;
            }
            Seen::Answered(reply) => {
                bump(&self.counters.duplicates_answered_from_cache);
                debug!(client = %client.name, id = packet.identifier, "retransmission: cached reply sent again");
                return Some(reply);
            }
        }
        // From here on the entry must be completed whatever happens.
        let guard = CompleteGuard {
            cache: &self.dedup,
            key,
            done: false,
        };
        let owner = (!stream).then(|| self.owner_elsewhere(&packet, forwarded_by));
        let reply = match owner.flatten() {
            Some(owner) => {
                debug!("  -> State names node {owner}: forwarding to it");
                self.forward(&client, &packet, buf, source, owner).await
            }
            None => self.process(&client, &packet, source, via).await,
        };
        if let Some(r) = &reply {
            debug!("{}", Sending { buf: r, to: source });
        }
        guard.complete(reply.clone());
        reply
    }

    /// The node owning the challenge this Access-Request answers, when it is
    /// another node this one can forward to. A State that does not verify is
    /// left to the normal path (rejected there).
    fn owner_elsewhere(&self, packet: &Packet, forwarded_by: Option<u16>) -> Option<u16> {
        if packet.code != Code::ACCESS_REQUEST || forwarded_by.is_some() {
            return None;
        }
        let peers = self.peers.as_ref()?;
        let state = packet.attr(AttrType::STATE)?;
        let token = self.state_key.open(&state.value).ok()?;
        (token.node_id != self.cfg.node_id && peers.knows(token.node_id)).then_some(token.node_id)
    }

    /// Sends the request to the node that owns its challenge and relays that
    /// node's reply (already signed for this client). If the owner cannot be
    /// reached the user is asked to sign in again.
    async fn forward(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        buf: &[u8],
        source: SocketAddr,
        owner: u16,
    ) -> Option<Arc<[u8]>> {
        let peers = self.peers.as_ref()?;
        let timeout = self
            .cfg
            .cluster
            .as_ref()
            .map_or(Duration::from_secs(3), |c| c.forward_timeout);
        let span = access_span(client, packet, source, Via::Udp);
        let forwarded = peers
            .forward(owner, source, buf, timeout)
            .instrument(span.clone())
            .await;
        let _e = span.enter(); // no .await below
        match forwarded {
            Ok(reply) => {
                info!(owner, "challenge answer forwarded to its owner");
                reply.map(Arc::from)
            }
            Err(e) => {
                warn!(owner, error = %e, "cannot forward the challenge answer to its owner");
                let user = packet
                    .attr(AttrType::USER_NAME)
                    .and_then(|a| a.as_str().ok())
                    .unwrap_or("");
                let decision = Decision::reject(
                    user,
                    "challenge",
                    "owner_unreachable",
                    "The server that started your sign-in cannot be reached right now. Please sign in again.",
                );
                let (code, attrs) = self.finish(client, packet, source, &decision, &span);
                self.encode(client, packet, code, attrs)
            }
        }
    }

    async fn process(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        source: SocketAddr,
        via: Via,
    ) -> Option<Arc<[u8]>> {
        let started = Instant::now();
        let (code, attrs) = match packet.code {
            Code::STATUS_SERVER => {
                bump(&self.counters.status_server_replies);
                let msg = format!("radmfa {} is up", self.cfg.node_name);
                (Code::ACCESS_ACCEPT, reply_messages(&msg))
            }
            Code::ACCOUNTING_REQUEST => {
                bump(&self.counters.accounting_responses);
                (Code::ACCOUNTING_RESPONSE, Vec::new())
            }
            _ => {
                // The span is attached with .instrument: a guard held across
                // .await would leave it entered on the worker thread while
                // the request waits, and every other request's lines would
                // nest inside it.
                let span = access_span(client, packet, source, via);
                let mut decision = self
                    .access_request(client, packet)
                    .instrument(span.clone())
                    .await;
                span.in_scope(|| {
                    debug!(
                        code = %decision.code,
                        mode = %decision.mode,
                        reason = %decision.reason,
                        "  -> decision"
                    )
                });
                // Lockout bookkeeping (limits.rs); may turn the decision into a Reject.
                let (d, now) = (&decision, self.clock.now_unix());
                let (store, hot) = (&self.store, &self.hot);
                if let Some(o) = self
                    .limits
                    .after_decision(
                        store,
                        hot,
                        &d.user,
                        d.code,
                        &d.reason,
                        &d.message,
                        now,
                        |name, until, why| self.persist_lock(name, until, why),
                    )
                    .instrument(span.clone())
                    .await
                {
                    span.in_scope(
                        || debug!(reason = %o.reason, "  -> lockout turns it into a Reject"),
                    );
                    decision =
                        Decision::reject(&decision.user, &decision.mode, &o.reason, &o.message);
                }
                self.finish(client, packet, source, &decision, &span)
            }
        };
        let reply = self.encode(client, packet, code, attrs);
        (self.counters.replies).record(&client.name, code.0, started.elapsed());
        reply
    }

    /// Encodes the reply to `packet` (Proxy-State copied, signed for `client`).
    fn encode(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        code: Code,
        mut attrs: Vec<Attribute>,
    ) -> Option<Arc<[u8]>> {
        // RFC 2865 §5.33: Proxy-State is copied unmodified, in order.
        attrs.extend(packet.attrs(AttrType::PROXY_STATE).cloned());
        match encode_reply(
            code,
            packet.identifier,
            &packet.authenticator,
            &attrs,
            client.secret.expose(),
        ) {
            Ok(bytes) => Some(Arc::from(bytes)),
            Err(e) => {
                warn!(client = %client.name, error = %e, "cannot encode the reply; request dropped");
                None
            }
        }
    }

    fn finish(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        source: SocketAddr,
        d: &Decision,
        span: &Span,
    ) -> (Code, Vec<Attribute>) {
        let result = match d.code {
            Code::ACCESS_ACCEPT => {
                bump(&self.counters.access_accepts);
                "accept"
            }
            Code::ACCESS_CHALLENGE => {
                bump(&self.counters.access_challenges);
                "challenge"
            }
            _ => {
                bump(&self.counters.access_rejects);
                "reject"
            }
        };
        self.counters.replies.record_outcome(&d.mode, result);
        span.record("user", d.user.as_str());
        span.record("outcome", result);
        span.in_scope(|| info!(mode = %d.mode, reason = %d.reason, "{result}"));
        let calling_station = packet
            .attr(AttrType::CALLING_STATION_ID)
            .and_then(|a| a.as_str().ok())
            .unwrap_or("")
            .to_string();
        self.audit.record(AuditRecord {
            time_ms: unix_ms(),
            user: d.user.clone(),
            mode: d.mode.clone(),
            result: result.to_string(),
            reason: d.reason.clone(),
            server_name: self.cfg.node_name.clone(),
            server_ip: self.cfg.server_ip.clone(),
            client_name: client.name.clone(),
            client_ip: source.ip().to_string(),
            calling_station,
        });
        let mut attrs = reply_messages(&d.message);
        if let Some(state) = &d.state {
            attrs.push(Attribute::new(AttrType::STATE, state.clone()));
        }
        if let Some(t) = d.session_timeout {
            attrs.push(Attribute::u32(AttrType::SESSION_TIMEOUT, t));
        }
        attrs.extend(d.attrs.iter().cloned());
        if d.code == Code::ACCESS_ACCEPT {
            for (group, extra) in &self.cfg.group_attributes {
                if d.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                    attrs.extend(extra.iter().cloned());
                }
            }
        }
        (d.code, attrs)
    }

    async fn access_request(&self, client: &ClientEntry, packet: &Packet) -> Decision {
        let name = match packet.attr(AttrType::USER_NAME).map(|a| a.as_str()) {
            Some(Ok(n)) if !n.is_empty() => n.to_string(),
            _ => {
                return Decision::reject(
                    "",
                    "",
                    "missing_user_name",
                    "The request carried no user name.",
                )
            }
        };
        if name.chars().any(radmfa_store::is_unsafe_char) {
            // No user can have such a name (the store refuses it); what is
            // logged and recorded is the escaped form (text.rs).
            return Decision::reject(
                &crate::text::escape(&name),
                "",
                "invalid_user_name",
                "The user name contains control characters.",
            );
        }
        // Lock and per-user rate limit (limits.rs), before any factor is checked.
        let now = self.clock.now_unix();
        if let Some(r) = self.limits.gate(&self.store, &self.hot, &name, now) {
            return Decision::reject(&name, "", r.reason, r.message);
        }
        let policy = self.cfg.policy(&client.policy);
        if policy.first_factor == FirstFactor::Radius
            && packet.attr(AttrType::USER_PASSWORD).is_none()
            && packet.attr(AttrType::STATE).is_none()
            && is_mschap(packet)
        {
            // MS-CHAPv2 (NPS / RD Gateway): only the upstream can verify it;
            // the second factor must then be out of band.
            let end_user = packet
                .attr(AttrType::CALLING_STATION_ID)
                .and_then(|a| a.as_str().ok())
                .and_then(|s| s.parse().ok());
            return self
                .radius_first_leg(&name, None, policy, packet, end_user, None, client)
                .await;
        }
        let Some(hidden) = packet.attr(AttrType::USER_PASSWORD) else {
            let (reason, msg) = if packet.attr(AttrType::CHAP_PASSWORD).is_some() {
                (
                    "chap_unsupported",
                    "CHAP is not supported: configure the VPN or NAS to use PAP.",
                )
            } else if packet.attr(AttrType::EAP_MESSAGE).is_some() {
                (
                    "eap_unsupported",
                    "EAP is not supported: configure the VPN or NAS to use PAP.",
                )
            } else {
                ("missing_password", "The request carried no password.")
            };
            return Decision::reject(&name, "", reason, msg);
        };
        let password = match radmfa_radius::unhide_password(
            &hidden.value,
            client.secret.expose(),
            &packet.authenticator,
        ) {
            Ok(p) => Zeroizing::new(p),
            Err(_) => {
                return Decision::reject(
                    &name,
                    "",
                    "malformed_password",
                    "The password attribute is malformed.",
                )
            }
        };
        let end_user = packet
            .attr(AttrType::CALLING_STATION_ID)
            .and_then(|a| a.as_str().ok())
            .and_then(|s| s.parse().ok());
        match packet.attr(AttrType::STATE) {
            Some(state) => {
                self.challenge_answer(
                    &name,
                    &state.value,
                    &password,
                    policy,
                    packet,
                    end_user,
                    client,
                )
                .await
            }
            None if policy.first_factor == FirstFactor::Radius => {
                self.radius_first_leg(
                    &name,
                    Some(&password),
                    policy,
                    packet,
                    end_user,
                    None,
                    client,
                )
                .await
            }
            None if policy.first_factor == FirstFactor::Ldap => {
                self.ldap_first_leg(&name, &password, policy, end_user, client)
                    .await
            }
            None => {
                self.local_first_leg(&name, &password, policy, end_user, client)
                    .await
            }
        }
    }

    /// First factor `radius`: the request goes to the policy's upstream
    /// server. Its Reject passes through, its Access-Challenge is relayed
    /// under our State, its Accept leads to our second factor, and its
    /// attributes go into our final Accept. `upstream_state` answers an
    /// upstream challenge.
    #[allow(clippy::too_many_arguments)]
    async fn radius_first_leg(
        &self,
        name: &str,
        password: Option<&[u8]>,
        policy: &Policy,
        packet: &Packet,
        end_user: Option<std::net::IpAddr>,
        upstream_state: Option<&[u8]>,
        client: &ClientEntry,
    ) -> Decision {
        let mode = "radius";
        let Some(upstream) = policy.upstream.as_ref().and_then(|u| self.upstreams.get(u)) else {
            return Decision::reject(name, mode, "no_upstream", MSG_TRY_AGAIN);
        };
        let cached = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, mode, "store_error", MSG_TRY_AGAIN);
            }
        };
        // Inline (password + code in one User-Password) only when the policy
        // says so: the upstream sees exactly one password per request.
        let inline = match (&cached, policy.otp_mode, upstream_state, password) {
            (Some(c), OtpMode::Inline, None, Some(password)) => c
                .token
                .as_ref()
                .and_then(|t| split_code(password, usize::from(t.digits))),
            _ => None,
        };
        let first_password = inline.map(|(pw, _)| pw).or(password);
        let answer = match upstream
            .forward(
                packet,
                first_password,
                upstream_state,
                Some((client.secret.expose(), &packet.authenticator)),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // upstream.rs says why at WARN, once a minute per group.
                debug!(error = %e, "upstream RADIUS unreachable");
                return Decision::reject(
                    name,
                    mode,
                    "upstream_unreachable",
                    "Your password cannot be checked right now. Please try again in a few minutes.",
                );
            }
        };
        let upstream_message = |attrs: &[Attribute]| {
            attrs
                .iter()
                .filter(|a| a.typ == AttrType::REPLY_MESSAGE)
                .filter_map(|a| a.as_str().ok())
                .collect::<Vec<_>>()
                .join("")
        };
        match answer {
            UpstreamAnswer::Reject(attrs) => {
                let msg = upstream_message(&attrs);
                let msg = if msg.is_empty() {
                    MSG_WRONG_CREDENTIALS.to_string()
                } else {
                    msg
                };
                Decision::reject(name, mode, "upstream_reject", &msg)
            }
            UpstreamAnswer::Challenge(attrs) => {
                let Some(state) = attrs.iter().find(|a| a.typ == AttrType::STATE) else {
                    return Decision::reject(
                        name,
                        mode,
                        "upstream_challenge_without_state",
                        MSG_TRY_AGAIN,
                    );
                };
                let now = self.clock.now_unix();
                let pending = PendingChallenge {
                    user: name.to_string(),
                    origin: ChallengeOrigin::of(client),
                    mode: "radius-challenge".to_string(),
                    sms_code: None,
                    attempts_left: 1,
                    on_accept: OnAccept::default(),
                    upstream_state: Some(state.value.clone()),
                };
                match self.sessions.insert(now, pending) {
                    Ok(id) => Decision {
                        code: Code::ACCESS_CHALLENGE,
                        message: upstream_message(&attrs),
                        state: Some(self.state_key.seal(self.cfg.node_id, &id).to_vec()),
                        session_timeout: attrs
                            .iter()
                            .find(|a| a.typ == AttrType::SESSION_TIMEOUT)
                            .and_then(|a| a.as_u32().ok())
                            .or(u32::try_from(self.cfg.challenge_lifetime_secs).ok()),
                        user: name.to_string(),
                        mode: "radius-challenge".to_string(),
                        reason: "upstream_challenge".to_string(),
                        attrs: Vec::new(),
                        groups: Vec::new(),
                    },
                    Err(e) => {
                        warn!(error = %e, "cannot open a challenge session");
                        Decision::reject(name, mode, "sessions_full", MSG_TRY_AGAIN)
                    }
                }
            }
            UpstreamAnswer::Accept(attrs) => {
                // Our own reply carries its own Reply-Message, State and
                // Session-Timeout; the rest of the upstream's Accept is kept.
                let carry: Vec<Attribute> = attrs
                    .into_iter()
                    .filter(|a| {
                        a.typ != AttrType::REPLY_MESSAGE
                            && a.typ != AttrType::STATE
                            && a.typ != AttrType::SESSION_TIMEOUT
                    })
                    .collect();
                let first = if password.is_none() { "mschapv2" } else { mode };
                if password.is_none() {
                    // MS-CHAPv2: no code can be asked for; only out-of-band methods.
                    let needs_code = cached.as_ref().is_some_and(|c| {
                        matches!(c.user.method, Method::Totp | Method::Hotp | Method::Sms)
                    });
                    let groups: Vec<String> = cached
                        .as_ref()
                        .map(|c| c.user.groups.clone())
                        .unwrap_or_default();
                    if needs_code && policy.needs_mfa(&groups) {
                        return Decision::reject(
                            name,
                            first,
                            "method_needs_code",
                            "This connection cannot ask for a code. Ask your administrator to set up phone or app verification for your account.",
                        );
                    }
                }
                let on_accept = OnAccept {
                    attrs: carry,
                    groups: Vec::new(),
                };
                self.second_factor_after(
                    name,
                    cached,
                    policy,
                    first,
                    end_user,
                    inline.map(|(_, c)| c),
                    on_accept,
                    client,
                )
                .await
            }
        }
    }

    /// First factor `ldap`: bind to the directory as the user (AD forms
    /// `user`, `user@domain`, `DOMAIN\user`), then the second factor of the
    /// local record of the canonical login name; the user's directory groups
    /// decide whether MFA applies and which attributes the Accept carries.
    async fn ldap_first_leg(
        &self,
        name: &str,
        password: &[u8],
        policy: &Policy,
        end_user: Option<std::net::IpAddr>,
        client: &ClientEntry,
    ) -> Decision {
        let mode = "ldap";
        let Some(directory) = &self.directory else {
            return Decision::reject(name, mode, "no_directory", MSG_TRY_AGAIN);
        };
        // Inline only when the policy says so: the directory sees exactly one
        // password per request (repeated wrong binds lock AD accounts).
        let by_name = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, mode, "store_error", MSG_TRY_AGAIN);
            }
        };
        let inline = match (&by_name, policy.otp_mode) {
            (Some(c), OtpMode::Inline) => c
                .token
                .as_ref()
                .and_then(|t| split_code(password, usize::from(t.digits))),
            _ => None,
        };
        let first_password = inline.map_or(password, |(pw, _)| pw);
        let dir_user = match directory.authenticate(name, first_password).await {
            Ok(u) => u,
            Err(f) => {
                use radmfa_directory::AuthFailure as F;
                let msg = match &f {
                    F::WrongPassword | F::UnknownUser => MSG_WRONG_CREDENTIALS,
                    F::AccountDisabled => "Your account is disabled. Contact your help desk.",
                    F::AccountLocked => "Your account is locked. Contact your help desk.",
                    F::AccountExpired => "Your account has expired. Contact your help desk.",
                    F::PasswordExpired => {
                        "Your password has expired. Change it, then sign in again."
                    }
                    _ => "Your password cannot be checked right now. Please try again in a few minutes.",
                };
                if matches!(f, F::Unreachable(_)) {
                    warn!(error = %f, "directory unreachable");
                }
                return Decision::reject(name, mode, f.reason(), msg);
            }
        };
        let login = dir_user.login.clone();
        let cached = if login == name {
            by_name
        } else {
            match self.hot.user(&self.store, &login) {
                Ok(u) => u,
                Err(e) => {
                    warn!(error = %e, "store read failed");
                    return Decision::reject(&login, mode, "store_error", MSG_TRY_AGAIN);
                }
            }
        };
        let on_accept = OnAccept {
            attrs: Vec::new(),
            groups: dir_user.groups,
        };
        self.second_factor_after(
            &login,
            cached,
            policy,
            mode,
            end_user,
            inline.map(|(_, c)| c),
            on_accept,
            client,
        )
        .await
    }

    /// The second factor once an external first factor (upstream RADIUS,
    /// directory) has passed. `on_accept` goes into the Accept, whichever
    /// path leads there.
    #[allow(clippy::too_many_arguments)]
    async fn second_factor_after(
        &self,
        name: &str,
        cached: Option<Arc<crate::hot::CachedUser>>,
        policy: &Policy,
        first: &str,
        end_user: Option<std::net::IpAddr>,
        inline_code: Option<&str>,
        on_accept: OnAccept,
        client: &ClientEntry,
    ) -> Decision {
        let mut groups: Vec<String> = on_accept.groups.clone();
        if let Some(c) = &cached {
            groups.extend(c.user.groups.iter().cloned());
        }
        if !policy.needs_mfa(&groups) {
            let mut d = Decision::reject(name, first, "", "");
            d.code = Code::ACCESS_ACCEPT;
            d.message = "Welcome.".to_string();
            d.reason = "mfa_not_required_for_group".to_string();
            d.attrs = on_accept.attrs;
            d.groups = groups;
            return d;
        }
        let Some(cached) = cached else {
            return Decision::reject(
                name,
                first,
                "not_enrolled",
                "Your account is not set up for multi-factor sign-in. Contact your administrator.",
            );
        };
        let user = &cached.user;
        if !user.enabled {
            return disabled(name, user, first);
        }
        let token = cached.token.as_ref();
        let decision = match user.method {
            Method::None => Decision::accept(user, first, "ok"),
            Method::Sms => {
                return self
                    .sms_first_leg(user, token, b"", policy, first, end_user, on_accept, client)
                    .await
            }
            Method::SmsTwoWay | Method::Call | Method::Push => {
                return self
                    .out_of_band(
                        user, token, b"", policy, first, end_user, &on_accept, client,
                    )
                    .await
            }
            Method::Totp | Method::Hotp => {
                let Some(token) = token else {
                    if policy.unenrolled == Unenrolled::Accept {
                        return Decision::accept(user, first, "not_enrolled_allowed")
                            .with_on_accept(&on_accept);
                    }
                    return Decision::reject(
                        name,
                        first,
                        "not_enrolled",
                        "You have not enrolled an authenticator app yet. Contact your administrator.",
                    );
                };
                let kind = match token.kind {
                    TokenKind::Totp => "totp",
                    TokenKind::Hotp => "hotp",
                };
                match inline_code {
                    Some(code) if user.pin.is_none() => {
                        self.check_code(user, token, code, &format!("{first}+{kind}-inline"))
                    }
                    _ => {
                        return self.challenge_because(
                            user,
                            policy,
                            format!("{first}+{kind}-challenge"),
                            "code_requested",
                            on_accept,
                            client,
                        )
                    }
                }
            }
        };
        decision.with_on_accept(&on_accept)
    }

    /// First factor `local` (or `none`), at a fixed argon2 cost: a
    /// rejected request costs exactly [`argon2_per_reject`] verifications
    /// whoever the user is (unknown, without a password hash, hashed with
    /// other parameters) and whatever the password's shape, padded with
    /// verifications of the decoy hash. What passes the first factor is not
    /// padded: only someone who knows the password gets there.
    async fn local_first_leg(
        &self,
        name: &str,
        password: &[u8],
        policy: &Policy,
        end_user: Option<std::net::IpAddr>,
        client: &ClientEntry,
    ) -> Decision {
        let (decision, spent, passed) = ARGON2_RUNS
            .scope(
                std::cell::Cell::new(0),
                PASSWORD_PASSED.scope(std::cell::Cell::new(false), async {
                    let d = self
                        .first_leg(name, password, policy, end_user, client)
                        .await;
                    (
                        d,
                        ARGON2_RUNS.with(std::cell::Cell::get),
                        PASSWORD_PASSED.with(std::cell::Cell::get),
                    )
                }),
            )
            .await;
        // A reject after the password passed (a wrong or replayed code) is
        // not padded: its answer already says the password was right, and
        // padding it would cost every wrong code two argon2 runs.
        if decision.code == Code::ACCESS_REJECT && !passed {
            for _ in spent..argon2_per_reject(policy) {
                self.verify_argon2(self.decoy_hash.clone(), password).await;
            }
        }
        decision
    }

    async fn first_leg(
        &self,
        name: &str,
        password: &[u8],
        policy: &Policy,
        end_user: Option<std::net::IpAddr>,
        client: &ClientEntry,
    ) -> Decision {
        let cached = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, "", "store_error", MSG_TRY_AGAIN);
            }
        };
        let first = match policy.first_factor {
            FirstFactor::Local | FirstFactor::Radius | FirstFactor::Ldap => "pap",
            FirstFactor::None => "otp",
        };
        let Some(cached) = cached else {
            // local_first_leg pads this to the cost of a wrong password.
            return Decision::reject(name, first, "unknown_user", MSG_WRONG_CREDENTIALS);
        };
        let user = &cached.user;
        if policy.first_factor == FirstFactor::Local && user.password_hash.is_none() {
            // Same cost as a wrong password; the audit log says why.
            self.verify_argon2(self.decoy_hash.clone(), password).await;
            return Decision::reject(name, first, "no_password", MSG_WRONG_CREDENTIALS);
        }
        // Members of the policy's bypass groups (or outside its MFA groups)
        // sign in with the password alone.
        let bypass = !policy.needs_mfa(&user.groups) && policy.first_factor == FirstFactor::Local;
        let token = cached.token.as_ref().filter(|_| !bypass);
        let needs_otp = match user.method {
            _ if bypass => false,
            Method::Totp | Method::Hotp => true,
            Method::None => false,
            Method::Sms => {
                return self
                    .sms_first_leg(
                        user,
                        token,
                        password,
                        policy,
                        first,
                        end_user,
                        OnAccept::default(),
                        client,
                    )
                    .await
            }
            Method::SmsTwoWay | Method::Call | Method::Push => {
                return self
                    .out_of_band(
                        user,
                        token,
                        password,
                        policy,
                        first,
                        end_user,
                        &OnAccept::default(),
                        client,
                    )
                    .await
            }
        };
        let token = match (needs_otp, token) {
            (true, Some(t)) => Some(t),
            (true, None) if policy.unenrolled == Unenrolled::Accept => None,
            (true, None) => {
                // Check the password first so this answer does not tell a
                // stranger which accounts exist.
                if policy.first_factor == FirstFactor::Local
                    && !self.verify_password(user, password).await
                {
                    return Decision::reject(name, first, "wrong_password", MSG_WRONG_CREDENTIALS);
                }
                // A disabled account is refused as disabled, enrolled or not
                // (the audit reason tells the admin why).
                if !user.enabled {
                    return disabled(name, user, first);
                }
                return Decision::reject(
                    name,
                    first,
                    "not_enrolled",
                    "You have not enrolled an authenticator app yet. Contact your administrator.",
                );
            }
            (false, _) => None,
        };

        let Some(token) = token else {
            // No second factor for this user.
            if policy.first_factor == FirstFactor::None {
                return Decision::reject(
                    name,
                    first,
                    "no_factor",
                    "No sign-in method is set up for your account. Contact your administrator.",
                );
            }
            if !self.verify_password(user, password).await {
                return Decision::reject(name, first, "wrong_password", MSG_WRONG_CREDENTIALS);
            }
            if !user.enabled {
                return disabled(name, user, first);
            }
            let reason = if bypass {
                "mfa_not_required_for_group"
            } else if needs_otp {
                "not_enrolled_allowed"
            } else {
                "ok"
            };
            return Decision::accept(user, first, reason);
        };

        let kind = match token.kind {
            TokenKind::Totp => "totp",
            TokenKind::Hotp => "hotp",
        };
        let digits = usize::from(token.digits);
        let code_split = split_code(password, digits);

        let pin = match self.pin_of(user, kind) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let pin = pin.as_ref().map(|p| p.expose());
        if policy.first_factor == FirstFactor::None {
            let mode = kind.to_string();
            let pin_len = pin.map_or(0, <[u8]>::len);
            if password.len() == pin_len + digits && password.iter().all(u8::is_ascii_digit) {
                if !user.enabled {
                    return disabled(name, user, &mode);
                }
                let code = match pin {
                    Some(pin) => match strip_pin(pin, password) {
                        Some(code) => code,
                        None => return Decision::reject(name, &mode, "wrong_pin", MSG_WRONG_PIN),
                    },
                    None => password,
                };
                let code = std::str::from_utf8(code).unwrap_or_default();
                return self.check_code(user, token, code, &mode);
            }
            if policy.otp_mode == OtpMode::Inline {
                return Decision::reject(
                    name,
                    &mode,
                    "code_missing",
                    "Enter the code from your authenticator app as the password.",
                );
            }
            if !user.enabled {
                return disabled(name, user, &mode);
            }
            return self.challenge(user, policy, format!("{kind}-challenge"), client);
        }

        // Inline: password immediately followed by the code (PIN mode: the
        // password, the PIN, then the code).
        if policy.otp_mode != OtpMode::Challenge {
            let split = code_split.and_then(|(pw_pin, code)| match pin {
                Some(pin) => split_pin_suffix(pin, pw_pin).map(|(pw, ok)| (pw, ok, code)),
                None => Some((pw_pin, true, code)),
            });
            if let Some((pw, pin_ok, code)) = split {
                if self.verify_password(user, pw).await {
                    let mode = format!("pap+{kind}-inline");
                    if !user.enabled {
                        return disabled(name, user, &mode);
                    }
                    if !pin_ok {
                        return Decision::reject(name, &mode, "wrong_pin", MSG_WRONG_PIN);
                    }
                    return self.check_code(user, token, code, &mode);
                }
            }
            if policy.otp_mode == OtpMode::Inline {
                let reason = if code_split.is_some() {
                    "wrong_password"
                } else {
                    "code_missing"
                };
                let msg = if code_split.is_some() {
                    MSG_WRONG_CREDENTIALS
                } else {
                    "Enter your password immediately followed by the code from your authenticator app."
                };
                return Decision::reject(name, &format!("pap+{kind}-inline"), reason, msg);
            }
        }
        // Challenge: the whole User-Password is the password.
        let mode = format!("pap+{kind}-challenge");
        if !self.verify_password(user, password).await {
            return Decision::reject(name, &mode, "wrong_password", MSG_WRONG_CREDENTIALS);
        }
        if !user.enabled {
            return disabled(name, user, &mode);
        }
        self.challenge(user, policy, mode, client)
    }

    /// The user's PIN in PIN mode (`Ok(None)` in standard mode); a PIN that
    /// does not decrypt is a store problem, answered with a Reject.
    fn pin_of(
        &self,
        user: &User,
        mode: &str,
    ) -> Result<Option<radmfa_store::Secret>, Box<Decision>> {
        self.store.open_pin(user).map_err(|e| {
            warn!(error = %e, "cannot open the user's PIN");
            Box::new(Decision::reject(
                &user.name,
                mode,
                "pin_unreadable",
                MSG_TRY_AGAIN,
            ))
        })
    }

    fn challenge(
        &self,
        user: &User,
        policy: &Policy,
        mode: String,
        client: &ClientEntry,
    ) -> Decision {
        self.challenge_because(
            user,
            policy,
            mode,
            "code_requested",
            OnAccept::default(),
            client,
        )
    }

    /// An Access-Challenge for the user's one-time code, answerable only
    /// through `client`; `on_accept` goes into the final Accept.
    fn challenge_because(
        &self,
        user: &User,
        policy: &Policy,
        mode: String,
        reason: &str,
        on_accept: OnAccept,
        client: &ClientEntry,
    ) -> Decision {
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: user.name.clone(),
            origin: ChallengeOrigin::of(client),
            mode: mode.clone(),
            sms_code: None,
            attempts_left: 1,
            on_accept,
            upstream_state: None,
        };
        match self.sessions.insert(now, pending) {
            Ok(id) => Decision {
                code: Code::ACCESS_CHALLENGE,
                message: if user.pin.is_some() {
                    format!(
                        "{}: type your PIN first, then the code.",
                        policy.challenge_prompt.trim_end_matches(['.', ' '])
                    )
                } else {
                    policy.challenge_prompt.clone()
                },
                state: Some(self.state_key.seal(self.cfg.node_id, &id).to_vec()),
                session_timeout: u32::try_from(self.cfg.challenge_lifetime_secs).ok(),
                user: user.name.clone(),
                mode,
                reason: reason.to_string(),
                attrs: Vec::new(),
                groups: Vec::new(),
            },
            Err(e) => {
                warn!(error = %e, "cannot open a challenge session");
                Decision::reject(&user.name, &mode, "sessions_full", MSG_TRY_AGAIN)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn challenge_answer(
        &self,
        name: &str,
        state: &[u8],
        password: &[u8],
        policy: &Policy,
        packet: &Packet,
        end_user: Option<std::net::IpAddr>,
        client: &ClientEntry,
    ) -> Decision {
        let token = match self.state_key.open(state) {
            Ok(t) => t,
            Err(e) => {
                debug!(error = %e, "State does not verify");
                return Decision::reject(name, "challenge", "bad_state", MSG_SESSION_GONE);
            }
        };
        if token.node_id != self.cfg.node_id {
            return Decision::reject(
                name,
                "challenge",
                "foreign_state",
                "Your sign-in started on another server that cannot be reached. Please sign in again.",
            );
        }
        let now = self.clock.now_unix();
        // Taken only by its own user through the client and policy that
        // started it; any other answer leaves it in place for its owner.
        let origin = ChallengeOrigin::of(client);
        let mut refusal = None;
        let mut take = |sessions: &Sessions<PendingChallenge>| {
            let taken = sessions.take_entry_if(&token.session_id, now, |p| {
                let why = if p.user != name {
                    Some("state_user_mismatch")
                } else if p.origin != origin {
                    Some("bad_state")
                } else {
                    None
                };
                refusal = why.map(|why| (why, p.mode.clone()));
                why.is_none()
            });
            match taken {
                Take::Taken(pending, deadline) => Some((pending, deadline)),
                Take::Refused | Take::Missing => None,
            }
        };
        let found = take(&self.sessions).or_else(|| take(&self.sms_sessions));
        let Some((pending, deadline)) = found else {
            return match refusal {
                Some((why, mode)) => {
                    debug!(
                        reason = why,
                        "challenge answer refused; the session stays for its owner"
                    );
                    Decision::reject(name, &mode, why, MSG_SESSION_GONE)
                }
                None => Decision::reject(name, "challenge", "challenge_expired", MSG_SESSION_GONE),
            };
        };
        if let Some(upstream_state) = &pending.upstream_state {
            return self
                .radius_first_leg(
                    name,
                    Some(password),
                    policy,
                    packet,
                    end_user,
                    Some(upstream_state),
                    client,
                )
                .await;
        }
        if pending.sms_code.is_some() {
            return self
                .sms_answer(name, state, token.session_id, deadline, pending, password)
                .await;
        }
        let cached = match self.hot.user(&self.store, name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Decision::reject(name, &pending.mode, "user_gone", MSG_WRONG_CREDENTIALS)
            }
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, &pending.mode, "store_error", MSG_TRY_AGAIN);
            }
        };
        let user = &cached.user;
        let Some(token) = cached.token.as_ref() else {
            return Decision::reject(name, &pending.mode, "user_gone", MSG_WRONG_CREDENTIALS);
        };
        if !user.enabled {
            return disabled(name, user, &pending.mode);
        }
        let pin = match self.pin_of(user, &pending.mode) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let given = password.trim_ascii();
        let code = match &pin {
            Some(pin) => match strip_pin(pin.expose(), given) {
                Some(code) => code,
                None => return Decision::reject(name, &pending.mode, "wrong_pin", MSG_WRONG_PIN),
            },
            None => given,
        };
        let Ok(code) = std::str::from_utf8(code) else {
            return Decision::reject(name, &pending.mode, "otp_malformed", MSG_WRONG_CODE);
        };
        self.check_code(user, token, code, &pending.mode)
            .with_on_accept(&pending.on_accept)
    }

    /// One-way SMS, first leg: first factor, then a random code sent through
    /// the gateway and an Access-Challenge whose State names this node.
    #[allow(clippy::too_many_arguments)]
    async fn sms_first_leg(
        &self,
        user: &User,
        token: Option<&Token>,
        password: &[u8],
        policy: &Policy,
        first: &str,
        end_user: Option<std::net::IpAddr>,
        on_accept: OnAccept,
        client: &ClientEntry,
    ) -> Decision {
        let name = user.name.as_str();
        let mode = format!("{first}+sms");
        if let Some(refused) = self.before_gateway(user, password, policy, &mode).await {
            return refused;
        }
        if let Some(refused) = phone_missing(user, &mode) {
            return refused;
        }
        let Some(gateway) = &self.gateway else {
            return self.gateway_down(
                user,
                token,
                policy,
                &mode,
                "gateway_not_configured",
                on_accept,
                client,
            );
        };
        let sms = &self.cfg.sms;
        let code = Zeroizing::new(radmfa_otp::random_code(sms.code_length, &sms.alphabet));
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: name.to_string(),
            origin: ChallengeOrigin::of(client),
            mode: mode.clone(),
            sms_code: Some(code.clone()),
            attempts_left: sms.max_attempts,
            on_accept: on_accept.clone(),
            upstream_state: None,
        };
        let id = match self.sms_sessions.insert(now, pending) {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "cannot open an SMS session");
                return Decision::reject(name, &mode, "sessions_full", MSG_TRY_AGAIN);
            }
        };
        let request = radmfa_gateway::SmsRequest {
            id: hex(&id),
            user: self.user_fields(user),
            body: sms.message.replace("{code}", &code),
            server_name: self.cfg.node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: end_user,
        };
        match gateway.send_sms(&request).await {
            Ok(_) => {
                let tail: String = user
                    .phone
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let pin_first = if user.pin.is_some() {
                    "your PIN followed by "
                } else {
                    ""
                };
                Decision {
                    code: Code::ACCESS_CHALLENGE,
                    message: format!(
                        "Enter {pin_first}the code we sent by text message to your phone ending in {tail}"
                    ),
                    state: Some(self.state_key.seal(self.cfg.node_id, &id).to_vec()),
                    session_timeout: u32::try_from(sms.lifetime_secs).ok(),
                    user: name.to_string(),
                    mode,
                    reason: "sms_sent".to_string(),
                    attrs: Vec::new(),
                    groups: Vec::new(),
                }
            }
            Err(e) => {
                self.sms_sessions.take(&id, now);
                warn!(error = %e, "cannot send the SMS code");
                self.gateway_down(
                    user,
                    token,
                    policy,
                    &mode,
                    "gateway_unreachable",
                    on_accept,
                    client,
                )
            }
        }
    }

    /// Two-way SMS, phone call or push: the request waits for the user's
    /// answer through the gateway (no Access-Challenge: RD Gateway/NPS cannot
    /// show one). NAS retransmissions meanwhile are absorbed by the duplicate
    /// cache, so one login is one SMS, call or push.
    #[allow(clippy::too_many_arguments)]
    async fn out_of_band(
        &self,
        user: &User,
        token: Option<&Token>,
        password: &[u8],
        policy: &Policy,
        first: &str,
        end_user: Option<std::net::IpAddr>,
        on_accept: &OnAccept,
        client: &ClientEntry,
    ) -> Decision {
        use radmfa_gateway::{Verdict, VerificationMode};
        let name = user.name.as_str();
        let (mode_name, gw_mode) = match user.method {
            Method::Call => ("call", VerificationMode::Call),
            Method::Push => ("push", VerificationMode::Push),
            _ => ("sms_two_way", VerificationMode::TwoWaySms),
        };
        let mode = format!("{first}+{mode_name}");
        if let Some(refused) = self.before_gateway(user, password, policy, &mode).await {
            return refused;
        }
        if gw_mode == VerificationMode::Push {
            if user.device_token.is_empty() {
                return Decision::reject(
                    name,
                    &mode,
                    "no_device",
                    "No mobile app is registered for your account. Contact your administrator.",
                );
            }
        } else if let Some(refused) = phone_missing(user, &mode) {
            return refused;
        }
        let pin_mode = match self.pin_of(user, &mode) {
            Ok(Some(pin)) => match std::str::from_utf8(pin.expose()) {
                Ok(p) => radmfa_gateway::PinMode::Pin(radmfa_gateway::Secret::new(p.to_string())),
                Err(_) => return Decision::reject(name, &mode, "pin_unreadable", MSG_TRY_AGAIN),
            },
            Ok(None) => radmfa_gateway::PinMode::Standard,
            Err(d) => return *d,
        };
        let down =
            |why| self.gateway_down(user, token, policy, &mode, why, on_accept.clone(), client);
        let Some(gateway) = &self.gateway else {
            return down("gateway_not_configured");
        };
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let request = radmfa_gateway::VerificationRequest {
            id: hex(&id),
            mode: gw_mode,
            user: self.user_fields(user),
            server_name: self.cfg.node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: end_user,
            pin_mode,
        };
        let pin_mode_used = matches!(request.pin_mode, radmfa_gateway::PinMode::Pin(_));
        let started = match gateway.start_verification(&request).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot start the verification");
                return down("gateway_unreachable");
            }
        };
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.verdict_timeout_secs);
        match gateway.wait_verdict(&started, deadline).await {
            Ok(Verdict::Approved) => Decision::accept(user, &mode, "ok").with_on_accept(on_accept),
            Ok(Verdict::Denied) if pin_mode_used => Decision::reject(
                name,
                &mode,
                "denied_or_wrong_pin",
                "The sign-in was denied on your phone, or the PIN entered was not correct.",
            ),
            Ok(Verdict::Denied) => Decision::reject(
                name,
                &mode,
                "denied_by_user",
                "The sign-in was denied on your phone.",
            ),
            Ok(Verdict::TimedOut) => Decision::reject(
                name,
                &mode,
                "no_answer",
                "We did not get an answer from your phone in time. Please sign in again.",
            ),
            Ok(Verdict::FraudReported) => Decision::reject(
                name,
                &mode,
                "fraud_reported",
                "You reported this sign-in as not yours. Contact your administrator.",
            ),
            Err(e) => {
                warn!(error = %e, "no verdict from the gateway");
                down("gateway_unreachable")
            }
        }
    }

    /// First factor and account state, checked before anything is sent
    /// through the gateway (no SMS or call for a wrong password).
    async fn before_gateway(
        &self,
        user: &User,
        password: &[u8],
        policy: &Policy,
        mode: &str,
    ) -> Option<Decision> {
        if policy.first_factor == FirstFactor::Local && !self.verify_password(user, password).await
        {
            return Some(Decision::reject(
                &user.name,
                mode,
                "wrong_password",
                MSG_WRONG_CREDENTIALS,
            ));
        }
        (!user.enabled).then(|| disabled(&user.name, user, mode))
    }

    fn user_fields(&self, user: &User) -> radmfa_gateway::UserFields {
        let (first_name, last_name) = match user.display_name.split_once(' ') {
            Some((f, l)) => (Some(f.to_string()), Some(l.to_string())),
            None if !user.display_name.is_empty() => (Some(user.display_name.clone()), None),
            None => (None, None),
        };
        radmfa_gateway::UserFields {
            unique_id: user.name.clone(),
            first_name,
            last_name,
            email: Some(user.email.clone()).filter(|e| !e.is_empty()),
            phone: Some(user.phone.clone()).filter(|p| !p.is_empty()),
            device_token: Some(user.device_token.clone()).filter(|t| !t.is_empty()),
        }
    }

    fn server_ip(&self) -> Option<std::net::IpAddr> {
        self.cfg
            .server_ip
            .parse()
            .ok()
            .filter(|ip: &std::net::IpAddr| !ip.is_unspecified())
    }

    /// The gateway could not be used: the policy's `fail_mode` decides.
    /// `on_accept` goes into the Accept, now or after the TOTP fallback.
    #[allow(clippy::too_many_arguments)]
    fn gateway_down(
        &self,
        user: &User,
        token: Option<&Token>,
        policy: &Policy,
        mode: &str,
        why: &str,
        on_accept: OnAccept,
        client: &ClientEntry,
    ) -> Decision {
        let name = user.name.as_str();
        match (policy.fail_mode, token) {
            (FailMode::Open, _) => {
                Decision::accept(user, mode, &format!("{why}_fail_open")).with_on_accept(&on_accept)
            }
            (FailMode::TotpOnly, Some(_)) => self.challenge_because(
                user,
                policy,
                format!("{mode}>totp-challenge"),
                &format!("{why}_totp_fallback"),
                on_accept,
                client,
            ),
            _ => Decision::reject(
                name,
                mode,
                why,
                "We could not send your sign-in code right now. Please try again in a few minutes.",
            ),
        }
    }

    /// One-way SMS, second leg: the code typed back (limited attempts; a
    /// wrong code re-prompts with the same State while attempts remain).
    async fn sms_answer(
        &self,
        name: &str,
        state: &[u8],
        id: [u8; 16],
        deadline: u64,
        mut pending: PendingChallenge,
        password: &[u8],
    ) -> Decision {
        let mode = pending.mode.clone();
        let user = match self.hot.user(&self.store, name) {
            Ok(Some(c)) => c,
            Ok(None) => return Decision::reject(name, &mode, "user_gone", MSG_WRONG_CREDENTIALS),
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, &mode, "store_error", MSG_TRY_AGAIN);
            }
        };
        if !user.user.enabled {
            return disabled(name, &user.user, &mode);
        }
        let pin = match self.pin_of(&user.user, &mode) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let given = password.trim_ascii();
        let (pin_ok, code) = match &pin {
            Some(pin) => match strip_pin(pin.expose(), given) {
                Some(code) => (true, code),
                None => (false, &b""[..]),
            },
            None => (true, given),
        };
        let code = std::str::from_utf8(code).unwrap_or("");
        let expected = pending.sms_code.clone().unwrap_or_default();
        // Both checks always run: the answer does not tell which part was wrong.
        let code_ok = radmfa_otp::codes_match(&expected, code);
        if pin_ok && code_ok {
            return Decision::accept(&user.user, &mode, "ok").with_on_accept(&pending.on_accept);
        }
        pending.attempts_left = pending.attempts_left.saturating_sub(1);
        if pending.attempts_left > 0 && self.sms_sessions.put_back(id, deadline, pending).is_ok() {
            return Decision {
                code: Code::ACCESS_CHALLENGE,
                message: "That code is not correct. Try again.".to_string(),
                state: Some(state.to_vec()),
                session_timeout: u32::try_from(deadline.saturating_sub(self.clock.now_unix())).ok(),
                user: name.to_string(),
                mode,
                reason: "sms_code_wrong_retry".to_string(),
                attrs: Vec::new(),
                groups: Vec::new(),
            };
        }
        if pin_ok {
            Decision::reject(name, &mode, "sms_code_wrong", MSG_WRONG_CODE)
        } else {
            Decision::reject(name, &mode, "wrong_pin", MSG_WRONG_PIN)
        }
    }

    /// Verifies a one-time code and consumes its step/counter.
    fn check_code(&self, user: &User, token: &Token, code: &str, mode: &str) -> Decision {
        let name = user.name.as_str();
        let last = match self.hot.otp_state(&self.store, name) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "otp state read failed");
                return Decision::reject(name, mode, "store_error", MSG_TRY_AGAIN);
            }
        };
        let algorithm = match token.algorithm {
            TokenAlgorithm::Sha1 => radmfa_otp::Algorithm::Sha1,
            TokenAlgorithm::Sha256 => radmfa_otp::Algorithm::Sha256,
            TokenAlgorithm::Sha512 => radmfa_otp::Algorithm::Sha512,
        };
        let secret = token.secret.expose();
        let verdict = match token.kind {
            TokenKind::Totp => Totp {
                algorithm,
                digits: token.digits,
                period: token.period.max(1),
                t0: 0,
                window: self.cfg.otp_window,
            }
            .verify(secret, code, self.clock.now_unix(), last),
            TokenKind::Hotp => Hotp {
                algorithm,
                digits: token.digits,
                look_ahead: self.cfg.hotp_look_ahead,
            }
            .verify(secret, code, last.map_or(0, |c| c.saturating_add(1))),
        };
        match verdict {
            Ok(used) => match self.hot.advance_otp(&self.store, name, used) {
                Ok(true) => Decision::accept(user, mode, "ok"),
                Ok(false) => Decision::reject(name, mode, "otp_replayed", MSG_REUSED_CODE),
                Err(e) => {
                    warn!(error = %e, "otp state write failed");
                    Decision::reject(name, mode, "store_error", MSG_TRY_AGAIN)
                }
            },
            Err(OtpError::Replayed { .. }) => {
                Decision::reject(name, mode, "otp_replayed", MSG_REUSED_CODE)
            }
            Err(OtpError::Malformed) => {
                Decision::reject(name, mode, "otp_malformed", MSG_WRONG_CODE)
            }
            Err(_) => Decision::reject(name, mode, "otp_mismatch", MSG_WRONG_CODE),
        }
    }

    async fn verify_password(&self, user: &User, password: &[u8]) -> bool {
        let Some(hash) = user.password_hash.as_deref() else {
            return false;
        };
        let now = Instant::now();
        if self.creds.check(&user.name, hash, password, now) {
            let _ = PASSWORD_PASSED.try_with(|p| p.set(true));
            return true;
        }
        let ok = self.verify_argon2(hash.to_string(), password).await;
        if ok {
            let _ = PASSWORD_PASSED.try_with(|p| p.set(true));
            self.creds.insert(&user.name, hash, password, now);
            self.rehash(&user.name, hash, password).await;
        }
        ok
    }

    /// After a password verified against a hash made with other argon2
    /// parameters than the configured ones: replaces it by one made with
    /// them, so that user's verifications cost what everyone else's (and the
    /// decoy's) do. One more argon2 run, counted as `argon2_rehashes`, on
    /// success only. Written where the store is writable (primary or
    /// standalone); a replica leaves it to a sign-in at the primary. Only
    /// the hash that was verified is replaced: a password changed meanwhile
    /// stays.
    async fn rehash(&self, name: &str, old: &str, password: &[u8]) {
        let params = self.cfg.password_params();
        if !radmfa_store::needs_rehash(old, &params)
            || self.store.repl_state().0 != radmfa_store::repl::Role::Primary
        {
            return;
        }
        let Ok(_permit) = self.argon2_slots.acquire().await else {
            return;
        };
        bump(&self.counters.argon2_rehashes);
        let (store, user, old) = (self.store.clone(), name.to_string(), old.to_string());
        let password = Zeroizing::new(password.to_vec());
        let written = tokio::task::spawn_blocking(move || {
            let new = radmfa_store::hash_password(&password, &params)?;
            store.update_user(&user, |u| {
                if u.password_hash.as_deref() == Some(old.as_str()) {
                    u.password_hash = Some(new.clone());
                }
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.hot.forget_user(name);
                self.creds.forget(name);
                debug!("password hash upgraded to the configured argon2 parameters");
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot upgrade the password hash to the configured argon2 parameters; it is tried again at the next sign-in")
            }
            Err(e) => warn!(error = %e, "password rehash task failed"),
        }
    }

    async fn verify_argon2(&self, hash: String, password: &[u8]) -> bool {
        bump(&self.counters.argon2_verifications);
        // Counted per request too, so local_first_leg can pad to a fixed cost.
        let _ = ARGON2_RUNS.try_with(|n| n.set(n.get().saturating_add(1)));
        // Each verification holds `memory_kib` of RAM for milliseconds: bound
        // how many run at once, so a burst of cold logins queues here instead
        // of growing the blocking pool and the heap without limit.
        let Ok(_permit) = self.argon2_slots.acquire().await else {
            return false;
        };
        let password = Zeroizing::new(password.to_vec());
        // argon2 takes milliseconds of CPU: keep it off the packet loop.
        tokio::task::spawn_blocking(move || radmfa_store::verify_password(&hash, &password))
            .await
            .unwrap_or(false)
    }
}

fn phone_missing(user: &User, mode: &str) -> Option<Decision> {
    user.phone.is_empty().then(|| {
        Decision::reject(
            &user.name,
            mode,
            "phone_missing",
            "No phone number is on file for your account. Contact your administrator.",
        )
    })
}

tokio::task_local! {
    /// argon2 verifications run so far by the request this task serves
    /// (set by `local_first_leg`; other callers are not counted).
    static ARGON2_RUNS: std::cell::Cell<u32>;
    /// Whether the request this task serves got its password right (set by
    /// `verify_password` within `local_first_leg`).
    static PASSWORD_PASSED: std::cell::Cell<bool>;
}

/// How many argon2 verifications a rejected request costs under `policy`:
/// one for a `local` first factor, two when `otp_mode = "auto"` (a
/// User-Password ending in digits is checked both as password + code and as
/// the whole password, so every other rejected request is padded to two);
/// none for the other first factors (no local password is checked).
pub(crate) fn argon2_per_reject(policy: &Policy) -> u32 {
    match (policy.first_factor, policy.otp_mode) {
        (FirstFactor::Local, OtpMode::Auto) => 2,
        (FirstFactor::Local, _) => 1,
        _ => 0,
    }
}

/// Lower-case hex of a gateway request id.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn disabled(name: &str, user: &User, mode: &str) -> Decision {
    Decision::reject(
        name,
        mode,
        disabled_audit_reason(user),
        "Your account is disabled. Contact your administrator.",
    )
}

/// The audit reason of a refusal to a disabled user, by why they are
/// disabled (stable strings, listed in the README):
/// `user_disabled` (by an admin, or before reasons were recorded),
/// `user_disabled_fraud`, `user_disabled_left_directory`,
/// `user_disabled_in_directory`.
pub(crate) fn disabled_audit_reason(user: &User) -> &'static str {
    match user.disabled_reason {
        None | Some(DisabledReason::Admin) => "user_disabled",
        Some(DisabledReason::Fraud) => "user_disabled_fraud",
        Some(DisabledReason::LeftDirectory) => "user_disabled_left_directory",
        Some(DisabledReason::DirectoryDisabled) => "user_disabled_in_directory",
    }
}

/// Splits "password123456" into ("password", "123456") when the last
/// `digits` characters are ASCII digits and something precedes them.
/// An MS-CHAP or MS-CHAPv2 authentication (Microsoft vendor attributes
/// MS-CHAP-Response 1 or MS-CHAP2-Response 25).
fn is_mschap(packet: &Packet) -> bool {
    packet.attrs(AttrType::VENDOR_SPECIFIC).any(|a| {
        a.vendor_parts().is_ok_and(|(vendor, parts)| {
            vendor == radmfa_radius::VENDOR_MICROSOFT
                && parts
                    .iter()
                    .any(|p| p.vendor_type == 1 || p.vendor_type == 25)
        })
    })
}

/// PIN mode: the PIN typed in front of the code. Returns what follows the
/// PIN, or `None` when the input does not start with it (constant time in
/// the PIN's bytes).
fn strip_pin<'a>(pin: &[u8], given: &'a [u8]) -> Option<&'a [u8]> {
    let (head, rest) = given.split_at_checked(pin.len())?;
    bool::from(subtle::ConstantTimeEq::ct_eq(head, pin)).then_some(rest)
}

/// Inline PIN mode: `password` + PIN (+ code, already split off). Returns the
/// password part and whether the PIN part matches.
fn split_pin_suffix<'a>(pin: &[u8], pw_pin: &'a [u8]) -> Option<(&'a [u8], bool)> {
    let cut = pw_pin.len().checked_sub(pin.len()).filter(|c| *c > 0)?;
    let (pw, given) = pw_pin.split_at_checked(cut)?;
    Some((pw, bool::from(subtle::ConstantTimeEq::ct_eq(given, pin))))
}

fn split_code(password: &[u8], digits: usize) -> Option<(&[u8], &str)> {
    let cut = password.len().checked_sub(digits).filter(|c| *c > 0)?;
    let (pw, code) = password.split_at_checked(cut)?;
    if code.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(code).ok().map(|c| (pw, c))
    } else {
        None
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the self-service portal learns from a first-factor check.
#[derive(Debug)]
pub(crate) enum PortalFirstFactor {
    /// Passed: the canonical login name (the directory may map `DOMAIN\\user`
    /// or a UPN to it) and the user's record, if the store has one.
    Passed(String, Option<Arc<crate::hot::CachedUser>>),
    /// Failed: the audit reason (`wrong_password`, `unknown_user`,
    /// `store_error`, a directory reason such as `account_locked`).
    Failed(&'static str),
}

/// The portal's entry points into the node: the same first-factor checks,
/// OTP replay state, gateway client and audit sink the RADIUS pipeline uses.
impl Node {
    /// Checks a first factor as `policy` says: `local` against the store's
    /// argon2id hash (an unknown user costs the same as a wrong password),
    /// `ldap` by binding to the directory. `radius` and `none` policies have
    /// no first factor the portal can check, so it uses the local password.
    pub(crate) async fn portal_first_factor(
        &self,
        name: &str,
        password: &[u8],
        policy: &Policy,
    ) -> PortalFirstFactor {
        let wrong = || PortalFirstFactor::Failed("wrong_password");
        let try_again = || PortalFirstFactor::Failed("store_error");
        if policy.first_factor == FirstFactor::Ldap {
            let Some(directory) = &self.directory else {
                return PortalFirstFactor::Failed("no_directory");
            };
            return match directory.authenticate(name, password).await {
                Ok(dir_user) => match self.hot.user(&self.store, &dir_user.login) {
                    Ok(cached) => PortalFirstFactor::Passed(dir_user.login, cached),
                    Err(e) => {
                        warn!(error = %e, "store read failed");
                        try_again()
                    }
                },
                Err(f) => {
                    if matches!(f, radmfa_directory::AuthFailure::Unreachable(_)) {
                        warn!(error = %f, "directory unreachable");
                    }
                    PortalFirstFactor::Failed(f.reason())
                }
            };
        }
        let cached = match self.hot.user(&self.store, name) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return try_again();
            }
        };
        match cached {
            Some(c) if c.user.password_hash.is_some() => {
                if self.verify_password(&c.user, password).await {
                    PortalFirstFactor::Passed(c.user.name.clone(), Some(c))
                } else {
                    wrong()
                }
            }
            _ => {
                self.verify_argon2(self.decoy_hash.clone(), password).await;
                wrong()
            }
        }
    }

    /// A user and their token, through the node's cache.
    pub(crate) fn portal_user(
        &self,
        name: &str,
    ) -> Result<Option<Arc<crate::hot::CachedUser>>, String> {
        self.hot.user(&self.store, name).map_err(|e| {
            warn!(error = %e, "store read failed");
            "store_error".to_string()
        })
    }

    /// Verifies a code of the user's token and consumes its step or counter,
    /// cluster-wide, exactly as a RADIUS login does. `Err` is the audit
    /// reason (`otp_replayed`, `otp_mismatch`, `otp_malformed`, `store_error`).
    pub(crate) fn portal_check_code(
        &self,
        user: &User,
        token: &Token,
        code: &str,
    ) -> Result<(), String> {
        let d = self.check_code(user, token, code, "portal");
        if d.code == Code::ACCESS_ACCEPT {
            Ok(())
        } else {
            Err(d.reason)
        }
    }

    /// Marks TOTP step `step` of `user` used (a new token confirmed in the
    /// portal: its confirmation code cannot be replayed at a RADIUS login).
    pub(crate) fn portal_mark_step_used(&self, user: &str, step: u64) {
        if let Err(e) = self.hot.advance_otp(&self.store, user, step) {
            warn!(error = %e, "otp state write failed");
        }
    }

    /// The user's PIN in clear, when they have one.
    pub(crate) fn portal_pin(&self, user: &User) -> Result<Option<radmfa_store::Secret>, String> {
        self.store.open_pin(user).map_err(|e| {
            warn!(error = %e, "cannot open the PIN");
            "store_error".to_string()
        })
    }

    /// Whether a gateway is configured (SMS codes can be sent).
    pub(crate) fn portal_can_send_sms(&self) -> bool {
        self.gateway.is_some()
    }

    /// Sends `body` by SMS to `phone` for `user` through the gateway.
    pub(crate) async fn portal_send_sms(
        &self,
        user: &User,
        phone: &str,
        body: String,
        end_user: Option<std::net::IpAddr>,
    ) -> Result<(), String> {
        let Some(gateway) = &self.gateway else {
            return Err("gateway_not_configured".into());
        };
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let mut fields = self.user_fields(user);
        fields.phone = Some(phone.to_string());
        let request = radmfa_gateway::SmsRequest {
            id: hex(&id),
            user: fields,
            body,
            server_name: self.cfg.node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: end_user,
        };
        gateway.send_sms(&request).await.map(|_| ()).map_err(|e| {
            warn!(error = %e, "cannot send the SMS code");
            "gateway_unreachable".to_string()
        })
    }

    /// The user's lock now, if any: the check a RADIUS request meets first.
    pub(crate) fn portal_lock(&self, name: &str) -> Option<crate::limits::LockKind> {
        let now = self.clock.now_unix();
        self.limits.lock_of(&self.store, &self.hot, name, now)
    }

    /// Counts the outcome of a second factor checked in the portal through
    /// the same lockout bookkeeping as a RADIUS request
    /// ([`crate::limits::Limits::after_decision`]): a failure (`reason` as
    /// RADIUS words it: `otp_mismatch`, `sms_code_wrong`, `wrong_pin`...)
    /// counts towards the lock, which is written through the primary like
    /// any other; a success resets the count. `Some` when the user is locked
    /// now: its `reason` is the audit reason to record instead.
    pub(crate) async fn portal_second_factor_outcome(
        &self,
        user: &str,
        accepted: bool,
        reason: &str,
    ) -> Option<crate::limits::Override> {
        let code = if accepted {
            Code::ACCESS_ACCEPT
        } else {
            Code::ACCESS_REJECT
        };
        let now = self.clock.now_unix();
        self.limits
            .after_decision(
                &self.store,
                &self.hot,
                user,
                code,
                reason,
                "",
                now,
                |name, until, why| self.persist_lock(name, until, why),
            )
            .await
    }

    /// Queues an audit record for a portal event, as this node.
    pub(crate) fn portal_audit(
        &self,
        user: &str,
        mode: &str,
        result: &str,
        reason: &str,
        source: std::net::IpAddr,
    ) {
        self.audit.record(AuditRecord {
            time_ms: unix_ms(),
            user: user.to_string(),
            mode: mode.to_string(),
            result: result.to_string(),
            reason: reason.to_string(),
            server_name: self.cfg.node_name.clone(),
            server_ip: self.cfg.server_ip.clone(),
            client_name: "portal".to_string(),
            client_ip: source.to_string(),
            calling_station: String::new(),
        });
    }
}

/// Completes a duplicate-cache entry even if processing is cancelled.
struct CompleteGuard<'a> {
    cache: &'a DuplicateCache,
    key: RequestKey,
    done: bool,
}

impl CompleteGuard<'_> {
    fn complete(mut self, reply: Option<Arc<[u8]>>) {
        self.cache.complete(&self.key, reply, Instant::now());
        self.done = true;
    }
}

impl Drop for CompleteGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.complete(&self.key, None, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_code_forms() {
        assert_eq!(
            split_code(b"secret123456", 6),
            Some((&b"secret"[..], "123456"))
        );
        assert_eq!(split_code(b"123456", 6), None, "nothing before the code");
        assert_eq!(split_code(b"secret12345x", 6), None);
        assert_eq!(split_code(b"pw", 6), None);
        assert_eq!(split_code(b"p12345678", 8), Some((&b"p"[..], "12345678")));
    }
}
