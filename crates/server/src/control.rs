//! The local control socket: admin commands reach a running server through a
//! Unix socket in the data directory (mode 0600), one JSON request per line,
//! one JSON response per line. It exists because the store is held open by the
//! server while it runs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use radmfa_store::StoreError;

use crate::admin::{execute, AdminError, AdminRequest};
use crate::pipeline::Node;

/// Largest request line accepted (a bulk import of many users fits).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Binds the control socket, replacing a stale one left by a crash.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        // Refuse to steal the socket of a live server.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by another radmfa server", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until `shutdown`.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    node: Arc<Node>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let node = node.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, node).await {
                            warn!(error = %e, "control connection failed");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "control socket accept failed"),
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(stream: UnixStream, node: Arc<Node>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let response = match serde_json::from_str::<AdminRequest>(&line) {
            Ok(req) => answer(&node, req).await,
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

async fn answer(node: &Arc<Node>, req: AdminRequest) -> Value {
    match dispatch(node, req).await {
        Ok(v) => json!({"ok": true, "result": v}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// Runs one admin request on the running node: the one entry point for the
/// control socket, the HTTP API and the portal. Writes refresh the node's
/// caches afterwards.
///
/// On a replica a write the store refuses as read-only is forwarded to the
/// primary over the peer link and the answer returned once this node has
/// replicated it (read your writes); with the primary unreachable the
/// error says `read-only: primary N (ADDR) unreachable since TIME`.
pub async fn dispatch(node: &Arc<Node>, req: AdminRequest) -> Result<Value, AdminError> {
    match &req {
        AdminRequest::ReplStatus => {
            return match node.replication() {
                Some(r) => Ok(r.status_json()),
                None => Ok(json!({
                    "node_id": node.config().node_id,
                    "role": "standalone",
                    "replication": false,
                })),
            }
        }
        AdminRequest::Promote { force } => {
            let Some(r) = node.replication().cloned() else {
                return Err(AdminError::Invalid(
                    "replication is not configured on this node ([cluster])".into(),
                ));
            };
            let force = *force;
            let st = tokio::task::spawn_blocking(move || r.promote(force))
                .await
                .map_err(|e| AdminError::Invalid(format!("promote failed: {e}")))?
                .map_err(AdminError::Invalid)?;
            warn!(
                node = st.id,
                epoch = st.epoch,
                "promoted to primary by an operator"
            );
            return Ok(node
                .replication()
                .map(|r| r.status_json())
                .unwrap_or_default());
        }
        _ => {}
    }
    let forwardable = req.clone();
    match dispatch_local(node, req).await {
        Err(AdminError::Store(StoreError::ReadOnly(local))) => {
            forward_to_primary(node, &forwardable, local).await
        }
        other => other,
    }
}

/// Sends a write this replica's store refused (`local` says why) to the
/// primary, and waits (a little) until this replica has applied it, so the
/// caller reads its own write. Fails with [`AdminError::ReadOnly`] when
/// there is no reachable primary.
pub async fn forward_to_primary(
    node: &Node,
    req: &AdminRequest,
    local: String,
) -> Result<Value, AdminError> {
    let Some(r) = node.replication() else {
        return Err(AdminError::ReadOnly(local));
    };
    let primary = r.write_target().map_err(AdminError::ReadOnly)?;
    if primary == node.config().node_id {
        return Err(AdminError::ReadOnly(local));
    }
    let body = serde_json::to_vec(req).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let answer = r
        .forward_admin(primary, body)
        .await
        .map_err(AdminError::ReadOnly)?;
    let v: Value = serde_json::from_slice(&answer)
        .map_err(|e| AdminError::Invalid(format!("bad answer from the primary: {e}")))?;
    if v["ok"] != Value::Bool(true) {
        return Err(AdminError::Invalid(
            v["error"]
                .as_str()
                .unwrap_or("the primary refused the request")
                .to_string(),
        ));
    }
    // Read your writes: wait (a little) until this replica has it.
    if let Some(seq) = v["seq"].as_u64() {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while r.status().last_seq < seq && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    info!(primary, "admin write forwarded to the primary");
    Ok(v["result"].clone())
}

/// Answers an admin request that replica `from_node` forwarded here: run
/// locally (never forwarded again), with the log position after it so the
/// replica can wait until it has the write.
pub async fn forwarded_admin(node: &Arc<Node>, from_node: u16, body: &[u8]) -> Vec<u8> {
    let answer = match serde_json::from_slice::<AdminRequest>(body) {
        Ok(
            AdminRequest::ReplStatus | AdminRequest::Promote { .. } | AdminRequest::Backup { .. },
        ) => {
            json!({"ok": false, "error": "this request is not forwarded between nodes"})
        }
        Ok(AdminRequest::OtpAdvance { steps }) => {
            let users: Vec<String> = steps.iter().map(|(u, _)| u.clone()).collect();
            let req = AdminRequest::OtpAdvance { steps };
            let node2 = node.clone();
            let res =
                tokio::task::spawn_blocking(move || execute(node2.store(), node2.config(), req))
                    .await;
            node.after_replication(&[], &users);
            match res {
                Ok(Ok(v)) => json!({"ok": true, "result": v}),
                Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            }
        }
        Ok(req) => {
            info!(from_node, request = ?req, "admin request forwarded by a replica");
            match dispatch_local(node, req).await {
                Ok(v) => {
                    use radmfa_store::repl::ReplLog;
                    let seq = node.store().repl_log().last().0;
                    json!({"ok": true, "result": v, "seq": seq})
                }
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            }
        }
        Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// Runs one admin request on this node only.
async fn dispatch_local(node: &Arc<Node>, req: AdminRequest) -> Result<Value, AdminError> {
    if let AdminRequest::Stats = req {
        return Ok(node.stats_json());
    }
    if let AdminRequest::DirectorySync { .. } = req {
        let res = crate::admin::directory_sync_detached(
            node.store().clone(),
            node.config_arc(),
            node.directory().cloned(),
            req,
        )
        .await;
        node.after_admin_write(None, false);
        if res.is_ok() {
            info!(request = "directory_sync", "admin request done");
        }
        return res;
    }
    if let AdminRequest::UserUnlock { name } = &req {
        // The node's own state goes whatever the store says (a replica
        // cannot write the record, but its in-memory lock is its own).
        node.after_unlock(name);
    }
    let touched = touched(&req);
    let op = format!("{req:?}");
    let node2 = node.clone();
    let res =
        tokio::task::spawn_blocking(move || execute(node2.store(), node2.config(), req)).await;
    if let Some((user, token_changed)) = touched {
        node.after_admin_write(user.as_deref(), token_changed);
    }
    match res {
        Ok(Ok(v)) => {
            info!(request = %op, "admin request done");
            Ok(v)
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(AdminError::Invalid(format!("admin task failed: {e}"))),
    }
}

/// Which user a write touches (None = possibly many) and whether tokens
/// changed; None for read-only requests.
fn touched(req: &AdminRequest) -> Option<(Option<String>, bool)> {
    match req {
        AdminRequest::UserList
        | AdminRequest::OtpAdvance { .. }
        | AdminRequest::ReplStatus
        | AdminRequest::Promote { .. }
        | AdminRequest::UserShow { .. }
        | AdminRequest::ClientList
        | AdminRequest::TokenList
        | AdminRequest::TokenShow { .. }
        | AdminRequest::Report { .. }
        | AdminRequest::Stats
        | AdminRequest::Backup { .. }
        | AdminRequest::DirectorySync { .. }
        | AdminRequest::ClientAdd { .. }
        | AdminRequest::ClientDelete { .. }
        | AdminRequest::AdminTokenCreate { .. }
        | AdminRequest::AdminTokenList
        | AdminRequest::AdminTokenRevoke { .. } => None,
        AdminRequest::UserAdd { name, .. }
        | AdminRequest::UserSetEnabled { name, .. }
        | AdminRequest::UserDisableFraud { name }
        | AdminRequest::UserPasswd { name, .. }
        | AdminRequest::UserSet { name, .. }
        | AdminRequest::UserPin { name, .. }
        | AdminRequest::UserPinChange { name, .. } => Some((Some(name.clone()), false)),
        AdminRequest::UserDelete { name } => Some((Some(name.clone()), true)),
        AdminRequest::UserUnlock { name } | AdminRequest::UserLock { name, .. } => {
            Some((Some(name.clone()), false))
        }
        AdminRequest::TokenEnroll { user, .. }
        | AdminRequest::TokenDelete { user }
        | AdminRequest::TokenResync { user, .. } => Some((Some(user.clone()), true)),
        AdminRequest::UserImport { .. } => Some((None, true)),
    }
}

/// Client side: sends one request to a running server.
pub async fn request(path: &Path, req: &AdminRequest) -> Result<Value, AdminError> {
    let stream = UnixStream::connect(path).await.map_err(|e| {
        AdminError::NeedsServer(format!(
            "cannot reach the server at {}: {e}",
            path.display()
        ))
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| AdminError::Invalid(e.to_string()))?;
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .map_err(|e| AdminError::NeedsServer(format!("control socket: {e}")))?;
    let mut lines = BufReader::new(read).lines();
    let resp = lines
        .next_line()
        .await
        .map_err(|e| AdminError::NeedsServer(format!("control socket: {e}")))?
        .ok_or_else(|| AdminError::NeedsServer("the server closed the control socket".into()))?;
    let v: Value = serde_json::from_str(&resp)
        .map_err(|e| AdminError::Invalid(format!("bad response from the server: {e}")))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v["result"].clone())
    } else {
        Err(AdminError::Invalid(
            v["error"].as_str().unwrap_or("unknown error").to_string(),
        ))
    }
}
