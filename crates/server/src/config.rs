//! Configuration: serde structs with `deny_unknown_fields` and named defaults,
//! validated at start-up into a typed [`RuntimeConfig`]. Every error names the
//! file, line and column it comes from.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::secret::SharedSecret;

mod bounds;

/// Shortest shared secret accepted for a RADIUS client or upstream (the
/// admin CLI and API ask the same).
pub const MIN_SECRET_LEN: usize = 8;

/// A configuration error, located in its source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Name of the file (or `<embedded default>`).
    pub origin: String,
    /// 1-based line; 0 when the error is not tied to a place in the file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, in words an admin understands.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.reason)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, self.line, self.column, self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    radius: RadiusSection,
    #[serde(default)]
    password: PasswordSection,
    #[serde(default)]
    otp: OtpSection,
    #[serde(default)]
    challenge: ChallengeSection,
    #[serde(default)]
    gateway: Option<Spanned<GatewaySection>>,
    #[serde(default)]
    sms: SmsSection,
    #[serde(default)]
    cluster: Option<Spanned<ClusterSection>>,
    #[serde(default)]
    upstream: Vec<UpstreamSection>,
    #[serde(default)]
    directory: Option<Spanned<DirectorySection>>,
    #[serde(default)]
    sync: Vec<SyncSection>,
    #[serde(default)]
    mail: Option<Spanned<MailSection>>,
    #[serde(default)]
    group_attributes: Vec<GroupAttributesSection>,
    #[serde(default)]
    policy: Vec<PolicySection>,
    #[serde(default)]
    client: Vec<ClientSection>,
    #[serde(default)]
    portal: Option<Spanned<crate::portal::PortalSection>>,
    api: Option<Spanned<crate::api::config::ApiSection>>,
    radsec: Option<Spanned<crate::radsec::RadsecSection>>,
    #[serde(default)]
    limits: crate::limits::LimitsSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RadiusSection {
    #[serde(default = "default_listen")]
    listen: Spanned<Vec<String>>,
    #[serde(default = "default_duplicate_window")]
    duplicate_window_secs: u64,
    #[serde(default = "default_duplicate_entries")]
    duplicate_cache_entries: usize,
    #[serde(default)]
    workers: usize,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
}

