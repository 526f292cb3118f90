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
pub async fn dispatch(node: &Arc<Node>, req: AdminRequest) -> Result<Value, AdminError> {
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
        | AdminRequest::UserShow { .. }
        | AdminRequest::ClientList
        | AdminRequest::Report { .. }
        | AdminRequest::Stats
        | AdminRequest::Backup { .. }
        | AdminRequest::DirectorySync { .. }
        | AdminRequest::ClientAdd { .. }
        | AdminRequest::ClientDelete { .. } => None,
        AdminRequest::UserAdd { name, .. }
        | AdminRequest::UserSetEnabled { name, .. }
        | AdminRequest::UserPasswd { name, .. }
        | AdminRequest::UserSet { name, .. }
        | AdminRequest::UserPin { name, .. } => Some((Some(name.clone()), false)),
        AdminRequest::UserDelete { name } => Some((Some(name.clone()), true)),
        AdminRequest::UserUnlock { name } => Some((Some(name.clone()), false)),
        AdminRequest::TokenEnroll { user, .. } => Some((Some(user.clone()), true)),
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
