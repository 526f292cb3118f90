//! radmfa-server: the listeners, the authentication pipeline and the admin
//! control socket. It glues the protocol (`radmfa-radius`), OTP
//! (`radmfa-otp`) and store (`radmfa-store`) crates; it receives already-bound
//! sockets and a cancellation token from the binary.

pub mod admin;
pub mod api;
pub mod audit;
pub mod audit_ship;
pub mod callback;
pub mod checks;
pub mod clients;
pub mod config;
pub mod consistency;
pub mod control;
pub mod counters;
pub mod credcache;
mod debuglog;
pub mod dedup;
pub mod dictionary;
pub mod droplog;
mod error;
pub mod hot;
mod https;
pub mod i18n;
pub mod limits;
mod listeners;
pub mod mail;
pub mod peer;
pub mod pipeline;
pub mod portal;
pub mod pskc;
pub mod push;
pub mod radsec;
pub mod replication;
pub mod retention;
pub mod secret;
pub mod swap;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod text;
pub mod throttle;
mod tls_util;
pub mod udp;
pub mod upstream;
pub mod verifications;

use std::path::Path;
use std::sync::Arc;

use radmfa_otp::{Clock, StateKey, SystemClock};
use radmfa_store::{Store, StoreOptions};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{ConfigError, RuntimeConfig};
use error::for_section;
pub use error::ServerError;
pub use listeners::{Bound, Listeners};
pub use pipeline::Node;

/// Creates the data directory (and missing parents) owner-only (0700),
/// whatever the umask: it holds the database, the audit journal and, by
/// default, the key files.
pub fn create_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Warns, at start-up, about an existing data, database or audit directory
/// that other users can enter or list (made by hand, by an older version or
/// under a loose umask): they could read argon2 hashes, client shared secrets
/// and the audit log. Not changed silently: the admin may share it on purpose.
fn warn_open_dirs(cfg: &RuntimeConfig, store: &Store) {
    use std::os::unix::fs::PermissionsExt;
    for dir in [
        cfg.data_dir.clone(),
        cfg.db_dir(),
        store.audit_dir().to_path_buf(),
    ] {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = %format!("{mode:04o}"),
                "{} is open to other users (mode {mode:04o}): it holds password hashes, \
                 client shared secrets or the audit log; run `chmod 700 {}`",
                dir.display(),
                dir.display()
            );
        }
    }
}

/// Opens the store of a configuration (creating the data directory); a
/// fresh store of a node configured as a replica becomes a (read-only) replica.
pub fn open_store(cfg: &RuntimeConfig) -> Result<Store, ServerError> {
    create_data_dir(&cfg.data_dir)?;
    let store = Store::open(
        &cfg.db_dir(),
        &cfg.key_file,
        &StoreOptions {
            cache_bytes: cfg.store_cache_bytes,
            create_key_if_missing: true,
            flush_every_ms: Some(200),
        },
    )?;
    // Here, not only in `run`: an offline CLI write to a replica that never
    // started must be refused, or it would make the store non-fresh and the
    // node would then start as a second primary.
    if let Some(c) = cfg.cluster.as_ref().filter(|c| c.replication) {
        init_role(&store, c.role)?;
    }
    Ok(store)
}

/// Reads the cluster key (State MAC), creating a random one (mode 0600) when
/// the file does not exist yet. Every node of a cluster needs the same file.
pub fn load_cluster_key(path: &Path) -> Result<StateKey, ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |reason: String| ServerError::KeyFile {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let hex = String::from_utf8(bytes).map_err(|_| err("not a hex key".into()))?;
            let key = zeroize::Zeroizing::new(
                data_decode_hex(hex.trim()).ok_or_else(|| err("not a hex key".into()))?,
            );
            let state_key = StateKey::new(&key)
                .map_err(|_| err("the key must have at least 16 bytes".into()))?;
            radmfa_store::check_key_file(path, &key).map_err(err)?;
            Ok(state_key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = StateKey::generate();
            let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(format!("cannot create: {e}")))?;
            f.write_all(format!("{hex}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| err(format!("cannot write: {e}")))?;
            // `run` says so at info level when a cluster is configured
            // (only then does anyone need to copy it).
            tracing::debug!(path = %path.display(), "created a new cluster key");
            Ok(key)
        }
        Err(e) => Err(err(format!("cannot read: {e}"))),
    }
}

