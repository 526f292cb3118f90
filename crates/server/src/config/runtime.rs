//! [`RuntimeConfig`]: the typed configuration the server runs with, built
//! from the validated sections by [`super::parse`], and the few values
//! derived from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::api::ApiSettings;
use super::client::StaticClient;
use super::cluster::ClusterSettings;
use super::i18n::I18nSettings;
use super::limits::LimitSettings;
use super::log::LogFormat;
use super::policy::Policy;
use super::portal::PortalSettings;
use super::push::PushSettings;
use super::radsec::RadsecSettings;
use super::sms::SmsSettings;
use super::sync::SyncItem;

/// The typed configuration the server runs with.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where the configuration came from.
    pub origin: String,
    /// Node name (audit log).
    pub node_name: String,
    /// Node id (State tokens).
    pub node_id: u16,
    /// Address recorded as "server IP" in the audit log.
    pub server_ip: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Seed encryption key file.
    pub key_file: PathBuf,
    /// Cluster key file (State MAC).
    pub cluster_key_file: PathBuf,
    /// sled cache size in bytes.
    pub store_cache_bytes: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing env-filter syntax).
    pub log_level: String,
    /// UDP addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Lifetime of entries in the duplicate-detection cache.
    pub duplicate_window_secs: u64,
    /// Bound on answered entries kept for duplicate detection.
    pub duplicate_cache_entries: usize,
    /// Worker threads (0 = one per available core).
    pub workers: usize,
    /// Requests processed at once per listener before new ones wait.
    pub max_in_flight: usize,
    /// argon2id memory for new password hashes.
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new password hashes.
    pub argon2_iterations: u32,
    /// Verified-credential cache lifetime (0 disables it).
    pub password_cache_ttl_secs: u64,
    /// Verified-credential cache size bound.
    pub password_cache_max_entries: usize,
    /// Decoded users kept in memory.
    pub user_cache_entries: usize,
    /// Issuer shown in authenticator apps.
    pub otp_issuer: String,
    /// TOTP drift window in steps.
    pub otp_window: u64,
    /// Default digits for new tokens and the inline split.
    pub otp_digits: u8,
    /// HOTP look-ahead.
    pub hotp_look_ahead: u64,
    /// Challenge session lifetime.
    pub challenge_lifetime_secs: u64,
    /// Bound on concurrent challenge sessions.
    pub challenge_max_sessions: usize,
    /// The cloud gateway (SMS, calls, push), when configured.
    pub gateway: Option<radmfa_gateway::GatewayConfig>,
    /// How long an out-of-band verification (two-way SMS, call, push) may take.
    pub verdict_timeout_secs: u64,
    /// Callback URL, fraud key and two-way SMS texts of the out-of-band methods.
    pub oob: super::gateway::OobSettings,
    /// One-way SMS settings.
    pub sms: SmsSettings,
    /// The peer link, when this node is part of a cluster.
    pub cluster: Option<ClusterSettings>,
    /// Upstream RADIUS groups by name (first factor `radius`).
    pub upstreams: HashMap<String, crate::upstream::UpstreamConfig>,
    /// Reply attributes per group, in configuration order.
    pub group_attributes: Vec<(String, Vec<radmfa_radius::Attribute>)>,
    /// The directory (first factor `ldap`, import and sync).
    pub directory: Option<radmfa_directory::DirectoryConfig>,
    /// Scheduled directory sync items.
    pub sync: Vec<SyncItem>,
    /// SMTP relay for enrollment mail.
    pub mail: Option<crate::mail::MailConfig>,
    /// Policies by name.
    pub policies: HashMap<String, Policy>,
    /// Static clients.
    pub clients: Vec<StaticClient>,
    /// The user self-service portal, when configured.
    pub portal: Option<PortalSettings>,
    /// The admin HTTPS API, when configured.
    pub api: Option<ApiSettings>,
    /// Audit journal segments older than this many days are removed.
    pub audit_retention_days: Option<u64>,
    /// The RADIUS/TLS listener, when configured.
    pub radsec: Option<RadsecSettings>,
    /// Rate limits and lockout (`[limits]`).
    pub limits: LimitSettings,
    /// Web Push approvals (`[push]`).
    pub push: PushSettings,
    /// Languages: the default one and edited translation files.
    pub i18n: I18nSettings,
}

impl RuntimeConfig {
    /// The named policy, or the default one.
    pub fn policy(&self, name: &str) -> &Policy {
        match self.policies.get(name) {
            Some(p) => p,
            None => &self.policies["default"],
        }
    }

    /// argon2id parameters for new password hashes.
    pub fn password_params(&self) -> radmfa_store::PasswordParams {
        radmfa_store::PasswordParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: 1,
        }
    }

    /// The sled database directory.
    pub fn db_dir(&self) -> PathBuf {
        self.data_dir.join("db")
    }

    /// The control socket of a running server.
    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
}
