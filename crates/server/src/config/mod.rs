//! Configuration: serde structs with `deny_unknown_fields` and named defaults,
//! validated at start-up into a typed [`RuntimeConfig`]. Every error names the
//! file, line and column it comes from.
//!
//! One file per section, each implementing the one validation signature
//! [`context::Section`]; `parse` runs them in order and builds the
//! [`RuntimeConfig`] (`runtime`). Files the configuration names for their
//! content (secrets, CA certificates) are read afterwards, by the load step
//! (`files`), so validating text never touches the disk. This module only
//! declares and re-exports: nothing here depends on the rest of the server
//! beyond leaf types (secrets, the upstream, mail and dictionary types).

mod api;
mod bounds;
mod challenge;
mod client;
mod cluster;
mod context;
mod directory;
mod error;
mod file;
mod files;
mod gateway;
mod group_attributes;
mod i18n;
mod keys;
mod limits;
mod log;
mod mail;
mod otp;
mod parse;
mod password;
mod policy;
mod portal;
mod push;
mod radius;
mod radsec;
mod runtime;
mod server;
mod sms;
mod sync;
mod upstream;

pub use api::{ApiSection, ApiSettings};
pub use client::{parse_cidr, StaticClient};
pub use cluster::{ClusterSettings, InitialRole};
pub use error::ConfigError;
pub use file::FileConfig;
pub use files::MIN_SECRET_LEN;
pub use gateway::OobSettings;
pub use i18n::I18nSettings;
pub use keys::{changes, differing_sections, keys, section_digests, Apply, Key, Scope};
pub use limits::{LimitSettings, LimitsSection, Rate};
pub use log::LogFormat;
pub use parse::ParsedConfig;
pub use policy::{Accounting, FailMode, FirstFactor, OtpMode, Policy, Unenrolled};
pub use portal::{PortalSection, PortalSettings};
pub use push::PushSettings;
pub use radsec::{RadsecClient, RadsecSection, RadsecSettings};
pub use runtime::RuntimeConfig;
pub use server::data_dir_leniently;
pub use sms::SmsSettings;
pub use sync::{FieldMode, FieldModes, SyncItem};

#[cfg(test)]
mod tests;
