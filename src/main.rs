//! The `radmfa` command: parse the command line, load the configuration, then
//! either serve (binding the sockets and handing them to `radmfa-server`) or
//! run an admin command against the store or the running server.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use radmfa_server::admin::{AdminError, AdminRequest, ImportRow};
use radmfa_server::config::LogFormat;
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::{Method, StoreError, TokenAlgorithm, TokenKind};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// `println!` that ends the process quietly when standard output is a closed
/// pipe (`radmfa report | head`) instead of panicking, with the status a
/// process killed by SIGPIPE has (141), as other Unix tools do.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(&e);
        }
    }};
}

/// Exit status of a command whose output pipe was closed (128 + SIGPIPE).
const BROKEN_PIPE_STATUS: u8 = 141;

fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS.into());
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1)
}

/// Whether `e` is a write to a closed pipe (the CSV writer's included).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            c.downcast_ref::<csv::Error>().and_then(|c| match c.kind() {
                csv::ErrorKind::Io(io) => Some(io),
                _ => None,
            })
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

const DEFAULT_CONFIG: &str = include_str!("../config/radmfa.toml");
const DEFAULT_ORIGIN: &str = "<embedded default config/radmfa.toml>";

#[derive(Parser)]
#[command(
    name = "radmfa",
    version,
    about = "RADIUS authentication server with a second factor"
)]
struct Cli {
    /// Configuration file (default: the embedded default configuration).
    #[arg(long, env = "RADMFA_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the RADIUS server.
    Serve {
        /// Write {"pid":..,"radius_udp":[..]} here once every listener is bound,
        /// with "radsec", "api", "portal", "peer" (IP:PORT) and "control" (a
        /// path) for those configured; a failed start-up writes nothing.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Troubleshooting mode (like `radiusd -X`): log every request's
        /// attributes (secrets masked), the client and policy, each step,
        /// every drop and the reply. Adds `radmfa*=debug` to the log filter.
        #[arg(long)]
        debug: bool,
    },
    /// Validate the configuration and exit; with --connect, also reach every
    /// peer it names (directory, upstream RADIUS, gateway, cluster peers).
    CheckConfig {
        /// Bind to the directory with the service account (and look up
        /// --user), send Status-Server to each upstream server, call the
        /// gateway's health endpoint, connect to each cluster peer.
        #[arg(long)]
        connect: bool,
        /// The directory user to look up with --connect.
        #[arg(long, requires = "connect")]
        user: Option<String>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage second-factor tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage RADIUS clients (NAS, VPN concentrators).
    #[command(subcommand)]
    Client(ClientCmd),
    /// Show the audit log.
    Report {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Only this result.
        #[arg(long, value_parser = ["accept", "reject", "challenge"])]
        result: Option<String>,
        /// Only records since this time: a duration ago (30m, 1h, 2d),
        /// today, yesterday, a date (2026-12-07, UTC), RFC 3339 or unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// Only the last N matching records.
        #[arg(long)]
        limit: Option<usize>,
        /// Only records before this time (the same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only this second-factor method (totp, hotp, sms, sms_two_way, call, push, none).
        #[arg(long)]
        method: Option<String>,
        /// Only this RADIUS client (name).
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        format: ReportFormat,
    },
    /// Bearer tokens of the admin HTTPS API ([api]).
    #[command(subcommand)]
    TokenAdmin(TokenAdminCmd),
    /// Show the counters of the running server.
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show replication: role, epoch, last applied sequence, the replicas and
    /// their lag (on the primary), whether the primary is reachable (on a
    /// replica).
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Make this replica the primary (epoch + 1). The other nodes follow it;
    /// a former primary that comes back steps down and re-syncs, and writes
    /// it took after the promotion are discarded (fencing).
    Promote {
        /// Promote even when this replica has not confirmed with its primary
        /// that its copy is complete (it may lack recent writes).
        #[arg(long)]
        force: bool,
    },
    /// Import users from the directory ([directory]), once: new users added,
    /// changed ones updated, users that left the set disabled.
    ImportLdap {
        /// Run a configured [[sync]] item instead of the options below.
        #[arg(long)]
        item: Option<String>,
        /// Search base (default: [directory] base_dn).
        #[arg(long)]
        base: Option<String>,
        /// LDAP filter for the users.
        #[arg(long, conflicts_with = "group")]
        filter: Option<String>,
        /// Or the (nested) members of this group (CN or DN).
        #[arg(long)]
        group: Option<String>,
        /// Method of new users.
        #[arg(long, value_enum, default_value = "totp")]
        method: MethodArg,
        /// Language of new users (enrollment mail).
        #[arg(long, default_value = "")]
        language: String,
        /// Show the changes without making them.
        #[arg(long)]
        dry_run: bool,
        /// Mail new users their enrollment instructions ([mail]).
        #[arg(long)]
        send_email: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Online backup while serving: a consistent, checksummed copy of users,
    /// tokens (seeds stay encrypted: keep seed.key too), OTP state and clients,
    /// plus the audit journal in FILE.audit/.
    Backup {
        /// The backup file (must not exist yet).
        file: PathBuf,
    },
    /// Restore a backup into this node's data directory (the server must be
    /// stopped and the directory must have no database yet).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Start as primary or join as a replica (default: as in the backup).
        #[arg(long = "as", value_parser = ["primary", "replica"])]
        role: Option<String>,
    },
    /// Peer-link certificates for a cluster ([cluster] in the configuration).
    #[command(subcommand)]
    Cluster(ClusterCmd),
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Everything a new cluster of N nodes needs, in DIR: the CA, a
    /// certificate per node (ids 1..=N) and the shared cluster.key.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Number of nodes (ids 1..=N).
        #[arg(long, default_value_t = 3)]
        nodes: u16,
    },
    /// Create the cluster CA: DIR/ca.pem and DIR/ca.key (keep ca.key offline).
    Ca {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue the certificate of one node, signed by DIR/ca.*: DIR/node-N.pem, DIR/node-N.key.
    Cert {
        #[arg(long)]
        dir: PathBuf,
        /// The node's [server] node_id.
        #[arg(long)]
        node_id: u16,
    },
}

#[derive(Args)]
#[group(multiple = false)]
struct ReportFormat {
    /// JSON array output.
    #[arg(long)]
    json: bool,
    /// CSV output.
    #[arg(long)]
    csv: bool,
    /// Output format (same as --json / --csv).
    #[arg(long, value_parser = ["table", "json", "csv"])]
    format: Option<String>,
}

#[derive(Subcommand)]
enum TokenAdminCmd {
    /// Create a token; it is printed once (only its SHA-256 is stored).
    Create {
        /// Unique name, logged with every API write made with the token.
        #[arg(long)]
        name: String,
        /// Scopes: users:read, users:write, clients:read, clients:write,
        /// reports:read, cluster:read, admin (all).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (names and scopes).
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        phone: String,
        /// Second-factor method.
        #[arg(long, value_enum, default_value = "totp")]
        method: MethodArg,
        /// Group membership (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        password: PasswordArgs,
        /// Push device token of the user's authenticator app (method push).
        #[arg(long, default_value = "")]
        device_token: String,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change fields of an existing user (only the options given).
    Set {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// E.164 phone number ("" clears it).
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, value_enum)]
        method: Option<MethodArg>,
        /// Push device token ("" clears it).
        #[arg(long)]
        device_token: Option<String>,
        /// Replace the groups (repeatable).
        #[arg(long = "group")]
        groups: Option<Vec<String>>,
    },
    /// Set a user's PIN (PIN mode: typed before the code, or asked for in the
    /// call / SMS / app), or clear it (standard mode).
    Pin {
        name: String,
        /// The PIN, 4 to 10 digits (visible in the process list; prefer --pin-stdin).
        #[arg(long, group = "pin_source")]
        pin: Option<String>,
        /// Read the PIN from standard input (on a terminal: typed twice, not shown).
        #[arg(long, group = "pin_source")]
        pin_stdin: bool,
        /// Remove the PIN: back to standard mode.
        #[arg(long, group = "pin_source")]
        clear: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable a user.
    Enable { name: String },
    /// Disable a user (authentications are rejected).
    Disable { name: String },
    /// Delete a user and their token.
    Delete { name: String },
    /// Lift a user's lockout (too many failed second factors, or a fraud report).
    Unlock { name: String },
    /// Set a user's password.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Bulk add or update users from CSV with a header row: name and any of
    /// password, totp_secret, display_name, email, phone, method, device_token.
    Import {
        #[arg(long)]
        csv: PathBuf,
    },
}

#[derive(Args)]
#[group(multiple = false)]
struct PasswordArgs {
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long)]
    password: Option<String>,
    /// Read the password from standard input (on a terminal: typed twice, not shown).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Totp,
    Hotp,
    /// One-way SMS through the cloud gateway.
    Sms,
    /// Two-way SMS: the user replies to approve.
    #[value(name = "sms_two_way")]
    SmsTwoWay,
    /// Phone call: the user presses # to approve.
    Call,
    /// Push notification to the authenticator app.
    Push,
    None,
}

