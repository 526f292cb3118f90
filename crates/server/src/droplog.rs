//! Dropped requests, explained where an admin looks.
//!
//! A request dropped without a reply (no Message-Authenticator, a wrong one,
//! an unknown source address, a malformed packet, a rate limit, overload)
//! leaves the NAS timing out with nothing to show for it. Each drop is
//! counted (`dropped_*`, `rate_limited_*`) and, so that the default log level
//! says why, logged at WARN with its remedy: at once for the first drop of a
//! (client or source, reason) pair, then at most once per [`INTERVAL`] with
//! the number dropped since the previous line. Every drop is still logged at
//! DEBUG (`--debug`).
//!
//! Memory and log volume stay bounded whatever arrives: the table holds at
//! most `max_clients` client (or server-wide) keys and `max_sources` unknown
//! source addresses; drops of keys beyond that are summed into one "other
//! sources" line per interval. A flood from many distinct addresses therefore
//! costs at most `max_sources + 1` lines a minute. Quiet keys are forgotten by
//! [`DropLog::flush`], which also writes the counts of keys whose drops
//! stopped inside the interval (the server calls it every few seconds).
//!
//! The table takes `now` as a parameter, so tests drive the minute boundary
//! without sleeping.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// At most one line per key and reason per interval.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// How often the server flushes pending counts ([`flush_loop`]).
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Client keys tracked at once (configured and stored clients, plus the
/// server-wide key for overload).
pub const MAX_CLIENTS: usize = 256;
/// Unknown source addresses tracked at once.
pub const MAX_SOURCES: usize = 16;

/// Why a request was dropped without a reply. The stable name is the
/// counter that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The source address matches no client.
    UnknownClient,
    /// Not a well-formed RADIUS packet.
    Malformed,
    /// An Access-Request without Message-Authenticator from a client that
    /// requires one.
    MissingMessageAuthenticator,
    /// A Status-Server without Message-Authenticator (RFC 5997 requires it).
    StatusServerWithoutMessageAuthenticator,
    /// The Message-Authenticator does not verify.
    BadMessageAuthenticator,
    /// The Accounting-Request authenticator does not verify.
    BadAccountingAuthenticator,
    /// A code this server does not answer.
    UnsupportedCode,
    /// Over the per-client rate limit.
    RateLimitedClient,
    /// Over the per-source-address rate limit.
    RateLimitedSource,
    /// Too many requests in progress on this node.
    Overload,
}

impl DropReason {
    /// Every reason, in the order the "other sources" line lists them.
    pub const ALL: [DropReason; 10] = [
        DropReason::UnknownClient,
        DropReason::Malformed,
        DropReason::MissingMessageAuthenticator,
        DropReason::StatusServerWithoutMessageAuthenticator,
        DropReason::BadMessageAuthenticator,
        DropReason::BadAccountingAuthenticator,
        DropReason::UnsupportedCode,
        DropReason::RateLimitedClient,
        DropReason::RateLimitedSource,
        DropReason::Overload,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The counter in `radmfa stats` (and `radmfa_dropped_total{reason}`).
    pub const fn counter(self) -> &'static str {
        match self {
            DropReason::UnknownClient => "dropped_unknown_client",
            DropReason::Malformed => "dropped_malformed",
            DropReason::MissingMessageAuthenticator
            | DropReason::StatusServerWithoutMessageAuthenticator => {
                "dropped_missing_message_authenticator"
            }
            DropReason::BadMessageAuthenticator => "dropped_bad_message_authenticator",
            DropReason::BadAccountingAuthenticator => "dropped_bad_accounting_authenticator",
            DropReason::UnsupportedCode => "dropped_unsupported_code",
            DropReason::RateLimitedClient => "rate_limited_client",
            DropReason::RateLimitedSource => "rate_limited_source",
            DropReason::Overload => "dropped_overload",
        }
    }

