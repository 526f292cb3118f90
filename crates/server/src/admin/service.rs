//! The admin service: runs one admin request for a running node, whoever
//! asked (control socket, HTTP API, portal, a replica over the peer link).
//! It owns the order of things around an operation (the node's own state
//! first for an unlock, the store write on a blocking thread, the cache
//! refresh the request's [`Effect`] declares, forwarding to the primary
//! when this replica's store is read-only) and needs from the node only
//! what [`AdminHooks`] gives, not the node itself.

use std::sync::Arc;

use serde_json::Value;
use tracing::info;

use radmfa_otp::Clock;
use radmfa_store::repl::ReplLog;
use radmfa_store::{Store, StoreError};

use crate::config::RuntimeConfig;
use crate::replication::Replication;

use super::actor::Actor;
use super::answer::Answer;
use super::context::Ctx;
use super::directory::directory_sync_detached;
use super::error::AdminError;
use super::forward::{ask_primary, forward_to_primary};
use super::request::{AdminRequest, Effect};
use super::{cluster, execute};

/// What the admin service needs from the running node: its caches to
/// refresh after writes, its counters, its replication driver and its
/// directory client.
pub trait AdminHooks: Send + Sync {
    /// Refreshes the caches after a write: `user` (`None`: possibly any
    /// user), and tokens when `token_changed`.
    fn after_write(&self, user: Option<&str>, token_changed: bool);
    /// Clears the node's own failure count and in-memory lock of `user`.
    fn after_unlock(&self, user: &str);
    /// Refreshes the OTP state of `users` after another node advanced it.
    fn after_otp_advance(&self, users: &[String]);
    /// Lockout across nodes, on the primary: counts a failed second factor
    /// a replica sent (`reset_first`: an Accept came first); `Some(until)`
    /// when it locks the user.
    fn lockout_failure(&self, name: &str, reset_first: bool) -> Option<u64>;
    /// Lockout across nodes, on the primary: Accepts a replica sent.
    fn lockout_reset(&self, names: &[String]);
    /// The node's counters (`radmfa stats`, the API's stats).
    fn stats(&self) -> Value;
    /// The replication driver, when clustered.
    fn replication(&self) -> Option<&Arc<Replication>>;
    /// Reloads the configuration file; the answer says what changed.
    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, AdminError>> + Send + '_>>;
    /// This node's configuration digests and the sections each peer
    /// differs in.
    fn config_status(&self) -> Value;
    /// Records the configuration digests peer `from_node` sent; returns
    /// this node's (an `Announce`).
    fn config_digest(
        &self,
        from_node: u16,
        node_name: String,
        sections: std::collections::BTreeMap<String, String>,
    ) -> Value;
    /// The directory client, when configured (the one in force now: a
    /// reload may replace it).
    fn directory(&self) -> Option<radmfa_directory::Directory>;
}

/// Admin operations on a running node.
pub struct Admin<'a> {
    store: Store,
    config: Arc<RuntimeConfig>,
    clock: &'a dyn Clock,
    hooks: &'a dyn AdminHooks,
    /// Who asked, for the audit record of a write (default: the node).
    actor: Option<Actor>,
}

impl std::fmt::Debug for Admin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl<'a> Admin<'a> {
    /// The service over `store` and `config`, reading time from `clock`
    /// and refreshing the node through `hooks`.
    pub fn new(
        store: Store,
        config: Arc<RuntimeConfig>,
        clock: &'a dyn Clock,
        hooks: &'a dyn AdminHooks,
    ) -> Self {
        Admin {
            store,
            config,
            clock,
            hooks,
            actor: None,
        }
    }