impl MethodArg {
    fn method(self) -> Method {
        match self {
            MethodArg::Totp => Method::Totp,
            MethodArg::Hotp => Method::Hotp,
            MethodArg::Sms => Method::Sms,
            MethodArg::SmsTwoWay => Method::SmsTwoWay,
            MethodArg::Call => Method::Call,
            MethodArg::Push => Method::Push,
            MethodArg::None => Method::None,
        }
    }
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Enroll a user's authenticator: prints the otpauth:// URI and a QR code.
    Enroll {
        user: String,
        /// Import an existing base32 seed instead of generating one.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long = "type", value_enum, default_value = "totp")]
        kind: KindArg,
        #[arg(long, value_enum, default_value = "sha1")]
        algorithm: AlgArg,
        /// Code length, 6 to 8 (default: [otp] digits of the configuration).
        #[arg(long)]
        digits: Option<u8>,
        #[arg(long, default_value_t = 30)]
        period: u64,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
        /// Replace the user's existing token (it stops working at once).
        #[arg(long)]
        replace: bool,
    },
    /// List enrolled tokens (never their seeds).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a user's token (never its seed) and the last code step or counter used.
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a user's token (the user stays; enroll a new one).
    Delete { user: String },
    /// Resynchronise an HOTP token whose counter ran ahead (RFC 4226 §7.4):
    /// give two consecutive codes from it.
    Resync {
        user: String,
        /// A code from the token.
        first: String,
        /// The next code it shows.
        second: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Totp,
    Hotp,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgArg {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Add a RADIUS client.
    Add {
        name: String,
        /// Source IP address or CIDR.
        #[arg(long)]
        address: String,
        /// Shared secret (visible in the process list; prefer --secret-stdin).
        #[arg(long, required_unless_present = "secret_stdin")]
        secret: Option<String>,
        /// Read the shared secret from standard input (on a terminal: typed twice, not shown).
        #[arg(long, conflicts_with = "secret")]
        secret_stdin: bool,
        #[arg(long, default_value = "default")]
        policy: String,
        /// Accept requests without Message-Authenticator (unsafe: BlastRADIUS, CVE-2024-3596).
        #[arg(long)]
        no_require_message_authenticator: bool,
        /// Add it even if its address overlaps another client's network (the
        /// most specific prefix answers); names and exact addresses stay unique.
        #[arg(long)]
        force: bool,
    },
    /// List clients: those of the configuration file and those added here.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a stored client.
    Delete { name: String },
}

/// mimalloc rather than glibc's malloc: sled allocates and frees node copies
/// at a high rate (installing a snapshot spent a fifth of its time in
/// glibc's `_int_malloc`), and glibc's per-thread arenas keep freed memory,
/// which a node holding a million users cannot afford.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything radmfa creates (data directory, sled files, audit journal,
    // backups, key files, ready file) holds or leads to argon2 hashes, seeds
    // and shared secrets: owner-only, whatever umask the caller had (the
    // systemd unit sets UMask=0077; a shell, cron or container may not).
    // Files meant for others (certificates) are chmod-ed explicitly.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let cfg = match &cli.config {
        Some(path) => RuntimeConfig::load(path),
        None => RuntimeConfig::parse(DEFAULT_CONFIG, DEFAULT_ORIGIN),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { ready_file, debug } => serve(cfg, ready_file.as_deref(), debug),
        Command::CheckConfig { connect, user } => check_config(&cfg, connect, user.as_deref()),
        Command::Cluster(c) => cluster(c),
        other => admin(&cfg, other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Beyond parsing: the files the configuration names must be usable; with
/// `connect`, the peers it names must answer.
fn check_config(cfg: &RuntimeConfig, connect: bool, user: Option<&str>) -> anyhow::Result<()> {
    if let Some(c) = &cfg.cluster {
        radmfa_server::peer::PeerTls::load(&c.ca, &c.cert, &c.key)
            .map_err(|e| anyhow!("{}: [cluster]: {e}", cfg.origin))?;
    }
    if let Some(p) = &cfg.portal {
        radmfa_server::portal::check(p).map_err(|e| anyhow!("{}: [portal]: {e}", cfg.origin))?;
    }
    if let Some(a) = &cfg.api {
        radmfa_server::api::tls::load(&a.cert, &a.key)
            .map_err(|e| anyhow!("{}: [api]: {e}", cfg.origin))?;
    }
    if let Some(r) = &cfg.radsec {
        radmfa_server::radsec::RadsecTls::load(r, Default::default())
            .map_err(|e| anyhow!("{}: [radsec]: {e}", cfg.origin))?;
    }
    println!("{}: ok", cfg.origin);
    if !connect {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checks = rt.block_on(radmfa_server::checks::run(cfg, user));
    if checks.is_empty() {
        println!(
            "nothing to connect to: no [directory], [[upstream]], [gateway] or [[cluster.peer]]"
        );
    }
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    for c in &checks {
        match &c.result {
            Ok(detail) => println!("ok      {}: {detail}", c.target),
            Err(reason) => println!("FAILED  {}: {reason}", c.target),
        }
    }
    if failed > 0 {
        return Err(anyhow!(
            "{failed} of {} connection checks failed",
            checks.len()
        ));
    }
    Ok(())
}

/// The changes of a directory import, one line each.
fn print_sync(v: &Value) {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let verb = if v["dry_run"] == Value::Bool(true) {
        "would be"
    } else {
        "were"
    };
    for u in list("add") {
        println!(
            "+ {} ({}, {}, {})",
            field(&u, "name"),
            field(&u, "display_name"),
            field(&u, "method"),
            field(&u, "email")
        );
    }
    for u in list("update") {
        let changed: Vec<String> = u["changed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!("~ {}: {}", field(&u, "name"), changed.join(", "));
    }
    for u in list("disable") {
        println!("- {} (disabled)", u.as_str().unwrap_or_default());
    }
    for u in list("skipped") {
        println!(
            "  {} (not managed by this import: left alone)",
            u.as_str().unwrap_or_default()
        );
    }
    for u in list("kept_local") {
        let fields: Vec<&str> = u["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "  {}: {} set locally, kept",
            field(&u, "name"),
            fields.join(", ")
        );
    }
    for u in list("left_disabled") {
        println!(
            "  {} (stays disabled: {})",
            field(&u, "name"),
            field(&u, "disabled_reason")
        );
    }
    println!(
        "{} added, {} updated, {} disabled {verb}{}",
        list("add").len(),
        list("update").len(),
        list("disable").len(),
        match v["mailed"].as_u64() {
            Some(n) if n > 0 => format!("; {n} enrollment mails sent"),
            _ => String::new(),
        }
    );
    for e in list("mail_errors") {
        eprintln!("mail not sent: {}", e.as_str().unwrap_or_default());
    }
    for e in list("refused") {
        eprintln!("left alone: {}", e.as_str().unwrap_or_default());
    }
}

fn cluster(cmd: ClusterCmd) -> anyhow::Result<()> {
    use radmfa_server::peer::{generate_ca, generate_node_cert, Pem};
    fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::fs::PermissionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
        // The umask (0077, see main) would make a certificate owner-only.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    }
    match cmd {
        ClusterCmd::Init { dir, nodes } => {
            if nodes == 0 {
                return Err(anyhow!("--nodes must be at least 1"));
            }
            cluster(ClusterCmd::Ca { dir: dir.clone() })?;
            for node_id in 1..=nodes {
                cluster(ClusterCmd::Cert {
                    dir: dir.clone(),
                    node_id,
                })?;
            }
            let key = radmfa_otp::StateKey::generate();
            let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            write_new(&dir.join("cluster.key"), &format!("{hex}\n"), 0o600)?;
            println!(
                "wrote {}/cluster.key: copy it to every node ([challenge] cluster_key_file); \
                 every node also needs the primary's seed key ([server] key_file)",
                dir.display()
            );
        }
        ClusterCmd::Ca { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ca = generate_ca().map_err(|e| anyhow!(e))?;
            write_new(&dir.join("ca.key"), &ca.key, 0o600)?;
            write_new(&dir.join("ca.pem"), &ca.cert, 0o644)?;
            println!(
                "wrote {0}/ca.pem and {0}/ca.key; now `radmfa cluster cert --dir {0} --node-id N` for each node",
                dir.display()
            );
        }
        ClusterCmd::Cert { dir, node_id } => {
            if node_id == 0 {
                return Err(anyhow!("--node-id must be between 1 and 65535"));
            }
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .with_context(|| format!("cannot read {}", dir.join(name).display()))
            };
            let ca = Pem {
                cert: read("ca.pem")?,
                key: read("ca.key")?,
            };
            let node = generate_node_cert(&ca, node_id).map_err(|e| anyhow!(e))?;
            let (pem, key) = (
                dir.join(format!("node-{node_id}.pem")),
                dir.join(format!("node-{node_id}.key")),
            );
            write_new(&key, &node.key, 0o600)?;
            write_new(&pem, &node.cert, 0o644)?;
            println!(
                "wrote {} and {}; copy them with ca.pem to node {node_id} ([cluster] cert, key, ca)",
                pem.display(),
                key.display()
            );
        }
    }
    Ok(())
}

/// Crates whose DEBUG lines `serve --debug` turns on (dependencies stay at
/// the configured level).
const DEBUG_DIRECTIVES: &str = "radmfa=debug,radmfa_server=debug,radmfa_radius=debug,\
    radmfa_otp=debug,radmfa_store=debug,radmfa_gateway=debug,radmfa_directory=debug";

fn init_logging(cfg: &RuntimeConfig, debug: bool) {
    // RUST_LOG, when set, replaces [log] level; --debug adds its directives.
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| cfg.log_level.clone());
    let directives = if debug {
        format!("{base},{DEBUG_DIRECTIVES}")
    } else {
        base
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: RUST_LOG {directives:?}: {e}; using [log] level");
        tracing_subscriber::EnvFilter::new(&cfg.log_level)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn serve(cfg: RuntimeConfig, ready_file: Option<&Path>, debug: bool) -> anyhow::Result<()> {
    init_logging(&cfg, debug);
    if debug {
        info!("troubleshooting mode (--debug): every request is logged with its attributes (passwords masked); not for production load");
    }
    let workers = if cfg.workers > 0 {
        cfg.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let store = radmfa_server::open_store(&cfg).map_err(|e| match e {
        ServerError::Store(StoreError::Locked { path }) => anyhow!(
            "the store {} is in use by another radmfa process (one server per data directory)",
            path.display()
        ),
        other => anyhow!(other),
    })?;
    let listeners = radmfa_server::Listeners::bind(&cfg, workers)?;
    let control_path = cfg.control_socket();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let cfg = Arc::new(cfg);
    let result = rt.block_on(async move {
        let control = radmfa_server::control::bind(&control_path).with_context(|| {
            format!(
                "cannot create the control socket {}",
                control_path.display()
            )
        })?;
        let listening: Vec<String> = listeners
            .radius_udp()
            .iter()
            .map(|a| a.to_string())
            .collect();
        info!(
            radius_udp = %listening.join(","),
            node = %cfg.node_name,
            workers,
            config = %cfg.origin,
            "listening radius_udp={}",
            listening.join(",")
        );
        first_steps(&cfg, &store);
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("shutting down: finishing requests in flight");
            signals.cancel();
        });
        // Written last, once every listener is bound, so whoever waits for
        // it can use every address in it at once.
        let on_ready = |bound: &radmfa_server::Bound| {
            let Some(path) = ready_file else {
                return Ok(());
            };
            let body = bound.to_json(std::process::id());
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, body.to_string())
                .and_then(|_| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    ServerError::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot write the ready file {}: {e}", path.display()),
                    ))
                })
        };
        let counters = radmfa_server::run(
            cfg.clone(),
            store,
            listeners,
            Some(control),
            shutdown,
            on_ready,
        )
        .await?;
        info!("stopped; final counters {}", counters.to_json());
        Ok::<(), anyhow::Error>(())
    });
    // Start-up work abandoned after a SIGTERM (an argon2 hash on a blocking
    // thread) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

/// What this node serves, once at start-up, and the next step when
/// something is missing (no user, no client).
fn first_steps(cfg: &RuntimeConfig, store: &radmfa_store::Store) {
    let users = store.user_count();
    let stored = store.list_clients().map(|c| c.len()).unwrap_or(0);
    let clients = cfg.clients.len() + stored;
    info!(
        users,
        clients,
        config_clients = cfg.clients.len(),
        stored_clients = stored,
        "serving {users} users for {clients} RADIUS clients ({} in {}, {stored} added with `radmfa client add`)",
        cfg.clients.len(),
        cfg.origin
    );
    if users == 0 {
        info!(
            "no users yet: add one with `radmfa user add NAME --password-stdin`, then \
             `radmfa token enroll NAME` and scan the QR code (`radmfa --help` lists the commands)"
        );
    }
    if clients == 0 {
        tracing::warn!(
            "no RADIUS clients: every request is dropped until one is added with \
             `radmfa client add NAME --address CIDR --secret-stdin` or a [[client]] in {}",
            cfg.origin
        );
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// Runs an admin command: directly on the store when no server holds it,
/// through the running server's control socket otherwise.
fn admin(cfg: &RuntimeConfig, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::User(u) => user(cfg, u),
        Command::Backup { file } => {
            let file = std::path::absolute(&file)
                .with_context(|| format!("cannot resolve {}", file.display()))?;
            let v = call(
                cfg,
                AdminRequest::Backup {
                    path: file.display().to_string(),
                },
            )?;
            println!(
                "backup written to {} ({} records up to change {} of epoch {}; audit journal in {}.audit/)",
                field(&v, "path"),
                v["entries"],
                v["seq"],
                v["epoch"],
                field(&v, "path")
            );
            Ok(())
        }
        Command::Restore { file, role } => {
            radmfa_server::create_data_dir(&cfg.data_dir)
                .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
            let info = radmfa_store::Store::restore(&file, &cfg.db_dir(), &cfg.key_file)
                .map_err(|e| anyhow!("cannot restore {}: {e}", file.display()))?;
            if let Some(role) = role {
                // sled releases the directory lock of the store restore()
                // just closed a moment later, from its own thread.
                let mut tries = 0;
                let store = loop {
                    match radmfa_server::open_store(cfg) {
                        Err(ServerError::Store(StoreError::Locked { .. })) if tries < 100 => {
                            tries += 1;
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        other => break other?,
                    }
                };
                let (r, epoch) = if role == "primary" {
                    (radmfa_store::repl::Role::Primary, info.repl_epoch.max(1))
                } else {
                    (
                        radmfa_store::repl::Role::Replica { primary: None },
                        info.repl_epoch,
                    )
                };
                store
                    .set_repl_state(r, epoch)
                    .context("cannot set the replication role")?;
            }
            println!(
                "restored {} records (up to change {} of epoch {}) into {}",
                info.entries,
                info.seq,
                info.epoch,
                cfg.db_dir().display()
            );
            Ok(())
        }
        Command::ImportLdap {
            item,
            base,
            filter,
            group,
            method,
            language,
            dry_run,
            send_email,
            json,
        } => {
            let req = AdminRequest::DirectorySync {
                item,
                base,
                filter,
                group,
                method: method.method(),
                language,
                dry_run,
                send_email,
            };
            let v = match radmfa_server::open_store(cfg) {
                Ok(store) => {
                    let v = tokio_block(radmfa_server::admin::directory_sync(
                        store.clone(),
                        std::sync::Arc::new(cfg.clone()),
                        None,
                        req,
                    ))?;
                    store.flush().context("cannot flush the store")?;
                    v
                }
                Err(ServerError::Store(StoreError::Locked { .. })) => {
                    tokio_block(radmfa_server::control::request(&cfg.control_socket(), &req))?
                }
                Err(e) => return Err(anyhow!(e)),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_sync(&v);
            }
            Ok(())
        }
        Command::Token(t) => token(cfg, t),
        Command::Client(c) => client(cfg, c),
        Command::Report {
            user,
            result,
            since,
            limit,
            until,
            method,
            client,
            format,
        } => {
            let since_ms = since
                .as_deref()
                .map(|s| parse_since(s).context("--since"))
                .transpose()?;
            let until_ms = until
                .as_deref()
                .map(|s| parse_since(s).context("--until"))
                .transpose()?;
            let v = call(
                cfg,
                AdminRequest::Report {
                    user,
                    result,
                    since_ms,
                    limit,
                    until_ms,
                    method,
                    client,
                },
            )?;
            let recs = v.as_array().cloned().unwrap_or_default();
            let json = format.json || format.format.as_deref() == Some("json");
            let csv = format.csv || format.format.as_deref() == Some("csv");
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if csv {
                // The admin API's CSV writer: RFC 4180, formulas defused,
                // `time` (ISO 8601 UTC) first.
                {
                    use std::io::Write as _;
                    let csv = radmfa_server::api::records_csv(&recs);
                    if let Err(e) = std::io::stdout().write_all(csv.as_bytes()) {
                        stdout_failed(&e);
                    }
                }
            } else {
                let rows: Vec<Vec<String>> = recs
                    .iter()
                    .map(|r| {
                        vec![
                            format_time(r["time_ms"].as_u64().unwrap_or(0)),
                            field(r, "user"),
                            field(r, "mode"),
                            field(r, "result"),
                            field(r, "reason"),
                            field(r, "client_name"),
                            field(r, "client_ip"),
                            field(r, "calling_station"),
                            field(r, "server_name"),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "TIME (UTC)",
                        "USER",
                        "MODE",
                        "RESULT",
                        "REASON",
                        "CLIENT",
                        "CLIENT IP",
                        "CALLING STATION",
                        "SERVER",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        Command::Stats { json } => {
            let v = tokio_block(radmfa_server::control::request(
                &cfg.control_socket(),
                &AdminRequest::Stats,
            ))?;
            if json {
                println!("{v}");
            } else if let Some(m) = v.as_object() {
                for (k, v) in m {
                    println!("{k:<40} {v}");
                }
            }
            Ok(())
        }
        Command::Status { json } => {
            let v = tokio_block(radmfa_server::control::request(
                &cfg.control_socket(),
                &AdminRequest::ReplStatus,
            ))?;
            if json {
                println!("{v}");
            } else {
                print_status(&v, cfg);
            }
            Ok(())
        }
        Command::Promote { force } => {
            let v = tokio_block(radmfa_server::control::request(
                &cfg.control_socket(),
                &AdminRequest::Promote { force },
            ))?;
            println!(
                "node {} is now the primary at epoch {}",
                v["node_id"], v["epoch"]
            );
            Ok(())
        }
        Command::TokenAdmin(t) => token_admin(cfg, t),
        Command::Serve { .. } | Command::CheckConfig { .. } | Command::Cluster(_) => {
            unreachable!("handled in main")
        }
    }
}

/// `radmfa status` for people: this node, then one aligned row per peer of
/// `[cluster]`, the unreachable ones included (a replica the primary has not
/// heard from, or a primary the replica cannot reach).
fn print_status(v: &Value, cfg: &RuntimeConfig) {
    let s = |k: &str| match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let mut rows = vec![
        vec!["node".to_string(), s("node_id")],
        vec!["role".into(), s("role")],
    ];
    if v["role"] != "standalone" {
        rows.push(vec!["epoch".into(), s("epoch")]);
        rows.push(vec![
            "last applied".into(),
            format!("seq {} (epoch {})", s("last_seq"), s("last_epoch")),
        ]);
    }
    if v["role"] == "replica" {
        rows.push(vec!["synced".into(), s("synced")]);
        if v["installing_snapshot"] == true {
            rows.push(vec![
                "installing".into(),
                "a snapshot from the primary".into(),
            ]);
        }
    }
    if v["last_error"].is_string() {
        rows.push(vec!["last error".into(), s("last_error")]);
    }
    for r in &rows {
        println!("{:<14} {}", r[0], r[1]);
    }
    let Some(cluster) = &cfg.cluster else {
        return;
    };
    let replicas = v["replicas"].as_array().cloned().unwrap_or_default();
    let primary = v["primary"].as_u64();
    let mut peers: Vec<(u64, String)> = cluster
        .peers
        .iter()
        .map(|(id, addr)| (u64::from(*id), addr.to_string()))
        .collect();
    // A replica the primary knows that this file does not list.
    for r in &replicas {
        let id = r["node_id"].as_u64().unwrap_or(0);
        if !peers.iter().any(|(p, _)| *p == id) {
            peers.push((id, field(r, "address")));
        }
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|(id, addr)| peer_row(v, &replicas, primary, *id, addr))
        .collect();
    println!();
    print_table(
        &[
            "PEER",
            "ADDRESS",
            "ROLE",
            "STATE",
            "ACKED SEQ",
            "LAG",
            "LAST SEEN",
        ],
        &rows,
    );
}

/// One peer's row of `radmfa status`.
fn peer_row(
    v: &Value,
    replicas: &[Value],
    primary: Option<u64>,
    id: u64,
    addr: &str,
) -> Vec<String> {
    let dash = || "-".to_string();
    if v["role"] == "standalone" {
        let state = "peer link only (replication off)".to_string();
        return vec![
            id.to_string(),
            addr.to_string(),
            dash(),
            state,
            dash(),
            dash(),
            dash(),
        ];
    }
    if v["role"] == "primary" {
        return match replicas.iter().find(|r| r["node_id"].as_u64() == Some(id)) {
            Some(r) => {
                let seen = r["last_seen_ms_ago"].as_u64().unwrap_or(0);
                vec![
                    id.to_string(),
                    addr.to_string(),
                    "replica".into(),
                    if r["connected"] == true {
                        "connected".into()
                    } else {
                        "unreachable".into()
                    },
                    field(r, "acked_seq"),
                    field(r, "lag_entries"),
                    format!("{:.1} s ago", seen as f64 / 1000.0),
                ]
            }
            None => vec![
                id.to_string(),
                addr.to_string(),
                dash(),
                "unreachable (no contact since start)".into(),
                dash(),
                dash(),
                "never".into(),
            ],
        };
    }
    if v["role"] == "replica" && primary == Some(id) {
        let state = match v["primary_unreachable_since"].as_str() {
            Some(since) => format!("unreachable since {since}"),
            None => "connected".into(),
        };
        return vec![
            id.to_string(),
            addr.to_string(),
            "primary".into(),
            state,
            dash(),
            dash(),
            dash(),
        ];
    }
    // Replicas do not link to each other; the primary's status shows them.
    vec![
        id.to_string(),
        addr.to_string(),
        dash(),
        "not linked from this node".into(),
        dash(),
        dash(),
        dash(),
    ]
}

fn token_admin(cfg: &RuntimeConfig, cmd: TokenAdminCmd) -> anyhow::Result<()> {
    match cmd {
        TokenAdminCmd::Create { name, scopes, json } => {
            let v = call(cfg, AdminRequest::AdminTokenCreate { name, scopes })?;
            if json {
                println!("{v}");
            } else {
                println!("{}", field(&v, "token"));
                eprintln!(
                    "admin API token {:?} created with scopes {}; store it now: it is not shown again",
                    field(&v, "name"),
                    v["scopes"]
                );
            }
        }
        TokenAdminCmd::List { json } => {
            let v = call(cfg, AdminRequest::AdminTokenList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let scopes: Vec<String> = t["scopes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        vec![
                            field(t, "name"),
                            scopes.join(","),
                            format_time(t["created"].as_u64().unwrap_or(0) * 1000),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "SCOPES", "CREATED (UTC)"], &rows);
            }
        }
        TokenAdminCmd::Revoke { name } => {
            call(cfg, AdminRequest::AdminTokenRevoke { name: name.clone() })?;
            println!("admin API token {name:?} revoked");
        }
    }
    Ok(())
}

fn user(cfg: &RuntimeConfig, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add {
            name,
            display_name,
            email,
            phone,
            method,
            groups,
            password,
            device_token,
            disabled,
        } => {
            let password = password.read()?;
            let v = call(
                cfg,
                AdminRequest::UserAdd {
                    name,
                    display_name,
                    email,
                    phone,
                    method: method.method(),
                    groups,
                    password,
                    device_token,
                    pin: None,
                    enabled: !disabled,
                },
            )?;
            println!("added user {}", v["name"].as_str().unwrap_or_default());
            print_warnings(&v);
        }
        UserCmd::Set {
            name,
            display_name,
            email,
            phone,
            method,
            device_token,
            groups,
        } => {
            call(
                cfg,
                AdminRequest::UserSet {
                    name: name.clone(),
                    display_name,
                    email,
                    phone,
                    method: method.map(MethodArg::method),
                    device_token,
                    groups,
                },
            )?;
            println!("updated user {name}");
        }
        UserCmd::Pin {
            name,
            pin,
            pin_stdin,
            clear,
        } => {
            let pin = match (pin, pin_stdin, clear) {
                (Some(p), _, _) => Some(p),
                (None, true, _) => Some(read_secret_stdin("PIN")?),
                (None, false, true) => None,
                (None, false, false) => {
                    return Err(anyhow!("give --pin, --pin-stdin or --clear"));
                }
            };
            let set = pin.is_some();
            call(
                cfg,
                AdminRequest::UserPin {
                    name: name.clone(),
                    pin,
                },
            )?;
            if set {
                println!("PIN set for {name} (PIN mode)");
            } else {
                println!("PIN cleared for {name} (standard mode)");
            }
        }
        UserCmd::List { json } => {
            let v = call(cfg, AdminRequest::UserList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|u| {
                        vec![
                            field(u, "name"),
                            field(u, "display_name"),
                            field(u, "method"),
                            if u["enabled"] == Value::Bool(true) {
                                "yes"
                            } else {
                                "no"
                            }
                            .into(),
                            u["token"]["kind"].as_str().unwrap_or("-").into(),
                            field(u, "email"),
                            field(u, "phone"),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "NAME",
                        "DISPLAY NAME",
                        "METHOD",
                        "ENABLED",
                        "TOKEN",
                        "EMAIL",
                        "PHONE",
                    ],
                    &rows,
                );
            }
        }
        UserCmd::Show { name, json } => {
            let v = call(cfg, AdminRequest::UserShow { name })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(m) = v.as_object() {
                for (k, val) in m {
                    let shown = match val {
                        Value::String(s) => s.clone(),
                        Value::Null => "-".into(),
                        _ if is_time_field(k) => show_time(val),
                        Value::Object(t) if k == "token" => show_token(t),
                        other => other.to_string(),
                    };
                    println!("{k:<14} {}", radmfa_server::text::Escaped(&shown));
                }
            }
        }
        UserCmd::Enable { name } => {
            call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: true,
                },
            )?;
            println!("enabled user {name}");
        }
        UserCmd::Disable { name } => {
            call(
                cfg,
                AdminRequest::UserSetEnabled {
                    name: name.clone(),
                    enabled: false,
                },
            )?;
            println!("disabled user {name}");
        }
        UserCmd::Delete { name } => {
            call(cfg, AdminRequest::UserDelete { name: name.clone() })?;
            println!("deleted user {name}");
        }
        UserCmd::Unlock { name } => {
            let v = call(cfg, AdminRequest::UserUnlock { name: name.clone() })?;
            if v["was_locked_until"].as_u64().unwrap_or(0) == 0 {
                println!("unlocked user {name} (no lock was recorded; failure counts cleared)");
            } else {
                println!(
                    "unlocked user {name} (was locked: {})",
                    v["was_lock_reason"].as_str().unwrap_or("")
                );
            }
        }
        UserCmd::Passwd { name, password } => {
            let password = password
                .read()?
                .ok_or_else(|| anyhow!("give --password or --password-stdin"))?;
            call(
                cfg,
                AdminRequest::UserPasswd {
                    name: name.clone(),
                    password,
                },
            )?;
            println!("password changed for {name}");
        }
        UserCmd::Import { csv } => {
            let rows = read_import(&csv)?;
            let n = rows.len();
            let v = call(cfg, AdminRequest::UserImport { rows })?;
            println!(
                "imported {n} rows: {} added, {} updated",
                v["added"], v["updated"]
            );
        }
    }
    Ok(())
}

fn token(cfg: &RuntimeConfig, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Enroll {
            user,
            secret,
            kind,
            algorithm,
            digits,
            period,
            no_qr,
            replace,
        } => {
            let v = call(
                cfg,
                AdminRequest::TokenEnroll {
                    user,
                    secret,
                    kind: match kind {
                        KindArg::Totp => TokenKind::Totp,
                        KindArg::Hotp => TokenKind::Hotp,
                    },
                    algorithm: match algorithm {
                        AlgArg::Sha1 => TokenAlgorithm::Sha1,
                        AlgArg::Sha256 => TokenAlgorithm::Sha256,
                        AlgArg::Sha512 => TokenAlgorithm::Sha512,
                    },
                    digits: digits.unwrap_or(cfg.otp_digits),
                    period,
                    replace,
                },
            )?;
            let uri = v["uri"].as_str().unwrap_or_default();
            println!("{uri}");
            if !no_qr {
                let code =
                    qrcode::QrCode::new(uri.as_bytes()).context("cannot build the QR code")?;
                let qr = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .quiet_zone(true)
                    .build();
                println!("{qr}");
            }
            println!("secret: {}", v["secret"].as_str().unwrap_or_default());
            println!("Scan the QR code (or type the secret) in an authenticator app.");
        }
        TokenCmd::List { json } => {
            let v = call(cfg, AdminRequest::TokenList)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        field(t, "user"),
                        field(t, "kind"),
                        field(t, "algorithm"),
                        field(t, "digits"),
                        if t["kind"] == "totp" {
                            format!("{} s", field(t, "period"))
                        } else {
                            "-".into()
                        },
                        show_time(&t["created"]),
                        last_used(t),
                    ]
                })
                .collect();
            print_table(
                &[
                    "USER",
                    "TYPE",
                    "ALGORITHM",
                    "DIGITS",
                    "PERIOD",
                    "ENROLLED (UTC)",
                    "LAST USED",
                ],
                &rows,
            );
        }
        TokenCmd::Show { user, json } => {
            let t = call(cfg, AdminRequest::TokenShow { user })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
                return Ok(());
            }
            println!("{:<14} {}", "user", field(&t, "user"));
            println!("{:<14} {}", "type", field(&t, "kind"));
            println!("{:<14} {}", "algorithm", field(&t, "algorithm"));
            println!("{:<14} {}", "digits", field(&t, "digits"));
            if t["kind"] == "totp" {
                println!("{:<14} {} s", "period", field(&t, "period"));
            }
            println!("{:<14} {}", "enrolled", show_time(&t["created"]));
            println!("{:<14} {}", "last used", last_used(&t));
        }
        TokenCmd::Delete { user } => {
            call(cfg, AdminRequest::TokenDelete { user: user.clone() })?;
            println!(
                "deleted the token of {user}; enroll a new one with `radmfa token enroll {user}`"
            );
        }
        TokenCmd::Resync {
            user,
            first,
            second,
        } => {
            let v = call(
                cfg,
                AdminRequest::TokenResync {
                    user: user.clone(),
                    first,
                    second,
                },
            )?;
            println!(
                "resynchronised the HOTP token of {user}: counter {} was the last used; the next code is accepted",
                v["last_used"]
            );
        }
    }
    Ok(())
}

