//! radmfa-directory: Active Directory / LDAP first factor, groups and user search.
//!
//! - **First factor** ([`Directory::authenticate`]): the service account finds the user
//!   (AD: `sAMAccountName`, UPN or `DOMAIN\user`; LDAP: a search filter), the account state
//!   is checked, then the user's own DN binds on a fresh connection. Every outcome has a
//!   stable audit reason ([`AuthFailure::reason`]).
//! - **Groups**: AD uses `LDAP_MATCHING_RULE_IN_CHAIN` (1.2.840.113556.1.4.1941) and falls
//!   back to walking `memberOf`; LDAP walks `memberOf` and reverse `member`/`uniqueMember`
//!   look-ups, bounded by [`DirectoryConfig::max_group_depth`] and cycle-safe.
//! - **Import / sync** ([`Directory::search_users`]): RFC 2696 paged searches.
//!
//! Connections: several servers tried in order with failover (a failed server is tried
//! last for [`DOWN_BACKOFF`]); pooled service-account connections; `ldap://`, StartTLS or
//! `ldaps://` with rustls (ring), trusting the system store (rustls-native-certs) plus an
//! optional extra CA. Every connect and operation runs under [`DirectoryConfig::timeout`].
//!
//! Passwords never reach a log or an error message. Server data is parsed without panics;
//! the LDAP library's own decoder runs in separate tasks, so a malformed PDU that it
//! rejects by panicking is contained and reported as an error.

mod ad;
mod config;
mod conn;
mod directory;
mod entry;
mod error;
mod filter;

pub use config::{
    DirectoryConfig, DirectoryKind, Secret, TlsMode, AD_DEFAULT_USER_FILTER, DEFAULT_PAGE_SIZE,
    DOWN_BACKOFF, LDAP_DEFAULT_USER_FILTER,
};
pub use directory::{DirUser, Directory};
pub use error::{AuthFailure, DirectoryError};
pub use filter::escape_filter_value;

#[cfg(test)]
mod tests;