impl Default for RadiusSection {
    fn default() -> Self {
        RadiusSection {
            listen: default_listen(),
            duplicate_window_secs: default_duplicate_window(),
            duplicate_cache_entries: default_duplicate_entries(),
            workers: 0,
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_listen() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["0.0.0.0:1812".to_string()])
}
fn default_duplicate_window() -> u64 {
    10
}
fn default_duplicate_entries() -> usize {
    250_000
}
fn default_max_in_flight() -> usize {
    4096
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordSection {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtpSection {
    #[serde(default = "default_issuer")]
    issuer: String,
    #[serde(default = "default_window")]
    window: Spanned<u64>,
    #[serde(default = "default_digits")]
    digits: Spanned<u8>,
    #[serde(default = "default_hotp_look_ahead")]
    hotp_look_ahead: u64,
}

impl Default for OtpSection {
    fn default() -> Self {
        OtpSection {
            issuer: default_issuer(),
            window: default_window(),
            digits: default_digits(),
            hotp_look_ahead: default_hotp_look_ahead(),
        }
    }
}

fn default_issuer() -> String {
    "radmfa".to_string()
}
fn default_window() -> Spanned<u64> {
    Spanned::new(0..0, 1)
}
fn default_digits() -> Spanned<u8> {
    Spanned::new(0..0, 6)
}
fn default_hotp_look_ahead() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeSection {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    #[serde(default = "default_provider")]
    provider: GatewayProvider,
    url: String,
    #[serde(default)]
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "default_gateway_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_gateway_retries")]
    retries: u32,
    #[serde(default)]
    send_names: bool,
    #[serde(default)]
    send_email: bool,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    from_number: String,
    #[serde(default = "default_verdict_timeout")]
    verdict_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum GatewayProvider {
    Radmfa,
    Twilio,
}

fn default_provider() -> GatewayProvider {
    GatewayProvider::Radmfa
}
fn default_gateway_timeout() -> u64 {
    5000
}
fn default_gateway_retries() -> u32 {
    2
}
fn default_verdict_timeout() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSection {
    name: Spanned<String>,
    servers: Spanned<Vec<String>>,
    #[serde(default)]
    secret: Option<Spanned<String>>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    #[serde(default = "default_upstream_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_upstream_retries")]
    retries: u32,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
}

fn default_upstream_timeout() -> u64 {
    3000
}
fn default_upstream_retries() -> u32 {
    1
}
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DirectoryKindName {
    Ldap,
    Ad,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DirectoryTls {
    None,
    Starttls,
    Ldaps,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectorySection {
    kind: DirectoryKindName,
    servers: Vec<String>,
    #[serde(default = "default_directory_tls")]
    tls: DirectoryTls,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    bind_dn: String,
    #[serde(default)]
    bind_password_file: Option<PathBuf>,
    base_dn: String,
    #[serde(default)]
    user_filter: Option<String>,
    #[serde(default)]
    login_attr: Option<String>,
    #[serde(default)]
    display_name_attr: Option<String>,
    #[serde(default)]
    email_attr: Option<String>,
    #[serde(default)]
    phone_attr: Option<String>,
    #[serde(default)]
    disabled_filter: Option<String>,
    #[serde(default = "default_directory_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_directory_pool")]
    pool_size: usize,
    #[serde(default = "default_group_depth")]
    max_group_depth: usize,
}

fn default_directory_tls() -> DirectoryTls {
    DirectoryTls::None
}
fn default_directory_timeout() -> u64 {
    5000
}
fn default_directory_pool() -> usize {
    4
}
fn default_group_depth() -> usize {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncSection {
    name: Spanned<String>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default = "default_sync_method")]
    method: String,
    #[serde(default)]
    language: String,
    #[serde(default = "default_sync_interval")]
    interval_secs: Spanned<u64>,
    #[serde(default)]
    send_enrollment_email: bool,
    #[serde(default)]
    fields: crate::sync::FieldModes,
}

fn default_sync_method() -> String {
    "totp".into()
}
fn default_sync_interval() -> Spanned<u64> {
    Spanned::new(0..0, 3600)
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum MailTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailSection {
    host: String,
    #[serde(default = "default_mail_port")]
    port: u16,
    #[serde(default = "default_mail_tls")]
    security: MailTls,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    from: String,
    #[serde(default)]
    portal_url: String,
    #[serde(default)]
    templates_dir: Option<PathBuf>,
    #[serde(default = "default_mail_language")]
    default_language: String,
    #[serde(default = "default_mail_timeout")]
    timeout_ms: u64,
}

fn default_mail_port() -> u16 {
    587
}
fn default_mail_tls() -> MailTls {
    MailTls::Starttls
}
fn default_mail_language() -> String {
    "en".into()
}
fn default_mail_timeout() -> u64 {
    10_000
}

/// A scheduled directory sync item (and the shape of a one-off import).
#[derive(Debug, Clone)]
pub struct SyncItem {
    /// Name; records it manages carry `source = "ldap:NAME"`.
    pub name: String,
    /// Search base (default: the directory's base DN).
    pub base: Option<String>,
    /// LDAP filter for the users.
    pub filter: Option<String>,
    /// Or: the (nested) members of this group.
    pub group: Option<String>,
    /// Method of new users.
    pub method: radmfa_store::Method,
    /// Language of new users.
    pub language: String,
    /// Time between runs (`None` for a one-off import).
    pub interval: Option<std::time::Duration>,
    /// Mail new users their enrollment instructions.
    pub send_enrollment_email: bool,
    /// Per attribute: whether a locally set value or the directory's wins.
    pub fields: crate::sync::FieldModes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupAttributesSection {
    group: String,
    attributes: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    listen: Spanned<String>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default = "default_forward_timeout")]
    forward_timeout_ms: u64,
    #[serde(default)]
    role: InitialRole,
    #[serde(default = "default_true_cluster")]
    replication: bool,
    #[serde(default = "default_changelog_keep")]
    changelog_keep: Spanned<u64>,
    #[serde(default)]
    peer: Vec<PeerSection>,
}

fn default_true_cluster() -> bool {
    true
}

fn default_changelog_keep() -> Spanned<u64> {
    Spanned::new(0..0, 100_000)
}

/// The role a node takes when its store has never replicated (a fresh data
/// directory); afterwards the persisted role and epoch win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialRole {
    /// The writable node (the first node of a cluster).
    #[default]
    Primary,
    /// A read-only copy that fetches everything from the primary.
    Replica,
}

fn default_forward_timeout() -> u64 {
    3000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    node_id: Spanned<u32>,
    address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsSection {
    #[serde(default = "default_sms_length")]
    code_length: Spanned<usize>,
    #[serde(default = "default_sms_alphabet")]
    alphabet: Spanned<String>,
    #[serde(default = "default_sms_lifetime")]
    lifetime_secs: Spanned<u64>,
    #[serde(default = "default_sms_attempts")]
    max_attempts: u8,
    #[serde(default = "default_sms_message")]
    message: Spanned<String>,
}

impl Default for SmsSection {
    fn default() -> Self {
        SmsSection {
            code_length: default_sms_length(),
            alphabet: default_sms_alphabet(),
            lifetime_secs: default_sms_lifetime(),
            max_attempts: default_sms_attempts(),
            message: default_sms_message(),
        }
    }
}

fn default_sms_length() -> Spanned<usize> {
    Spanned::new(0..0, 6)
}
fn default_sms_alphabet() -> Spanned<String> {
    Spanned::new(0..0, "0123456789".to_string())
}
fn default_sms_lifetime() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_sms_attempts() -> u8 {
    3
}
fn default_sms_message() -> Spanned<String> {
    Spanned::new(0..0, "Your sign-in code is {code}".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    name: Spanned<String>,
    #[serde(default = "default_first_factor")]
    first_factor: FirstFactor,
    #[serde(default = "default_otp_mode")]
    otp_mode: OtpMode,
    #[serde(default = "default_unenrolled")]
    unenrolled: Unenrolled,
    #[serde(default = "default_prompt")]
    challenge_prompt: String,
    #[serde(default = "default_fail_mode")]
    fail_mode: FailMode,
    #[serde(default)]
    upstream: Option<Spanned<String>>,
    #[serde(default)]
    mfa_bypass_groups: Vec<String>,
    #[serde(default)]
    mfa_groups: Vec<String>,
}

fn default_fail_mode() -> FailMode {
    FailMode::Closed
}

fn default_first_factor() -> FirstFactor {
    FirstFactor::Local
}
fn default_otp_mode() -> OtpMode {
    OtpMode::Auto
}
fn default_unenrolled() -> Unenrolled {
    Unenrolled::Reject
}
fn default_prompt() -> String {
    "Enter the code from your authenticator app".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSection {
    name: Spanned<String>,
    address: Spanned<String>,
    secret: Spanned<String>,
    #[serde(default = "default_policy_name")]
    policy: Spanned<String>,
    #[serde(default = "default_true")]
    require_message_authenticator: bool,
}

fn default_policy_name() -> Spanned<String> {
    Spanned::new(0..0, "default".to_string())
}
fn default_true() -> bool {
    true
}

/// How the first factor is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirstFactor {
    /// argon2id password hash in the store.
    Local,
    /// No first factor: the User-Password carries only the one-time code.
    None,
    /// Proxy to the policy's upstream RADIUS server (NPS, FreeRADIUS).
    Radius,
    /// Bind to the directory ([directory]) as the user.
    Ldap,
}

/// How the one-time code reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpMode {
    /// Password immediately followed by the code in one User-Password.
    Inline,
    /// Password first, then the code in answer to an Access-Challenge.
    Challenge,
    /// Inline when the User-Password carries a code, Access-Challenge otherwise.
    Auto,
}

/// What happens to a user who must use an OTP but has no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    /// Reject, telling the user to enroll.
    Reject,
    /// Accept on the first factor alone.
    Accept,
}

/// What happens when the cloud gateway cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Reject with a clear message (default).
    Closed,
    /// Users with an authenticator app get a TOTP challenge instead.
    TotpOnly,
    /// Accept on the first factor alone (only when configured).
    Open,
}

/// One-way SMS settings.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// Code length.
    pub code_length: usize,
    /// Characters codes are drawn from.
    pub alphabet: String,
    /// How long a code is valid.
    pub lifetime_secs: u64,
    /// Wrong codes allowed before the session ends.
    pub max_attempts: u8,
    /// Message text; `{code}` is replaced by the code.
    pub message: String,
}

/// The peer link between the nodes of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// TCP address the peer link listens on.
    pub listen: SocketAddr,
    /// Cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM), signed by the cluster CA.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// How long a forwarded request may take before the user is told to retry.
    pub forward_timeout: std::time::Duration,
    /// The other nodes: id and peer-link address.
    pub peers: Vec<(u16, SocketAddr)>,
    /// The role of a node whose store has never replicated.
    pub role: InitialRole,
    /// Replicate the store over the peer link.
    pub replication: bool,
    /// Changelog entries kept for replicas that fall behind (older ones are
    /// trimmed; a replica further behind gets a snapshot).
    pub changelog_keep: u64,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name, referenced by clients.
    pub name: String,
    /// First factor.
    pub first_factor: FirstFactor,
    /// Inline, challenge or auto.
    pub otp_mode: OtpMode,
    /// Users without a token.
    pub unenrolled: Unenrolled,
    /// Reply-Message of the Access-Challenge.
    pub challenge_prompt: String,
    /// Gateway unreachable.
    pub fail_mode: FailMode,
    /// Upstream group for `first_factor = "radius"`.
    pub upstream: Option<String>,
    /// Members of these groups skip the second factor.
    pub mfa_bypass_groups: Vec<String>,
    /// When not empty, only members of these groups need a second factor.
    pub mfa_groups: Vec<String>,
}

