//! What the directory's operations return when they fail: [`AuthFailure`] for the
//! first factor (each variant an audit reason), [`DirectoryError`] for look-ups
//! and searches, and the internal [`Failed`] of a try-every-server operation.

use crate::conn::OpError;

/// Why a first-factor authentication failed. [`AuthFailure::reason`] is the audit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The password is wrong (or empty).
    #[error("wrong password")]
    WrongPassword,
    /// No such user in the directory.
    #[error("unknown user")]
    UnknownUser,
    /// The account is disabled (or not permitted to log on now / here).
    #[error("account disabled")]
    AccountDisabled,
    /// The account is locked out.
    #[error("account locked")]
    AccountLocked,
    /// The account has expired.
    #[error("account expired")]
    AccountExpired,
    /// The password has expired or must be changed.
    #[error("password expired")]
    PasswordExpired,
    /// Every server failed or timed out.
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    /// The directory answered with an error that says nothing about the user
    /// (refused service account, ambiguous login, unexpected result code, malformed reply).
    #[error("directory error: {0}")]
    Directory(String),
}

impl AuthFailure {
    /// The stable audit-log reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::AccountDisabled => "account_disabled",
            AuthFailure::AccountLocked => "account_locked",
            AuthFailure::AccountExpired => "account_expired",
            AuthFailure::PasswordExpired => "password_expired",
            AuthFailure::Unreachable(_) => "directory_unreachable",
            AuthFailure::Directory(_) => "directory_error",
        }
    }
}

/// Errors of look-ups and searches (and of configuration).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Every server failed or timed out.
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    /// The configuration or a parameter is invalid.
    #[error("directory configuration: {0}")]
    Config(String),
    /// The server answered with an error, or with something unusable.
    #[error("directory: {0}")]
    Ldap(String),
    /// The service account's bind was refused on every reachable server.
    #[error("directory service account: {0}")]
    ServiceBind(String),
}

/// Outcome of trying every server.
#[derive(Debug)]
pub(crate) enum Failed {
    /// No server could run the operation.
    All {
        errors: Vec<String>,
        service_bind: bool,
    },
    /// A server answered with a definitive error.
    Op(OpError),
}

impl From<Failed> for AuthFailure {
    fn from(f: Failed) -> Self {
        match f {
            Failed::All {
                errors,
                service_bind: true,
            } => AuthFailure::Directory(errors.join("; ")),
            Failed::All { errors, .. } => AuthFailure::Unreachable(errors.join("; ")),
            Failed::Op(e) => AuthFailure::Directory(e.to_string()),
        }
    }
}

impl From<Failed> for DirectoryError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::All {
                errors,
                service_bind: true,
            } => DirectoryError::ServiceBind(errors.join("; ")),
            Failed::All { errors, .. } => DirectoryError::Unreachable(errors.join("; ")),
            Failed::Op(OpError::Config(m)) => DirectoryError::Config(m),
            Failed::Op(e) => DirectoryError::Ldap(e.to_string()),
        }
    }
}