    /// What happened, in a few words.
    pub const fn what(self) -> &'static str {
        match self {
            DropReason::UnknownClient => "no client is configured for this address",
            DropReason::Malformed => "not a well-formed RADIUS packet",
            DropReason::MissingMessageAuthenticator => "no Message-Authenticator",
            DropReason::StatusServerWithoutMessageAuthenticator => {
                "Status-Server without Message-Authenticator"
            }
            DropReason::BadMessageAuthenticator => "wrong Message-Authenticator",
            DropReason::BadAccountingAuthenticator => {
                "Accounting-Request authenticator does not verify"
            }
            DropReason::UnsupportedCode => "not a request this server answers",
            DropReason::RateLimitedClient => "over the per-client rate limit",
            DropReason::RateLimitedSource => "over the per-source-address rate limit",
            DropReason::Overload => "too many requests in progress",
        }
    }

    /// What the admin can do about it.
    pub const fn remedy(self, radsec: bool) -> &'static str {
        match (self, radsec) {
            (DropReason::UnknownClient, _) => {
                "Add a [[client]] for it (or `radmfa client add NAME --address CIDR --secret-stdin`), \
                 or check which source address the NAS sends from (NAT, a second interface)"
            }
            (DropReason::Malformed, false) => {
                "Check that the NAS sends RADIUS authentication (not accounting to 1812, \
                 TACACS+ or RadSec) to this port"
            }
            (DropReason::Malformed, true) => {
                "The RadSec client sent a packet that does not decode; check its RADIUS implementation"
            }
            (DropReason::MissingMessageAuthenticator, false) => {
                "The NAS does not send one; upgrade it or set require_message_authenticator = false \
                 for this client (BlastRADIUS risk)"
            }
            (DropReason::MissingMessageAuthenticator, true) => {
                "The RadSec client does not send one; set require_message_authenticator = false \
                 in its [[radsec.client]] (TLS already protects the exchange)"
            }
            (DropReason::StatusServerWithoutMessageAuthenticator, _) => {
                "RFC 5997 requires Message-Authenticator in Status-Server; enable it in the \
                 monitoring client or probe with an Access-Request"
            }
            (DropReason::BadMessageAuthenticator, false) => {
                "The shared secret on the NAS differs from this client's secret in radmfa; \
                 set the same secret on both"
            }
            (DropReason::BadMessageAuthenticator, true) => {
                "RadSec clients must use the fixed shared secret of RFC 6614 §2.3; \
                 check the RadSec client's secret setting"
            }
            (DropReason::BadAccountingAuthenticator, _) => {
                "The shared secret on the NAS differs from this client's secret in radmfa; \
                 set the same secret on both"
            }
            (DropReason::UnsupportedCode, _) => {
                "radmfa answers Access-Request, Accounting-Request and Status-Server; \
                 point CoA/Disconnect traffic and replies elsewhere"
            }
            (DropReason::RateLimitedClient, _) => {
                "The NAS retransmits later; if this traffic is legitimate raise \
                 [limits] client_rps / client_burst"
            }
            (DropReason::RateLimitedSource, _) => {
                "The NAS retransmits later; if this traffic is legitimate raise \
                 [limits] source_rps / source_burst"
            }
            (DropReason::Overload, _) => {
                "The NAS retransmits later; raise [radius] max_in_flight, check slow \
                 first factors (directory, upstream RADIUS, gateway) or add nodes"
            }
        }
    }
}

/// Who a drop is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    /// A configured client (`radsec`: a `[[radsec.client]]`).
    Client {
        /// The client's name.
        name: Arc<str>,
        /// Whether it came over RadSec.
        radsec: bool,
    },
    /// A source address that matches no client.
    Source(IpAddr),
    /// The node as a whole (overload).
    Server,
}

/// One line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropLine {
    /// The client name, or "" for an unknown source or the whole server.
    pub client: String,
    /// The source address of the last drop counted (None for the summary).
    pub source: Option<SocketAddr>,
    /// The reason (None: the "other sources" summary).
    pub reason: Option<DropReason>,
    /// Drops since the previous line.
    pub count: u64,
    /// The whole text.
    pub message: String,
}

