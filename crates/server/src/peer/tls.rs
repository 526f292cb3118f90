//! TLS material of a node and the two halves of the peer handshake (TLS 1.3
//! with mutual authentication, then the Hello frame). Reusable by any
//! service of the peer link.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::frame::{read_frame_within, Frame, MAX_HELLO, PROTOCOL_VERSION};
use super::PeerError;
pub(crate) use crate::tls_util::parse_certs;
use crate::tls_util::{parse_key, provider, TlsFileError, TlsMaterial};

/// The DNS name in the certificate of node `node_id`:
/// `node-{id}.radmfa.cluster`.
pub fn node_server_name(node_id: u16) -> String {
    format!("node-{node_id}.radmfa.cluster")
}

/// Time allowed for the server side of the TLS handshake, and then again for
/// the Hello frame.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS configurations of one node, built from the cluster CA, the node's
/// certificate and its private key. Cheap to clone.
#[derive(Clone)]
pub struct PeerTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

/// Which input an error concerns.
#[derive(Clone, Copy)]
enum Part {
    Ca,
    Cert,
    Key,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Ca => "CA certificate",
            Part::Cert => "node certificate",
            Part::Key => "private key",
        }
    }
}

/// Checks that `leaf` (with optional intermediates) chains to one of `roots`
/// and is valid now.
pub(crate) fn verify_chain(
    roots: &[CertificateDer<'static>],
    leaf: &CertificateDer<'_>,
) -> Result<(), String> {
    verify_chain_with(roots, leaf, &[])
}

fn verify_chain_with(
    roots: &[CertificateDer<'static>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), String> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(|e| format!("bad CA certificate: {e}"))?;
    }
    let parsed = ParsedCertificate::try_from(leaf).map_err(|e| e.to_string())?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &store,
        intermediates,
        UnixTime::now(),
        provider().signature_verification_algorithms.all,
    )
    .map_err(|e| e.to_string())
}

/// The rustls name a node's certificate must carry.
fn server_name(node_id: u16) -> Result<ServerName<'static>, String> {
    ServerName::try_from(node_server_name(node_id)).map_err(|e| e.to_string())
}

/// Checks that the end-entity certificate `cert` is valid for node `node_id`.
pub(crate) fn check_identity(cert: &CertificateDer<'_>, node_id: u16) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &server_name(node_id)?).map_err(|e| e.to_string())
}

impl PeerTls {
    /// Reads the PEM files of the cluster CA, the node certificate (optionally
    /// followed by intermediates) and its private key; errors name the file
    /// and the reason.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, PeerError> {
        let file_err = |e: TlsFileError| PeerError::File {
            path: e.path,
            reason: e.reason,
        };
        let m = TlsMaterial::load(cert, key, Some(ca)).map_err(file_err)?;
        let roots = m.client_ca.map(|ca| ca.certs).unwrap_or_default();
        Self::from_parts(roots, m.chain, m.key).map_err(|(part, reason)| {
            let path = match part {
                Part::Ca => ca,
                Part::Cert => cert,
                Part::Key => key,
            };
            file_err(TlsFileError::new(path, reason))
        })
    }

    /// Builds the configurations from PEM texts.
    pub fn from_pem(
        ca_cert_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<PeerTls, PeerError> {
        Self::build(ca_cert_pem, cert_pem, key_pem)
            .map_err(|(part, reason)| PeerError::Tls(format!("{}: {reason}", part.name())))
    }

    fn build(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<PeerTls, (Part, String)> {
        let roots = parse_certs(ca_pem).map_err(|e| (Part::Ca, e))?;
        let chain = parse_certs(cert_pem).map_err(|e| (Part::Cert, e))?;
        let key = parse_key(key_pem).map_err(|e| (Part::Key, e))?;
        Self::from_parts(roots, chain, key)
    }

    /// Builds the configurations from parsed certificates and key.
    fn from_parts(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, (Part, String)> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or((Part::Cert, "no certificate found".to_string()))?;
        verify_chain_with(&roots, leaf, intermediates)
            .map_err(|e| (Part::Cert, format!("not valid under the cluster CA: {e}")))?;

        let mut store = RootCertStore::empty();
        for root in &roots {
            store
                .add(root.clone())
                .map_err(|e| (Part::Ca, format!("bad CA certificate: {e}")))?;
        }
        let store = Arc::new(store);
        let provider = provider();
        let tls = |e: rustls::Error| (Part::Key, e.to_string());

        let verifier = WebPkiClientVerifier::builder_with_provider(store.clone(), provider.clone())
            .build()
            .map_err(|e| (Part::Ca, e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(tls)?;
        // Connections are long-lived: no resumption, every one is verified.
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_root_certificates(store)
            .with_client_auth_cert(chain, key)
            .map_err(tls)?;
        client.resumption = Resumption::disabled();

        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// Server configuration: TLS 1.3, requires a client certificate issued
    /// by the cluster CA (the node id is checked after the Hello).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// Client configuration: TLS 1.3, trusts only the cluster CA, presents
    /// this node's certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// Client half of the handshake: TCP connect, TLS (the server must prove it
/// is node `node`), then the Hello frame naming `self_id`. All within
/// `timeout`.
pub(crate) async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    node: u16,
    self_id: u16,
    timeout: Duration,
) -> Result<client::TlsStream<TcpStream>, String> {
    let name = server_name(node)?;
    let hello = Frame::Hello {
        node_id: self_id,
        version: PROTOCOL_VERSION,
    }
    .encode()
    .map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        tls.write_all(&hello).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok(tls)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("no connection within {timeout:?}")),
    }
}

/// Server half of the handshake: TLS (client certificate chained to the
/// cluster CA), then the Hello frame, whose node id the certificate must
/// name. Returns the stream and the authenticated node id.
pub(crate) async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<(server::TlsStream<TcpStream>, u16), String> {
    let _ = tcp.set_nodelay(true);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(format!("TLS: {e}")),
        Err(_) => return Err("TLS handshake timed out".into()),
    };
    let hello =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame_within(&mut tls, MAX_HELLO)).await
        {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return Err("closed before the Hello".into()),
            Ok(Err(e)) => return Err(format!("bad Hello: {e}")),
            Err(_) => return Err("no Hello in time".into()),
        };
    let Frame::Hello { node_id, version } = hello else {
        return Err("first frame is not a Hello".into());
    };
    if version != PROTOCOL_VERSION {
        return Err(format!("unsupported protocol version {version}"));
    }
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or("no client certificate")?;
    check_identity(cert, node_id)
        .map_err(|e| format!("certificate is not valid for node {node_id}: {e}"))?;
    Ok((tls, node_id))
}

