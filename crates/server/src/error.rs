//! The server crate's one error type: why a node could not start or stopped.
//! A leaf of its own so that every module (listener binding, start-up) can
//! name it without importing the crate root.

use crate::config::ConfigError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store.
    #[error("store: {0}")]
    Store(#[from] radmfa_store::StoreError),
    /// A key file.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Sockets.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A RADIUS UDP address could not be bound (the address and the reason).
    #[error("{0}")]
    Listen(String),
    /// The cloud gateway client could not be built.
    #[error("{0}")]
    Gateway(String),
    /// The peer link could not be set up.
    #[error("{0}")]
    Peer(String),
    /// The user portal could not be set up.
    #[error("{0}")]
    Portal(String),
    /// The admin HTTPS API could not be set up.
    #[error("{0}")]
    Api(String),
    /// The RADIUS/TLS listener could not be set up.
    #[error("{0}")]
    Radsec(String),
}

/// Runs `f` on a configured section (`settings`, when present); its error
/// becomes `wrap("{origin}: [{section}]: {error}")`, the way every
/// listener's start-up error names the configuration file and the section.
pub(crate) fn for_section<S, T, E: std::fmt::Display>(
    origin: &str,
    section: &str,
    settings: Option<&S>,
    wrap: fn(String) -> ServerError,
    f: impl FnOnce(&S) -> Result<T, E>,
) -> Result<Option<T>, ServerError> {
    settings
        .map(f)
        .transpose()
        .map_err(|e| wrap(format!("{origin}: [{section}]: {e}")))
}
