//! Step 1, ingress: a datagram (or RadSec packet, or one forwarded by a
//! peer) is matched to its client, its Message-Authenticator or Accounting
//! authenticator checked, rate-limited, checked for retransmission, and
//! either forwarded to the node that owns its challenge or processed here.
//! Everything dropped without a reply is counted and logged here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use radmfa_otp::Clock;

use radmfa_radius::{
    check_request_message_authenticator, verify_accounting_request, AttrType, Code,
    MessageAuthenticator, Packet,
};
use tracing::{debug, field, info, warn, Instrument, Level, Span};

use super::decision::*;
use super::node::Node;
use crate::clients::ClientEntry;
use crate::counters::bump;
use crate::debuglog::{Received, Sending};
use crate::dedup::{DuplicateCache, RequestKey, Seen};
use crate::droplog::{DropReason, Who};
use crate::i18n::Key;

/// How a request reached the pipeline (logs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
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
pub(super) fn access_span(
    client: &ClientEntry,
    packet: &Packet,
    source: SocketAddr,
    via: Via,
) -> Span {
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

impl Node {
    /// A datagram from `source` dropped because too many requests are in
    /// progress (counted by the caller): logged like the other drops.
    pub fn note_overload(&self, source: SocketAddr) {
        debug!(%source, "dropped: too many requests in progress");
        if let Some(line) = self.drops.record(
            Who::Server,
            DropReason::Overload,
            source,
            self.clock.instant(),
        ) {
            line.emit();
        }
    }

    /// Counts a request dropped without a reply and logs it: every drop at
    /// DEBUG, at WARN at most once a minute per client (or source) and
    /// reason, with the remedy (droplog.rs).
    pub(super) fn dropped(
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
        if let Some(line) = self.drops.record(who, reason, source, self.clock.instant()) {
            line.emit();
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

    /// Every packet's way in: decides whether it is dropped (unknown
    /// client, bad or missing authenticator, unsupported code, rate limit,
    /// retransmission in flight), answered from the duplicate cache,
    /// forwarded to the node owning its challenge, or processed here; the
    /// reply is remembered for retransmissions.
    pub(super) async fn handle(
        &self,
        buf: &[u8],
        source: SocketAddr,
        forwarded_by: Option<u16>,
        stream_client: Option<Arc<ClientEntry>>,
    ) -> Option<Arc<[u8]>> {
        bump(&self.counters.requests_received);
        if let Err(e) = self.clients().refresh(&self.store) {
            warn!(error = %e, "cannot reload clients from the store; using the previous table");
        }
        let stream = stream_client.is_some();
        let via = match (forwarded_by, stream) {
            (Some(n), _) => Via::Peer(n),
            (None, true) => Via::RadSec,
            (None, false) => Via::Udp,
        };
        let Some(client) = stream_client.or_else(|| self.clients().lookup(source.ip())) else {
            self.dropped(DropReason::UnknownClient, None, source, via);
            return None;
        };
        if tracing::enabled!(Level::DEBUG) {
            let cfg = self.cfg();
            let policy = cfg.policy(&client.policy);
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
            if let Err(reason) = self.limits().check_datagram(&client.name, source.ip()) {
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
        let now = self.clock.instant();
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
            clock: &*self.clock,
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
    pub(super) fn owner_elsewhere(
        &self,
        packet: &Packet,
        forwarded_by: Option<u16>,
    ) -> Option<u16> {
        if packet.code != Code::ACCESS_REQUEST || forwarded_by.is_some() {
            return None;
        }
        let peers = self.peers.as_ref()?;
        let state = packet.attr(AttrType::STATE)?;
        let token = self.state_key.open(&state.value).ok()?;
        (token.node_id != self.cfg().node_id && peers.knows(token.node_id)).then_some(token.node_id)
    }

    /// Sends the request to the node that owns its challenge and relays that
    /// node's reply (already signed for this client). If the owner cannot be
    /// reached the user is asked to sign in again.
    pub(super) async fn forward(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        buf: &[u8],
        source: SocketAddr,
        owner: u16,
    ) -> Option<Arc<[u8]>> {
        let peers = self.peers.as_ref()?;
        let timeout = self
            .cfg()
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
                    Mode::Challenge,
                    Reason::OwnerUnreachable,
                    Key::OwnerDown,
                );
                let (code, attrs) = self.finish(client, packet, source, &decision, &span);
                self.encode(client, packet, code, attrs)
            }
        }
    }
}

/// Completes a duplicate-cache entry even if processing is cancelled.
struct CompleteGuard<'a> {
    cache: &'a DuplicateCache,
    clock: &'a dyn Clock,
    key: RequestKey,
    done: bool,
}

impl CompleteGuard<'_> {
    fn complete(mut self, reply: Option<Arc<[u8]>>) {
        self.cache.complete(&self.key, reply, self.clock.instant());
        self.done = true;
    }
}

impl Drop for CompleteGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.complete(&self.key, None, self.clock.instant());
        }
    }
}