/// The last used step or counter of a token, for people: a TOTP step as
/// the time it began.
fn last_used(t: &Value) -> String {
    match (t["last_used"].as_u64(), t["kind"].as_str()) {
        (None, _) => "never".into(),
        (Some(step), Some("totp")) => {
            let period = t["period"].as_u64().unwrap_or(30).max(1);
            format!(
                "step {step} ({})",
                format_time(step.saturating_mul(period).saturating_mul(1000))
            )
        }
        (Some(counter), _) => format!("counter {counter}"),
    }
}

fn client(cfg: &RuntimeConfig, cmd: ClientCmd) -> anyhow::Result<()> {
    match cmd {
        ClientCmd::Add {
            name,
            address,
            secret,
            secret_stdin,
            policy,
            no_require_message_authenticator,
            force,
        } => {
            let secret = match (secret, secret_stdin) {
                (Some(s), _) => s,
                (None, true) => read_secret_stdin("Shared secret")?,
                (None, false) => return Err(anyhow!("give --secret or --secret-stdin")),
            };
            let v = call(
                cfg,
                AdminRequest::ClientAdd {
                    name,
                    address,
                    secret,
                    policy,
                    require_message_authenticator: !no_require_message_authenticator,
                    force,
                },
            )?;
            println!(
                "added client {} ({})",
                v["name"].as_str().unwrap_or_default(),
                v["address"].as_str().unwrap_or_default()
            );
            print_warnings(&v);
            if no_require_message_authenticator {
                eprintln!("warning: this client may send requests without Message-Authenticator; that exposes it to BlastRADIUS (CVE-2024-3596)");
            }
        }
        ClientCmd::List { json } => {
            let stored = call(cfg, AdminRequest::ClientList)?;
            // One list, the configuration file's clients first: the JSON and
            // the table show the same clients.
            let all: Vec<Value> = cfg
                .clients
                .iter()
                .map(radmfa_server::admin::static_client_view)
                .chain(stored.as_array().cloned().unwrap_or_default())
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            field(c, "name"),
                            field(c, "address"),
                            field(c, "policy"),
                            yes_no(c["require_message_authenticator"] == Value::Bool(true)),
                            field(c, "source"),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "NAME",
                        "ADDRESS",
                        "POLICY",
                        "REQUIRE MESSAGE-AUTHENTICATOR",
                        "SOURCE",
                    ],
                    &rows,
                );
            }
        }
        ClientCmd::Delete { name } => {
            call(cfg, AdminRequest::ClientDelete { name: name.clone() })?;
            println!("deleted client {name}");
        }
    }
    Ok(())
}

