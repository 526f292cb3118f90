//! `[password]`: argon2id cost of new password hashes and the verified
//! credential cache.

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordSection {
    #[serde(default = "default_memory_kib")]
    memory_kib: Spanned<u32>,
    #[serde(default = "default_iterations")]
    iterations: Spanned<u32>,
    #[serde(default = "default_cache_ttl")]
    cache_ttl_secs: u64,
    #[serde(default = "default_cache_entries")]
    cache_max_entries: usize,
}

impl Default for PasswordSection {
    fn default() -> Self {
        PasswordSection {
            memory_kib: default_memory_kib(),
            iterations: default_iterations(),
            cache_ttl_secs: default_cache_ttl(),
            cache_max_entries: default_cache_entries(),
        }
    }
}

fn default_memory_kib() -> Spanned<u32> {
    Spanned::new(0..0, 19456)
}
fn default_iterations() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}
fn default_cache_ttl() -> u64 {
    600
}
fn default_cache_entries() -> usize {
    1_000_000
}

/// The validated `[password]` section.
#[derive(Debug, Clone)]
pub(crate) struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub cache_ttl_secs: u64,
    pub cache_max_entries: usize,
}

impl Section for PasswordSection {
    type Settings = PasswordSettings;

    /// Bounds the argon2id memory (the other ranges: `bounds::BOUNDS`).
    fn validate(self, cx: &mut Ctx<'_>) -> Result<PasswordSettings, ConfigError> {
        let memory = cx.within(&self.memory_kib, 8..=4 * 1024 * 1024, "password.memory_kib")?;
        Ok(PasswordSettings {
            memory_kib: memory,
            iterations: *self.iterations.get_ref(),
            cache_ttl_secs: self.cache_ttl_secs,
            cache_max_entries: self.cache_max_entries,
        })
    }
}