impl Policy {
    /// Whether a user in `groups` needs a second factor under this policy.
    pub fn needs_mfa(&self, groups: &[String]) -> bool {
        let member = |list: &[String]| {
            list.iter()
                .any(|g| groups.iter().any(|u| u.eq_ignore_ascii_case(g)))
        };
        if member(&self.mfa_bypass_groups) {
            return false;
        }
        self.mfa_groups.is_empty() || member(&self.mfa_groups)
    }
}

/// A validated static client (NAS).
#[derive(Debug, Clone)]
pub struct StaticClient {
    /// Name shown in logs and the audit log.
    pub name: String,
    /// Source addresses it may send from.
    pub address: IpNet,
    /// Shared secret.
    pub secret: SharedSecret,
    /// Policy name (validated to exist).
    pub policy: String,
    /// BlastRADIUS protection: drop requests without a valid Message-Authenticator.
    pub require_message_authenticator: bool,
}

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
    pub portal: Option<crate::portal::PortalSettings>,
    /// The admin HTTPS API, when configured.
    pub api: Option<crate::api::config::ApiSettings>,
    /// Audit journal segments older than this many days are removed.
    pub audit_retention_days: Option<u64>,
    /// The RADIUS/TLS listener, when configured.
    pub radsec: Option<crate::radsec::RadsecSettings>,
    /// Rate limits and lockout (`[limits]`).
    pub limits: crate::limits::LimitSettings,
}

