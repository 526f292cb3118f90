//! Request counters: what was answered and what was dropped, and why.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Monotonic counters, shared by every listener.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
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
}
