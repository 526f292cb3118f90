//! Where an admin request runs: on the store directly when no server holds
//! it, else through the running server's control socket.

use anyhow::{anyhow, Context};
use radmfa_server::admin::{AdminError, AdminRequest};
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;
use serde_json::Value;

/// Runs a request locally, or through the server when it holds the store.
pub fn call(cfg: &RuntimeConfig, req: AdminRequest) -> anyhow::Result<Value> {
    match radmfa_server::open_store(cfg) {
        Ok(store) => {
            let v = radmfa_server::admin::execute(&store, cfg, req).map_err(|e| anyhow!(e))?;
            store.flush().context("cannot flush the store")?;
            Ok(v)
        }
        Err(ServerError::Store(StoreError::Locked { .. })) => {
            tokio_block(radmfa_server::control::request(&cfg.control_socket(), &req))
        }
        Err(e) => Err(anyhow!(e)),
    }
}

pub fn tokio_block<F: std::future::Future<Output = Result<Value, AdminError>>>(
    f: F,
) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f).map_err(|e| anyhow!(e))
}