    /// The service acting for `actor` (named in the audit records of the
    /// actions it runs).
    pub fn as_actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Runs one admin request: the one entry point for the control socket,
    /// the HTTP API and the portal. Writes refresh the node's caches
    /// afterwards.
    ///
    /// On a replica a write the store refuses as read-only is forwarded to
    /// the primary over the peer link and the answer returned once this node
    /// has replicated it (read your writes); with the primary unreachable
    /// the error says `read-only: primary N (ADDR) unreachable since TIME`.
    ///
    /// Every action (not a read) is written to the audit log with who asked
    /// and the outcome, here on the node the caller reached (a write
    /// forwarded to the primary is recorded by the replica that forwarded
    /// it, not again by the primary).
    pub async fn run(&self, req: AdminRequest) -> Result<Value, AdminError> {
        let audited = req.audited();
        let res = self.run_unaudited(req).await;
        if let Some((op, target)) = audited {
            let node = &self.config.node_name;
            let actor = self
                .actor
                .clone()
                .unwrap_or_else(|| Actor::Node { node: node.clone() });
            let rec = actor.record(
                (node, &self.config.server_ip),
                self.clock.now_unix_ms(),
                (op, &target),
                res.as_ref().map(|_| ()),
            );
            if let Err(e) = self.store.append_audit(&rec) {
                tracing::error!(error = %e, op, "cannot write the audit record of an admin action");
            }
        }
        res
    }

    async fn run_unaudited(&self, req: AdminRequest) -> Result<Value, AdminError> {
        match &req {
            AdminRequest::ReplStatus => {
                let r = self.hooks.replication().map(|r| &**r);
                let st = cluster::status(r, self.config.node_id);
                return serde_json::to_value(st).map_err(|e| AdminError::Invalid(e.to_string()));
            }
            AdminRequest::Promote { force } => {
                return cluster::promote(self.hooks.replication().cloned(), *force).await;
            }
            AdminRequest::Reload => return self.hooks.reload().await,
            AdminRequest::ConfigStatus => return Ok(self.hooks.config_status()),
            AdminRequest::ConfigDigest { .. } => {
                return Err(AdminError::Invalid(
                    "configuration digests are exchanged between nodes only".into(),
                ))
            }
            AdminRequest::Report { .. } | AdminRequest::ReportSummary { .. } => {
                return self.cluster_read(req).await;
            }
            _ => {}
        }
        let forwardable = req.clone();
        match self.run_local(req).await {
            Err(AdminError::Store(StoreError::ReadOnly(local))) => {
                let r = self.hooks.replication().map(|r| &**r);
                forward_to_primary(r, self.config.node_id, &forwardable, local).await
            }
            other => other,
        }
    }

