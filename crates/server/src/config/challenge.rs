//! `[challenge]`: Access-Challenge sessions (lifetime, bound) and the
//! cluster key that signs their State.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChallengeSection {
    #[serde(default = "default_challenge_lifetime")]
    lifetime_secs: Spanned<u64>,
    #[serde(default = "default_max_sessions")]
    max_sessions: usize,
    #[serde(default)]
    cluster_key_file: Option<PathBuf>,
}

impl Default for ChallengeSection {
    fn default() -> Self {
        ChallengeSection {
            lifetime_secs: default_challenge_lifetime(),
            max_sessions: default_max_sessions(),
            cluster_key_file: None,
        }
    }
}

fn default_challenge_lifetime() -> Spanned<u64> {
    Spanned::new(0..0, 120)
}
fn default_max_sessions() -> usize {
    1_000_000
}

/// The validated `[challenge]` section.
#[derive(Debug, Clone)]
pub(crate) struct ChallengeSettings {
    pub lifetime_secs: u64,
    pub max_sessions: usize,
    pub cluster_key_file: PathBuf,
}

impl Section for ChallengeSection {
    type Settings = ChallengeSettings;

    /// Checks the lifetime; the key file defaults to the data directory.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<ChallengeSettings, ConfigError> {
        let lifetime = cx.within(&self.lifetime_secs, 10..=3600, "challenge.lifetime_secs")?;
        Ok(ChallengeSettings {
            lifetime_secs: lifetime,
            // Range: `bounds::BOUNDS`.
            max_sessions: self.max_sessions,
            cluster_key_file: self
                .cluster_key_file
                .unwrap_or_else(|| cx.data_dir.join("cluster.key")),
        })
    }
}
