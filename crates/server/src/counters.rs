//! Request counters: what was answered and what was dropped, and why.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::pipeline::decision::{Answer, MethodLabel};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Monotonic counters, shared by every listener.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Replies by client and code, reply latency, outcomes by method.
            pub replies: ReplyMetrics,
        }

        impl Counters {
            /// Every counter by name, in declaration order.
            pub fn all(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }

            /// A JSON object of every counter.
            pub fn to_json(&self) -> serde_json::Value {
                let mut m = serde_json::Map::new();
                $(m.insert(stringify!($name).to_string(), self.$name.load(Ordering::Relaxed).into());)*
                serde_json::Value::Object(m)
            }
        }
    };
}

counters! {
    /// Datagrams received on RADIUS listeners.
    requests_received,
    /// Access-Accept sent.
    access_accepts,
    /// Access-Reject sent.
    access_rejects,
    /// Access-Challenge sent.
    access_challenges,
    /// Accounting-Response sent.
    accounting_responses,
    /// Replies to Status-Server.
    status_server_replies,
    /// Source address matches no client.
    dropped_unknown_client,
    /// Not a well-formed RADIUS packet.
    dropped_malformed,
    /// Message-Authenticator required but absent (BlastRADIUS protection).
    dropped_missing_message_authenticator,
    /// Message-Authenticator wrong: wrong secret or tampering.
    dropped_bad_message_authenticator,
    /// Accounting-Request whose Request Authenticator does not verify.
    dropped_bad_accounting_authenticator,
    /// A code we do not serve on this port (e.g. a reply sent to us).
    dropped_unsupported_code,
    /// Too many requests in flight: dropped so the NAS retransmits later.
    dropped_overload,
    /// Retransmissions answered with the cached reply.
    duplicates_answered_from_cache,
    /// Retransmissions that arrived while the first copy was still being processed.
    duplicates_in_flight_dropped,
    /// RadSec (RADIUS/TLS) connections established with a mapped client certificate.
    radsec_connections,
    /// RadSec handshakes refused: no certificate, not from radsec.ca, or no [[radsec.client]] matches.
    radsec_rejected_certs,
    /// RadSec connections closed for malformed framing (bad Length, stream cut inside a packet).
    radsec_framing_errors,
    /// Datagrams dropped: over the per-client rate limit.
    rate_limited_client,
    /// Datagrams dropped: over the per-source-IP rate limit.
    rate_limited_source,
    /// Access-Rejects `rate_limited`: over the per-user rate limit.
    rate_limited_user,
    /// Rate checks refused because a limiter table was full (fail closed).
    rate_limit_tables_full,
    /// Users locked (too many failed second factors, or a fraud report).
    lockouts,
    /// Access-Rejects `locked_out`: requests of locked users.
    locked_rejects,
    /// argon2id password verifications run, decoys included (a rejected
    /// local login costs a fixed number, see `pipeline::argon2_per_reject`).
    argon2_verifications,
    /// Password hashes made with other argon2 parameters than the configured
    /// ones, replaced after a successful sign-in (one argon2 run each).
    argon2_rehashes,
    /// Provider callbacks that decided an out-of-band verification.
    callbacks_decided,
    /// Signed callbacks with nothing to act on (a call's progress status).
    callbacks_ignored,
    /// Signed callbacks that changed nothing: unknown, expired or already
    /// decided verification, an unreadable or ambiguous SMS reply, the
    /// owner unreachable.
    callbacks_unmatched,
    /// Callbacks refused (403): no or a wrong `X-Twilio-Signature`.
    callbacks_bad_signature,
}

/// Upper bounds (seconds) of the reply latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// A fixed-bucket latency histogram (Prometheus semantics: cumulative on
/// export, `+Inf` = the count).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (same order as [`LATENCY_BUCKETS`]), the
    /// count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut acc = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                acc += b.load(Ordering::Relaxed);
                acc
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, self.count.load(Ordering::Relaxed), sum)
    }
}

