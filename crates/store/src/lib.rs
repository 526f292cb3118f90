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
mod error;
mod inbox;
mod journal;
mod model;
mod password;
mod private;
mod schema;
mod store;

pub mod repl;

pub use admin_tokens::{admin_token_hash, AdminToken};
pub use backup::{BackupInfo, BACKUP_MAGIC};
pub use changelog::StoreLog;
pub use crypto::{check_key_file, Secret};
pub use error::StoreError;
pub use journal::JournalCursor;
pub use model::{
    check_language, check_user_text, endpoint_host, is_unsafe_char, validate_pin, validate_serial,
    AccountingInfo, AuditFilter, AuditRecord, Client, DisabledReason, Method, PoolEntry, PoolToken,
    PushDevice, SealedPin, SyncedFields, Token, TokenAlgorithm, TokenKind, User, LANGUAGES,
    MAX_PUSH_DEVICES, PIN_LEN,
};
pub use password::{hash_password, needs_rehash, verify_password, PasswordParams};
pub use schema::{
    TREE_ADMIN_TOKENS, TREE_CLIENTS, TREE_OTP_STATE, TREE_TOKENS, TREE_TOKEN_POOL, TREE_USERS,
};
pub use store::{Store, StoreOptions};