/// Logs an error when the seed key does not open the sealed seeds the store
/// holds. Start-up already refused a key other than the store's own (its key
/// check value); this catches a replica whose key is not the primary's: the
/// seeds it received cannot be opened, so every TOTP sign-in on it would fail.
/// Returns what it found (`None`: no seed stored yet).
fn check_seed_key(store: &Store) -> Result<Option<bool>, radmfa_store::StoreError> {
    let found = store.seed_key_opens_seeds();
    if let Ok(Some(false)) = found {
        tracing::error!(
            "the seed key does not open the token seeds in this store: they were sealed \
             under another key (on a replica: the primary's); copy the primary's seed key \
             file ([server] key_file) to this node and restart it; until then TOTP and \
             HOTP sign-ins on this node fail"
        );
    }
    found
}

/// Warns, once per client at start-up, about a client that admits every
/// source address (`0.0.0.0/0`, `::/0`) without requiring
/// Message-Authenticator: anyone who can reach the port and learns or
/// guesses the secret can forge requests, and BlastRADIUS (CVE-2024-3596)
/// needs no secret at all against an unsigned Access-Request.
fn warn_catch_all_clients(cfg: &RuntimeConfig, store: &Store) {
    let from_config = cfg.clients.iter().map(|c| {
        (
            c.name.clone(),
            c.address,
            c.require_message_authenticator,
            "config",
        )
    });
    let from_store = store
        .list_clients()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.address, c.require_message_authenticator, "store"));
    for (name, address, require_ma, source) in from_config.chain(from_store) {
        if address.prefix_len() == 0 && !require_ma {
            tracing::warn!(
                client = %name,
                %address,
                source,
                "client {name:?} accepts requests from any address ({address}) without \
                 Message-Authenticator: forged Access-Requests (BlastRADIUS) are possible; \
                 narrow its address or set require_message_authenticator = true"
            );
        }
    }
}

/// Warns at start-up when Twilio is the gateway but its callbacks cannot
/// reach this node: calls and two-way SMS would never get an answer (they
/// follow the policy's `fail_mode` instead).
fn warn_twilio_without_callbacks(cfg: &RuntimeConfig) {
    let twilio = cfg
        .gateway
        .as_ref()
        .is_some_and(|g| matches!(g.provider, radmfa_gateway::Provider::Twilio { .. }));
    if !twilio {
        return;
    }
    if cfg.oob.callback_url.is_none() || cfg.portal.is_none() {
        tracing::warn!(
            "[gateway] provider = \"twilio\" without a callback address: Twilio calls and two-way SMS \
             cannot return an answer and follow fail_mode; add a [portal] section (it serves \
             /callback/twilio/...) and set [gateway] callback_url (or [portal] public_url) to the \
             address Twilio reaches it at (docs/deployment.md)"
        );
    }
}

fn data_decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Runs a [[sync]] item every `interval` (the first run after a short
/// delay, so start-up stays quick) until shutdown.
async fn sync_loop(node: Arc<Node>, item: config::SyncItem, shutdown: CancellationToken) {
    let interval = item
        .interval
        .unwrap_or(std::time::Duration::from_secs(3600));
    let mut next = tokio::time::Instant::now() + std::time::Duration::from_secs(5).min(interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next += interval;
        if node.replication().is_some_and(|r| !r.is_primary()) {
            tracing::debug!(item = %item.name, "directory sync skipped: this node is a replica (the primary syncs)");
            continue;
        }
        let req = admin::AdminRequest::DirectorySync {
            item: Some(item.name.clone()),
            base: None,
            filter: None,
            group: None,
            method: item.method,
            language: String::new(),
            dry_run: false,
            send_email: false,
        };
        let res = admin::directory_sync_detached(
            node.store().clone(),
            node.config_arc(),
            node.directory(),
            req,
        )
        .await;
        // Audited like a sync an admin starts, as the scheduler's.
        let cfg = node.config();
        let actor = admin::Actor::Scheduler {
            node: cfg.node_name.clone(),
        };
        let rec = actor.record(
            (&cfg.node_name, &cfg.server_ip),
            node.clock().now_unix_ms(),
            ("directory_sync", &item.name),
            res.as_ref().map(|_| ()),
        );
        if let Err(e) = node.store().append_audit(&rec) {
            tracing::error!(error = %e, "cannot write the audit record of a directory sync");
        }
        match res {
            Ok(v) => {
                info!(sync = %item.name, added = v.add.len(), updated = v.update.len(), disabled = v.disable.len(), mailed = v.mailed.unwrap_or(0), "directory sync done");
                node.after_admin_write(None, false);
            }
            Err(e) => {
                tracing::warn!(sync = %item.name, error = %e, "directory sync failed; next try at the next interval")
            }
        }
    }
}

/// How the node restarts its directory sync loops (at start, and after a
/// reload that changed `[[sync]]`): the loops started before stop, one loop
/// per item starts.
fn sync_restart(node: &Arc<Node>, shutdown: &CancellationToken) -> pipeline::SyncRestart {
    let weak = Arc::downgrade(node);
    let shutdown = shutdown.clone();
    let running = std::sync::Mutex::new(shutdown.child_token());
    Box::new(move |items: &[config::SyncItem]| {
        let Some(node) = weak.upgrade() else {
            return;
        };
        let stop = shutdown.child_token();
        let mut current = running.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, stop.clone()).cancel();
        for item in items.iter().cloned() {
            tokio::spawn(sync_loop(node.clone(), item, stop.clone()));
        }
    })
}

