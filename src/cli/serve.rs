//! `radmfa serve`: logging, the runtime, binding every listener
//! (`radmfa_server::Listeners::bind`) and the control socket, then handing
//! them to `radmfa_server::run` until a signal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use radmfa_server::config::LogFormat;
use radmfa_server::{RuntimeConfig, ServerError};
use radmfa_store::StoreError;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Crates whose DEBUG lines `serve --debug` turns on (dependencies stay at
/// the configured level).
pub const DEBUG_DIRECTIVES: &str = "radmfa=debug,radmfa_server=debug,radmfa_radius=debug,\
    radmfa_otp=debug,radmfa_store=debug,radmfa_gateway=debug,radmfa_directory=debug";

pub fn init_logging(cfg: &RuntimeConfig, debug: bool) {
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

pub fn serve(cfg: RuntimeConfig, ready_file: Option<&Path>, debug: bool) -> anyhow::Result<()> {
    init_logging(&cfg, debug);
    if debug {
        info!("troubleshooting mode (--debug): every request is logged with its attributes (passwords masked); not for production load");
    }
    // The texts users read: built in, with `[i18n] dir`'s edited files
    // (already checked by the configuration's load step).
    let catalog = radmfa_server::i18n::Catalog::load(cfg.i18n.dir.as_deref())?;
    for (lang, keys) in catalog.missing() {
        warn!(
            language = %lang,
            count = keys.len(),
            "some texts have no translation in this language and are shown in English: `radmfa check-config` lists them"
        );
    }
    radmfa_server::i18n::install(Arc::new(catalog));
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
        reload_on_hangup(cfg.control_socket());
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
pub fn first_steps(cfg: &RuntimeConfig, store: &radmfa_store::Store) {
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

/// SIGHUP reloads the configuration: the same request `radmfa reload`
/// sends, through the node's own control socket (the node logs the outcome).
fn reload_on_hangup(control: std::path::PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot handle SIGHUP; reload with `radmfa reload`");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration");
            let req = radmfa_server::admin::AdminRequest::Reload;
            if let Err(e) = radmfa_server::control::request(&control, &req).await {
                // Refusals are logged by the node itself; this is the socket failing.
                if matches!(e, radmfa_server::admin::AdminError::NeedsServer(_)) {
                    error!(error = %e, "SIGHUP: cannot reach the node's control socket");
                }
            }
        }
    });
}

pub async fn wait_for_signal() {
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