#[cfg(test)]
mod tests {
    use super::super::pki::{generate_ca, generate_node_cert};
    use super::*;

    #[test]
    fn from_pem_checks_every_part() {
        let ca = generate_ca().unwrap();
        let node = generate_node_cert(&ca, 1).unwrap();
        assert!(PeerTls::from_pem(&ca.cert, &node.cert, &node.key).is_ok());

        let err = |r: Result<PeerTls, PeerError>| match r {
            Err(PeerError::Tls(s)) => s,
            other => panic!("expected a Tls error, got {other:?}"),
        };
        assert!(err(PeerTls::from_pem("junk", &node.cert, &node.key)).starts_with("CA certificate"));
        assert!(err(PeerTls::from_pem(&ca.cert, "", &node.key)).starts_with("node certificate"));
        assert!(err(PeerTls::from_pem(&ca.cert, &node.cert, &node.cert)).starts_with("private key"));
        // A key that is not the certificate's.
        let other = generate_node_cert(&ca, 2).unwrap();
        assert!(err(PeerTls::from_pem(&ca.cert, &node.cert, &other.key)).starts_with("private key"));
        // A certificate of another cluster.
        let foreign_ca = generate_ca().unwrap();
        let foreign = generate_node_cert(&foreign_ca, 1).unwrap();
        assert!(
            err(PeerTls::from_pem(&ca.cert, &foreign.cert, &foreign.key))
                .starts_with("node certificate")
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = generate_ca().unwrap();
        let node = generate_node_cert(&ca, 4).unwrap();
        let (ca_path, cert_path, key_path) = (
            dir.path().join("ca.pem"),
            dir.path().join("node.pem"),
            dir.path().join("node.key"),
        );
        std::fs::write(&ca_path, &ca.cert).unwrap();
        std::fs::write(&cert_path, &node.cert).unwrap();
        std::fs::write(&key_path, &node.key).unwrap();
        assert!(PeerTls::load(&ca_path, &cert_path, &key_path).is_ok());

        let missing = dir.path().join("missing.pem");
        match PeerTls::load(&ca_path, &missing, &key_path) {
            Err(PeerError::File { path, .. }) => assert_eq!(path, missing.display().to_string()),
            other => panic!("{other:?}"),
        }
        std::fs::write(&key_path, "nothing").unwrap();
        match PeerTls::load(&ca_path, &cert_path, &key_path) {
            Err(PeerError::File { path, reason }) => {
                assert_eq!(path, key_path.display().to_string());
                assert_eq!(reason, "no private key found");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn handshake_is_tls13_only_and_checks_the_hello() {
        let ca = generate_ca().unwrap();
        let a = generate_node_cert(&ca, 1).unwrap();
        let b = generate_node_cert(&ca, 2).unwrap();
        let server_tls = PeerTls::from_pem(&ca.cert, &a.cert, &a.key).unwrap();
        let client_tls = PeerTls::from_pem(&ca.cert, &b.cert, &b.key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server_tls.server_config());
        let server = tokio::spawn(async move {
            let mut results = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                results.push(accept(&acceptor, tcp).await.map(|(tls, id)| {
                    assert_eq!(
                        tls.get_ref().1.protocol_version(),
                        Some(rustls::ProtocolVersion::TLSv1_3)
                    );
                    id
                }));
            }
            results
        });

        // A TLS 1.2 client with a valid certificate is refused.
        let mut roots = RootCertStore::empty();
        roots.add(parse_certs(&ca.cert).unwrap().remove(0)).unwrap();
        let tls12 = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(parse_certs(&b.cert).unwrap(), parse_key(&b.key).unwrap())
            .unwrap();
        let old = TlsConnector::from(Arc::new(tls12));
        assert!(connect(&old, addr, 1, 2, Duration::from_secs(5))
            .await
            .is_err());

        // The real client gets through and its Hello is authenticated.
        let connector = TlsConnector::from(client_tls.client_config());
        let _stream = connect(&connector, addr, 1, 2, Duration::from_secs(5))
            .await
            .unwrap();
        let results = server.await.unwrap();
        assert!(
            results[0].as_ref().unwrap_err().starts_with("TLS"),
            "{results:?}"
        );
        assert_eq!(results[1], Ok(2));

        // The server's certificate must name the node the client asked for.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server_tls.server_config());
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = accept(&acceptor, tcp).await;
        });
        let err = connect(&connector, addr, 3, 2, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.starts_with("TLS"), "{err}");
    }
}
