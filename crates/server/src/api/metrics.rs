//! `/metrics`: the node's counters in the Prometheus text exposition format
//! (version 0.0.4). One function per family group, each reading the typed
//! counters it shows.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::counters::{Counters, Histogram, LATENCY_BUCKETS, REPLY_CODES};
use crate::limits::TableSizes;
use crate::pipeline::Node;

/// Store sizes, read by the caller (they may need a scan).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSizes {
    /// Users.
    pub users: u64,
    /// Enrolled second-factor tokens.
    pub tokens: u64,
    /// Admin API tokens.
    pub admin_tokens: u64,
}

/// A label value escaped for the exposition format.
fn esc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, count, sum) = h.snapshot();
    for (le, n) in LATENCY_BUCKETS.iter().zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Families of one unlabelled sample each: (name, type, help, value).
fn plain(out: &mut String, families: &[(&str, &str, &str, u64)]) {
    for (name, kind, help, v) in families {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The exposition text of `node`.
pub fn render(node: &Node, sizes: StoreSizes) -> String {
    let mut out = String::with_capacity(8192);
    let c = node.counters();
    build_info(&mut out, node);
    replies(&mut out, c);
    drops(&mut out, c);
    outcomes(&mut out, c);
    gateway(&mut out, node.gateway_metrics().as_ref());
    limits(&mut out, c, node.limits().sizes());
    callbacks(&mut out, node);
    peer(&mut out, node);
    replication(&mut out, node);
    store(&mut out, sizes);
    out
}

fn build_info(out: &mut String, node: &Node) {
    header(
        out,
        "radmfa_build_info",
        "gauge",
        "Version of the running radmfa.",
    );
    let _ = writeln!(
        out,
        "radmfa_build_info{{version=\"{}\",node=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        esc(&node.config().node_name)
    );
}

/// Requests received, replies and their latency by client and code.
fn replies(out: &mut String, c: &Counters) {
    header(
        out,
        "radmfa_requests_received_total",
        "counter",
        "Datagrams received on the RADIUS listeners.",
    );
    let _ = writeln!(
        out,
        "radmfa_requests_received_total {}",
        load(&c.requests_received)
    );

    let clients = c.replies.clients();
    header(
        out,
        "radmfa_replies_total",
        "counter",
        "Replies sent, by RADIUS client and reply code.",
    );
    for (client, c) in &clients {
        for (i, code) in REPLY_CODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "radmfa_replies_total{{client=\"{}\",code=\"{code}\"}} {}",
                esc(client),
                load(&c.replies[i])
            );
        }
    }
    header(
        out,
        "radmfa_reply_latency_seconds",
        "histogram",
        "Time from a request's arrival to its reply, by RADIUS client and reply code.",
    );
    for (client, c) in &clients {
        for (i, code) in REPLY_CODES.iter().enumerate() {
            if load(&c.replies[i]) == 0 {
                continue;
            }
            let labels = format!("client=\"{}\",code=\"{code}\"", esc(client));
            histogram(out, "radmfa_reply_latency_seconds", &labels, &c.latency[i]);
        }
    }
}

/// Requests dropped without a reply, and retransmissions.
fn drops(out: &mut String, c: &Counters) {
    header(
        out,
        "radmfa_dropped_total",
        "counter",
        "Requests dropped without a reply, by reason.",
    );
    for (reason, n) in c.dropped() {
        let _ = writeln!(out, "radmfa_dropped_total{{reason=\"{reason}\"}} {n}");
    }
    header(
        out,
        "radmfa_duplicates_total",
        "counter",
        "Retransmissions: answered from the cache, or dropped while in flight.",
    );
    let _ = writeln!(
        out,
        "radmfa_duplicates_total{{kind=\"answered_from_cache\"}} {}",
        load(&c.duplicates_answered_from_cache)
    );
    let _ = writeln!(
        out,
        "radmfa_duplicates_total{{kind=\"in_flight_dropped\"}} {}",
        load(&c.duplicates_in_flight_dropped)
    );
}

