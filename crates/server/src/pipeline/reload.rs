//! Reloading the configuration file of a running node (`SIGHUP`, `radmfa
//! reload`): the file is read and validated again, every secret file with
//! it; a file that does not validate, or that changes a key read only at
//! start-up ([`crate::config::Apply::Restart`]), is refused and the running
//! configuration stays. Otherwise the new configuration and what is built
//! from it (client table, upstreams, directory, gateway, limits) replace the
//! old ones in their slots ([`crate::swap::Swap`]): a request in flight
//! finishes with what it took, the next one sees the new values. Failure
//! counts and in-memory locks survive a change of `[limits]`; challenge
//! sessions and caches are not touched.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::node::{Node, Pieces};
use crate::config::{Apply, ConfigError, RuntimeConfig};

/// Why a reload was refused. The running configuration stays in each case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file does not validate (file:line:column: reason).
    #[error("{0}")]
    Invalid(ConfigError),
    /// The file changes keys a running node cannot change.
    #[error(
        "{file}: {} changed, which needs a restart; restart the node to apply it, \
         or put the running value back and reload",
        keys.join(", ")
    )]
    NeedsRestart {
        /// The configuration file.
        file: String,
        /// The keys, as `[section] key`.
        keys: Vec<String>,
    },
    /// Something built from the file failed (the directory or gateway client).
    #[error("{file}: {reason}")]
    Build {
        /// The configuration file.
        file: String,
        /// What failed.
        reason: String,
    },
    /// The reading task failed.
    #[error("reload task failed: {0}")]
    Task(String),
}

/// What a reload changed (`radmfa reload`, the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The configuration file read.
    pub file: String,
    /// The sections with a changed key, as written in the file (`[[policy]]`).
    /// Secrets are not compared: a changed secret file is read and applied
    /// without being listed.
    pub changed: Vec<String>,
}

/// The section labels of `keys`, each once, in table order.
fn sections(keys: &[crate::config::Key]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let label = k.section_label();
        if !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

impl Node {
    /// Sets how the directory sync loops are restarted (once, at start).
    pub fn set_sync_restart(&self, f: super::node::SyncRestart) {
        let _ = self.sync_restart.set(f);
    }

    /// How the directory sync loops are restarted, once set.
    pub fn sync_restart(&self) -> Option<&super::node::SyncRestart> {
        self.sync_restart.get()
    }

    /// Reads the configuration file again and applies it, or refuses it
    /// (logged at WARN with the reason, the running configuration stays).
    /// One reload at a time.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one = self.reloading.lock().await;
        let result = self.reload_now().await;
        match &result {
            Ok(r) if r.changed.is_empty() => info!(
                file = %r.file,
                "configuration reloaded: no setting changed (secret files read again)"
            ),
            Ok(r) => info!(
                file = %r.file,
                changed = %r.changed.join(" "),
                "configuration reloaded: {} changed",
                r.changed.join(", ")
            ),
            Err(e) => warn!(
                error = %e,
                "configuration reload refused; the running configuration stays"
            ),
        }
        result
    }

    async fn reload_now(&self) -> Result<Reloaded, ReloadError> {
        let old = self.cfg();
        let file = old.origin.clone();
        if file.starts_with('<') {
            // `serve` without --config runs the embedded default.
            return Err(ReloadError::Build {
                file,
                reason: "the server runs without a configuration file (no --config): nothing to read again".into(),
            });
        }
        let path = file.clone();
        let new = tokio::task::spawn_blocking(move || RuntimeConfig::load(Path::new(&path)))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))?
            .map_err(ReloadError::Invalid)?;
        let changes = crate::config::changes(&old, &new);
        let restart: Vec<String> = changes
            .iter()
            .filter(|k| k.apply == Apply::Restart)
            .map(crate::config::Key::label)
            .collect();
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart {
                file,
                keys: restart,
            });
        }
        let build = |reason: String| ReloadError::Build {
            file: file.clone(),
            reason,
        };
        let (store, clock, cfg) = (self.store.clone(), self.clock.clone(), new.clone());
        let pieces = tokio::task::spawn_blocking(move || Pieces::build(&cfg, &store, &clock))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))?
            .map_err(|e| build(e.to_string()))?;
        // The gateway keeps its circuit breaker and counters unless its
        // settings (its key included) changed.
        let gateway = match &new.gateway {
            Some(g) if old.gateway.as_ref() != Some(g) => Some(Arc::new(
                radmfa_gateway::Gateway::new(g.clone())
                    .map_err(|e| build(format!("[gateway]: {e}")))?,
            )),
            Some(_) => self.gateway(),
            None => None,
        };
        let changed = sections(&changes);
        if changes.iter().any(|k| k.section == "limits") {
            let limits = self.limits().reconfigured(new.limits.clone());
            self.limits.set(Arc::new(limits));
        }
        let Pieces {
            clients,
            upstreams,
            directory,
        } = pieces;
        self.clients.set(clients);
        self.upstreams.set(upstreams);
        self.directory.set(directory);
        self.gateway.set(gateway);
        let sync_changed = changes.iter().any(|k| k.section == "sync");
        let new = Arc::new(new);
        self.cfg.set(new.clone());
        // Cached users were read under the old group and policy settings.
        self.hot.invalidate();
        if sync_changed {
            if let Some(restart) = self.sync_restart.get() {
                restart(&new.sync);
            }
        }
        self.consistency
            .set_own(crate::config::section_digests(&new));
        Ok(Reloaded { file, changed })
    }
}