impl DropLine {
    /// Writes the line at WARN.
    pub fn emit(&self) {
        let reason = self.reason.map_or("other_sources", DropReason::counter);
        match self.source {
            Some(source) => warn!(
                client = %self.client,
                %source,
                reason,
                dropped = self.count,
                "{}",
                self.message
            ),
            None => warn!(reason, dropped = self.count, "{}", self.message),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// When the last line for this key was written.
    last_line: Instant,
    /// Drops since then.
    pending: u64,
    /// The source of the latest drop.
    source: SocketAddr,
}

#[derive(Debug, Default)]
struct Other {
    last_line: Option<Instant>,
    pending: [u64; DropReason::ALL.len()],
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<(Who, DropReason), Entry>,
    clients: usize,
    sources: usize,
    other: Other,
}

/// The once-a-minute table (see the module comment).
#[derive(Debug)]
pub struct DropLog {
    max_clients: usize,
    max_sources: usize,
    table: Mutex<Table>,
}

impl Default for DropLog {
    fn default() -> Self {
        DropLog::new(MAX_CLIENTS, MAX_SOURCES)
    }
}

impl DropLog {
    /// A table for at most `max_clients` client keys and `max_sources`
    /// unknown addresses.
    pub fn new(max_clients: usize, max_sources: usize) -> DropLog {
        DropLog {
            max_clients,
            max_sources,
            table: Mutex::new(Table::default()),
        }
    }

    /// Counts one drop at `now`; returns the line to write, if one is due.
    pub fn record(
        &self,
        who: Who,
        reason: DropReason,
        source: SocketAddr,
        now: Instant,
    ) -> Option<DropLine> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let key = (who, reason);
        if let Some(e) = t.entries.get_mut(&key) {
            e.pending += 1;
            e.source = source;
            if now.saturating_duration_since(e.last_line) < INTERVAL {
                return None;
            }
            let line = line(&key.0, reason, source, e.pending, Some(now - e.last_line));
            e.pending = 0;
            e.last_line = now;
            return Some(line);
        }
        let is_source = matches!(key.0, Who::Source(_));
        let room = if is_source {
            t.sources < self.max_sources
        } else {
            t.clients < self.max_clients
        };
        if room {
            if is_source {
                t.sources += 1;
            } else {
                t.clients += 1;
            }
            let line = line(&key.0, reason, source, 1, None);
            t.entries.insert(
                key,
                Entry {
                    last_line: now,
                    pending: 0,
                    source,
                },
            );
            return Some(line);
        }
        t.other.pending[reason.index()] += 1;
        match t.other.last_line {
            Some(last) if now.saturating_duration_since(last) < INTERVAL => None,
            last => {
                let line = self.other_line(&t.other, last.map(|l| now - l));
                t.other = Other {
                    last_line: Some(now),
                    ..Other::default()
                };
                Some(line)
            }
        }
    }

    /// Lines for keys whose drops since their last line are an interval old,
    /// and forgets keys quiet for an interval. Called every few seconds.
    pub fn flush(&self, now: Instant) -> Vec<DropLine> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = Vec::new();
        let (mut clients, mut sources) = (0, 0);
        t.entries.retain(|(who, reason), e| {
            let elapsed = now.saturating_duration_since(e.last_line);
            if elapsed < INTERVAL {
                // Too early for another line.
            } else if e.pending > 0 {
                lines.push(line(who, *reason, e.source, e.pending, Some(elapsed)));
                e.pending = 0;
                e.last_line = now;
            } else {
                return false;
            }
            if matches!(who, Who::Source(_)) {
                sources += 1;
            } else {
                clients += 1;
            }
            true
        });
        (t.clients, t.sources) = (clients, sources);
        if let Some(last) = t.other.last_line {
            let elapsed = now.saturating_duration_since(last);
            if elapsed >= INTERVAL {
                if t.other.pending.iter().any(|n| *n > 0) {
                    lines.push(self.other_line(&t.other, Some(elapsed)));
                    t.other = Other {
                        last_line: Some(now),
                        ..Other::default()
                    };
                } else {
                    t.other = Other::default();
                }
            }
        }
        lines
    }

