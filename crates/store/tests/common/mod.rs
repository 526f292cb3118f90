//! Shared by the store's integration tests.

use std::path::Path;

use radmfa_store::{Store, StoreError, StoreOptions};

/// Opens a store, waiting out sled's lock release: sled 0.34 frees the
/// directory lock asynchronously after the last handle drops (its I/O pool
/// may hold the file a moment longer), so a reopen right after a drop can
/// briefly see `Locked`.
pub fn open_retry(db: &Path, key: &Path) -> Store {
    let mut tries = 0;
    loop {
        match Store::open(db, key, &StoreOptions::default()) {
            Err(StoreError::Locked { .. }) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

/// `sled::open` of a database a [`Store`] just closed: sled's background
/// threads let go of the file lock a moment after the last handle drops
/// (longer on a loaded machine), so the lock error is retried for 2 s.
#[allow(dead_code)] // used by some of the test binaries that share this module
pub fn sled_open_retry(db: &Path) -> sled::Db {
    let mut tries = 0;
    loop {
        match sled::open(db) {
            Err(sled::Error::Io(e))
                if tries < 100 && e.to_string().contains("could not acquire lock") =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}