impl RuntimeConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<RuntimeConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: 0,
            column: 0,
            reason: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<RuntimeConfig, ConfigError> {
        let locate = |span: Option<std::ops::Range<usize>>, reason: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError {
                origin: origin.to_string(),
                line,
                column,
                reason,
            }
        };
        let file: FileConfig =
            toml::from_str(text).map_err(|e| locate(e.span(), e.message().to_string()))?;
        bounds::check(text).map_err(|(span, reason)| locate(Some(span), reason))?;
        let at = |s: &std::ops::Range<usize>| if s.end == 0 { None } else { Some(s.clone()) };

        let node_id = *file.server.node_id.get_ref();
        let node_id = u16::try_from(node_id)
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| {
                locate(
                    at(&file.server.node_id.span()),
                    format!("node_id must be between 1 and 65535, not {node_id}"),
                )
            })?;

        let mut listen = Vec::new();
        for a in file.radius.listen.get_ref() {
            let addr: SocketAddr = a.parse().map_err(|_| {
                locate(
                    at(&file.radius.listen.span()),
                    format!("listen address {a:?} is not IP:PORT (for example \"0.0.0.0:1812\")"),
                )
            })?;
            listen.push(addr);
        }
        if listen.is_empty() {
            return Err(locate(
                at(&file.radius.listen.span()),
                "radius.listen needs at least one address".to_string(),
            ));
        }

        let digits = *file.otp.digits.get_ref();
        if !(6..=8).contains(&digits) {
            return Err(locate(
                at(&file.otp.digits.span()),
                format!("otp.digits must be 6, 7 or 8, not {digits}"),
            ));
        }
        let window = *file.otp.window.get_ref();
        if window > 10 {
            return Err(locate(
                at(&file.otp.window.span()),
                format!("otp.window of {window} steps is too wide (at most 10)"),
            ));
        }
        let memory = *file.password.memory_kib.get_ref();
        if !(8..=4 * 1024 * 1024).contains(&memory) {
            return Err(locate(
                at(&file.password.memory_kib.span()),
                format!("password.memory_kib must be between 8 and 4194304, not {memory}"),
            ));
        }
        // Range: `bounds::BOUNDS`.
        let iterations = *file.password.iterations.get_ref();
        let lifetime = *file.challenge.lifetime_secs.get_ref();
        if !(10..=3600).contains(&lifetime) {
            return Err(locate(
                at(&file.challenge.lifetime_secs.span()),
                format!("challenge.lifetime_secs must be between 10 and 3600, not {lifetime}"),
            ));
        }

        let mut upstreams = HashMap::new();
        for u in file.upstream {
            let name = u.name.get_ref().clone();
            let mut servers = Vec::new();
            for a in u.servers.get_ref() {
                servers.push(a.parse::<SocketAddr>().map_err(|_| {
                    locate(
                        at(&u.servers.span()),
                        format!("upstream {name:?}: server {a:?} is not IP:PORT (for example \"10.0.0.5:1812\")"),
                    )
                })?);
            }
            if servers.is_empty() {
                return Err(locate(
                    at(&u.servers.span()),
                    format!("upstream {name:?} needs at least one server"),
                ));
            }
            let secret = match (&u.secret, &u.secret_file) {
                (Some(s), None) => s.get_ref().clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| {
                        locate(
                            at(&u.name.span()),
                            format!(
                                "upstream {name:?}: cannot read secret_file {}: {e}",
                                f.display()
                            ),
                        )
                    })?,
                _ => {
                    return Err(locate(
                        at(&u.name.span()),
                        format!("upstream {name:?}: give exactly one of secret and secret_file"),
                    ))
                }
            };
            if secret.len() < MIN_SECRET_LEN {
                return Err(locate(
                    u.secret.as_ref().and_then(|s| at(&s.span())).or_else(|| at(&u.name.span())),
                    format!(
                        "upstream {name:?}: the shared secret is too short: use at least {MIN_SECRET_LEN} characters \
                         (set the same longer secret on the upstream server)"
                    ),
                ));
            }
            let cfg = crate::upstream::UpstreamConfig {
                name: name.clone(),
                servers,
                secret: SharedSecret::new(secret.into_bytes()),
                timeout: std::time::Duration::from_millis(u.timeout_ms.clamp(100, 30_000)),
                retries: u.retries.min(5),
                require_message_authenticator: u.require_message_authenticator,
            };
            if upstreams.insert(name.clone(), cfg).is_some() {
                return Err(locate(
                    at(&u.name.span()),
                    format!("upstream {name:?} is defined twice"),
                ));
            }
        }
        let mut group_attributes = Vec::new();
        for g in file.group_attributes {
            let mut attrs = Vec::new();
            for a in &g.attributes {
                attrs.push(
                    crate::dictionary::parse_attribute(a.get_ref()).map_err(|e| {
                        locate(
                            at(&a.span()),
                            format!("group_attributes {:?}: {e}", g.group),
                        )
                    })?,
                );
            }
            group_attributes.push((g.group, attrs));
        }

        let read_secret = |path: &PathBuf, what: &str, span: Option<std::ops::Range<usize>>| {
            std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| locate(span, format!("cannot read {what} {}: {e}", path.display())))
        };
        let directory = match file.directory {
            None => None,
            Some(d) => {
                let span = at(&d.span());
                let d = d.into_inner();
                let fail = |reason: String| locate(span.clone(), format!("[directory]: {reason}"));
                if d.servers.is_empty() {
                    return Err(fail(
                        "servers needs at least one ldap:// or ldaps:// URL".into(),
                    ));
                }
                if let Some(bad) = d
                    .servers
                    .iter()
                    .find(|u| !(u.starts_with("ldap://") || u.starts_with("ldaps://")))
                {
                    return Err(fail(format!(
                        "server {bad:?} must start with ldap:// or ldaps://"
                    )));
                }
                let password = match &d.bind_password_file {
                    Some(p) => read_secret(p, "[directory] bind_password_file", span.clone())?,
                    None => String::new(),
                };
                let mut dc = radmfa_directory::DirectoryConfig::new(
                    match d.kind {
                        DirectoryKindName::Ldap => radmfa_directory::DirectoryKind::Ldap,
                        DirectoryKindName::Ad => radmfa_directory::DirectoryKind::ActiveDirectory,
                    },
                    d.servers.clone(),
                    d.base_dn.clone(),
                    d.bind_dn.clone(),
                    radmfa_directory::Secret::new(password),
                );
                dc.tls = match d.tls {
                    DirectoryTls::None => radmfa_directory::TlsMode::None,
                    DirectoryTls::Starttls => radmfa_directory::TlsMode::StartTls,
                    DirectoryTls::Ldaps => radmfa_directory::TlsMode::Ldaps,
                };
                if let Some(ca) = &d.ca_file {
                    dc.ca_pem = Some(read_secret(ca, "[directory] ca_file", span.clone())?);
                }
                dc.user_filter = d.user_filter.clone();
                if let Some(a) = &d.login_attr {
                    dc.login_attr = a.clone();
                }
                if let Some(a) = &d.display_name_attr {
                    dc.display_name_attr = a.clone();
                }
                if let Some(a) = &d.email_attr {
                    dc.email_attr = a.clone();
                }
                if let Some(a) = &d.phone_attr {
                    dc.phone_attr = a.clone();
                }
                dc.disabled_filter = d.disabled_filter.clone();
                dc.timeout = std::time::Duration::from_millis(d.timeout_ms.clamp(100, 60_000));
                dc.pool_size = d.pool_size.min(64);
                dc.max_group_depth = d.max_group_depth.clamp(1, 32);
                // Builds the client (no I/O) so a bad setting stops start-up here.
                let built = radmfa_directory::Directory::new(dc.clone())
                    .map_err(|e| fail(e.to_string()))?;
                if let Some(url) = built.cleartext_servers().first() {
                    return Err(fail(format!(
                        "server {url:?} without TLS would carry the service account's and the users' passwords in clear: set tls = \"starttls\" or \"ldaps\" (plain LDAP is only allowed to a server on this host)"
                    )));
                }
                Some(dc)
            }
        };
        let mut sync = Vec::new();
        for item in file.sync {
            let name = item.name.get_ref().clone();
            let fail = |reason: String| {
                locate(
                    at(&item.name.span()),
                    format!("[[sync]] {name:?}: {reason}"),
                )
            };
            if directory.is_none() {
                return Err(fail("needs a [directory] section".into()));
            }
            if item.filter.is_some() && item.group.is_some() {
                return Err(fail("give filter or group, not both".into()));
            }
            let method: radmfa_store::Method = item
                .method
                .parse()
                .map_err(|e: radmfa_store::StoreError| fail(e.to_string()))?;
            let interval = *item.interval_secs.get_ref();
            if !(60..=86_400).contains(&interval) {
                return Err(locate(
                    at(&item.interval_secs.span()),
                    format!("[[sync]] {name:?}: interval_secs must be between 60 (1 minute) and 86400 (24 hours), not {interval}"),
                ));
            }
            if sync.iter().any(|s: &SyncItem| s.name == name) {
                return Err(fail("defined twice".into()));
            }
            sync.push(SyncItem {
                name: name.clone(),
                base: item.base,
                filter: item.filter,
                group: item.group,
                method,
                language: item.language,
                interval: Some(std::time::Duration::from_secs(interval)),
                send_enrollment_email: item.send_enrollment_email,
                fields: item.fields,
            });
        }
        let mail = match file.mail {
            None => None,
            Some(m) => {
                let span = at(&m.span());
                let m = m.into_inner();
                let password = match &m.password_file {
                    Some(p) => Some(crate::mail::MailSecret::new(read_secret(
                        p,
                        "[mail] password_file",
                        span.clone(),
                    )?)),
                    None => None,
                };
                let ca_pem = match &m.ca_file {
                    Some(p) => Some(read_secret(p, "[mail] ca_file", span.clone())?),
                    None => None,
                };
                let mc = crate::mail::MailConfig {
                    host: m.host,
                    port: m.port,
                    security: match m.security {
                        MailTls::None => crate::mail::SmtpSecurity::None,
                        MailTls::Starttls => crate::mail::SmtpSecurity::StartTls,
                        MailTls::Tls => crate::mail::SmtpSecurity::Tls,
                    },
                    username: m.username,
                    password,
                    ca_pem,
                    from: m.from,
                    portal_url: if m.portal_url.is_empty() {
                        // The portal's own address, when [portal] names one.
                        let url = file
                            .portal
                            .as_ref()
                            .and_then(|p| crate::portal::config::raw_public_url(p.get_ref()));
                        url.ok_or_else(|| {
                            locate(
                                span.clone(),
                                "[mail]: portal_url is required (or set [portal] public_url)"
                                    .to_string(),
                            )
                        })?
                    } else {
                        m.portal_url
                    },
                    templates_dir: m.templates_dir,
                    default_language: m.default_language,
                    timeout: std::time::Duration::from_millis(m.timeout_ms.clamp(1000, 120_000)),
                };
                crate::mail::Mailer::new(mc.clone())
                    .map_err(|e| locate(span.clone(), format!("[mail]: {e}")))?;
                Some(mc)
            }
        };

        let mut policies = HashMap::new();
        for p in file.policy {
            let name = p.name.get_ref().clone();
            if name.is_empty() {
                return Err(locate(
                    at(&p.name.span()),
                    "policy name must not be empty".to_string(),
                ));
            }
            let upstream = match (&p.first_factor, &p.upstream) {
                (FirstFactor::Radius, Some(u)) if upstreams.contains_key(u.get_ref()) => {
                    Some(u.get_ref().clone())
                }
                (FirstFactor::Radius, Some(u)) => {
                    return Err(locate(
                        at(&u.span()),
                        format!("policy {name:?}: upstream {:?} is not defined (add an [[upstream]] with that name)", u.get_ref()),
                    ))
                }
                (FirstFactor::Radius, None) => {
                    return Err(locate(
                        at(&p.name.span()),
                        format!("policy {name:?}: first_factor = \"radius\" needs upstream = \"NAME\""),
                    ))
                }
                (FirstFactor::Ldap, None) if directory.is_none() => {
                    return Err(locate(
                        at(&p.name.span()),
                        format!("policy {name:?}: first_factor = \"ldap\" needs a [directory] section"),
                    ))
                }
                (_, Some(u)) => {
                    return Err(locate(
                        at(&u.span()),
                        format!("policy {name:?}: upstream is only used with first_factor = \"radius\""),
                    ))
                }
                (_, None) => None,
            };
            let policy = Policy {
                name: name.clone(),
                first_factor: p.first_factor,
                otp_mode: p.otp_mode,
                unenrolled: p.unenrolled,
                challenge_prompt: p.challenge_prompt,
                fail_mode: p.fail_mode,
                upstream,
                mfa_bypass_groups: p.mfa_bypass_groups,
                mfa_groups: p.mfa_groups,
            };
            if policies.insert(name.clone(), policy).is_some() {
                return Err(locate(
                    at(&p.name.span()),
                    format!("policy {name:?} is defined twice"),
                ));
            }
        }
        policies
            .entry("default".to_string())
            .or_insert_with(|| Policy {
                name: "default".to_string(),
                first_factor: default_first_factor(),
                otp_mode: default_otp_mode(),
                unenrolled: default_unenrolled(),
                challenge_prompt: default_prompt(),
                fail_mode: default_fail_mode(),
                upstream: None,
                mfa_bypass_groups: Vec::new(),
                mfa_groups: Vec::new(),
            });

        let portal = match file.portal {
            Some(p) => Some(crate::portal::config::validate(p, &policies, &locate)?),
            None => None,
        };

        let mut clients: Vec<StaticClient> = Vec::new();
        for c in file.client {
            let address = parse_cidr(c.address.get_ref()).ok_or_else(|| {
                locate(
                    at(&c.address.span()),
                    format!(
                        "client {:?}: address {:?} is not an IP address or CIDR (for example \"10.0.0.0/24\")",
                        c.name.get_ref(),
                        c.address.get_ref()
                    ),
                )
            })?;
            if c.secret.get_ref().len() < MIN_SECRET_LEN {
                return Err(locate(
                    at(&c.secret.span()),
                    format!(
                        "client {:?}: the shared secret is too short: use at least {MIN_SECRET_LEN} characters (16+ recommended); \
                         it keys the User-Password hiding and the Message-Authenticator, so a short one is guessed offline from one captured request",
                        c.name.get_ref()
                    ),
                ));
            }
            if !policies.contains_key(c.policy.get_ref()) {
                return Err(locate(
                    at(&c.policy.span()),
                    format!(
                        "client {:?}: policy {:?} is not defined (add a [[policy]] with that name)",
                        c.name.get_ref(),
                        c.policy.get_ref()
                    ),
                ));
            }
            if let Some(other) = clients.iter().find(|o| o.name == *c.name.get_ref()) {
                return Err(locate(
                    at(&c.name.span()),
                    format!("client {:?} is defined twice", other.name),
                ));
            }
            if let Some(other) = clients.iter().find(|o| o.address == address) {
                return Err(locate(
                    at(&c.address.span()),
                    format!(
                        "client {:?}: address {address} is already the address of client {:?}",
                        c.name.get_ref(),
                        other.name
                    ),
                ));
            }
            clients.push(StaticClient {
                name: c.name.into_inner(),
                address,
                secret: SharedSecret::new(c.secret.into_inner().into_bytes()),
                policy: c.policy.into_inner(),
                require_message_authenticator: c.require_message_authenticator,
            });
        }

        let sms_len = *file.sms.code_length.get_ref();
        if !(4..=12).contains(&sms_len) {
            return Err(locate(
                at(&file.sms.code_length.span()),
                format!("sms.code_length must be between 4 and 12, not {sms_len}"),
            ));
        }
        if !file.sms.message.get_ref().contains("{code}") {
            return Err(locate(
                at(&file.sms.message.span()),
                "sms.message must contain {code}".to_string(),
            ));
        }
        let sms_lifetime = *file.sms.lifetime_secs.get_ref();
        if !(10..=3600).contains(&sms_lifetime) {
            return Err(locate(
                at(&file.sms.lifetime_secs.span()),
                format!("sms.lifetime_secs must be between 10 and 3600, not {sms_lifetime}"),
            ));
        }
        check_sms_alphabet(file.sms.alphabet.get_ref())
            .map_err(|reason| locate(at(&file.sms.alphabet.span()), reason))?;
        let sms = SmsSettings {
            code_length: sms_len,
            alphabet: file.sms.alphabet.into_inner(),
            lifetime_secs: sms_lifetime,
            max_attempts: file.sms.max_attempts.max(1),
            message: file.sms.message.into_inner(),
        };
        let mut verdict_timeout_secs = default_verdict_timeout();
        let gateway = match file.gateway {
            None => None,
            Some(g) => {
                let span = at(&g.span());
                let g = g.into_inner();
                let fail = |reason: String| locate(span.clone(), format!("[gateway]: {reason}"));
                let read = |path: &Option<PathBuf>,
                            what: &str|
                 -> Result<Option<String>, ConfigError> {
                    match path {
                        None => Ok(None),
                        Some(p) => std::fs::read_to_string(p)
                            .map(|s| Some(s.trim().to_string()))
                            .map_err(|e| fail(format!("cannot read {what} {}: {e}", p.display()))),
                    }
                };
                if !g.url.starts_with("https://") {
                    return Err(fail(format!("url {:?} must start with https://", g.url)));
                }
                let key = read(&g.api_key_file, "api_key_file")?
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        fail("api_key_file is required (the API key or Twilio auth token)".into())
                    })?;
                let provider = match g.provider {
                    GatewayProvider::Radmfa => radmfa_gateway::Provider::Radmfa {
                        base_url: g.url.clone(),
                        api_key: radmfa_gateway::Secret::new(key),
                    },
                    GatewayProvider::Twilio => {
                        if g.account_sid.is_empty() || g.from_number.is_empty() {
                            return Err(fail("twilio needs account_sid and from_number".into()));
                        }
                        radmfa_gateway::Provider::Twilio {
                            base_url: g.url.clone(),
                            account_sid: g.account_sid.clone(),
                            auth_token: radmfa_gateway::Secret::new(key),
                            from_number: g.from_number.clone(),
                            status_callback: None,
                        }
                    }
                };
                let mut gc = radmfa_gateway::GatewayConfig::new(provider);
                gc.timeout = std::time::Duration::from_millis(g.timeout_ms.clamp(100, 60_000));
                gc.retries = g.retries.min(5);
                gc.send_names = g.send_names;
                gc.send_email = g.send_email;
                gc.extra_ca_pem = read(&g.ca_file, "ca_file")?;
                verdict_timeout_secs = g.verdict_timeout_secs.clamp(5, 300);
                Some(gc)
            }
        };

        let cluster = match file.cluster {
            None => None,
            Some(c) => {
                let c = c.into_inner();
                let listen: SocketAddr = c.listen.get_ref().parse().map_err(|_| {
                    locate(
                        at(&c.listen.span()),
                        format!(
                            "cluster.listen {:?} is not IP:PORT (for example \"0.0.0.0:4443\")",
                            c.listen.get_ref()
                        ),
                    )
                })?;
                let mut peers: Vec<(u16, SocketAddr)> = Vec::new();
                for p in &c.peer {
                    let id = *p.node_id.get_ref();
                    let id = u16::try_from(id).ok().filter(|n| *n != 0).ok_or_else(|| {
                        locate(
                            at(&p.node_id.span()),
                            format!("peer node_id must be between 1 and 65535, not {id}"),
                        )
                    })?;
                    if id == node_id {
                        return Err(locate(
                            at(&p.node_id.span()),
                            format!("peer node_id {id} is this node's own node_id"),
                        ));
                    }
                    if peers.iter().any(|(other, _)| *other == id) {
                        return Err(locate(
                            at(&p.node_id.span()),
                            format!("peer node_id {id} is listed twice"),
                        ));
                    }
                    let addr: SocketAddr = p.address.get_ref().parse().map_err(|_| {
                        locate(
                            at(&p.address.span()),
                            format!(
                                "peer address {:?} is not IP:PORT (for example \"10.0.0.12:4443\")",
                                p.address.get_ref()
                            ),
                        )
                    })?;
                    peers.push((id, addr));
                }
                Some(ClusterSettings {
                    listen,
                    ca: c.ca,
                    cert: c.cert,
                    key: c.key,
                    forward_timeout: std::time::Duration::from_millis(
                        c.forward_timeout_ms.clamp(100, 60_000),
                    ),
                    peers,
                    role: c.role,
                    replication: c.replication,
                    changelog_keep: {
                        let keep = *c.changelog_keep.get_ref();
                        if !(1_000..=100_000_000).contains(&keep) {
                            return Err(locate(
                                at(&c.changelog_keep.span()),
                                format!(
                                    "cluster.changelog_keep must be between 1000 and 100000000, not {keep}"
                                ),
                            ));
                        }
                        keep
                    },
                })
            }
        };

        let api = crate::api::config::validate(file.api, &locate)?;
        let audit_retention_days = match file.log.audit_retention_days {
            Some(d) if *d.get_ref() == 0 => {
                return Err(locate(
                    at(&d.span()),
                    "log.audit_retention_days must be at least 1 (leave it out to keep the audit log forever)".into(),
                ))
            }
            other => other.map(|d| *d.get_ref()),
        };
        let radsec = match file.radsec {
            Some(r) => Some(crate::radsec::validate(r, &policies, &locate)?),
            None => None,
        };
        let limits = file.limits.validate(|s, reason| locate(at(s), reason))?;

        let data_dir = file.server.data_dir;
        let key_file = file
            .server
            .key_file
            .unwrap_or_else(|| data_dir.join("seed.key"));
        let cluster_key_file = file
            .challenge
            .cluster_key_file
            .unwrap_or_else(|| data_dir.join("cluster.key"));
        let server_ip = file.server.server_ip.unwrap_or_else(|| {
            listen
                .iter()
                .map(|a| a.ip())
                .find(|ip| !ip.is_unspecified())
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "0.0.0.0".to_string())
        });

        Ok(RuntimeConfig {
            origin: origin.to_string(),
            node_name: file.server.node_name,
            node_id,
            server_ip,
            data_dir,
            key_file,
            cluster_key_file,
            store_cache_bytes: file.server.store_cache_mib.max(1) * 1024 * 1024,
            log_format: file.log.format,
            log_level: file.log.level,
            listen,
            duplicate_window_secs: file.radius.duplicate_window_secs.clamp(1, 600),
            duplicate_cache_entries: file.radius.duplicate_cache_entries.max(1024),
            workers: file.radius.workers,
            max_in_flight: file.radius.max_in_flight.max(1),
            argon2_memory_kib: memory,
            argon2_iterations: iterations,
            password_cache_ttl_secs: file.password.cache_ttl_secs,
            password_cache_max_entries: file.password.cache_max_entries.max(1),
            user_cache_entries: file.server.user_cache_entries.max(64),
            otp_issuer: file.otp.issuer,
            otp_window: window,
            otp_digits: digits,
            hotp_look_ahead: file.otp.hotp_look_ahead.min(100),
            challenge_lifetime_secs: lifetime,
            challenge_max_sessions: file.challenge.max_sessions.max(1),
            gateway,
            verdict_timeout_secs,
            sms,
            cluster,
            upstreams,
            group_attributes,
            directory,
            sync,
            mail,
            policies,
            clients,
            portal,
            api,
            audit_retention_days,
            radsec,
            limits,
        })
    }

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