/// Answers requests other nodes forward over the peer link.
/// A node whose store has never held data or replicated starts in the
/// configured role; afterwards the role and epoch persisted in the store win.
fn init_role(store: &Store, role: config::InitialRole) -> Result<(), ServerError> {
    use radmfa_store::repl::{ReplLog, Role};
    let fresh = store.repl_state() == (Role::Primary, 1)
        && store.repl_log().last() == (0, 0)
        && store.user_count() == 0;
    if fresh && role == config::InitialRole::Replica {
        store.set_repl_state(Role::Replica { primary: None }, 0)?;
        info!("fresh data directory: starting as a replica");
    }
    Ok(())
}

struct PeerHandler(Arc<Node>);

impl peer::ForwardHandler for PeerHandler {
    fn handle(
        &self,
        from_node: u16,
        src: std::net::SocketAddr,
        packet: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send + 'static>>
    {
        let node = self.0.clone();
        Box::pin(async move {
            node.handle_forwarded(from_node, &packet, src)
                .await
                .map(|r| r.to_vec())
        })
    }

    fn replication(&self, from_node: u16, message: Vec<u8>) {
        if let Some(r) = self.0.replication() {
            r.received(from_node, message);
        }
    }

    fn admin(
        &self,
        from_node: u16,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + 'static>> {
        let node = self.0.clone();
        Box::pin(async move { control::forwarded_admin(&node, from_node, &body).await })
    }

    fn verdict(
        &self,
        _from_node: u16,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + 'static>> {
        let node = self.0.clone();
        Box::pin(async move { callback::answer_forwarded(&node, &body) })
    }

    fn audit_batch(
        &self,
        from_node: u16,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send + 'static>> {
        let node = self.0.clone();
        Box::pin(async move { audit_ship::receiver::receive(&node, from_node, body).await })
    }
}

/// A node whose listeners are all bound and whose tasks are running.
struct Started {
    tasks: tokio::task::JoinSet<()>,
    node: Arc<Node>,
    replication: Option<Arc<replication::Replication>>,
    audit_stop: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
    otp_writer: std::thread::JoinHandle<()>,
    bound: Bound,
}

/// Runs a node on the `listeners` the binary bound ([`Listeners::bind`])
/// until `shutdown` is cancelled, then finishes in-flight requests, writes
/// the audit queue and flushes the store. It binds nothing itself.
///
/// `on_ready` is called once every listener is serving (the binary writes its
/// ready file there, from [`Bound`]); an error from it stops the node. A `shutdown` during
/// start-up (SIGTERM during the argon2 decoy hash, a slow TLS load...) returns at
/// once: start-up work still running on a blocking thread is abandoned, and
/// nothing was served yet.
pub async fn run(
    cfg: Arc<RuntimeConfig>,
    store: Store,
    listeners: Listeners,
    control: Option<tokio::net::UnixListener>,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(&Bound) -> Result<(), ServerError>,
) -> Result<Arc<counters::Counters>, ServerError> {
    let counters = Arc::new(counters::Counters::default());
    let started = tokio::select! {
        biased;
        () = shutdown.cancelled() => {
            info!("stopped during start-up");
            return Ok(counters);
        }
        s = start(cfg, store.clone(), listeners, control, shutdown.clone(), counters.clone()) => s?,
    };
    let Started {
        mut tasks,
        node,
        replication,
        audit_stop,
        writer,
        otp_writer,
        bound,
    } = started;
    let ready = on_ready(&bound);
    if ready.is_err() {
        shutdown.cancel();
    }
    while tasks.join_next().await.is_some() {}
    if let Some(r) = replication {
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    drop(node);
    audit_stop.cancel();
    let _ = writer.await;
    let _ = tokio::task::spawn_blocking(move || otp_writer.join()).await;
    store.flush()?;
    ready?;
    Ok(counters)
}

/// The TLS set-up of every configured TCP listener, loaded before the node
/// is built so that a bad file stops start-up early, naming the file.
struct ListenerTls {
    peer: Option<peer::PeerTls>,
    radsec: Option<radsec::RadsecTls>,
    api: Option<Arc<rustls::ServerConfig>>,
    portal: Option<Arc<rustls::ServerConfig>>,
}

impl ListenerTls {
    /// Loads the certificates, keys and CAs of the configured listeners;
    /// errors name the configuration file, the section and the TLS file.
    fn load(cfg: &RuntimeConfig, counters: &Arc<counters::Counters>) -> Result<Self, ServerError> {
        let origin = &cfg.origin;
        Ok(ListenerTls {
            peer: for_section(
                origin,
                "cluster",
                cfg.cluster.as_ref(),
                ServerError::Peer,
                |c| peer::PeerTls::load(&c.ca, &c.cert, &c.key),
            )?,
            radsec: for_section(
                origin,
                "radsec",
                cfg.radsec.as_ref(),
                ServerError::Radsec,
                |r| radsec::RadsecTls::load(r, counters.clone()),
            )?,
            api: for_section(origin, "api", cfg.api.as_ref(), ServerError::Api, |a| {
                https::load_tls(&a.cert, &a.key)
            })?,
            portal: for_section(
                origin,
                "portal",
                cfg.portal.as_ref(),
                ServerError::Portal,
                |p| https::load_tls(&p.cert, &p.key),
            )?,
        })
    }
}

/// A bound listener as a tokio one (inside the runtime).
fn tokio_listener(
    l: Option<std::net::TcpListener>,
) -> std::io::Result<Option<tokio::net::TcpListener>> {
    l.map(|l| {
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    })
    .transpose()
}

/// The addresses of `listeners`, for the ready file.
fn bound_addresses(listeners: &Listeners, control: Option<std::path::PathBuf>) -> Bound {
    let local = |l: &Option<std::net::TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    Bound {
        radius_udp: listeners.radius_udp(),
        radsec: local(&listeners.radsec),
        api: local(&listeners.api),
        portal: local(&listeners.portal),
        peer: local(&listeners.peer),
        control,
    }
}

/// Start-up: loads keys and TLS material, builds the node (its argon2 decoy
/// hash on a blocking thread, so `run` can give up on it) and spawns the
/// serving tasks on the bound `listeners`.
async fn start(
    cfg: Arc<RuntimeConfig>,
    store: Store,
    listeners: Listeners,
    control: Option<tokio::net::UnixListener>,
    shutdown: CancellationToken,
    counters: Arc<counters::Counters>,
) -> Result<Started, ServerError> {
    let bound = bound_addresses(&listeners, control.as_ref().map(|_| cfg.control_socket()));
    warn_open_dirs(&cfg, &store);
    warn_catch_all_clients(&cfg, &store);
    warn_twilio_without_callbacks(&cfg);
    let _ = check_seed_key(&store);
    let new_cluster_key = !cfg.cluster_key_file.exists();
    let state_key = load_cluster_key(&cfg.cluster_key_file)?;
    if new_cluster_key && cfg.cluster.is_some() {
        info!(
            path = %cfg.cluster_key_file.display(),
            "created a new cluster key; copy it to every node of the cluster ([challenge] cluster_key_file)"
        );
    }
    let (vapid, new_vapid) = push::VapidKey::load_or_create(&cfg.push.vapid_key_file)?;
    if new_vapid && cfg.cluster.is_some() {
        info!(
            path = %cfg.push.vapid_key_file.display(),
            "created a new VAPID key (push approvals); copy it to every node of the cluster ([push] vapid_key_file)"
        );
    }
    let pusher = push::Pusher::new(vapid, cfg.push.clone())
        .map_err(|e| ServerError::Io(std::io::Error::other(format!("push client: {e}"))))?;
    let portal_keys = portal::CookieKeys::derive(state_key.as_bytes());
    let tls = ListenerTls::load(&cfg, &counters)?;
    let audit_stop = CancellationToken::new();
    let (sink, writer) = audit::spawn_writer(store.clone(), audit_stop.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (hot, otp_writer) =
        hot::HotState::new(store.clone(), cfg.user_cache_entries, audit_stop.clone());
    let gateway = match &cfg.gateway {
        Some(g) => Some(
            radmfa_gateway::Gateway::new(g.clone())
                .map_err(|e| ServerError::Gateway(format!("{}: [gateway]: {e}", cfg.origin)))?,
        ),
        None => None,
    };
    let peer_stats = Arc::new(peer::PeerStats::default());
    let peers = match (&cfg.cluster, &tls.peer) {
        (Some(c), Some(tls)) => Some(peer::PeerClient::new(
            tls,
            cfg.node_id,
            c.peers.clone(),
            std::time::Duration::from_secs(2),
            peer_stats.clone(),
        )),
        _ => None,
    };
    let repl_client = peers.clone();
    if let Some(c) = cfg.cluster.as_ref().filter(|c| c.replication) {
        init_role(&store, c.role)?;
    }
    // Node::new hashes the argon2 decoy password: seconds with a large
    // [password] setting, so off the runtime where `run` can abandon it.
    let parts = pipeline::NodeParts {
        store: store.clone(),
        state_key,
        hot,
        gateway,
        counters: counters.clone(),
        audit: sink,
        clock: clock.clone(),
        peers,
        peer_stats: peer_stats.clone(),
    };
    let node_cfg = cfg.clone();
    let node = Arc::new(
        tokio::task::spawn_blocking(move || Node::new(node_cfg, parts))
            .await
            .map_err(|e| ServerError::Io(std::io::Error::other(e)))??,
    );
    node.set_pusher(Arc::new(pusher));
    let replication = match (&cfg.cluster, repl_client) {
        (Some(c), Some(client)) if c.replication => {
            Some(start_replication(&cfg, c, &store, &node, client)?)
        }
        _ => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    let serving = Serving {
        cfg: &cfg,
        node: &node,
        shutdown: &shutdown,
    };
    serving.spawn_listeners(&mut tasks, listeners, tls, portal_keys, clock, peer_stats)?;
    node.set_sync_restart(sync_restart(&node, &shutdown));
    if let Some(restart) = node.sync_restart() {
        restart(&cfg.sync);
    }
    if let (Some(c), Some(client)) = (&cfg.cluster, node.peer_client()) {
        let peers = c.peers.iter().map(|(id, _)| *id).collect();
        let weak = Arc::downgrade(&node);
        let table = node.consistency().clone();
        let mine = table.clone();
        let announce = move || {
            let name = weak.upgrade().map(|n| n.config().node_name.clone());
            mine.announce(&name.unwrap_or_default())
        };
        tasks.spawn(consistency::announce_loop(
            client,
            peers,
            table,
            announce,
            shutdown.clone(),
        ));
    }
    if let Some(r) = &replication {
        let sender = audit_ship::sender::Sender {
            store: store.clone(),
            replication: r.clone(),
            node_name: cfg.node_name.clone(),
            node_id: cfg.node_id,
            clock: node.clock(),
            state: r.audit_state().clone(),
        };
        tasks.spawn(audit_ship::sender::run(sender, shutdown.clone()));
    }
    if let Some(days) = cfg.audit_retention_days {
        tasks.spawn(retention::run(store.clone(), days, shutdown.clone()));
    }
    let current = node.clone();
    tasks.spawn(limits::prune_loop(
        move || current.limits(),
        node.clock(),
        shutdown.clone(),
    ));
    tasks.spawn(droplog::flush_loop(
        node.drop_log().clone(),
        node.clock(),
        shutdown.clone(),
    ));
    {
        // The peers this configuration names, checked once in the background.
        let cfg = cfg.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = checks::log_startup(&cfg) => {}
            }
        });
    }
    if let Some(listener) = control {
        tasks.spawn(control::serve(
            listener,
            cfg.control_socket(),
            node.clone(),
            shutdown.clone(),
        ));
    }
    Ok(Started {
        tasks,
        node,
        replication,
        audit_stop,
        writer,
        otp_writer,
        bound,
    })
}

/// Starts replication over the peer link and wires its change notices into
/// the node's caches.
fn start_replication(
    cfg: &RuntimeConfig,
    c: &config::ClusterSettings,
    store: &Store,
    node: &Arc<Node>,
    client: peer::PeerClient,
) -> Result<Arc<replication::Replication>, ServerError> {
    let weak = Arc::downgrade(node);
    let seeds_checked = std::sync::atomic::AtomicBool::new(false);
    let on_change = Box::new(move |changed: replication::Changed| {
        if let Some(node) = weak.upgrade() {
            use std::sync::atomic::Ordering::Relaxed;
            if !seeds_checked.load(Relaxed) {
                // Once, at the first replicated seed.
                let found = check_seed_key(node.store());
                seeds_checked.store(!matches!(found, Ok(None)), Relaxed);
            }
            match changed {
                replication::Changed::All => node.after_admin_write(None, true),
                replication::Changed::Keys { users, otp } => node.after_replication(&users, &otp),
            }
        }
    });
    let r = replication::Replication::start(
        cfg.node_id,
        c.peers.clone(),
        store.clone(),
        client,
        c.changelog_keep,
        tokio::runtime::Handle::current(),
        on_change,
    )?;
    node.set_replication(r.clone());
    let weak = Arc::downgrade(&r);
    node.set_otp_sink(Box::new(move |steps| {
        if let Some(r) = weak.upgrade() {
            r.otp_advanced(steps);
        }
    }));
    Ok(r)
}

/// What every serving task is started with.
struct Serving<'a> {
    cfg: &'a Arc<RuntimeConfig>,
    node: &'a Arc<Node>,
    shutdown: &'a CancellationToken,
}

