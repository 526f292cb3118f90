//! radmfa's embedded store (DESIGN.md §6): users, tokens and RADIUS clients,
//! kept in a [sled] database, and the authentication audit log, kept in an
//! append-only journal beside it.
//!
//! * Token seeds are encrypted at rest with ChaCha20-Poly1305 under a 32-byte key
//!   kept in a key file **outside** the database directory (see [`Store::open`]
//!   for the key file format). The user name is the AAD, so a sealed seed copied
//!   under another user's key does not decrypt.
//! * Every administrative write (users, tokens, clients) goes through one private
//!   sled transaction (`Store::write`) and is flushed to disk before it returns.
//!   It appends one replication changelog entry per change in that same
//!   transaction (see [`StoreLog`] for the changelog and the replication
//!   storage); on a replica ([`Store::set_repl_state`]) it fails with
//!   [`StoreError::ReadOnly`].
//! * Online backup and offline restore: [`Store::backup`], [`Store::restore`]
//!   (the file format is described at [`Store::backup`]).
//! * Hot-path writes ([`Store::advance_otp_state`], [`Store::append_audit`],
//!   [`Store::append_audit_batch`]) are *not* flushed individually: background
//!   flushers (sled's and the journal's, `StoreOptions::flush_every_ms`) make
//!   them durable within that interval, and [`Store::flush`] forces it.
//! * The audit journal lives in `<db dir>.audit/` (e.g. `data/db.audit/` for
//!   `data/db`; see [`Store::audit_dir`]): segment files
//!   `<start ms, 20 digits>-<seq, 6+ digits>.jsonl`, one JSON [`AuditRecord`]
//!   per line; a new segment starts with each UTC day and after 64 MiB.
//!   `segments.idx` caches each segment's size, record count and time range so
//!   that queries skip segments. An append serializes outside the lock and
//!   copies into a 64 KiB buffer under it; a torn last line left by a crash is
//!   cut off at open ([`Store::audit_torn_bytes`]); [`Store::trim_audit`]
//!   removes whole segments. Backups of the audit log copy that directory
//!   (segments other than the newest are never written again).

mod admin_tokens;
mod backup;
mod changelog;
mod crypto;
mod journal;
mod model;
mod password;
mod private;
mod store;

use std::path::PathBuf;

pub mod repl;

pub use admin_tokens::{admin_token_hash, AdminToken};
pub use backup::{BackupInfo, BACKUP_MAGIC};
pub use changelog::{
    StoreLog, TREE_ADMIN_TOKENS, TREE_CLIENTS, TREE_OTP_STATE, TREE_TOKENS, TREE_USERS,
};
pub use crypto::{check_key_file, Secret};
pub use model::{
    check_user_text, is_unsafe_char, validate_pin, AuditFilter, AuditRecord, Client,
    DisabledReason, Method, SealedPin, SyncedFields, Token, TokenAlgorithm, TokenKind, User,
    PIN_LEN,
};
pub use password::{hash_password, needs_rehash, verify_password, PasswordParams};
pub use store::{Store, StoreOptions};

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