/// An SMS code alphabet must have at least 10 symbols, each once (a repeated
/// one would be drawn twice as often, and a short alphabet makes codes
/// guessable), and only printable, non-space characters a user can type.
fn check_sms_alphabet(alphabet: &str) -> Result<(), String> {
    let mut seen: Vec<char> = Vec::new();
    for c in alphabet.chars() {
        if c.is_whitespace() || c.is_control() {
            return Err(format!(
                "sms.alphabet must hold printable characters without spaces, not {c:?}"
            ));
        }
        if seen.contains(&c) {
            return Err(format!(
                "sms.alphabet repeats {c:?}: every symbol must appear once"
            ));
        }
        seen.push(c);
    }
    if seen.len() < 10 {
        return Err(format!(
            "sms.alphabet needs at least 10 distinct symbols, not {} ({alphabet:?})",
            seen.len()
        ));
    }
    Ok(())
}

/// Parses "10.0.0.0/24", "10.0.0.1" or "::1" into a network.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map(|(_, l)| l.chars().count())
        .unwrap_or_else(|| before.chars().count())
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_config_parses() {
        let text = include_str!("../../../config/radmfa.toml");
        let cfg = RuntimeConfig::parse(text, "config/radmfa.toml").expect("default config");
        assert_eq!(cfg.listen, vec!["0.0.0.0:1812".parse().expect("addr")]);
        assert!(cfg.policies.contains_key("default"));
        assert_eq!(cfg.clients.len(), 1);
        assert!(cfg.clients[0].require_message_authenticator);
    }

    #[test]
    fn empty_config_gets_defaults() {
        let cfg = RuntimeConfig::parse("", "x.toml").expect("empty");
        assert_eq!(cfg.node_id, 1);
        assert_eq!(cfg.otp_window, 1);
        assert_eq!(cfg.policy("nope").name, "default");
    }

    #[test]
    fn unknown_key_is_located() {
        let text = "[server]\nnode_name = \"a\"\nnode_nmae = \"b\"\n";
        let err = RuntimeConfig::parse(text, "bad.toml").expect_err("must fail");
        assert_eq!(err.line, 3, "{err}");
        assert!(err.reason.contains("node_nmae"), "{err}");
        assert!(err.to_string().starts_with("bad.toml:3:"), "{err}");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = "[radius]\nduplicate_window_secs = \"thirty\"\n";
        let err = RuntimeConfig::parse(text, "bad.toml").expect_err("must fail");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn validation_errors_are_located() {
        let text =
            "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.300/24\"\nsecret = \"testing123\"\n";
        let err = RuntimeConfig::parse(text, "c.toml").expect_err("must fail");
        assert_eq!((err.line, err.origin.as_str()), (3, "c.toml"), "{err}");
        assert!(err.reason.contains("not an IP address"), "{err}");

        let text = "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.0/24\"\nsecret = \"testing123\"\npolicy = \"strict\"\n";
        let err = RuntimeConfig::parse(text, "c.toml").expect_err("must fail");
        assert_eq!(err.line, 5, "{err}");

        let err = RuntimeConfig::parse("[server]\nnode_id = 0\n", "n.toml").expect_err("node 0");
        assert_eq!(err.line, 2, "{err}");

        let err = RuntimeConfig::parse("[otp]\ndigits = 5\n", "o.toml").expect_err("digits");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn plain_ldap_to_another_host_is_refused_with_the_remedy() {
        let section = |servers: &str, tls: &str| {
            format!("[server]\nnode_id = 1\n\n[directory]\nkind = \"ldap\"\nservers = [{servers}]\n{tls}base_dn = \"dc=example,dc=org\"\n")
        };
        // The default is tls = "none": a remote server is refused.
        let err = RuntimeConfig::parse(&section(r#""ldap://dc1.corp.example""#, ""), "d.toml")
            .expect_err("cleartext LDAP");
        assert_eq!(err.line, 4, "{err}");
        assert!(err.reason.contains("ldap://dc1.corp.example"), "{err}");
        assert!(err.reason.contains("tls = \"starttls\""), "{err}");
        // Also when only one of the servers is remote.
        let both = r#""ldap://127.0.0.1:389", "ldap://10.0.0.5""#;
        assert!(RuntimeConfig::parse(&section(both, "tls = \"none\"\n"), "d.toml").is_err());
        // On this host, or with TLS, it is fine.
        RuntimeConfig::parse(&section(r#""ldap://127.0.0.1:389""#, ""), "d.toml")
            .expect("loopback");
        RuntimeConfig::parse(&section(both, "tls = \"starttls\"\n"), "d.toml").expect("starttls");
        RuntimeConfig::parse(&section(r#""ldaps://dc1.corp.example""#, ""), "d.toml")
            .expect("ldaps");
    }

    #[test]
    fn cluster_section() {
        let base = "[cluster]\nlisten = \"127.0.0.1:4443\"\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";
        let ok = format!("{base}[[cluster.peer]]\nnode_id = 2\naddress = \"127.0.0.1:4444\"\n");
        let cfg = RuntimeConfig::parse(&ok, "c.toml").expect("parses");
        let cluster = cfg.cluster.expect("cluster");
        assert_eq!(cluster.peers, vec![(2, "127.0.0.1:4444".parse().unwrap())]);
        assert_eq!(cluster.forward_timeout, std::time::Duration::from_secs(3));

        let own = format!("{base}[[cluster.peer]]\nnode_id = 1\naddress = \"127.0.0.1:4444\"\n");
        let err = RuntimeConfig::parse(&own, "c.toml").expect_err("own id");
        assert_eq!(err.line, 7, "{err}");
        assert!(err.reason.contains("own node_id"), "{err}");

        let twice = format!("{ok}[[cluster.peer]]\nnode_id = 2\naddress = \"127.0.0.1:4445\"\n");
        let err = RuntimeConfig::parse(&twice, "c.toml").expect_err("twice");
        assert_eq!(err.line, 10, "{err}");

        let bad = format!("{base}[[cluster.peer]]\nnode_id = 2\naddress = \"peer-b\"\n");
        let err = RuntimeConfig::parse(&bad, "c.toml").expect_err("address");
        assert_eq!(err.line, 8, "{err}");
        assert!(err.reason.contains("IP:PORT"), "{err}");

        let no_cert = "[cluster]\nlisten = \"127.0.0.1:4443\"\nca = \"ca.pem\"\n";
        assert!(RuntimeConfig::parse(no_cert, "c.toml").is_err());
    }

    #[test]
    fn limits_section() {
        let cfg = RuntimeConfig::parse("", "x.toml").expect("empty");
        assert_eq!(cfg.limits, crate::limits::LimitSettings::default());
        assert_eq!(cfg.limits.lockout_failures, 10);
        let text =
            "[limits]\nclient_rps = 0\nuser_per_minute = 5\nuser_burst = 2\nlockout_secs = 0\n";
        let cfg = RuntimeConfig::parse(text, "l.toml").expect("parses");
        assert_eq!(cfg.limits.client, None);
        assert_eq!(cfg.limits.user.map(|r| r.burst.get()), Some(2));
        assert_eq!(cfg.limits.lockout_secs, 0);

        let err = RuntimeConfig::parse("[limits]\nuser_per_minute = 5\nuser_burst = 0\n", "l.toml")
            .expect_err("burst 0");
        assert_eq!(err.line, 3, "{err}");
        assert!(err.reason.contains("user_burst"), "{err}");
        let err =
            RuntimeConfig::parse("[limits]\n\nmax_tracked_keys = 5\n", "l.toml").expect_err("cap");
        assert_eq!(err.line, 3, "{err}");
        let err = RuntimeConfig::parse("[limits]\nlockout_window_secs = 0\n", "l.toml")
            .expect_err("window");
        assert_eq!(err.line, 2, "{err}");
        let err = RuntimeConfig::parse("[limits]\nclient_rsp = 5\n", "l.toml").expect_err("typo");
        assert_eq!(err.line, 2, "{err}");
    }

    /// A table path from the top: each table's name and whether it is an
    /// array of tables (`[[name]]`).
    type TablePath = [(String, bool)];

    /// The keys `FileConfig` accepts directly in the table at `path`, asked
    /// from the schema itself: with `deny_unknown_fields`, serde lists every
    /// accepted field when it meets an unknown one. `None` when `path` is not
    /// a table of that shape. The probe is written inline
    /// (`a = {b = [{probe = 1}]}`), which reaches nested tables without
    /// their required keys.
    fn schema_keys(path: &TablePath) -> Option<Vec<String>> {
        let probe = "zz_probe_key";
        let mut text = format!("{{{probe} = 1}}");
        for (i, (name, array)) in path.iter().enumerate().rev() {
            if *array {
                text = format!("[{text}]");
            }
            text = if i == 0 {
                format!("{name} = {text}")
            } else {
                format!("{{{name} = {text}}}")
            };
        }
        if path.is_empty() {
            text = format!("{probe} = 1");
        }
        let err = toml::from_str::<FileConfig>(&text).err()?;
        let msg = err.message();
        let rest = msg.split_once(&format!("unknown field `{probe}`"))?.1;
        let expected = rest.split_once("expected").map_or("", |(_, e)| e);
        Some(
            expected
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect(),
        )
    }

    /// Every (table, key) the schema accepts, tables included as (table, "").
    fn all_schema_keys() -> Vec<(String, String)> {
        fn walk(path: &mut Vec<(String, bool)>, out: &mut Vec<(String, String)>) {
            let keys = schema_keys(path).expect("a table");
            let name: Vec<&str> = path.iter().map(|(n, _)| n.as_str()).collect();
            let name = name.join(".");
            if !path.is_empty() {
                out.push((name.clone(), String::new()));
            }
            for k in keys {
                let mut nested = None;
                for array in [false, true] {
                    path.push((k.clone(), array));
                    if schema_keys(path).is_some() {
                        nested = Some(array);
                    }
                    path.pop();
                    if nested.is_some() {
                        break;
                    }
                }
                match nested {
                    Some(array) => {
                        path.push((k.clone(), array));
                        walk(path, out);
                        path.pop();
                    }
                    None => out.push((name.clone(), k)),
                }
            }
        }
        let mut out = Vec::new();
        walk(&mut Vec::new(), &mut out);
        out
    }

    /// The (table, key) pairs written in an annotated file, commented out or
    /// not: `[t]`, `[[t]]`, `# [t]`, `key = ...`, `# key = ...`.
    fn documented_keys(text: &str) -> std::collections::HashSet<(String, String)> {
        let mut out = std::collections::HashSet::new();
        let mut table = String::new();
        let is_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        };
        for line in text.lines() {
            let l = line.trim().trim_start_matches('#').trim();
            let l = l.split(" #").next().unwrap_or("").trim();
            let header = l
                .strip_prefix("[[")
                .and_then(|h| h.strip_suffix("]]"))
                .or_else(|| l.strip_prefix('[').and_then(|h| h.strip_suffix(']')));
            if let Some(h) = header.filter(|h| is_name(h)) {
                table = h.to_string();
                out.insert((table.clone(), String::new()));
            } else if let Some((k, _)) = l.split_once('=') {
                if is_name(k.trim()) {
                    out.insert((table.clone(), k.trim().to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_accepted_key_is_in_the_annotated_default_file() {
        let keys = all_schema_keys();
        // The probe itself must see the schema: a few known keys and tables.
        for known in [
            ("server", "node_name"),
            ("directory", "login_attr"),
            ("cluster.peer", "address"),
            ("radsec.client", "cert_cn"),
            ("limits", "client_rps"),
            ("gateway", ""),
        ] {
            assert!(
                keys.contains(&(known.0.to_string(), known.1.to_string())),
                "schema probe missed {known:?}: {keys:?}"
            );
        }
        let text = include_str!("../../../config/radmfa.toml");
        let documented = documented_keys(text);
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !documented.contains(*k))
            .map(|(t, k)| {
                if k.is_empty() {
                    format!("[{t}]")
                } else {
                    format!("[{t}] {k}")
                }
            })
            .collect();
        assert!(
            missing.is_empty(),
            "accepted by the schema but not in config/radmfa.toml: {missing:?}"
        );
    }

    #[test]
    fn sms_alphabet_is_checked() {
        let cfg = RuntimeConfig::parse("[sms]\nalphabet = \"ABCDEFGHJKLMNPQR\"\n", "s.toml")
            .expect("16 symbols");
        assert_eq!(cfg.sms.alphabet, "ABCDEFGHJKLMNPQR");
        for (alphabet, needle) in [
            ("012345678", "at least 10 distinct"),
            ("01234567899", "repeats '9'"),
            ("0123456789ABCDEFA", "repeats 'A'"),
            ("0123 456789", "without spaces"),
            ("", "at least 10 distinct"),
        ] {
            let text = format!("[sms]\ncode_length = 6\nalphabet = {alphabet:?}\n");
            let err = RuntimeConfig::parse(&text, "s.toml").expect_err(alphabet);
            assert_eq!((err.line, err.origin.as_str()), (3, "s.toml"), "{err}");
            assert!(err.reason.contains(needle), "{alphabet:?}: {err}");
        }
    }

    #[test]
    fn duplicate_clients_are_refused() {
        let client = |name: &str, addr: &str| {
            format!(
                "[[client]]\nname = \"{name}\"\naddress = \"{addr}\"\nsecret = \"s3cret-s3cret\"\n"
            )
        };
        let ok = format!(
            "{}{}",
            client("a", "10.0.0.0/8"),
            client("b", "10.1.0.0/16")
        );
        assert_eq!(
            RuntimeConfig::parse(&ok, "c.toml")
                .expect("overlap allowed")
                .clients
                .len(),
            2
        );
        let twice = format!("{}{}", client("a", "10.0.0.1"), client("a", "10.0.0.2"));
        let err = RuntimeConfig::parse(&twice, "c.toml").expect_err("same name");
        assert_eq!(err.line, 6, "{err}");
        assert!(err.reason.contains("defined twice"), "{err}");
        let same = format!(
            "{}{}",
            client("a", "10.0.0.0/24"),
            client("b", "10.0.0.7/24")
        );
        let err = RuntimeConfig::parse(&same, "c.toml").expect_err("same address");
        assert_eq!(err.line, 7, "{err}");
        assert!(
            err.reason.contains("already the address of client \"a\""),
            "{err}"
        );
    }

    #[test]
    fn cidr_forms() {
        assert_eq!(
            parse_cidr("10.1.2.3/24").map(|n| n.to_string()),
            Some("10.1.2.0/24".into())
        );
        assert_eq!(
            parse_cidr("10.1.2.3").map(|n| n.to_string()),
            Some("10.1.2.3/32".into())
        );
        assert!(parse_cidr("::1").is_some());
        assert!(parse_cidr("nope").is_none());
    }

    #[test]
    fn sync_fields_parse_and_bad_modes_are_located() {
        let head = "[directory]\nkind = \"ldap\"\nservers = [\"ldap://127.0.0.1:389\"]\nbase_dn = \"dc=x\"\n\n[[sync]]\nname = \"staff\"\n";
        let cfg = RuntimeConfig::parse(head, "x.toml").expect("defaults");
        assert_eq!(cfg.sync[0].fields, crate::sync::FieldModes::default());
        let text =
            format!("{head}fields = {{ phone = \"directory_wins\", email = \"add_only\" }}\n");
        let cfg = RuntimeConfig::parse(&text, "x.toml").expect("fields");
        let f = cfg.sync[0].fields;
        assert_eq!(f.phone, crate::sync::FieldMode::DirectoryWins);
        assert_eq!(f.email, crate::sync::FieldMode::AddOnly);
        assert_eq!(f.groups, crate::sync::FieldMode::KeepLocal);
        let bad = format!("{head}fields = {{ phone = \"always\" }}\n");
        let err = RuntimeConfig::parse(&bad, "x.toml").expect_err("bad mode");
        assert_eq!(err.line, 8, "{err}");
        assert!(err.reason.contains("keep_local"), "{err}");
        let bad = format!("{head}fields = {{ mobile = \"keep_local\" }}\n");
        let err = RuntimeConfig::parse(&bad, "x.toml").expect_err("bad field");
        assert_eq!(err.line, 8, "{err}");
        assert!(err.reason.contains("mobile"), "{err}");
    }
}