    /// A report over the whole cluster: on a replica asked of the primary
    /// (which holds every node's records); with the primary unreachable,
    /// answered from this node's copy and marked incomplete, saying why.
    async fn cluster_read(&self, req: AdminRequest) -> Result<Value, AdminError> {
        let replica = self.hooks.replication().filter(|r| !r.is_primary());
        let Some(r) = replica else {
            return self.run_local(req).await;
        };
        let why = match ask_primary(r, self.config.node_id, &req).await {
            Ok(answer) if answer.ok => return Ok(answer.result.unwrap_or(Value::Null)),
            Ok(answer) => answer.error.unwrap_or_default(),
            Err(why) => why.unwrap_or_default(),
        };
        let mut v = self.run_local(req).await?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("complete".into(), Value::Bool(false));
            obj.insert(
                "note".into(),
                Value::String(format!(
                    "the primary did not answer ({why}); this is what node {} holds: its own \
                     records, and those other nodes shipped to it while it was the primary",
                    self.config.node_name
                )),
            );
        }
        Ok(v)
    }

    /// Answers an admin request that replica `from_node` forwarded here
    /// (`body` is the request's JSON): run locally, never forwarded again,
    /// with the log position after it so the replica can wait until it has
    /// the write. Returns the answer line.
    pub async fn forwarded(&self, from_node: u16, body: &[u8]) -> Vec<u8> {
        let answer = match serde_json::from_slice::<AdminRequest>(body) {
            Ok(
                AdminRequest::ReplStatus
                | AdminRequest::Reload
                | AdminRequest::ConfigStatus
                | AdminRequest::Promote { .. }
                | AdminRequest::Backup { .. },
            ) => Answer::failed("this request is not forwarded between nodes".to_string()),
            Ok(AdminRequest::ConfigDigest {
                node_name,
                sections,
            }) => Answer::new(Ok(self.hooks.config_digest(from_node, node_name, sections))),
            Ok(AdminRequest::LockoutFailure { name, reset_first }) => {
                self.lockout_failure(from_node, name, reset_first).await
            }
            Ok(AdminRequest::LockoutReset { names }) => {
                self.hooks.lockout_reset(&names);
                Answer::new(Ok(Value::Null))
            }
            Ok(AdminRequest::OtpAdvance { steps }) => {
                let users: Vec<String> = steps.iter().map(|(u, _)| u.clone()).collect();
                let res = self.blocking(AdminRequest::OtpAdvance { steps }).await;
                self.hooks.after_otp_advance(&users);
                Answer::new(res)
            }
            Ok(req) => {
                info!(from_node, request = ?req, "admin request forwarded by a replica");
                let mut answer = Answer::new(self.run_local(req).await);
                if answer.ok {
                    answer.seq = Some(self.store.repl_log().last().0);
                }
                answer
            }
            Err(e) => Answer::failed(format!("bad request: {e}")),
        };
        answer.to_bytes()
    }

    /// A failed second factor replica `from_node` sent: counted with this
    /// primary's own; a lock it starts is written here (the answer's `seq`
    /// lets the replica wait until it has replicated it). The result is
    /// `{"locked_until": u64 | null, "written": bool}`.
    async fn lockout_failure(&self, from_node: u16, name: String, reset_first: bool) -> Answer {
        let Some(until) = self.hooks.lockout_failure(&name, reset_first) else {
            return Answer::new(Ok(
                serde_json::json!({ "locked_until": null, "written": false }),
            ));
        };
        info!(from_node, user = %name, until, "user locked after failures counted across nodes");
        let req = AdminRequest::UserLock {
            name,
            until,
            reason: crate::limits::REASON_FAILURES.to_string(),
        };
        let written = self.run_local(req).await.is_ok();
        let mut answer = Answer::new(Ok(
            serde_json::json!({ "locked_until": until, "written": written }),
        ));
        answer.seq = Some(self.store.repl_log().last().0);
        answer
    }

    /// Runs one admin request on this node only, refreshing what its
    /// [`Effect`] says whether or not it succeeded.
    async fn run_local(&self, req: AdminRequest) -> Result<Value, AdminError> {
        let effect = req.effect();
        if let Effect::Unlock(name) = &effect {
            // The node's own state goes whatever the store says (a replica
            // cannot write the record, but its in-memory lock is its own).
            self.hooks.after_unlock(name);
        }
        let res = match req {
            AdminRequest::Stats => Ok(self.hooks.stats()),
            req @ AdminRequest::DirectorySync { .. } => {
                let res = directory_sync_detached(
                    self.store.clone(),
                    self.config.clone(),
                    self.hooks.directory(),
                    req,
                )
                .await
                .and_then(|r| {
                    serde_json::to_value(r).map_err(|e| AdminError::Invalid(e.to_string()))
                });
                if res.is_ok() {
                    info!(request = "directory_sync", "admin request done");
                }
                res
            }
            AdminRequest::UserAdd(n) if n.send_email => {
                let run = |req| self.blocking(req);
                super::enroll::add_with_mail(&self.store, &self.config, n, run).await
            }
            req @ AdminRequest::UserImport {
                send_email: true, ..
            } => {
                let run = |req| self.blocking(req);
                super::enroll::import_with_mail(&self.store, &self.config, req, run).await
            }
            req => {
                let op = format!("{req:?}");
                let res = self.blocking(req).await;
                if res.is_ok() {
                    info!(request = %op, "admin request done");
                }
                res
            }
        };
        if let Some((user, token_changed)) = effect.refresh() {
            self.hooks.after_write(user, token_changed);
        }
        res
    }

    /// Runs a store operation on a blocking thread (argon2, sled).
    async fn blocking(&self, req: AdminRequest) -> Result<Value, AdminError> {
        let (store, config) = (self.store.clone(), self.config.clone());
        let now = self.clock.now_unix();
        tokio::task::spawn_blocking(move || {
            let ctx = Ctx {
                store: &store,
                config: &config,
                now,
            };
            execute::run(ctx, req)
        })
        .await
        .map_err(|e| AdminError::Invalid(format!("admin task failed: {e}")))?
    }
}