    /// Keys tracked (client keys, unknown sources).
    pub fn tracked(&self) -> (usize, usize) {
        let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        (t.clients, t.sources)
    }

    fn other_line(&self, o: &Other, elapsed: Option<Duration>) -> DropLine {
        let count: u64 = o.pending.iter().sum();
        let mut by_reason = String::new();
        for (r, n) in DropReason::ALL.iter().zip(o.pending) {
            if n > 0 {
                let sep = if by_reason.is_empty() { "" } else { ", " };
                let _ = write!(by_reason, "{sep}{} {n}", r.counter());
            }
        }
        let period = match elapsed {
            Some(d) => format!(" in the last {} s", d.as_secs()),
            None => String::new(),
        };
        DropLine {
            client: String::new(),
            source: None,
            reason: None,
            count,
            message: format!(
                "other sources: {count} {} dropped{period} ({by_reason}). More clients or \
                 addresses are dropping requests than this log names one by one (at most {} \
                 clients and {} unknown addresses a minute); see the counters in `radmfa stats`",
                requests(count),
                self.max_clients,
                self.max_sources,
            ),
        }
    }
}

fn requests(n: u64) -> &'static str {
    if n == 1 {
        "request"
    } else {
        "requests"
    }
}

/// The text of one line: `count` drops, `elapsed` since the previous line
/// (None: the first).
fn line(
    who: &Who,
    reason: DropReason,
    source: SocketAddr,
    count: u64,
    elapsed: Option<Duration>,
) -> DropLine {
    let (client, subject, radsec) = match who {
        Who::Client { name, radsec } => {
            let kind = if *radsec { "RadSec client" } else { "client" };
            (
                name.to_string(),
                format!("{kind} {name} ({})", source.ip()),
                *radsec,
            )
        }
        Who::Source(ip) => (String::new(), format!("unknown source {ip}"), false),
        Who::Server => (String::new(), "server".to_string(), false),
    };
    let what = reason.what();
    let remedy = reason.remedy(radsec);
    let message = match elapsed {
        None => format!(
            "{subject}: request dropped: {what}. {remedy}. (Further drops for this reason are \
             summarised once a minute; counter {})",
            reason.counter()
        ),
        Some(d) => format!(
            "{subject}: {count} {} dropped in the last {} s: {what}. {remedy}",
            requests(count),
            d.as_secs()
        ),
    };
    DropLine {
        client,
        source: Some(source),
        reason: Some(reason),
        count,
        message,
    }
}

