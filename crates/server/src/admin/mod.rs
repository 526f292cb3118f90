//! Admin operations. The CLI runs them against the store directly when no
//! server holds it, or sends them to the running server's control socket;
//! the HTTP API, the portal and replicas (over the peer link) map onto the
//! same requests.
//!
//! * [`request`]: the vocabulary ([`AdminRequest`]) and each request's
//!   [`Effect`] on the running node's caches.
//! * [`service`]: [`Admin`], which runs a request for a running node through
//!   [`AdminHooks`] (cache refresh, counters, replication, directory),
//!   forwarding to the primary from a replica ([`forward`]).
//! * [`execute`]: the table of operations on the store; one file per
//!   resource: [`users`], [`devices`], [`import`] (CSV: [`import_csv`]),
//!   [`tokens`], [`pool`] (imported tokens by serial), [`clients`],
//!   [`admin_tokens`], [`reports`], [`cluster`], [`directory`].
//! * [`enroll`]: the enrollment mail (and generated initial PIN) around
//!   a user add or import that asks for it.
//! * [`results`]: the typed answers; [`answer`]: their envelope on the
//!   control socket and the peer link.

pub mod actor;
pub mod admin_tokens;
pub mod answer;
pub mod clients;
pub mod cluster;
pub mod context;
pub mod devices;
pub mod directory;
pub mod enroll;
pub mod error;
pub mod execute;
pub mod forward;
pub mod import;
pub mod import_csv;
pub mod pool;
pub mod reports;
pub mod request;
pub mod results;
pub mod service;
pub mod summary;
pub mod tokens;
pub mod users;

pub use actor::Actor;
pub use answer::Answer;
pub use context::Ctx;
pub use directory::{directory_sync, directory_sync_detached, sync_item};
pub use enroll::execute_mailing;
pub use error::AdminError;
pub use execute::execute;
pub use forward::forward_to_primary;
pub use reports::{AuditReport, ACCOUNTING_FIELDS, REPORT_FIELDS};
pub use request::{
    AdminRequest, Effect, ImportRow, ImportedToken, NewClient, NewDevice, NewToken, NewUser,
    TokenImport, UserChange,
};
pub use results::{
    algorithm_name, disabled_reason, AccountingRow, AdminTokenCreated, AdminTokenView, BackupView,
    ClientAdded, ClientSource, ClientView, Deleted, DeviceList, DeviceRemoved, DeviceView,
    Enrolled, EnrollmentMail, ImportMail, Imported, Locked, OtpAdvanced, PasswordChanged, PinMode,
    PinSet, PoolChanged, Resynced, Revoked, TokenDeleted, TokenSummary, TokenView, TokensImported,
    Unlocked, UserAdded, UserEnabled, UserView,
};
pub use service::{Admin, AdminHooks};
pub use tokens::HOTP_RESYNC_SEARCH;
