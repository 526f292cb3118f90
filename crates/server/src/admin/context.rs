//! What every admin operation runs against: the store, the configuration
//! and the time, read once per request from the service's clock.

use radmfa_store::Store;

use crate::config::RuntimeConfig;

/// The store, configuration and time one admin operation runs with.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The store.
    pub store: &'a Store,
    /// The configuration.
    pub config: &'a RuntimeConfig,
    /// Now (unix seconds).
    pub now: u64,
}
