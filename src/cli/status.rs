//! `radmfa stats`, `status` and `promote`: questions and orders for the
//! running server only (control socket).

use radmfa_server::admin::AdminRequest;
use radmfa_server::RuntimeConfig;
use serde_json::Value;

use super::call::tokio_block;
use super::print::{field, print_table};

/// `radmfa stats`: the running server's counters.
pub fn stats(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let v = tokio_block(radmfa_server::control::request(
        &cfg.control_socket(),
        &AdminRequest::Stats,
    ))?;
    if json {
        println!("{v}");
    } else if let Some(m) = v.as_object() {
        for (k, v) in m {
            println!("{k:<40} {v}");
        }
    }
    Ok(())
}

/// `radmfa status`: replication as this node sees it.
pub fn status(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let v = tokio_block(radmfa_server::control::request(
        &cfg.control_socket(),
        &AdminRequest::ReplStatus,
    ))?;
    if json {
        println!("{v}");
    } else {
        print_status(&v, cfg);
    }
    Ok(())
}

/// `radmfa promote`: makes this replica the primary.
pub fn promote(cfg: &RuntimeConfig, force: bool) -> anyhow::Result<()> {
    let v = tokio_block(radmfa_server::control::request(
        &cfg.control_socket(),
        &AdminRequest::Promote { force },
    ))?;
    println!(
        "node {} is now the primary at epoch {}",
        v["node_id"], v["epoch"]
    );
    Ok(())
}

/// `radmfa status` for people: this node, then one aligned row per peer of
/// `[cluster]`, the unreachable ones included (a replica the primary has not
/// heard from, or a primary the replica cannot reach).
pub fn print_status(v: &Value, cfg: &RuntimeConfig) {
    let s = |k: &str| match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut rows = vec![
        vec!["node".to_string(), s("node_id")],
        vec!["role".into(), s("role")],
    ];
    if v["role"] != "standalone" {
        rows.push(vec!["epoch".into(), s("epoch")]);
        rows.push(vec![
            "last applied".into(),
            format!("seq {} (epoch {})", s("last_seq"), s("last_epoch")),
        ]);
    }
    if v["role"] == "replica" {
        rows.push(vec!["synced".into(), s("synced")]);
        if v["installing_snapshot"] == true {
            rows.push(vec![
                "installing".into(),
                "a snapshot from the primary".into(),
            ]);
        }
    }
    if v["last_error"].is_string() {
        rows.push(vec!["last error".into(), s("last_error")]);
    }
    for r in &rows {
        println!("{:<14} {}", r[0], r[1]);
    }
    let Some(cluster) = &cfg.cluster else {
        return;
    };
    let replicas = v["replicas"].as_array().cloned().unwrap_or_default();
    let primary = v["primary"].as_u64();
    let mut peers: Vec<(u64, String)> = cluster
        .peers
        .iter()
        .map(|(id, addr)| (u64::from(*id), addr.to_string()))
        .collect();
    // A replica the primary knows that this file does not list.
    for r in &replicas {
        let id = r["node_id"].as_u64().unwrap_or(0);
        if !peers.iter().any(|(p, _)| *p == id) {
            peers.push((id, field(r, "address")));
        }
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|(id, addr)| peer_row(v, &replicas, primary, *id, addr))
        .collect();
    println!();
    print_table(
        &[
            "PEER",
            "ADDRESS",
            "ROLE",
            "STATE",
            "ACKED SEQ",
            "LAG",
            "LAST SEEN",
        ],
        &rows,
    );
}

/// One peer's row of `radmfa status`.
pub fn peer_row(
    v: &Value,
    replicas: &[Value],
    primary: Option<u64>,
    id: u64,
    addr: &str,
) -> Vec<String> {
    let dash = || "-".to_string();
    if v["role"] == "standalone" {
        let state = "peer link only (replication off)".to_string();
        return vec![
            id.to_string(),
            addr.to_string(),
            dash(),
            state,
            dash(),
            dash(),
            dash(),
        ];
    }
    if v["role"] == "primary" {
        return match replicas.iter().find(|r| r["node_id"].as_u64() == Some(id)) {
            Some(r) => {
                let seen = r["last_seen_ms_ago"].as_u64().unwrap_or(0);
                vec![
                    id.to_string(),
                    addr.to_string(),
                    "replica".into(),
                    if r["connected"] == true {
                        "connected".into()
                    } else {
                        "unreachable".into()
                    },
                    field(r, "acked_seq"),
                    field(r, "lag_entries"),
                    format!("{:.1} s ago", seen as f64 / 1000.0),
                ]
            }
            None => vec![
                id.to_string(),
                addr.to_string(),
                dash(),
                "unreachable (no contact since start)".into(),
                dash(),
                dash(),
                "never".into(),
            ],
        };
    }
    if v["role"] == "replica" && primary == Some(id) {
        let state = match v["primary_unreachable_since"].as_str() {
            Some(since) => format!("unreachable since {since}"),
            None => "connected".into(),
        };
        return vec![
            id.to_string(),
            addr.to_string(),
            "primary".into(),
            state,
            dash(),
            dash(),
            dash(),
        ];
    }
    // Replicas do not link to each other; the primary's status shows them.
    vec![
        id.to_string(),
        addr.to_string(),
        dash(),
        "not linked from this node".into(),
        dash(),
        dash(),
        dash(),
    ]
}
