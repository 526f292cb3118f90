//! Where an admin request runs: on the store directly when no server holds
//! it, else through the running server's control socket. Either way the
//! answer comes back as the operation's typed result
//! (`radmfa_server::admin::results`), never picked out of JSON by name.

use anyhow::{anyhow, Context};
use radmfa_server::admin::{AdminError, AdminRequest};
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Runs a request locally, or through the server when it holds the store,
/// and reads its answer as `T`.
pub fn call<T: DeserializeOwned>(cfg: &RuntimeConfig, req: AdminRequest) -> anyhow::Result<T> {
    let v = match radmfa_server::open_store(cfg) {
        Ok(store) if radmfa_server::admin::enroll::sends_mail(&req) => {
            // The enrollment mail goes out over SMTP: async.
            let v = tokio_block(radmfa_server::admin::execute_mailing(&store, cfg, req))?;
            store.flush().context("cannot flush the store")?;
            v
        }
        Ok(store) => {
            let bulk = matches!(req, AdminRequest::UserImport { .. });
            let v = radmfa_server::admin::execute(&store, cfg, req).map_err(|e| anyhow!(e))?;
            if let (true, Some(c)) = (bulk, &cfg.cluster) {
                // An import of a million users leaves millions of changelog
                // entries, which a clustered server trims at start, for
                // minutes beside serving (its memory and write lock). Done
                // here, nothing waits for it but this command.
                store.trim_changelog(c.changelog_keep);
            }
            store.flush().context("cannot flush the store")?;
            v
        }
        Err(ServerError::Store(StoreError::Locked { .. })) => server(cfg, &req)?,
        Err(e) => return Err(anyhow!(e)),
    };
    typed(v)
}

/// Sends a request to the running server (requests only a server answers).
pub fn server(cfg: &RuntimeConfig, req: &AdminRequest) -> anyhow::Result<Value> {
    tokio_block(radmfa_server::control::request(&cfg.control_socket(), req))
}

/// An answer read as the operation's result type.
pub fn typed<T: DeserializeOwned>(v: Value) -> anyhow::Result<T> {
    serde_json::from_value(v).context("unexpected answer from the server")
}

/// Runs `f` to completion on a runtime of its own.
pub fn tokio_block<T, F: std::future::Future<Output = Result<T, AdminError>>>(
    f: F,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f).map_err(|e| anyhow!(e))
}