impl PasswordArgs {
    fn read(&self) -> anyhow::Result<Option<String>> {
        if self.password_stdin {
            return read_secret_stdin("Password").map(Some);
        }
        Ok(self.password.clone())
    }
}

/// A secret from standard input: the first line when it is piped; typed
/// twice at a prompt without echo when it is a terminal.
fn read_secret_stdin(what: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        return read_stdin_line();
    }
    let first = zeroize::Zeroizing::new(prompt_no_echo(&format!("{what}: "))?);
    if first.is_empty() {
        return Err(anyhow!("no {} given; nothing changed", what.to_lowercase()));
    }
    let again = zeroize::Zeroizing::new(prompt_no_echo(&format!("{what} (again): "))?);
    if *first != *again {
        return Err(anyhow!(
            "the two {} entries differ; nothing changed",
            what.to_lowercase()
        ));
    }
    Ok(first.to_string())
}

/// Reads one line from the terminal on standard input with echo off (the
/// newline still echoes), restoring the terminal afterwards.
fn prompt_no_echo(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};
    struct Restore(Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo off before the prompt shows: what is typed (or pasted) at once
    // must not appear.
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off echo")?;
    let restore = Restore(saved);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .context("cannot read standard input")?;
    drop(restore);
    let trimmed = line.trim_end_matches(['\r', '\n']).to_string();
    zeroize::Zeroize::zeroize(&mut line);
    Ok(trimmed)
}

