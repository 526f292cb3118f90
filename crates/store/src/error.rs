//! [`StoreError`], the store's one error type. Its own file so that every
//! module can name it without importing the crate root, which re-exports them all.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database directory is already opened by another process (or another
    /// `Store` in this process).
    #[error("database {path} is locked: it is in use by another radmfa process")]
    Locked {
        /// The sled database directory.
        path: PathBuf,
    },
    /// The named record does not exist.
    #[error("{what} not found: {name}")]
    NotFound {
        /// Kind of record ("user", "token", "client").
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// A record with this name exists already.
    #[error("{what} already exists: {name}")]
    AlreadyExists {
        /// Kind of record ("user", "client").
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The encryption key file is missing, unreadable or malformed.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A sealed token seed failed to decrypt: wrong key file, or the record was
    /// tampered with or moved to another user.
    #[error("token seed failed to decrypt (wrong key file or tampered record)")]
    Crypto,
    /// A stored record could not be decoded.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
    /// The caller passed an invalid value (name, secret, parameters).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// sled reported an error.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// This node is a replica (or otherwise may not write): the write must
    /// go to the primary. The message says why.
    #[error("{0}")]
    ReadOnly(String),
    /// A backup file is unusable (corrupt, truncated, not a backup) or a
    /// backup/restore target is in the way.
    #[error("backup {path}: {reason}")]
    Backup {
        /// The backup file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file system operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
