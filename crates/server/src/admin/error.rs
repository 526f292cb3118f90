//! Why an admin request failed, one enum for every caller (CLI, control
//! socket, API, portal), and the one wording of a missing user.

use radmfa_store::StoreError;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Needs a running server.
    #[error("{0}")]
    NeedsServer(String),
    /// A write on a replica that could not be forwarded to the primary.
    #[error("{0}")]
    ReadOnly(String),
}

/// The one wording of a missing user, everywhere: "user not found: NAME".
pub fn user_not_found(name: &str) -> AdminError {
    AdminError::Store(StoreError::NotFound {
        what: "user",
        name: name.to_string(),
    })
}
