//! The peer link's error types: [`PeerError`] for setting it up (certificates,
//! keys, files) and [`ForwardError`] for a forward that failed.

/// Errors of the peer link set-up: certificates, keys, files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// TLS material is invalid or could not be generated.
    #[error("{0}")]
    Tls(String),
    /// A PEM file could not be read or used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Input/output.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardError {
    /// No address is configured for this node id.
    #[error("no peer with node id {0}")]
    UnknownPeer(u16),
    /// The owner could not be reached (connection refused, TLS failure, or
    /// a recent failure still in its back-off period).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// No answer within the time allowed.
    #[error("peer did not answer in time")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("peer connection closed")]
    Closed,
    /// The datagram does not fit in a frame (cannot happen with RADIUS
    /// datagrams, which are at most 4096 bytes).
    #[error("datagram of {0} bytes is too large to forward")]
    PacketTooLarge(usize),
}
