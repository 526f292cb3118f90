//! `[log]`: log format and filter, and how long the audit journal is kept.

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSection {
    #[serde(default = "default_log_format")]
    format: LogFormat,
    #[serde(default = "default_log_level")]
    level: String,
    #[serde(default)]
    audit_retention_days: Option<Spanned<u64>>,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: default_log_format(),
            level: default_log_level(),
            audit_retention_days: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

fn default_log_format() -> LogFormat {
    LogFormat::Human
}
fn default_log_level() -> String {
    "info".to_string()
}

/// The validated `[log]` section.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub format: LogFormat,
    pub level: String,
    pub audit_retention_days: Option<u64>,
}

impl Section for LogSection {
    type Settings = LogSettings;

    /// Nothing to check beyond the types and `bounds::BOUNDS`.
    fn validate(self, _cx: &mut Ctx<'_>) -> Result<LogSettings, ConfigError> {
        Ok(LogSettings {
            format: self.format,
            level: self.level,
            // Range (at least 1 day): `bounds::BOUNDS`.
            audit_retention_days: self.audit_retention_days.map(|d| d.into_inner()),
        })
    }
}