/// The `warnings` of an admin answer, on standard error.
fn print_warnings(v: &Value) {
    for w in v["warnings"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        eprintln!("warning: {}", w.as_str().unwrap_or_default());
    }
}

/// Fields of `user show` that hold unix seconds.
fn is_time_field(k: &str) -> bool {
    matches!(k, "created" | "updated" | "locked_until")
}

/// Unix seconds for people: ISO 8601 UTC; 0 is "-" (never), `u64::MAX`
/// (a lock an admin must lift) says so.
fn show_time(v: &Value) -> String {
    match v.as_u64() {
        None | Some(0) => "-".into(),
        Some(u64::MAX) => "until an admin unlocks (radmfa user unlock)".into(),
        Some(secs) => format_time(secs.saturating_mul(1000)),
    }
}

/// A token object of `user show` on one line.
fn show_token(t: &serde_json::Map<String, Value>) -> String {
    let f = |k: &str| match &t.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    };
    let period = if f("kind") == "totp" {
        format!(", {} s", f("period"))
    } else {
        String::new()
    };
    format!(
        "{} {} {} digits{period}, enrolled {}",
        f("kind"),
        f("algorithm"),
        f("digits"),
        t.get("created").map(show_time).unwrap_or_default()
    )
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read standard input")?;
    let line = s.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(anyhow!("standard input was empty"));
    }
    Ok(line)
}

