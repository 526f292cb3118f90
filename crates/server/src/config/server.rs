//! `[server]`: the node's name and id, its data directory and memory bounds.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::context::{Ctx, Section};
use super::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_node_name")]
    node_name: String,
    #[serde(default = "default_node_id")]
    node_id: Spanned<u32>,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    server_ip: Option<String>,
    #[serde(default = "default_cache_mib")]
    store_cache_mib: u64,
    #[serde(default = "default_user_cache")]
    user_cache_entries: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            node_name: default_node_name(),
            node_id: default_node_id(),
            data_dir: default_data_dir(),
            key_file: None,
            server_ip: None,
            store_cache_mib: default_cache_mib(),
            user_cache_entries: default_user_cache(),
        }
    }
}

fn default_node_name() -> String {
    "radmfa-1".to_string()
}
fn default_node_id() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./radmfa-data")
}
/// 32 MiB keeps a node holding a million users under 256 MB resident
/// (DESIGN.md §9; `benches/repl.sh`): sled's cache costs about 1.6 times
/// its figure, and reads it misses come from the OS page cache.
fn default_cache_mib() -> u64 {
    32
}
fn default_user_cache() -> usize {
    100_000
}

/// The validated `[server]` section.
/// (Each field is documented on its [`super::RuntimeConfig`] namesake.)
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub node_name: String,
    pub node_id: u16,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    /// As written; the default comes from the RADIUS listen addresses.
    pub server_ip: Option<String>,
    pub store_cache_bytes: u64,
    pub user_cache_entries: usize,
}

impl Section for ServerSection {
    type Settings = ServerSettings;

    /// Checks the node id and records it and the data directory in `cx`.
    fn validate(self, cx: &mut Ctx<'_>) -> Result<ServerSettings, ConfigError> {
        let node_id = *self.node_id.get_ref();
        let node_id = u16::try_from(node_id)
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| {
                cx.at(
                    self.node_id.span(),
                    format!("node_id must be between 1 and 65535, not {node_id}"),
                )
            })?;
        cx.node_id = node_id;
        cx.data_dir = self.data_dir.clone();
        let key_file = self
            .key_file
            .unwrap_or_else(|| self.data_dir.join("seed.key"));
        Ok(ServerSettings {
            node_name: self.node_name,
            node_id,
            data_dir: self.data_dir,
            key_file,
            server_ip: self.server_ip,
            // Ranges: `bounds::BOUNDS`.
            store_cache_bytes: self.store_cache_mib * 1024 * 1024,
            user_cache_entries: self.user_cache_entries,
        })
    }
}

/// The `[server] data_dir` a configuration text names (else the default),
/// read without validating the rest: `radmfa reload` finds the running
/// server's control socket through it even when the file it asks the server
/// to read does not validate (the server then says why). A file whose TOML
/// does not parse is scanned for a `data_dir = "..."` line.
pub fn data_dir_leniently(text: &str) -> PathBuf {
    let from = |t: &toml::Table| {
        t.get("data_dir")
            .and_then(toml::Value::as_str)
            .map(PathBuf::from)
    };
    let found = match toml::from_str::<toml::Table>(text) {
        Ok(all) => all
            .get("server")
            .and_then(toml::Value::as_table)
            .and_then(from),
        Err(_) => text
            .lines()
            .filter(|l| l.trim_start().starts_with("data_dir"))
            .find_map(|l| {
                toml::from_str::<toml::Table>(l)
                    .ok()
                    .as_ref()
                    .and_then(from)
            }),
    };
    found.unwrap_or_else(default_data_dir)
}
