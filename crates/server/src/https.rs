//! The one HTTPS server of the admin API and the portal: TLS handshakes in
//! each connection's own task under a timeout (a slow client holds up no
//! other), a bound on open connections (more wait in the kernel's backlog),
//! HTTP/1.1 served by hyper with the client's address on every request
//! ([`Peer`]), and a graceful end at shutdown. Apart from both services so
//! that a fix to connection handling reaches both.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Extension;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::tls_util::{TlsFileError, TlsMaterial};

/// Time for the TLS handshake and then for each request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's address, added to every request of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// How one HTTPS service is run.
#[derive(Debug, Clone, Copy)]
pub struct HttpsOptions {
    /// Names the service in log lines ("admin api", "portal").
    pub service: &'static str,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub drain: Duration,
}

/// Reads an HTTPS listener's certificate chain and key (PEM) into its server
/// configuration (TLS 1.3 and 1.2, HTTP/1.1). Errors name the file.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsFileError> {
    TlsMaterial::load(cert, key, None)?.https_server(key)
}

/// Serves `router` over TLS on `listener` until `shutdown`, then lets the
/// requests in flight finish (up to `options.drain`) and closes the rest.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    options: HttpsOptions,
    shutdown: CancellationToken,
) {
    let service = options.service;
    let tls = TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "{service} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let conn = connection(
            tls.clone(),
            tcp,
            peer,
            router.clone(),
            options,
            shutdown.clone(),
        );
        conns.spawn(async move {
            conn.await;
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(options.drain + Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "{service} connections still open after {} s; closing them",
            options.drain.as_secs()
        );
    }
}

/// One connection: the TLS handshake, then HTTP/1.1 until the client closes
/// it or `stop` (which lets the request in progress finish, up to the drain
/// time).
async fn connection(
    tls: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    options: HttpsOptions,
    stop: CancellationToken,
) {
    let service = options.service;
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "{service} TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "{service} TLS handshake timed out");
            return;
        }
    };
    let app = router.layer(Extension(Peer(peer)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                debug!(%peer, error = %e, "{service} connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(options.drain, conn.as_mut()).await;
        }
    }
}
