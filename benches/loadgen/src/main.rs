//! `radmfa-loadgen`: a RADIUS load generator for the radmfa vs FreeRADIUS benchmark.
//!
//! Sends PAP + TOTP Access-Requests (inline, or password -> Access-Challenge -> code), or
//! one-way SMS logins (password -> Access-Challenge -> code read back from the gateway
//! simulator -> code), with Message-Authenticator, keeps many transactions in flight over
//! UDP sockets, verifies every reply, retransmits on timeout, and reports transactions/s
//! and latency percentiles. See `benches/README.md`.

mod engine;
mod sms;
mod stats;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::engine::{Config, Scenario, SharedSecret};
use crate::sms::SmsOptions;
use crate::stats::{Latency, Report};
use crate::users::Method;

/// RADIUS load generator (PAP + TOTP, inline or Access-Challenge).
#[derive(Debug, Parser)]
#[command(
    name = "radmfa-loadgen",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a users CSV with random passwords: name,password,totp_secret (random TOTP
    /// seeds) or, with --method sms, name,password,method,phone (unique phone numbers).
    GenUsers {
        /// Number of users.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// User name prefix (names are PREFIX followed by a 6-digit number).
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// Second factor of the users.
        #[arg(long, value_enum, default_value_t = Method::Totp)]
        method: Method,
        /// With --method sms: phone numbers are PREFIX followed by a 7-digit number.
        #[arg(long, default_value = "+3161")]
        phone_prefix: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the current TOTP code (SHA-1, 6 digits, 30 s) of a base32 secret.
    Totp {
        /// Base32 secret.
        secret: String,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// RADIUS server address.
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: SocketAddr,
    /// Shared secret.
    #[arg(
        long,
        env = "RADMFA_LOADGEN_SECRET",
        default_value = "testing123",
        hide_env_values = true
    )]
    secret: String,
    /// Users CSV: name,password,totp_secret (base32), or a header naming the columns
    /// (name, password, totp_secret, phone; others ignored).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Authentication flow.
    #[arg(long, value_enum, default_value_t = Scenario::Inline)]
    scenario: Scenario,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured traffic before the measured window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Transactions in flight (closed loop), or the cap on them with --rate.
    #[arg(long, default_value_t = 256)]
    outstanding: usize,
    /// Client UDP sockets (256 identifiers each).
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Requests in flight per socket at most (1..=256). Behind a UDP balancer that keeps a
    /// session per source port (nginx), use 1 and --sockets >= --outstanding so that every
    /// request is balanced on its own.
    #[arg(long, default_value_t = 256)]
    per_socket: usize,
    /// Worker threads (each busy-polls its sockets; keep 1 per dedicated CPU).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions before a transaction counts as timed out.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Target rate in transactions/s (open loop; latency counted from the scheduled start).
    #[arg(long)]
    rate: Option<f64>,
    /// Log every user in exactly once and stop (warms the server's caches).
    #[arg(long)]
    one_pass: bool,
    /// NAS-Identifier to send.
    #[arg(long, default_value = "radmfa-loadgen")]
    nas_identifier: String,
    /// Label put in the report (e.g. the server name).
    #[arg(long, default_value = "")]
    label: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// sms scenario: base URL of the gateway simulator (https://HOST:PORT).
    #[arg(long)]
    sim_url: Option<String>,
    /// sms scenario: API key of the simulator.
    #[arg(
        long,
        env = "RADMFA_SIM_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    sim_key: String,
    /// sms scenario: the simulator's certificate (PEM) to trust.
    #[arg(long)]
    sim_ca: Option<PathBuf>,
    /// sms scenario: the server's SMS text, {code} where the code goes.
    #[arg(long, default_value = "Your sign-in code is {code}")]
    sms_template: String,
    /// sms scenario: threads reading codes from the simulator (the UDP engine never waits
    /// on HTTP).
    #[arg(long, default_value_t = 4)]
    sms_fetchers: usize,
    /// sms scenario: how long to look for a challenge's SMS before giving up on the login.
    #[arg(long, default_value_t = 2000)]
    sms_wait_ms: u64,
}

fn seconds(v: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("bad --{what} {v}"))
}

