//! The command line as clap sees it: every command, option and help text.
//! Kept apart from what the commands do so `radmfa --help` can be read in
//! one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use radmfa_store::Method;

#[derive(Parser)]
#[command(
    name = "radmfa",
    version,
    about = "RADIUS authentication server with a second factor"
)]
pub struct Cli {
    /// Configuration file. Without it (or RADMFA_CONFIG):
    /// /etc/radmfa/radmfa.toml when it exists, else the embedded default.
    #[arg(long, env = "RADMFA_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    Report(ReportArgs),
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
    /// replica); and the configuration sections each peer differs in.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Make the running server read its configuration file again (as
    /// SIGHUP does): policies, clients, group attributes, limits, gateway,
    /// directory, mail and sync items take effect without a restart. A file
    /// that does not validate, or that changes a key needing a restart, is
    /// refused and the running configuration stays.
    Reload,
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
    ImportLdap(ImportLdapArgs),
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
pub enum ClusterCmd {
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
pub struct ReportFormat {
    /// JSON array output.
    #[arg(long)]
    pub json: bool,
    /// CSV output.
    #[arg(long)]
    pub csv: bool,
    /// Output format (same as --json / --csv).
    #[arg(long, value_parser = ["table", "json", "csv"])]
    pub format: Option<String>,
}

#[derive(Subcommand)]
pub enum TokenAdminCmd {
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
pub enum UserCmd {
    /// Add a user.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        phone: String,
        /// Language of the user's prompts, SMS, calls and portal: en, nl,
        /// de or fr, optionally with a region (nl-BE). Default: the
        /// policy's language, else [i18n] default_language.
        #[arg(long, default_value = "")]
        language: String,
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
        /// Send the enrollment mail ([mail]): how the user will verify, or
        /// (no phone yet) to complete the enrollment in the portal.
        #[arg(long)]
        send_email: bool,
        /// PIN mode with a random initial PIN told only in the enrollment
        /// mail, to be changed at the first sign-in. Not generated when no
        /// mail can be sent (the user is then left without a PIN).
        #[arg(long, requires = "send_email")]
        generate_pin: bool,
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
        /// Language: en, nl, de or fr, optionally with a region ("" clears
        /// it: the policy's language, else [i18n] default_language).
        #[arg(long)]
        language: Option<String>,
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
        /// Do not ask the user to change this PIN at the next sign-in (a PIN
        /// the user chose, e.g. carried over from Azure MFA Server). Without
        /// it, a PIN an admin sets must be changed: over RADIUS (a challenge
        /// for a new PIN, twice) or in the portal.
        #[arg(long, conflicts_with = "clear")]
        no_change: bool,
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
    /// List a user's browsers registered for push approvals (portal devices page).
    Devices {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove one of a user's push devices (its id from `user devices`).
    DeviceRemove { name: String, id: String },
    /// Set a user's password.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Bulk add or update users from CSV with a header row: name and any of
    /// password, totp_secret (or secret), display_name, email, phone,
    /// extension, method, device_token, language, pin, groups (separated by
    /// ";"), enabled, token_type, algorithm, digits, period, counter.
    /// All or nothing unless --continue-on-error.
    Import {
        #[arg(long)]
        csv: PathBuf,
        /// After a successful import, send the enrollment mail to each user
        /// it added ([mail]).
        #[arg(long)]
        send_email: bool,
        /// Print what each row would create or change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import the good rows and list the bad ones.
        #[arg(long)]
        continue_on_error: bool,
    },
}

#[derive(Args)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// The password (visible in the process list; prefer --password-stdin).
    #[arg(long)]
    pub password: Option<String>,
    /// Read the password from standard input (on a terminal: typed twice, not shown).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
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
    pub fn method(self) -> Method {
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
pub enum TokenCmd {
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
    /// List enrolled tokens (never their seeds); --imported lists the
    /// tokens imported by serial, --unassigned those not given to a user.
    List {
        #[arg(long)]
        json: bool,
        /// The imported tokens (by serial), assigned or not.
        #[arg(long)]
        imported: bool,
        /// The imported tokens not assigned to a user.
        #[arg(long)]
        unassigned: bool,
    },
    /// Import OATH tokens (HOTP/TOTP) from a PSKC file (RFC 6030), by serial.
    /// All or nothing. A token whose file names an existing user is assigned.
    ImportPskc {
        file: PathBuf,
        /// Read the password of a PBKDF2-encrypted file from standard input.
        #[arg(long, conflicts_with = "psk_file")]
        password_stdin: bool,
        /// File holding the pre-shared key (hex, or the raw 16/24/32 bytes).
        #[arg(long)]
        psk_file: Option<PathBuf>,
        /// Print what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Assign an imported token to a user (it becomes their token).
    Assign { serial: String, user: String },
    /// Revoke an imported token: removed, and from its user if assigned.
    Revoke { serial: String },
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
pub enum KindArg {
    Totp,
    Hotp,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AlgArg {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Subcommand)]
pub enum ClientCmd {
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

// The options of `radmfa report` (plain comment: clap would show a doc comment as help).
#[derive(Args)]
pub struct ReportArgs {
    /// Only this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this result (ok and failed: admin actions).
    #[arg(long, value_parser = ["accept", "reject", "challenge", "ok", "failed"])]
    pub result: Option<String>,
    /// Only records since this time: a duration ago (30m, 1h, 2d),
    /// today, yesterday, a date (2026-12-07, UTC), RFC 3339 or unix seconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Only the last N matching records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only records before this time (the same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this second-factor method (totp, hotp, sms, sms_two_way, call, push, none).
    #[arg(long)]
    pub method: Option<String>,
    /// Only this RADIUS client (name).
    #[arg(long)]
    pub client: Option<String>,
    /// The stored Accounting-Requests (start, interim-update, stop...) instead
    /// of sign-ins; --user, --since, --until, --client and --limit apply.
    #[arg(long, conflicts_with_all = ["result", "method"])]
    pub accounting: bool,
    /// The aggregated report instead of records: sign-ins per period,
    /// method, result and client, the most failing users, locked,
    /// fraud-reported and never-enrolled users (--since/--until apply).
    #[arg(long, conflicts_with_all = ["user", "result", "limit", "method", "client"])]
    pub summary: bool,
    /// With --summary: count sign-ins per hour or per day.
    #[arg(long, value_parser = ["hour", "day"], default_value = "day", requires = "summary")]
    pub bucket: String,
    /// With --summary: how many of the most failing users.
    #[arg(long, default_value_t = 10, requires = "summary")]
    pub top: usize,
    #[command(flatten)]
    pub format: ReportFormat,
}

// The options of `radmfa import-ldap` (plain comment: clap would show a doc comment as help).
#[derive(Args)]
pub struct ImportLdapArgs {
    /// Run a configured [[sync]] item instead of the options below.
    #[arg(long)]
    pub item: Option<String>,
    /// Search base (default: [directory] base_dn).
    #[arg(long)]
    pub base: Option<String>,
    /// LDAP filter for the users.
    #[arg(long, conflicts_with = "group")]
    pub filter: Option<String>,
    /// Or the (nested) members of this group (CN or DN).
    #[arg(long)]
    pub group: Option<String>,
    /// Method of new users.
    #[arg(long, value_enum, default_value = "totp")]
    pub method: MethodArg,
    /// Language of new users (enrollment mail).
    #[arg(long, default_value = "")]
    pub language: String,
    /// Show the changes without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Mail new users their enrollment instructions ([mail]).
    #[arg(long)]
    pub send_email: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}