fn read_import(path: &Path) -> anyhow::Result<Vec<ImportRow>> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let name_col = col("name").ok_or_else(|| anyhow!("{}: no 'name' column", path.display()))?;
    let (pw, seed, dn, em, ph, me, dt) = (
        col("password"),
        col("totp_secret"),
        col("display_name"),
        col("email"),
        col("phone"),
        col("method"),
        col("device_token"),
    );
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let name = get(Some(name_col));
        if name.is_empty() {
            return Err(anyhow!("{}: row {}: empty name", path.display(), i + 2));
        }
        rows.push(ImportRow {
            name,
            password: Some(get(pw)).filter(|s| !s.is_empty()),
            totp_secret: Some(get(seed)).filter(|s| !s.is_empty()),
            display_name: get(dn),
            email: get(em),
            phone: get(ph),
            method: match get(me).as_str() {
                "" => None,
                m => Some(
                    m.parse::<Method>()
                        .map_err(|e| anyhow!("{}: row {}: {e}", path.display(), i + 2))?,
                ),
            },
            device_token: get(dt),
        });
    }
    Ok(rows)
}

/// Runs a request locally, or through the server when it holds the store.
fn call(cfg: &RuntimeConfig, req: AdminRequest) -> anyhow::Result<Value> {
    match radmfa_server::open_store(cfg) {
        Ok(store) => {
            let v = radmfa_server::admin::execute(&store, cfg, req).map_err(|e| anyhow!(e))?;
            store.flush().context("cannot flush the store")?;
            Ok(v)
        }
        Err(ServerError::Store(StoreError::Locked { .. })) => {
            tokio_block(radmfa_server::control::request(&cfg.control_socket(), &req))
        }
        Err(e) => Err(anyhow!(e)),
    }
}