/// Decisions by second-factor method and result.
fn outcomes(out: &mut String, c: &Counters) {
    header(
        out,
        "radmfa_auth_outcomes_total",
        "counter",
        "Authentication decisions by second-factor method and result.",
    );
    for ((method, answer), n) in c.replies.outcomes() {
        let _ = writeln!(
            out,
            "radmfa_auth_outcomes_total{{method=\"{}\",result=\"{}\"}} {n}",
            method.as_str(),
            answer.as_str()
        );
    }
}

/// Cloud gateway calls (zeros without a gateway).
fn gateway(out: &mut String, m: Option<&radmfa_gateway::GatewayMetrics>) {
    let ops = |m: &radmfa_gateway::GatewayMetrics| {
        [
            ("send_sms", m.send_sms.clone()),
            ("start_verification", m.start_verification.clone()),
            ("poll_verdict", m.poll_verdict.clone()),
        ]
    };
    let ops = m.map_or_else(
        || {
            ["send_sms", "start_verification", "poll_verdict"]
                .map(|op| (op, radmfa_gateway::OpMetrics::default()))
        },
        ops,
    );
    type Field = fn(&radmfa_gateway::OpMetrics) -> u64;
    let counters: [(&str, Field, &str); 5] = [
        (
            "radmfa_gateway_requests_total",
            |o| o.requests,
            "Cloud gateway calls, by operation.",
        ),
        (
            "radmfa_gateway_errors_total",
            |o| o.errors,
            "Cloud gateway calls that failed, by operation.",
        ),
        (
            "radmfa_gateway_timeouts_total",
            |o| o.timeouts,
            "Cloud gateway calls that timed out, by operation.",
        ),
        (
            "radmfa_gateway_retries_total",
            |o| o.retries,
            "Cloud gateway retries, by operation.",
        ),
        (
            "radmfa_gateway_breaker_rejected_total",
            |o| o.breaker_open,
            "Cloud gateway calls refused by the open circuit breaker, by operation.",
        ),
    ];
    for (metric, field, help) in counters {
        header(out, metric, "counter", help);
        for (op, o) in &ops {
            let _ = writeln!(out, "{metric}{{op=\"{op}\"}} {}", field(o));
        }
    }
    header(
        out,
        "radmfa_gateway_latency_seconds",
        "summary",
        "Cloud gateway call latency, by operation.",
    );
    for (op, o) in &ops {
        let _ = writeln!(
            out,
            "radmfa_gateway_latency_seconds_sum{{op=\"{op}\"}} {}",
            o.latency_sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "radmfa_gateway_latency_seconds_count{{op=\"{op}\"}} {}",
            o.requests
        );
    }
    header(
        out,
        "radmfa_gateway_breaker_open",
        "gauge",
        "1 while the cloud gateway circuit breaker is open (or half open).",
    );
    let open = m.is_some_and(|m| m.breaker_state != radmfa_gateway::BreakerState::Closed);
    let _ = writeln!(out, "radmfa_gateway_breaker_open {}", u8::from(open));
}

/// Rate limits, lockout, argon2 and the limit tables.
fn limits(out: &mut String, c: &Counters, t: TableSizes) {
    header(
        out,
        "radmfa_rate_limited_total",
        "counter",
        "Requests over a rate limit, by scope (client and source: dropped; user: rejected).",
    );
    for (scope, n) in [
        ("client", &c.rate_limited_client),
        ("source", &c.rate_limited_source),
        ("user", &c.rate_limited_user),
    ] {
        let _ = writeln!(
            out,
            "radmfa_rate_limited_total{{scope=\"{scope}\"}} {}",
            load(n)
        );
    }
    plain(
        out,
        &[
            (
                "radmfa_rate_limit_tables_full_total",
                "counter",
                "Rate checks refused because a limiter table was full (fail closed).",
                load(&c.rate_limit_tables_full),
            ),
            (
                "radmfa_lockouts_total",
                "counter",
                "Users locked (too many failed second factors, or a fraud report).",
                load(&c.lockouts),
            ),
            (
                "radmfa_locked_rejects_total",
                "counter",
                "Access-Rejects sent because the user is locked.",
                load(&c.locked_rejects),
            ),
            (
                "radmfa_argon2_verifications_total",
                "counter",
                "argon2id password verifications run (decoys included; cached credentials run none).",
                load(&c.argon2_verifications),
            ),
            (
                "radmfa_argon2_rehashes_total",
                "counter",
                "Password hashes upgraded to the configured argon2 parameters after a successful sign-in.",
                load(&c.argon2_rehashes),
            ),
            (
                "radmfa_locks_in_memory",
                "gauge",
                "Locks held in this node's memory only (not yet, or not, written to the user record).",
                t.locks_in_memory as u64,
            ),
        ],
    );
    header(
        out,
        "radmfa_limits_tracked",
        "gauge",
        "Keys held by the rate-limit and lockout tables, by table.",
    );
    for (table, n) in [
        ("clients", t.clients),
        ("sources", t.sources),
        ("users", t.users),
        ("failures", t.failures),
    ] {
        let _ = writeln!(out, "radmfa_limits_tracked{{table=\"{table}\"}} {n}");
    }
}

