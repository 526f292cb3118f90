//! Owner-only directories and files for everything the store writes.
//!
//! The database, the audit journal and backups hold argon2 hashes, sealed
//! seeds, client shared secrets and who signed in from where: no other local
//! user may read them. Modes are given at creation (0700 directories, 0600
//! files), so the result does not depend on the caller's umask (which can
//! only remove bits). sled creates its own files inside the database
//! directory; that directory is made 0700 before sled opens it.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the directories the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of the files the store creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// `fs::create_dir_all` with mode 0700 for every directory it creates.
pub(crate) fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut b = DirBuilder::new();
    b.recursive(true);
    set_dir_mode(&mut b);
    b.create(path)
}

/// `fs::create_dir` with mode 0700.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    let mut b = DirBuilder::new();
    set_dir_mode(&mut b);
    b.create(path)
}

/// `OpenOptions` that create files with mode 0600.
pub(crate) fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// `File::create` with mode 0600.
pub(crate) fn create_file(path: &Path) -> io::Result<std::fs::File> {
    open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn set_dir_mode(b: &mut DirBuilder) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
}
