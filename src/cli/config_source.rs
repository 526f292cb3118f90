//! Which configuration file a command reads. The order, first match wins:
//! `--config FILE`, the `RADMFA_CONFIG` environment variable (clap reads
//! both into one option), `/etc/radmfa/radmfa.toml` when it exists (where
//! the Debian package installs it, so `radmfa user list` on a packaged
//! server needs no option), and last the embedded default
//! `config/radmfa.toml`. Kept apart from `main` so the order is decided in
//! one place and can be tested without touching `/etc`.

use std::path::{Path, PathBuf};

/// Where the Debian package installs the configuration (a conffile).
pub const SYSTEM_CONFIG: &str = "/etc/radmfa/radmfa.toml";

/// The file to read: the one named on the command line or in the
/// environment, else `system` unless it is known not to exist; `None`
/// means the embedded default. A `system` path that cannot even be looked
/// at (a directory the caller may not search) counts as present, so the
/// caller gets "permission denied" on it rather than a silent switch to the
/// embedded default and a store in the current directory.
pub fn resolve(given: Option<PathBuf>, system: &Path) -> Option<PathBuf> {
    given.or_else(|| match system.try_exists() {
        Ok(false) => None,
        Ok(true) | Err(_) => Some(system.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_file_wins_then_system_file_then_embedded_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let system = dir.path().join("radmfa.toml");
        let named = dir.path().join("other.toml");
        assert_eq!(resolve(None, &system), None, "no file: embedded default");
        std::fs::write(&system, "").expect("write");
        assert_eq!(resolve(None, &system), Some(system.clone()));
        assert_eq!(resolve(Some(named.clone()), &system), Some(named));
    }
}
