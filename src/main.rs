//! The `radmfa` command: parse the command line, load the configuration, then
//! either serve (binding the sockets and handing them to `radmfa-server`) or
//! run an admin command against the store or the running server.

use std::process::ExitCode;

use clap::Parser;
use radmfa_server::RuntimeConfig;

/// `println!` that ends the process quietly when standard output is a closed
/// pipe (`radmfa report | head`) instead of panicking, with the status a
/// process killed by SIGPIPE has (141), as other Unix tools do.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::print::stdout_failed(&e);
        }
    }};
}

mod cli;

use cli::args::{Cli, Command};
use cli::print::{is_broken_pipe, BROKEN_PIPE_STATUS};

const DEFAULT_CONFIG: &str = include_str!("../config/radmfa.toml");
const DEFAULT_ORIGIN: &str = "<embedded default config/radmfa.toml>";

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
    let mut cli = Cli::parse();
    if matches!(cli.command, Command::Serve { .. }) {
        // May start this process again with the allocator's options set.
        cli::allocator::configure();
    }
    cli.config = cli::config_source::resolve(
        cli.config.take(),
        std::path::Path::new(cli::config_source::SYSTEM_CONFIG),
    );
    if let (Command::Reload, Some(path)) = (&cli.command, &cli.config) {
        // Not loaded here: the server reads the file and says what is wrong.
        return exit_code(cli::status::reload_file(path));
    }
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
        Command::Serve { ready_file, debug } => {
            cli::serve::serve(cfg, ready_file.as_deref(), debug)
        }
        Command::CheckConfig { connect, user } => {
            cli::check_config::check_config(&cfg, connect, user.as_deref())
        }
        Command::Cluster(c) => cli::cluster::cluster(c),
        Command::User(u) => cli::user::user(&cfg, u),
        Command::Token(t) => cli::token::token(&cfg, t),
        Command::Client(c) => cli::client::client(&cfg, c),
        Command::TokenAdmin(t) => cli::admin_token::token_admin(&cfg, t),
        Command::Report(args) => cli::report::report(&cfg, args),
        Command::ImportLdap(args) => cli::sync::import_ldap(&cfg, args),
        Command::Backup { file } => cli::backup::backup(&cfg, file),
        Command::Restore { file, role } => cli::backup::restore(&cfg, file, role),
        Command::Stats { json } => cli::status::stats(&cfg, json),
        Command::Status { json } => cli::status::status(&cfg, json),
        Command::Reload => cli::status::reload(&cfg.control_socket()),
        Command::Promote { force } => cli::status::promote(&cfg, force),
    };
    exit_code(result)
}

/// The process status for a command's result, its error printed.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