/// Writes the pending counts every [`FLUSH_EVERY`] (at `clock`'s time)
/// until `shutdown`.
pub async fn flush_loop(
    log: Arc<DropLog>,
    clock: Arc<dyn radmfa_otp::Clock>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for line in log.flush(clock.instant()) {
            line.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpn1() -> Who {
        Who::Client {
            name: Arc::from("vpn1"),
            radsec: false,
        }
    }

    fn src(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 40000))
    }

    #[test]
    fn first_drop_logs_then_once_a_minute_with_the_count() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let r = DropReason::MissingMessageAuthenticator;
        let first = log.record(vpn1(), r, src(5), t0).expect("first drop logs");
        assert_eq!(first.count, 1);
        assert!(
            first.message.starts_with("client vpn1 (10.0.0.5): request dropped: no Message-Authenticator. The NAS does not send one; upgrade it or set require_message_authenticator = false for this client (BlastRADIUS risk)"),
            "{}",
            first.message
        );
        // 100 more within the minute: no line.
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(500 * i);
            assert_eq!(log.record(vpn1(), r, src(5), at), None);
        }
        // Another reason for the same client is its own key.
        let other = log.record(vpn1(), DropReason::BadMessageAuthenticator, src(5), t0);
        assert!(other.is_some_and(|l| l.message.contains("shared secret")));
        // The first drop a minute after the last line writes the count.
        let at = t0 + INTERVAL;
        let line = log.record(vpn1(), r, src(6), at).expect("a minute later");
        assert_eq!(line.count, 101);
        assert_eq!(
            line.message,
            "client vpn1 (10.0.0.6): 101 requests dropped in the last 60 s: no Message-Authenticator. The NAS does not send one; upgrade it or set require_message_authenticator = false for this client (BlastRADIUS risk)"
        );
        assert_eq!(
            log.record(vpn1(), r, src(6), at + Duration::from_secs(59)),
            None
        );
    }

    #[test]
    fn flush_writes_counts_that_stopped_and_forgets_quiet_keys() {
        let log = DropLog::default();
        let t0 = Instant::now();
        let r = DropReason::BadMessageAuthenticator;
        assert!(log.record(vpn1(), r, src(5), t0).is_some());
        for _ in 0..12 {
            assert!(log
                .record(vpn1(), r, src(5), t0 + Duration::from_secs(1))
                .is_none());
        }
        assert_eq!(log.flush(t0 + Duration::from_secs(59)), vec![]);
        let lines = log.flush(t0 + Duration::from_secs(62));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].count, 12);
        assert!(lines[0]
            .message
            .contains("12 requests dropped in the last 62 s"));
        assert_eq!(log.tracked(), (1, 0));
        // Quiet for a minute after its last line: forgotten, and the next
        // drop is logged at once again.
        assert_eq!(log.flush(t0 + Duration::from_secs(130)), vec![]);
        assert_eq!(log.tracked(), (0, 0));
        let again = log.record(vpn1(), r, src(5), t0 + Duration::from_secs(131));
        assert_eq!(again.map(|l| l.count), Some(1));
    }

    #[test]
    fn a_flood_of_sources_is_bounded_and_summarised() {
        let log = DropLog::new(4, 3);
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let s = SocketAddr::new(ip, 1812);
            lines.extend(log.record(Who::Source(ip), DropReason::UnknownClient, s, t0));
        }
        // Three sources named, one summary.
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].message.starts_with("unknown source 10.0.0.0: request dropped: no client is configured for this address. Add a [[client]]"));
        assert_eq!(lines[3].reason, None);
        assert!(lines[3]
            .message
            .starts_with("other sources: 1 request dropped ("));
        assert_eq!(log.tracked(), (0, 3));
        // Clients still have their own room.
        assert!(log
            .record(vpn1(), DropReason::Malformed, src(5), t0)
            .is_some());
        // The summary a minute later counts every other drop.
        let lines = log.flush(t0 + INTERVAL);
        let summary = lines.iter().find(|l| l.reason.is_none()).expect("summary");
        assert_eq!(summary.count, 10_000 - 4);
        assert!(
            summary.message.contains("(dropped_unknown_client 9996)"),
            "{}",
            summary.message
        );
        // Quiet sources are forgotten; the memory is back.
        log.flush(t0 + INTERVAL * 2);
        assert_eq!(log.tracked(), (0, 0));
    }

    #[test]
    fn every_reason_names_its_counter_and_a_remedy() {
        let c = crate::counters::Counters::default().to_json();
        for r in DropReason::ALL {
            assert!(c.get(r.counter()).is_some(), "{}", r.counter());
            assert!(!r.remedy(false).is_empty() && !r.remedy(true).is_empty());
        }
        let radsec = Who::Client {
            name: Arc::from("rs1"),
            radsec: true,
        };
        let l = DropLog::default()
            .record(
                radsec,
                DropReason::MissingMessageAuthenticator,
                src(9),
                Instant::now(),
            )
            .expect("line");
        assert!(
            l.message.starts_with("RadSec client rs1 (10.0.0.9)"),
            "{}",
            l.message
        );
        assert!(l.message.contains("[[radsec.client]]"), "{}", l.message);
    }
}
