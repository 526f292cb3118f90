//! `/metrics`: the node's counters in the Prometheus text exposition format
//! (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::counters::{Histogram, LATENCY_BUCKETS, REPLY_CODES};
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

/// The exposition text of `node`.
pub fn render(node: &Node, sizes: StoreSizes) -> String {
    let mut out = String::with_capacity(8192);
    let stats = node.stats_json();
    let num = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);

    header(
        &mut out,
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

    header(
        &mut out,
        "radmfa_requests_received_total",
        "counter",
        "Datagrams received on the RADIUS listeners.",
    );
    let _ = writeln!(
        out,
        "radmfa_requests_received_total {}",
        num("requests_received")
    );

    let clients = node.counters().replies.clients();
    header(
        &mut out,
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
                c.replies[i].load(Ordering::Relaxed)
            );
        }
    }
    header(
        &mut out,
        "radmfa_reply_latency_seconds",
        "histogram",
        "Time from a request's arrival to its reply, by RADIUS client and reply code.",
    );
    for (client, c) in &clients {
        for (i, code) in REPLY_CODES.iter().enumerate() {
            if c.replies[i].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let labels = format!("client=\"{}\",code=\"{code}\"", esc(client));
            histogram(
                &mut out,
                "radmfa_reply_latency_seconds",
                &labels,
                &c.latency[i],
            );
        }
    }

    header(
        &mut out,
        "radmfa_dropped_total",
        "counter",
        "Requests dropped without a reply, by reason.",
    );
    if let Value::Object(m) = &stats {
        for (k, v) in m {
            if let (Some(reason), Some(n)) = (k.strip_prefix("dropped_"), v.as_u64()) {
                let _ = writeln!(
                    out,
                    "radmfa_dropped_total{{reason=\"{}\"}} {n}",
                    esc(reason)
                );
            }
        }
    }
    header(
        &mut out,
        "radmfa_duplicates_total",
        "counter",
        "Retransmissions: answered from the cache, or dropped while in flight.",
    );
    let _ = writeln!(
        out,
        "radmfa_duplicates_total{{kind=\"answered_from_cache\"}} {}",
        num("duplicates_answered_from_cache")
    );
    let _ = writeln!(
        out,
        "radmfa_duplicates_total{{kind=\"in_flight_dropped\"}} {}",
        num("duplicates_in_flight_dropped")
    );

    header(
        &mut out,
        "radmfa_auth_outcomes_total",
        "counter",
        "Authentication decisions by second-factor method and result.",
    );
    for ((method, result), n) in node.counters().replies.outcomes() {
        let _ = writeln!(
            out,
            "radmfa_auth_outcomes_total{{method=\"{}\",result=\"{}\"}} {n}",
            esc(&method),
            esc(&result)
        );
    }

    let ops = ["send_sms", "start_verification", "poll_verdict"];
    for (metric, key, help) in [
        (
            "radmfa_gateway_requests_total",
            "requests",
            "Cloud gateway calls, by operation.",
        ),
        (
            "radmfa_gateway_errors_total",
            "errors",
            "Cloud gateway calls that failed, by operation.",
        ),
        (
            "radmfa_gateway_timeouts_total",
            "timeouts",
            "Cloud gateway calls that timed out, by operation.",
        ),
        (
            "radmfa_gateway_retries_total",
            "retries",
            "Cloud gateway retries, by operation.",
        ),
        (
            "radmfa_gateway_breaker_rejected_total",
            "breaker_open",
            "Cloud gateway calls refused by the open circuit breaker, by operation.",
        ),
    ] {
        header(&mut out, metric, "counter", help);
        for op in ops {
            let _ = writeln!(
                out,
                "{metric}{{op=\"{op}\"}} {}",
                num(&format!("gateway_{op}_{key}"))
            );
        }
    }
    header(
        &mut out,
        "radmfa_gateway_latency_seconds",
        "summary",
        "Cloud gateway call latency, by operation.",
    );
    for op in ops {
        let sum_ms = num(&format!("gateway_{op}_latency_sum_ms"));
        let _ = writeln!(
            out,
            "radmfa_gateway_latency_seconds_sum{{op=\"{op}\"}} {}",
            sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "radmfa_gateway_latency_seconds_count{{op=\"{op}\"}} {}",
            num(&format!("gateway_{op}_requests"))
        );
    }
    header(
        &mut out,
        "radmfa_gateway_breaker_open",
        "gauge",
        "1 while the cloud gateway circuit breaker is open (or half open).",
    );
    let open = match stats.get("gateway_breaker_state").and_then(Value::as_str) {
        Some("open") | Some("half_open") => 1,
        _ => 0,
    };
    let _ = writeln!(out, "radmfa_gateway_breaker_open {open}");

    header(
        &mut out,
        "radmfa_rate_limited_total",
        "counter",
        "Requests over a rate limit, by scope (client and source: dropped; user: rejected).",
    );
    for scope in ["client", "source", "user"] {
        let _ = writeln!(
            out,
            "radmfa_rate_limited_total{{scope=\"{scope}\"}} {}",
            num(&format!("rate_limited_{scope}"))
        );
    }
    for (metric, key, kind, help) in [
        (
            "radmfa_rate_limit_tables_full_total",
            "rate_limit_tables_full",
            "counter",
            "Rate checks refused because a limiter table was full (fail closed).",
        ),
        (
            "radmfa_lockouts_total",
            "lockouts",
            "counter",
            "Users locked (too many failed second factors, or a fraud report).",
        ),
        (
            "radmfa_locked_rejects_total",
            "locked_rejects",
            "counter",
            "Access-Rejects sent because the user is locked.",
        ),
        (
            "radmfa_argon2_verifications_total",
            "argon2_verifications",
            "counter",
            "argon2id password verifications run (decoys included; cached credentials run none).",
        ),
        (
            "radmfa_argon2_rehashes_total",
            "argon2_rehashes",
            "counter",
            "Password hashes upgraded to the configured argon2 parameters after a successful sign-in.",
        ),
        (
            "radmfa_locks_in_memory",
            "limits_locks_in_memory",
            "gauge",
            "Locks held in this node's memory only (not yet, or not, written to the user record).",
        ),
    ] {
        header(&mut out, metric, kind, help);
        let _ = writeln!(out, "{metric} {}", num(key));
    }
    header(
        &mut out,
        "radmfa_limits_tracked",
        "gauge",
        "Keys held by the rate-limit and lockout tables, by table.",
    );
    for table in ["clients", "sources", "users", "failures"] {
        let _ = writeln!(
            out,
            "radmfa_limits_tracked{{table=\"{table}\"}} {}",
            num(&format!("limits_tracked_{table}"))
        );
    }

    header(
        &mut out,
        "radmfa_peer_events_total",
        "counter",
        "Peer-link counters (challenge forwarding), by name.",
    );
    if let Value::Object(m) = node.peer_stats().to_json() {
        for (k, v) in m {
            if let Some(n) = v.as_u64() {
                let _ = writeln!(out, "radmfa_peer_events_total{{event=\"{}\"}} {n}", esc(&k));
            }
        }
    }

    if let Some(r) = node.replication() {
        let st = r.status();
        let primary = u64::from(st.role == radmfa_store::repl::Role::Primary);
        for (name, kind, help, v) in [
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
        ] {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        header(
            &mut out,
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

    for (name, help, v) in [
        ("radmfa_store_users", "Users in the store.", sizes.users),
        (
            "radmfa_store_tokens",
            "Enrolled second-factor tokens in the store.",
            sizes.tokens,
        ),
        (
            "radmfa_store_admin_tokens",
            "Admin API tokens in the store.",
            sizes.admin_tokens,
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    out
}