/// Reply codes the metrics distinguish.
pub const REPLY_CODES: [&str; 5] = [
    "access_accept",
    "access_reject",
    "access_challenge",
    "accounting_response",
    "other",
];

/// The metrics label of a RADIUS reply code.
pub fn reply_code_label(code: u8) -> usize {
    match code {
        2 => 0,
        3 => 1,
        11 => 2,
        5 => 3,
        _ => 4,
    }
}

impl Counters {
    /// The requests dropped without a reply, by reason (the metrics'
    /// `reason` label), in the label's alphabetical order.
    pub fn dropped(&self) -> [(&'static str, u64); 7] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (
                "bad_accounting_authenticator",
                n(&self.dropped_bad_accounting_authenticator),
            ),
            (
                "bad_message_authenticator",
                n(&self.dropped_bad_message_authenticator),
            ),
            ("malformed", n(&self.dropped_malformed)),
            (
                "missing_message_authenticator",
                n(&self.dropped_missing_message_authenticator),
            ),
            ("overload", n(&self.dropped_overload)),
            ("unknown_client", n(&self.dropped_unknown_client)),
            ("unsupported_code", n(&self.dropped_unsupported_code)),
        ]
    }
}

/// The metrics `method` label of an audit `mode` read back from the audit
/// log (`"pap+totp-challenge"` -> `"totp"`, `"ldap+sms"` -> `"sms"`,
/// `"totp"` -> `"totp"`); `"none"` when there was none (`"ldap"`,
/// `"radius-challenge"`). Live decisions carry a typed
/// [`crate::pipeline::decision::Mode`] instead.
pub fn method_of(mode: &str) -> &'static str {
    let rest = mode.split_once('+').map_or(mode, |(_, rest)| rest);
    let method = rest.split('-').next().unwrap_or(rest);
    MethodLabel::all()
        .map(MethodLabel::as_str)
        .find(|label| *label == method)
        .unwrap_or("none")
}

/// Per-client reply counters and latency histograms.
#[derive(Debug, Default)]
pub struct ClientReplies {
    /// Replies by code ([`REPLY_CODES`] order).
    pub replies: [AtomicU64; REPLY_CODES.len()],
    /// Time from the datagram to the reply, by code.
    pub latency: [Histogram; REPLY_CODES.len()],
}

/// Replies by client and code, latency, and decisions by method.
#[derive(Debug, Default)]
pub struct ReplyMetrics {
    clients: std::sync::RwLock<std::collections::BTreeMap<String, std::sync::Arc<ClientReplies>>>,
    outcomes: std::sync::Mutex<std::collections::HashMap<(MethodLabel, Answer), u64>>,
}

impl ReplyMetrics {
    /// Records one reply of `code` to `client`, `elapsed` after the request
    /// arrived.
    pub fn record(&self, client: &str, code: u8, elapsed: std::time::Duration) {
        let entry = {
            let read = self.clients.read().unwrap_or_else(|p| p.into_inner());
            read.get(client).cloned()
        };
        let entry = match entry {
            Some(e) => e,
            None => self
                .clients
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(client.to_string())
                .or_default()
                .clone(),
        };
        let i = reply_code_label(code);
        entry.replies[i].fetch_add(1, Ordering::Relaxed);
        entry.latency[i].observe(elapsed);
    }

    /// Records one authentication decision by its method and answer.
    pub fn record_outcome(&self, method: MethodLabel, answer: Answer) {
        let mut m = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((method, answer)).or_default() += 1;
    }

