//! `radmfa stats`, `status` and `promote`: questions and orders for the
//! running server only (control socket).

use radmfa_server::admin::AdminRequest;
use radmfa_server::consistency::ConsistencyView;
use radmfa_server::pipeline::Reloaded;
use radmfa_server::replication::{ClusterStatus, NodeRole, ReplStatus, ReplicaView};
use radmfa_server::RuntimeConfig;
use serde_json::{Map, Value};

use super::call::{server, tokio_block, typed};
use super::print::{esc, print_table};

/// `radmfa stats`: the running server's counters.
pub fn stats(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let v = server(cfg, &AdminRequest::Stats)?;
    if json {
        println!("{v}");
    } else {
        let counters: Map<String, Value> = typed(v)?;
        for (k, v) in &counters {
            println!("{k:<40} {v}");
        }
    }
    Ok(())
}

/// `radmfa status`: replication and configuration consistency as this
/// node sees them.
pub fn status(cfg: &RuntimeConfig, json: bool) -> anyhow::Result<()> {
    let mut v = server(cfg, &AdminRequest::ReplStatus)?;
    let config = server(cfg, &AdminRequest::ConfigStatus)?;
    if json {
        if let Value::Object(m) = &mut v {
            m.insert("config".into(), config);
        }
        println!("{v}");
    } else {
        print_status(&typed(v)?, cfg);
        print_consistency(&typed(config)?, cfg);
    }
    Ok(())
}

/// `radmfa --config FILE reload`: FILE is not validated here (the server
/// reads it and says what is wrong); only its data directory is read, to
/// find the server's control socket.
pub fn reload_file(path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let data_dir = radmfa_server::config::data_dir_leniently(&text);
    reload(&data_dir.join("control.sock"))
}

/// `radmfa reload`: the running server reads its configuration file again.
pub fn reload(control: &std::path::Path) -> anyhow::Result<()> {
    let answer = tokio_block(radmfa_server::control::request(
        control,
        &AdminRequest::Reload,
    ))?;
    let done: Reloaded = typed(answer)?;
    if done.changed.is_empty() {
        println!(
            "configuration reloaded from {}: no setting changed (secret files read again)",
            done.file
        );
    } else {
        println!(
            "configuration reloaded from {}: {} changed",
            done.file,
            done.changed.join(", ")
        );
    }
    Ok(())
}

/// The configuration part of `radmfa status`: one line per peer heard from.
fn print_consistency(v: &ConsistencyView, cfg: &RuntimeConfig) {
    if cfg.cluster.is_none() {
        return;
    }
    println!();
    if v.peers.is_empty() {
        println!("configuration  no peer heard from yet");
        return;
    }
    if v.agree {
        println!("configuration  the same as every peer's");
    }
    for p in &v.peers {
        let who = format!("node {} ({})", p.node_id, esc(&p.node_name));
        let stale = if p.current {
            String::new()
        } else {
            format!(" (last heard {} s ago)", p.last_seen_secs)
        };
        if !p.differs.is_empty() {
            println!(
                "configuration  differs from {who} in: {}{stale}",
                p.differs.join(", ")
            );
        } else if !stale.is_empty() {
            println!("configuration  same as {who}{stale}");
        }
    }
}

/// `radmfa promote`: makes this replica the primary.
pub fn promote(cfg: &RuntimeConfig, force: bool) -> anyhow::Result<()> {
    let v = server(cfg, &AdminRequest::Promote { force })?;
    let st: ClusterStatus = typed(v)?;
    println!(
        "node {} is now the primary at epoch {}",
        st.node_id, st.epoch
    );
    Ok(())
}

/// `radmfa status` for people: this node, then one aligned row per peer of
/// `[cluster]`, the unreachable ones included (a replica the primary has not
/// heard from, or a primary the replica cannot reach).
fn print_status(st: &ReplStatus, cfg: &RuntimeConfig) {
    let (node_id, role) = match st {
        ReplStatus::Clustered(c) => (c.node_id, c.role),
        ReplStatus::Standalone(s) => (s.node_id, s.role),
    };
    let mut rows = vec![
        vec!["node".to_string(), node_id.to_string()],
        vec!["role".into(), role_name(role).into()],
    ];
    let cluster_status = match st {
        ReplStatus::Clustered(c) => Some(c),
        ReplStatus::Standalone(_) => None,
    };
    if let Some(c) = cluster_status {
        rows.push(vec!["epoch".into(), c.epoch.to_string()]);
        rows.push(vec![
            "last applied".into(),
            format!("seq {} (epoch {})", c.last_seq, c.last_epoch),
        ]);
        if c.role == NodeRole::Replica {
            rows.push(vec!["synced".into(), c.synced.to_string()]);
            if c.installing_snapshot {
                rows.push(vec![
                    "installing".into(),
                    "a snapshot from the primary".into(),
                ]);
            }
        }
        if let Some(e) = &c.last_error {
            rows.push(vec!["last error".into(), e.clone()]);
        }
    }
    for r in &rows {
        println!("{:<14} {}", r[0], r[1]);
    }
    let Some(cluster) = &cfg.cluster else {
        return;
    };
    let replicas: &[ReplicaView] = cluster_status.map_or(&[], |c| c.replicas.as_slice());
    let mut peers: Vec<(u16, String)> = cluster
        .peers
        .iter()
        .map(|(id, addr)| (*id, addr.to_string()))
        .collect();
    // A replica the primary knows that this file does not list.
    for r in replicas {
        if !peers.iter().any(|(p, _)| *p == r.node_id) {
            peers.push((r.node_id, esc(r.address.as_deref().unwrap_or_default())));
        }
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|(id, addr)| peer_row(cluster_status, *id, addr))
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

fn role_name(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Primary => "primary",
        NodeRole::Replica => "replica",
        NodeRole::Standalone => "standalone",
    }
}

/// One peer's row of `radmfa status` (`st` is `None` on a standalone node).
fn peer_row(st: Option<&ClusterStatus>, id: u16, addr: &str) -> Vec<String> {
    let dash = || "-".to_string();
    let row = |role: String, state: String, acked: String, lag: String, seen: String| {
        vec![
            id.to_string(),
            addr.to_string(),
            role,
            state,
            acked,
            lag,
            seen,
        ]
    };
    let Some(st) = st else {
        let state = "peer link only (replication off)".to_string();
        return row(dash(), state, dash(), dash(), dash());
    };
    if st.role == NodeRole::Primary {
        return match st.replicas.iter().find(|r| r.node_id == id) {
            Some(r) => row(
                "replica".into(),
                if r.connected {
                    "connected".into()
                } else {
                    "unreachable".into()
                },
                r.acked_seq.to_string(),
                r.lag_entries.to_string(),
                format!("{:.1} s ago", r.last_seen_ms_ago as f64 / 1000.0),
            ),
            None => row(
                dash(),
                "unreachable (no contact since start)".into(),
                dash(),
                dash(),
                "never".into(),
            ),
        };
    }
    if st.role == NodeRole::Replica && st.primary == Some(id) {
        let state = match &st.primary_unreachable_since {
            Some(since) => format!("unreachable since {since}"),
            None => "connected".into(),
        };
        return row("primary".into(), state, dash(), dash(), dash());
    }
    // Replicas do not link to each other; the primary's status shows them.
    row(
        dash(),
        "not linked from this node".into(),
        dash(),
        dash(),
        dash(),
    )
}
