//! `radmfa backup` (online, through whoever holds the store) and `radmfa
//! restore` (offline, into an empty data directory).

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use radmfa_server::admin::{AdminRequest, BackupView};
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;

use super::call::call;
use super::print::esc;

/// `radmfa backup FILE`.
pub fn backup(cfg: &RuntimeConfig, file: PathBuf) -> anyhow::Result<()> {
    let file =
        std::path::absolute(&file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let v: BackupView = call(
        cfg,
        AdminRequest::Backup {
            path: file.display().to_string(),
        },
    )?;
    println!(
        "backup written to {} ({} records up to change {} of epoch {}; audit journal in {}.audit/)",
        esc(&v.path),
        v.entries,
        v.seq,
        v.epoch,
        esc(&v.path)
    );
    Ok(())
}

/// `radmfa restore FILE [--as ROLE]`.
pub fn restore(cfg: &RuntimeConfig, file: PathBuf, role: Option<String>) -> anyhow::Result<()> {
    radmfa_server::create_data_dir(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    let info = radmfa_store::Store::restore(&file, &cfg.db_dir(), &cfg.key_file)
        .map_err(|e| anyhow!("cannot restore {}: {e}", file.display()))?;
    if let Some(role) = role {
        // sled releases the directory lock of the store restore()
        // just closed a moment later, from its own thread.
        let mut tries = 0;
        let store = loop {
            match radmfa_server::open_store(cfg) {
                Err(ServerError::Store(StoreError::Locked { .. })) if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let (r, epoch) = if role == "primary" {
            (radmfa_store::repl::Role::Primary, info.repl_epoch.max(1))
        } else {
            (
                radmfa_store::repl::Role::Replica { primary: None },
                info.repl_epoch,
            )
        };
        store
            .set_repl_state(r, epoch)
            .context("cannot set the replication role")?;
    }
    println!(
        "restored {} records (up to change {} of epoch {}) into {}",
        info.entries,
        info.seq,
        info.epoch,
        cfg.db_dir().display()
    );
    Ok(())
}
