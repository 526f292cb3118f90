//! Pieces shared by every TLS listener (admin API, portal, RadSec, peer
//! link): the one loader of certificate, key and client CA files
//! ([`TlsMaterial`]), PEM parsing, the crypto provider, and the accept loop
//! with a bounded number of connections of RadSec and the peer link.
//! One loader, so every listener reports a bad file the same way: the file's
//! path and what is wrong with it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The crypto provider of every TLS configuration built here (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS file could not be used: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TlsFileError {
    /// An error about `path`.
    pub fn new(path: &Path, reason: impl Into<String>) -> TlsFileError {
        TlsFileError {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

/// The certificate chain, private key and (optionally) client CA of a TLS
/// endpoint, read from PEM files and parsed; nothing is built from them yet.
pub struct TlsMaterial {
    /// The certificate, then its intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key (zeroized by rustls on drop).
    pub key: PrivateKeyDer<'static>,
    /// The client CA certificates, when one was asked for.
    pub client_ca: Option<ClientCa>,
}

/// The CA certificates that issue the client certificates an endpoint accepts.
pub struct ClientCa {
    /// The certificates, in file order.
    pub certs: Vec<CertificateDer<'static>>,
    /// The same as trust anchors.
    pub roots: Arc<RootCertStore>,
}

impl TlsMaterial {
    /// Reads and parses `cert` (a chain), `key` and the optional `client_ca`.
    /// Every file is read before any is parsed; errors name the file.
    pub fn load(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<TlsMaterial, TlsFileError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map(zeroize::Zeroizing::new)
                .map_err(|e| TlsFileError::new(path, e.to_string()))
        };
        let ca_pem = client_ca.map(|p| read(p).map(|pem| (p, pem))).transpose()?;
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let client_ca = match ca_pem {
            Some((path, pem)) => Some(ClientCa::parse(path, &pem)?),
            None => None,
        };
        Ok(TlsMaterial {
            chain: parse_certs(&cert_pem).map_err(|e| TlsFileError::new(cert, e))?,
            key: parse_key(&key_pem).map_err(|e| TlsFileError::new(key, e))?,
            client_ca,
        })
    }

    /// The server configuration of an HTTPS listener (admin API, portal):
    /// TLS 1.3 and 1.2, no client certificate, HTTP/1.1 over ALPN. `key` is
    /// the key file, named when it does not fit the certificate.
    pub fn https_server(self, key: &Path) -> Result<Arc<ServerConfig>, TlsFileError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsFileError::new(key, format!("TLS set-up: {e}")))?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .map_err(|e| {
                TlsFileError::new(
                    key,
                    format!("does not make a usable key with the certificate: {e}"),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ClientCa {
    /// Parses the CA certificates of `path` into trust anchors.
    fn parse(path: &Path, pem: &str) -> Result<ClientCa, TlsFileError> {
        let certs = parse_certs(pem).map_err(|e| TlsFileError::new(path, e))?;
        let mut roots = RootCertStore::empty();
        for c in &certs {
            roots
                .add(c.clone())
                .map_err(|e| TlsFileError::new(path, format!("bad CA certificate: {e}")))?;
        }
        Ok(ClientCa {
            certs,
            roots: Arc::new(roots),
        })
    }
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