    /// Per-client metrics, by client name.
    pub fn clients(&self) -> Vec<(String, std::sync::Arc<ClientReplies>)> {
        let read = self.clients.read().unwrap_or_else(|p| p.into_inner());
        read.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Decisions by (method, answer), in the labels' alphabetical order.
    pub fn outcomes(&self) -> Vec<((MethodLabel, Answer), u64)> {
        let m = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort_by_key(|((method, answer), _)| (method.as_str(), answer.as_str()));
        all
    }
}

/// Adds one.
#[inline]
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Gateway metrics as flat `gateway_<operation>_<counter>` keys, plus the
/// circuit breaker's state and how often it opened.
pub fn gateway_json(
    m: &radmfa_gateway::GatewayMetrics,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for (op, o) in [
        ("send_sms", &m.send_sms),
        ("start_verification", &m.start_verification),
        ("poll_verdict", &m.poll_verdict),
    ] {
        for (name, v) in [
            ("requests", o.requests),
            ("errors", o.errors),
            ("timeouts", o.timeouts),
            ("retries", o.retries),
            ("breaker_open", o.breaker_open),
            ("latency_sum_ms", o.latency_sum_ms),
        ] {
            out.insert(format!("gateway_{op}_{name}"), v.into());
        }
    }
    out.insert("gateway_breaker_opened".into(), m.breaker_opened.into());
    out.insert(
        "gateway_breaker_state".into(),
        match m.breaker_state {
            radmfa_gateway::BreakerState::Closed => "closed",
            radmfa_gateway::BreakerState::Open => "open",
            radmfa_gateway::BreakerState::HalfOpen => "half_open",
        }
        .into(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_counter() {
        let c = Counters::default();
        bump(&c.access_accepts);
        bump(&c.access_accepts);
        let j = c.to_json();
        assert_eq!(j["access_accepts"], 2);
        assert_eq!(j["dropped_unknown_client"], 0);
        assert!(j.get("duplicates_answered_from_cache").is_some());
    }

    #[test]
    fn dropped_lists_every_dropped_counter() {
        let c = Counters::default();
        bump(&c.dropped_overload);
        let listed: Vec<String> = c
            .dropped()
            .iter()
            .map(|(label, _)| format!("dropped_{label}"))
            .collect();
        let mut named: Vec<String> = c
            .all()
            .into_iter()
            .map(|(name, _)| name.to_string())
            .filter(|name| name.starts_with("dropped_"))
            .collect();
        named.sort();
        assert_eq!(listed, named);
        assert!(c.dropped().contains(&("overload", 1)));
    }

    #[test]
    fn histogram_is_cumulative_and_methods_parse() {
        use crate::pipeline::decision::{Entry, First, Mode, SecondFactor};
        let h = Histogram::default();
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_millis(20));
        h.observe(std::time::Duration::from_secs(100));
        let (b, count, sum) = h.snapshot();
        assert_eq!(
            (b[0], b[5], b[LATENCY_BUCKETS.len() - 1], count),
            (1, 2, 2, 3)
        );
        assert!((sum - 100.0203).abs() < 1e-6, "{sum}");
        assert_eq!(method_of("pap+totp-challenge"), "totp");
        assert_eq!(method_of("ldap+sms"), "sms");
        assert_eq!(method_of("ldap+sms_two_way"), "sms_two_way");
        assert_eq!(method_of("radius-challenge"), "none");
        assert_eq!(method_of("pap+sms>totp-challenge"), "sms>totp");
        assert_eq!(method_of("totp-challenge"), "totp");
        let m = ReplyMetrics::default();
        m.record("vpn", 2, std::time::Duration::from_millis(1));
        m.record("vpn", 3, std::time::Duration::from_millis(1));
        let mode = Mode::with(Some(First::Pap), SecondFactor::Totp, Some(Entry::Inline));
        m.record_outcome(mode.method(), Answer::Accept);
        let c = m.clients();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1.replies[0].load(Ordering::Relaxed), 1);
        let labels: Vec<_> = m
            .outcomes()
            .into_iter()
            .map(|((method, answer), n)| (method.as_str(), answer.as_str(), n))
            .collect();
        assert_eq!(labels, vec![("totp", "accept", 1)]);
    }
}
