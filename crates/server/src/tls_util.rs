//! Pieces shared by the TLS listeners of the peer link and RadSec: PEM
//! parsing, the crypto provider and the accept loop with a bounded number of
//! connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The crypto provider of every TLS configuration built here (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// All certificates of a PEM text, in order; at least one.
pub(crate) fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

/// The first private key of a PEM text.
pub(crate) fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    match rustls_pemfile::private_key(&mut pem.as_bytes()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err("no private key found".into()),
        Err(e) => Err(format!("invalid PEM: {e}")),
    }
}

/// Accepts TCP connections on `listener` until `shutdown` is cancelled and
/// runs each one as a task of the returned set, at most `max_connections`
/// at once; the caller decides how the open ones end.
///
/// A connection beyond the limit is passed to `refused` and closed. Each
/// accepted one runs the future `start` makes of it; its slot is freed when
/// that future ends. An accept error (out of descriptors and the like) is
/// logged as "`{service}` accept failed" and accepting resumes after 100 ms
/// rather than spinning; a connection's own error never lands there.
pub(crate) async fn accept_connections<S, F>(
    listener: &TcpListener,
    max_connections: usize,
    service: &'static str,
    shutdown: &CancellationToken,
    mut refused: impl FnMut(SocketAddr),
    mut start: S,
) -> JoinSet<()>
where
    S: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let (tcp, addr) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "{service} accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused(addr);
            continue;
        };
        let conn = start(tcp, addr);
        connections.spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    connections
}