/// Provider callbacks and the out-of-band verifications waiting.
fn callbacks(out: &mut String, node: &Node) {
    let c = node.counters();
    header(
        out,
        "radmfa_callbacks_total",
        "counter",
        "Provider callbacks (Twilio) by result: decided a verification, ignored (progress status), unmatched (unknown, expired, already decided, ambiguous), bad_signature (refused with 403).",
    );
    for (result, n) in [
        ("decided", &c.callbacks_decided),
        ("ignored", &c.callbacks_ignored),
        ("unmatched", &c.callbacks_unmatched),
        ("bad_signature", &c.callbacks_bad_signature),
    ] {
        let _ = writeln!(
            out,
            "radmfa_callbacks_total{{result=\"{result}\"}} {}",
            load(n)
        );
    }
    plain(
        out,
        &[(
            "radmfa_verifications_pending",
            "gauge",
            "Out-of-band verifications (call, two-way SMS, push) waiting for the user's answer on this node.",
            node.verifications().len() as u64,
        )],
    );
}

/// Peer-link counters.
fn peer(out: &mut String, node: &Node) {
    header(
        out,
        "radmfa_peer_events_total",
        "counter",
        "Peer-link counters (challenge forwarding), by name.",
    );
    for (event, n) in node.peer_stats().counts() {
        let _ = writeln!(out, "radmfa_peer_events_total{{event=\"{event}\"}} {n}");
    }
}

/// Replication role, epoch, position and lag (clustered nodes only).
fn replication(out: &mut String, node: &Node) {
    let Some(r) = node.replication() else {
        return;
    };
    let st = r.status();
    let primary = u64::from(st.role == radmfa_store::repl::Role::Primary);
    plain(
        out,
        &[
            (
                "radmfa_replication_primary",
                "gauge",
                "1 on the primary, 0 on a replica.",
                primary,
            ),
            (
                "radmfa_replication_epoch",
                "gauge",
                "Replication epoch.",
                st.epoch,
            ),
            (
                "radmfa_replication_last_seq",
                "gauge",
                "Sequence number of the last changelog entry applied here.",
                st.last_seq,
            ),
            (
                "radmfa_replication_primary_unreachable",
                "gauge",
                "1 on a replica that cannot reach its primary.",
                u64::from(st.primary_unreachable_since.is_some()),
            ),
        ],
    );
    header(
        out,
        "radmfa_replication_lag_entries",
        "gauge",
        "Primary: changelog entries a replica has not acknowledged yet.",
    );
    for rep in &st.replicas {
        let _ = writeln!(
            out,
            "radmfa_replication_lag_entries{{replica=\"{}\"}} {}",
            rep.id, rep.lag
        );
    }
}

/// Store sizes.
fn store(out: &mut String, sizes: StoreSizes) {
    plain(
        out,
        &[
            (
                "radmfa_store_users",
                "gauge",
                "Users in the store.",
                sizes.users,
            ),
            (
                "radmfa_store_tokens",
                "gauge",
                "Enrolled second-factor tokens in the store.",
                sizes.tokens,
            ),
            (
                "radmfa_store_admin_tokens",
                "gauge",
                "Admin API tokens in the store.",
                sizes.admin_tokens,
            ),
        ],
    );
}
