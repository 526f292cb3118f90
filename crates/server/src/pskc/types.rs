//! What a PSKC container parses into, and how it fails. A leaf file so
//! the parser and the crypto both use it without using each other.

use radmfa_store::PoolToken;

/// Why a container does not import. Nothing is imported on any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PskcError {
    /// Not well-formed XML.
    #[error("not a PSKC document: {0}")]
    Xml(String),
    /// Well-formed, but not what RFC 6030 allows (or a value out of range).
    #[error("{0}")]
    Invalid(String),
    /// Something RFC 6030 allows that this importer does not do.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Encrypted values, but no key or password was given.
    #[error("the container is encrypted: give {0}")]
    NeedKey(&'static str),
    /// A value's MAC does not match: wrong key or password, or a damaged file.
    #[error("the MAC of an encrypted value does not match: wrong password or pre-shared key, or a damaged file")]
    Mac,
    /// Decryption failed.
    #[error("cannot decrypt: {0} (wrong password or pre-shared key?)")]
    Decrypt(String),
}

/// One OTP token from a container.
#[derive(Clone, Debug)]
pub struct PskcToken {
    /// The token as the pool keeps it: the serial (the device's `SerialNo`,
    /// with `/` and the key's `Id` when one device holds several keys, else
    /// the key's `Id`), `Manufacturer`, HOTP `Counter` (0 by default), and
    /// the token: kind from the `Algorithm` URI, hash from `Suite` (SHA-1
    /// by default), digits from `ResponseFormat Length`, period from
    /// `TimeInterval` (30 by default), the seed; `created` is 0.
    pub pool: PoolToken,
    /// TOTP `TimeDrift` in intervals (0 by default).
    pub time_drift: i64,
    /// `UserId` of the key (or of its device), if any.
    pub user_id: Option<String>,
}

/// A parsed container.
#[derive(Debug, Default)]
pub struct PskcFile {
    /// The OTP tokens, in document order.
    pub tokens: Vec<PskcToken>,
    /// Keys that are not OTP tokens (a PIN, a key without a secret), with
    /// why they were left out.
    pub skipped: Vec<String>,
}
