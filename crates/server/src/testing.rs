//! Helpers for this crate's unit tests.

use radmfa_store::{Store, StoreOptions};

/// A store in a fresh temporary directory (with its own seed key), without
/// background flushes. Keep the directory for as long as the store.
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        &dir.path().join("db"),
        &dir.path().join("seed.key"),
        &StoreOptions {
            flush_every_ms: None,
            ..StoreOptions::default()
        },
    )
    .expect("open store");
    (dir, store)
}