impl Serving<'_> {
    /// Spawns the serving loop of every bound listener: RADIUS UDP, the peer
    /// link, the portal, RadSec and the admin API.
    fn spawn_listeners(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
        listeners: Listeners,
        tls: ListenerTls,
        portal_keys: portal::CookieKeys,
        clock: Arc<dyn Clock>,
        peer_stats: Arc<peer::PeerStats>,
    ) -> Result<(), ServerError> {
        let (cfg, node, shutdown) = (self.cfg, self.node, self.shutdown);
        for s in listeners.udp {
            s.set_nonblocking(true)?;
            let socket = Arc::new(tokio::net::UdpSocket::from_std(s)?);
            tasks.spawn(udp::serve(
                socket,
                node.clone(),
                cfg.max_in_flight,
                shutdown.clone(),
            ));
        }
        if let (Some(c), Some(listener), Some(tls)) =
            (&cfg.cluster, tokio_listener(listeners.peer)?, tls.peer)
        {
            info!(listen = %listener.local_addr()?, peers = c.peers.len(), "peer link listening");
            let known = c.peers.iter().map(|(id, _)| *id).collect();
            let handler: Arc<dyn peer::ForwardHandler> = Arc::new(PeerHandler(node.clone()));
            let stop = shutdown.clone();
            tasks.spawn(async move {
                if let Err(e) = peer::serve(listener, tls, known, handler, peer_stats, stop).await {
                    tracing::error!(error = %e, "the peer link stopped");
                }
            });
        }
        if let (Some(listener), Some(tls)) = (tokio_listener(listeners.portal)?, tls.portal) {
            tasks.spawn(portal::serve(
                listener,
                tls,
                node.clone(),
                portal_keys,
                clock,
                shutdown.clone(),
            ));
        }
        if let (Some(r), Some(listener), Some(tls)) =
            (&cfg.radsec, tokio_listener(listeners.radsec)?, tls.radsec)
        {
            let local = listener.local_addr()?;
            info!(listen = %local, clients = r.clients.len(), "radsec listening on {local}");
            tasks.spawn(radsec::serve(
                listener,
                tls,
                node.clone(),
                r.idle_timeout,
                r.max_connections,
                shutdown.clone(),
            ));
        }
        if let (Some(api), Some(listener), Some(tls)) =
            (&cfg.api, tokio_listener(listeners.api)?, tls.api)
        {
            info!(listen = %listener.local_addr()?, "admin api listening (https)");
            let router = api::router(node.clone(), api);
            tasks.spawn(https::serve(
                listener,
                tls,
                router,
                api::HTTPS,
                shutdown.clone(),
            ));
        }
        Ok(())
    }
}
