//! radmfa-server: the listeners, the authentication pipeline and the admin
//! control socket. It glues the protocol (`radmfa-radius`), OTP
//! (`radmfa-otp`) and store (`radmfa-store`) crates; it receives already-bound
//! sockets and a cancellation token from the binary.

pub mod admin;
pub mod api;
pub mod audit;
pub mod clients;
pub mod config;
pub mod control;
pub mod counters;
pub mod credcache;
mod debuglog;
pub mod dedup;
pub mod dictionary;
pub mod droplog;
pub mod hot;
pub mod limits;
pub mod mail;
pub mod peer;
pub mod pipeline;
pub mod portal;
pub mod radsec;
pub mod replication;
pub mod retention;
pub mod secret;
pub mod sync;
#[cfg(test)]
mod testing;
mod tls_util;
pub mod udp;
pub mod upstream;

use std::path::Path;
use std::sync::Arc;

use radmfa_otp::{Clock, StateKey, SystemClock};
use radmfa_store::{Store, StoreOptions};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{ConfigError, RuntimeConfig};
pub use pipeline::Node;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store.
    #[error("store: {0}")]
    Store(#[from] radmfa_store::StoreError),
    /// A key file.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Sockets.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The cloud gateway client could not be built.
    #[error("{0}")]
    Gateway(String),
    /// The peer link could not be set up.
    #[error("{0}")]
    Peer(String),
    /// The user portal could not be set up.
    #[error("{0}")]
    Portal(String),
    /// The admin HTTPS API could not be set up.
    #[error("{0}")]
    Api(String),
    /// The RADIUS/TLS listener could not be set up.
    #[error("{0}")]
    Radsec(String),
}

/// Opens the store of a configuration (creating the data directory).
pub fn open_store(cfg: &RuntimeConfig) -> Result<Store, ServerError> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    Ok(Store::open(
        &cfg.db_dir(),
        &cfg.key_file,
        &StoreOptions {
            cache_bytes: cfg.store_cache_bytes,
            create_key_if_missing: true,
            flush_every_ms: Some(200),
        },
    )?)
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
            let key = data_decode_hex(hex.trim()).ok_or_else(|| err("not a hex key".into()))?;
            StateKey::new(&key).map_err(|_| err("the key must have at least 16 bytes".into()))
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
            info!(path = %path.display(), "created a new cluster key; copy it to every node of the cluster");
            Ok(key)
        }
        Err(e) => Err(err(format!("cannot read: {e}"))),
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
        match admin::directory_sync_detached(
            node.store().clone(),
            node.config_arc(),
            node.directory().cloned(),
            req,
        )
        .await
        {
            Ok(v) => {
                let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
                info!(sync = %item.name, added = n("add"), updated = n("update"), disabled = n("disable"), mailed = %v["mailed"], "directory sync done");
                node.after_admin_write(None, false);
            }
            Err(e) => {
                tracing::warn!(sync = %item.name, error = %e, "directory sync failed; next try at the next interval")
            }
        }
    }
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
}