fn run_load(args: RunArgs) -> Result<()> {
    let Some(users_path) = args.users.as_deref() else {
        bail!("--users CSV is required");
    };
    let users = Arc::new(users::load(users_path)?);
    let sms = match (args.scenario, &args.sim_url, &args.sim_ca) {
        (Scenario::Sms, Some(url), Some(ca)) => Some(SmsOptions::new(
            url,
            args.sim_key,
            ca,
            args.sms_template,
            args.sms_fetchers,
            Duration::from_millis(args.sms_wait_ms),
        )?),
        (Scenario::Sms, _, _) => bail!("--scenario sms needs --sim-url, --sim-key and --sim-ca"),
        _ => None,
    };
    let cfg = Config {
        server: args.server,
        secret: SharedSecret(args.secret.into_bytes()),
        scenario: args.scenario,
        warmup: seconds(args.warmup, "warmup")?,
        duration: seconds(args.duration, "duration")?,
        outstanding: args.outstanding,
        sockets: args.sockets,
        per_socket: args.per_socket,
        threads: args.threads,
        timeout: Duration::from_millis(args.timeout_ms),
        retries: args.retries,
        rate: args.rate,
        one_pass: args.one_pass,
        nas_identifier: args.nas_identifier,
        sms,
    };
    if !cfg.one_pass && cfg.duration.is_zero() {
        bail!("--duration must be positive");
    }
    let outcome = engine::run(&cfg, Arc::clone(&users))?;
    let mut stats = outcome.stats;
    let latency = Latency::from_samples(&mut stats.latencies_ns);
    let accept_latency = Latency::from_samples(&mut stats.accept_latencies_ns);
    let leg2_latency = Latency::from_samples(&mut stats.leg2_latencies_ns);
    let fetch_latency = Latency::from_samples(&mut stats.fetch_latencies_ns);
    let report = Report {
        label: args.label,
        scenario: cfg.scenario.name().to_owned(),
        server: cfg.server.to_string(),
        users: users.len(),
        outstanding: cfg.outstanding,
        sockets: cfg.sockets,
        target_rate: cfg.rate,
        measured: outcome.measured,
        loadgen_cpu: outcome.cpu,
        threads: cfg.threads,
        stats,
        latency,
        accept_latency,
        leg2_latency,
        fetch_latency,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Command::GenUsers {
            count,
            prefix,
            method,
            phone_prefix,
            out,
        }) => users::generate(&out, count, &prefix, method, &phone_prefix),
        Some(Command::Totp { secret }) => totp_now(&secret),
        None => run_load(cli.run),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("radmfa-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn totp_now(secret: &str) -> Result<()> {
    let key =
        radmfa_otp::base32_decode(secret).map_err(|e| anyhow::anyhow!("bad base32 secret: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_secs();
    println!("{}", radmfa_otp::Totp::default().generate(&key, now));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_run_options_and_subcommands() {
        let cli = Cli::try_parse_from([
            "radmfa-loadgen",
            "--server",
            "127.0.0.1:1900",
            "--users",
            "u.csv",
            "--scenario",
            "challenge",
            "--rate",
            "5000",
            "--json",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.scenario, Scenario::Challenge);
        assert_eq!(cli.run.rate, Some(5000.0));
        assert_eq!(cli.run.server.port(), 1900);
        let cli = Cli::try_parse_from(["radmfa-loadgen", "gen-users", "--out", "x.csv"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::GenUsers { count: 10_000, .. })
        ));
        assert!(Cli::try_parse_from(["radmfa-loadgen", "--scenario", "bogus"]).is_err());
        let cli = Cli::try_parse_from([
            "radmfa-loadgen",
            "--scenario",
            "sms",
            "--sim-url",
            "https://127.0.0.1:8443",
            "--sim-key",
            "k",
            "--sim-ca",
            "sim.pem",
            "--per-socket",
            "1",
            "--sockets",
            "64",
        ])
        .unwrap();
        assert_eq!(cli.run.scenario, Scenario::Sms);
        assert_eq!((cli.run.per_socket, cli.run.sockets), (1, 64));
        assert_eq!(cli.run.sms_template, "Your sign-in code is {code}");
        let cli = Cli::try_parse_from([
            "radmfa-loadgen",
            "gen-users",
            "--method",
            "sms",
            "--out",
            "x.csv",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::GenUsers {
                method: Method::Sms,
                ..
            })
        ));
    }
}
