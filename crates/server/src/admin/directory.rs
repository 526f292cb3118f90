//! Directory sync as an admin operation: the [[sync]] item a request
//! names or describes, the directory and mailer it needs, run off the
//! request runtime. The sync logic itself is [`crate::sync`].

use std::sync::Arc;

use radmfa_store::Store;

use crate::config::RuntimeConfig;
use crate::sync::SyncReport;

use super::error::AdminError;
use super::request::AdminRequest;

/// The sync item a [`AdminRequest::DirectorySync`] describes.
pub fn sync_item(
    req: &AdminRequest,
    cfg: &RuntimeConfig,
) -> Result<crate::config::SyncItem, AdminError> {
    let AdminRequest::DirectorySync {
        item,
        base,
        filter,
        group,
        method,
        language,
        send_email,
        ..
    } = req
    else {
        return Err(AdminError::Invalid("not a directory sync request".into()));
    };
    if let Some(name) = item {
        return cfg
            .sync
            .iter()
            .find(|s| &s.name == name)
            .cloned()
            .ok_or_else(|| AdminError::Invalid(format!("no [[sync]] item named {name:?}")));
    }
    if filter.is_some() && group.is_some() {
        return Err(AdminError::Invalid(
            "give --filter or --group, not both".into(),
        ));
    }
    Ok(crate::config::SyncItem {
        name: "import".into(),
        base: base.clone(),
        filter: filter.clone(),
        group: group.clone(),
        method: *method,
        language: language.clone(),
        interval: None,
        send_enrollment_email: *send_email,
        fields: crate::sync::FieldModes::default(),
    })
}

/// [`directory_sync`] on a blocking thread with its own single-threaded
/// runtime: the LDAP client's futures are not `Send` for every lifetime (a
/// rustc limitation with higher-ranked lifetimes), and a sync is rare and
/// slow, so it keeps off the request runtime entirely.
pub async fn directory_sync_detached(
    store: Store,
    cfg: Arc<RuntimeConfig>,
    directory: Option<radmfa_directory::Directory>,
    req: AdminRequest,
) -> Result<SyncReport, AdminError> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminError::Invalid(format!("cannot start the sync runtime: {e}")))?
            .block_on(directory_sync(store, cfg, directory, req))
    })
    .await
    .map_err(|e| AdminError::Invalid(format!("directory sync task failed: {e}")))?
}

/// Runs a directory sync against `store` (the CLI without a server, the
/// control socket, the scheduler).
pub async fn directory_sync(
    store: Store,
    cfg: Arc<RuntimeConfig>,
    directory: Option<radmfa_directory::Directory>,
    req: AdminRequest,
) -> Result<SyncReport, AdminError> {
    let item = sync_item(&req, &cfg)?;
    let dry_run = matches!(req, AdminRequest::DirectorySync { dry_run: true, .. });
    let directory = match directory {
        Some(d) => d,
        None => {
            let dc = cfg.directory.clone().ok_or_else(|| {
                AdminError::Invalid("no [directory] section in the configuration".into())
            })?;
            radmfa_directory::Directory::new(dc).map_err(|e| AdminError::Invalid(e.to_string()))?
        }
    };
    let mailer = match &cfg.mail {
        Some(m) if item.send_enrollment_email => Some(
            crate::mail::Mailer::new(m.clone()).map_err(|e| AdminError::Invalid(e.to_string()))?,
        ),
        None if item.send_enrollment_email => {
            return Err(AdminError::Invalid(
                "sending enrollment mail needs a [mail] section".into(),
            ))
        }
        _ => None,
    };
    Ok(crate::sync::run(store, directory, item, dry_run, mailer).await?)
}

/// A failed sync as an admin error (a read-only store stays one, so the
/// service forwards the request to the primary).
impl From<crate::sync::SyncError> for AdminError {
    fn from(e: crate::sync::SyncError) -> Self {
        match e {
            crate::sync::SyncError::Store(e) => AdminError::Store(e),
            crate::sync::SyncError::Invalid(m) => AdminError::Invalid(m),
        }
    }
}
