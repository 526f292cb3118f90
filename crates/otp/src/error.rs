//! The crate's error type.

use thiserror::Error;

/// Why a State token was refused.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum StateError {
    /// The token does not have the length its version requires.
    #[error("state has the wrong length")]
    BadLength,
    /// The token names a format version this node does not know.
    #[error("unknown state version {0}")]
    BadVersion(u8),
    /// The MAC does not match: forged, corrupted, or sealed under another key.
    #[error("state MAC does not verify")]
    BadMac,
}

/// Every error the OTP crate reports.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OtpError {
    /// The code is not made of exactly the expected number of ASCII digits.
    #[error("code is malformed (not digits or wrong length)")]
    Malformed,
    /// The code matches no step/counter in the accepted range.
    #[error("code does not match")]
    Mismatch,
    /// The code is valid for a time step that was already used (`step <= last_used_step`).
    #[error("code for time step {step} was already used")]
    Replayed {
        /// The time step the code belongs to.
        step: u64,
    },
    /// The algorithm name is not one of SHA1, SHA256, SHA512.
    #[error("unknown OTP algorithm {0:?}")]
    BadAlgorithm(String),
    /// The secret is not valid base32, or is empty.
    #[error("secret is not valid base32")]
    BadSecret,
    /// A parameter (digits, period, window, key length...) is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// The session table is full even after expired sessions were purged.
    #[error("too many challenge sessions")]
    SessionsFull,
    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed")]
    RandomUnavailable,
    /// A State token was refused.
    #[error("bad state: {0}")]
    BadState(#[from] StateError),
}