/// Runs a node on already-bound sockets until `shutdown` is cancelled, then
/// finishes in-flight requests, writes the audit queue and flushes the store.
pub async fn run(
    cfg: Arc<RuntimeConfig>,
    store: Store,
    sockets: Vec<std::net::UdpSocket>,
    control: Option<tokio::net::UnixListener>,
    shutdown: CancellationToken,
) -> Result<Arc<counters::Counters>, ServerError> {
    let state_key = load_cluster_key(&cfg.cluster_key_file)?;
    let portal_keys = portal::CookieKeys::derive(state_key.as_bytes());
    let counters = Arc::new(counters::Counters::default());
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
    let (peers, peer_listener) = match &cfg.cluster {
        Some(c) => {
            let tls = peer::PeerTls::load(&c.ca, &c.cert, &c.key)
                .map_err(|e| ServerError::Peer(format!("{}: [cluster]: {e}", cfg.origin)))?;
            let listener = tokio::net::TcpListener::bind(c.listen).await.map_err(|e| {
                ServerError::Peer(format!(
                    "{}: [cluster]: cannot listen on {}: {e}",
                    cfg.origin, c.listen
                ))
            })?;
            info!(listen = %c.listen, peers = c.peers.len(), "peer link listening");
            let client = peer::PeerClient::new(
                &tls,
                cfg.node_id,
                c.peers.clone(),
                std::time::Duration::from_secs(2),
                peer_stats.clone(),
            );
            (Some(client), Some((listener, tls)))
        }
        None => (None, None),
    };
    let repl_client = peers.clone();
    if let Some(c) = cfg.cluster.as_ref().filter(|c| c.replication) {
        init_role(&store, c.role)?;
    }
    let radsec_listener = match &cfg.radsec {
        Some(r) => {
            let tls = radsec::RadsecTls::load(r, counters.clone())
                .map_err(|e| ServerError::Radsec(format!("{}: [radsec]: {e}", cfg.origin)))?;
            let listener = tokio::net::TcpListener::bind(r.listen).await.map_err(|e| {
                ServerError::Radsec(format!(
                    "{}: [radsec]: cannot listen on {}: {e}",
                    cfg.origin, r.listen
                ))
            })?;
            let local = listener.local_addr()?;
            info!(listen = %local, clients = r.clients.len(), "radsec listening on {local}");
            Some((listener, tls, r.idle_timeout, r.max_connections))
        }
        None => None,
    };
    let node = Arc::new(Node::new(
        cfg.clone(),
        pipeline::NodeParts {
            store: store.clone(),
            state_key,
            hot,
            gateway,
            counters: counters.clone(),
            audit: sink,
            clock,
            peers,
            peer_stats: peer_stats.clone(),
        },
    )?);

    let replication = match (&cfg.cluster, repl_client) {
        (Some(c), Some(client)) if c.replication => {
            let weak = Arc::downgrade(&node);
            let on_change = Box::new(move |changed: replication::Changed| {
                if let Some(node) = weak.upgrade() {
                    match changed {
                        replication::Changed::All => node.after_admin_write(None, true),
                        replication::Changed::Keys { users, otp } => {
                            node.after_replication(&users, &otp)
                        }
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
            Some(r)
        }
        _ => None,
    };

    let mut tasks = tokio::task::JoinSet::new();
    for s in sockets {
        s.set_nonblocking(true)?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(s)?);
        tasks.spawn(udp::serve(
            socket,
            node.clone(),
            cfg.max_in_flight,
            shutdown.clone(),
        ));
    }
    if let Some((listener, tls)) = peer_listener {
        let known = cfg
            .cluster
            .as_ref()
            .map(|c| c.peers.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        let handler: Arc<dyn peer::ForwardHandler> = Arc::new(PeerHandler(node.clone()));
        let stats = peer_stats.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = peer::serve(listener, tls, known, handler, stats, stop).await {
                tracing::error!(error = %e, "the peer link stopped");
            }
        });
    }
    if let Some(p) = &cfg.portal {
        let (listener, tls) = portal::bind(p)
            .await
            .map_err(|e| ServerError::Portal(format!("{}: [portal]: {e}", cfg.origin)))?;
        tasks.spawn(portal::serve(
            listener,
            tls,
            node.clone(),
            portal_keys,
            shutdown.clone(),
        ));
    }
    if let Some((listener, tls, idle, max_connections)) = radsec_listener {
        tasks.spawn(radsec::serve(
            listener,
            tls,
            node.clone(),
            idle,
            max_connections,
            shutdown.clone(),
        ));
    }
    for item in cfg.sync.clone() {
        let node = node.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move { sync_loop(node, item, stop).await });
    }
    if let Some(api) = &cfg.api {
        let (listener, tls) = api::bind(api)
            .await
            .map_err(|e| ServerError::Api(format!("{}: [api]: {e}", cfg.origin)))?;
        info!(listen = %listener.local_addr()?, "admin api listening (https)");
        let router = api::router(node.clone(), api);
        tasks.spawn(api::serve(listener, tls, router, shutdown.clone()));
    }
    if let Some(days) = cfg.audit_retention_days {
        tasks.spawn(retention::run(store.clone(), days, shutdown.clone()));
    }
    tasks.spawn(limits::prune_loop(node.clone(), shutdown.clone()));
    tasks.spawn(droplog::flush_loop(
        node.drop_log().clone(),
        shutdown.clone(),
    ));
    if let Some(listener) = control {
        tasks.spawn(control::serve(
            listener,
            cfg.control_socket(),
            node.clone(),
            shutdown.clone(),
        ));
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
    Ok(counters)
}
