//! The located configuration error and a remembered place in the file. A
//! leaf: every other configuration file, and the load step that runs after
//! the text is gone, build their errors from these.

use std::fmt;

/// A configuration error, located in its source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Name of the file (or `<embedded default>`).
    pub origin: String,
    /// 1-based line; 0 when the error is not tied to a place in the file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, in words an admin understands.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.reason)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, self.line, self.column, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A place in the file, kept for errors found after the text is gone (a key
/// file that cannot be read is reported at the key that names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    origin: String,
    line: usize,
    column: usize,
}

impl Place {
    /// Line and column (1-based; 0, 0 for no place) of `origin`.
    pub(crate) fn new(origin: &str, line: usize, column: usize) -> Place {
        Place {
            origin: origin.to_string(),
            line,
            column,
        }
    }

    /// The error `reason` at this place.
    pub fn error(&self, reason: String) -> ConfigError {
        ConfigError {
            origin: self.origin.clone(),
            line: self.line,
            column: self.column,
            reason,
        }
    }
}