fn tokio_block<F: std::future::Future<Output = Result<Value, AdminError>>>(
    f: F,
) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f).map_err(|e| anyhow!(e))
}

/// A `--since`/`--until` time in unix ms: unix seconds, a duration ago
/// (`30m`, `1h`, `2d`), `today` or `yesterday` (midnight UTC), a date
/// (`2026-12-07`, midnight UTC) or RFC 3339.
fn parse_since(s: &str) -> anyhow::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    parse_time_at(s, now)
}

fn parse_time_at(s: &str, now_ms: u64) -> anyhow::Result<u64> {
    const DAY_MS: u64 = 86_400_000;
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs.saturating_mul(1000));
    }
    match s {
        "today" => return Ok(now_ms - now_ms % DAY_MS),
        "yesterday" => return Ok((now_ms - now_ms % DAY_MS).saturating_sub(DAY_MS)),
        _ => {}
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(now_ms.saturating_sub(ago.as_millis() as u64));
    }
    let full = if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|_| {
            anyhow!(
                "{s:?} is not a time: use a duration ago (30m, 1h, 2d), today, yesterday, \
                 a date (2026-12-07, UTC), RFC 3339 (2026-12-07T08:00:00Z) or unix seconds"
            )
        })?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| anyhow!("{s:?} is before 1970"))
}

/// Unix ms as ISO 8601 UTC to the second.
fn format_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A field of a JSON answer as printed for people: control characters
/// escaped (radmfa_server::text), so stored text cannot drive the terminal.
fn field(v: &Value, name: &str) -> String {
    match &v[name] {
        Value::String(s) => radmfa_server::text::escape(s).into_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    // Stored text never drives the terminal: control characters escaped.
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| radmfa_server::text::escape(c).into_owned())
                .collect()
        })
        .collect();
    let rows = escaped.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>, out: &mut std::io::StdoutLock| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        if let Err(e) = writeln!(out, "{}", s.join("  ").trim_end()) {
            stdout_failed(&e);
        }
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
}
