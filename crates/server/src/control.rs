//! The local control socket: admin commands reach a running server through a
//! Unix socket in the data directory (mode 0600), one JSON request per line,
//! one JSON response per line. It exists because the store is held open by the
//! server while it runs. It is the glue between the node and the admin
//! service: the socket, [`dispatch`] for every caller, and the
//! [`AdminHooks`] of a [`Node`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::admin::{Actor, Admin, AdminError, AdminHooks, AdminRequest, Answer};
use crate::pipeline::Node;
use crate::replication::Replication;

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
    // Who is on the other end, for the audit records of their actions.
    let actor = Actor::Cli {
        node: node.config().node_name.clone(),
        uid: stream.peer_cred().ok().map(|c| c.uid()),
        offline: false,
    };
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<AdminRequest>(&line) {
            Ok(req) => Answer::new(dispatch_as(&node, actor.clone(), req).await),
            Err(e) => Answer::failed(format!("bad request: {e}")),
        };
        let mut out = answer.to_bytes();
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

/// Runs one admin request on the running node through the admin service
/// ([`Admin::run`]): the one entry point for the control socket, the HTTP
/// API and the portal.
/// Actions are audited as the node's own ([`Actor::Node`]); callers that
/// know who asked use [`dispatch_as`].
pub async fn dispatch(node: &Arc<Node>, req: AdminRequest) -> Result<Value, AdminError> {
    let actor = Actor::Node {
        node: node.config().node_name.clone(),
    };
    dispatch_as(node, actor, req).await
}

/// [`dispatch`] for `actor`, named in the audit record of an action.
pub async fn dispatch_as(
    node: &Arc<Node>,
    actor: Actor,
    req: AdminRequest,
) -> Result<Value, AdminError> {
    let clock = node.clock();
    Admin::new(node.store().clone(), node.config_arc(), &*clock, &**node)
        .as_actor(actor)
        .run(req)
        .await
}

/// Answers an admin request that replica `from_node` forwarded here
/// ([`Admin::forwarded`]).
pub async fn forwarded_admin(node: &Arc<Node>, from_node: u16, body: &[u8]) -> Vec<u8> {
    let clock = node.clock();
    Admin::new(node.store().clone(), node.config_arc(), &*clock, &**node)
        .forwarded(from_node, body)
        .await
}

/// The running node as the admin service sees it.
impl AdminHooks for Node {
    fn after_write(&self, user: Option<&str>, token_changed: bool) {
        Node::after_admin_write(self, user, token_changed);
    }

    fn after_unlock(&self, user: &str) {
        Node::after_unlock(self, user);
    }

    fn after_otp_advance(&self, users: &[String]) {
        Node::after_replication(self, &[], users);
    }

    fn lockout_failure(&self, name: &str, reset_first: bool) -> Option<u64> {
        let now = self.clock().now_unix();
        self.limits().count_remote_failure(name, reset_first, now)
    }

    fn lockout_reset(&self, names: &[String]) {
        self.limits().reset_remote(names);
    }

    fn stats(&self) -> Value {
        Node::stats_json(self)
    }

    fn replication(&self) -> Option<&Arc<Replication>> {
        Node::replication(self)
    }

    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, AdminError>> + Send + '_>>
    {
        Box::pin(async move {
            let done = Node::reload(self)
                .await
                .map_err(|e| AdminError::Invalid(e.to_string()))?;
            serde_json::to_value(done).map_err(|e| AdminError::Invalid(e.to_string()))
        })
    }

    fn config_digest(
        &self,
        from_node: u16,
        node_name: String,
        sections: std::collections::BTreeMap<String, String>,
    ) -> Value {
        let c = self.consistency();
        let theirs = crate::consistency::Announce {
            node_name,
            sections,
        };
        c.received(from_node, theirs, std::time::Instant::now());
        serde_json::to_value(c.announce(&self.config().node_name)).unwrap_or(Value::Null)
    }

    fn config_status(&self) -> Value {
        let view = self.consistency().view(std::time::Instant::now());
        serde_json::to_value(view).unwrap_or(Value::Null)
    }

    fn directory(&self) -> Option<radmfa_directory::Directory> {
        Node::directory(self)
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
    let answer: Answer = serde_json::from_str(&resp)
        .map_err(|e| AdminError::Invalid(format!("bad response from the server: {e}")))?;
    if answer.ok {
        Ok(answer.result.unwrap_or(Value::Null))
    } else {
        Err(AdminError::Invalid(
            answer.error.unwrap_or_else(|| "unknown error".to_string()),
        ))
    }
}
