//! Connection handling over in-memory streams, and the TLS handshake with
//! certificate mapping over loopback.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

use super::tls::tests::TestCa;
use super::*;

/// A packet of `len` bytes (header plus zeros) with identifier `id`.
fn packet(id: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 1;
    p[1] = id;
    p[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    p
}

/// Replies with the request's identifier in a 20-byte packet; identifier 0
/// is discarded; identifier 1 waits until identifier 2 has been handled.
#[derive(Default)]
struct Fake {
    two_done: Notify,
    seen: Mutex<Vec<u8>>,
}

impl StreamHandler for Fake {
    async fn handle(&self, request: Vec<u8>) -> Option<Arc<[u8]>> {
        let id = request[1];
        self.seen.lock().unwrap().push(id);
        match id {
            0 => return None,
            1 => self.two_done.notified().await,
            2 => self.two_done.notify_one(),
            _ => {}
        }
        let mut reply = packet(id, 20);
        reply[0] = 2;
        Some(Arc::from(reply))
    }
}

/// Reads one 20-byte reply; `None` at the end of the stream.
async fn reply(client: &mut DuplexStream) -> Option<u8> {
    let mut buf = [0u8; 20];
    match client.read_exact(&mut buf).await {
        Ok(_) => Some(buf[1]),
        Err(_) => None,
    }
}

struct Running {
    client: DuplexStream,
    done: tokio::task::JoinHandle<StreamEnd>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
    handler: Arc<Fake>,
}

fn start(idle: Duration) -> Running {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let counters = Arc::new(Counters::default());
    let shutdown = CancellationToken::new();
    let handler = Arc::new(Fake::default());
    let done = {
        let (counters, shutdown, handler) = (counters.clone(), shutdown.clone(), handler.clone());
        tokio::spawn(async move { serve_stream(server, handler, idle, &counters, shutdown).await })
    };
    Running {
        client,
        done,
        counters,
        shutdown,
        handler,
    }
}

const IDLE: Duration = Duration::from_secs(600);

#[tokio::test]
async fn requests_in_flight_are_answered_as_they_complete() {
    let mut r = start(IDLE);
    // Both requests in one write; the first waits for the second.
    let mut bytes = packet(1, 20);
    bytes.extend(packet(2, 30));
    r.client.write_all(&bytes).await.unwrap();
    assert_eq!(reply(&mut r.client).await, Some(2));
    assert_eq!(reply(&mut r.client).await, Some(1));
    // A discarded request leaves the connection open.
    r.client.write_all(&packet(0, 20)).await.unwrap();
    r.client.write_all(&packet(3, 20)).await.unwrap();
    assert_eq!(reply(&mut r.client).await, Some(3));
    r.client.shutdown().await.unwrap();
    assert_eq!(reply(&mut r.client).await, None);
    assert_eq!(r.done.await.unwrap(), StreamEnd::ClientClosed);
    assert_eq!(*r.handler.seen.lock().unwrap(), vec![1, 2, 0, 3]);
    assert_eq!(r.counters.radsec_framing_errors.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn bad_length_closes_the_connection() {
    let mut r = start(IDLE);
    r.client.write_all(&packet(3, 20)).await.unwrap();
    assert_eq!(reply(&mut r.client).await, Some(3));
    // Length 4097: closed without waiting for the body.
    r.client.write_all(&[1, 4, 0x10, 0x01]).await.unwrap();
    assert_eq!(reply(&mut r.client).await, None);
    assert!(matches!(
        r.done.await.unwrap(),
        StreamEnd::Framing(FramingError::BadLength(4097))
    ));
    assert_eq!(r.counters.radsec_framing_errors.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn stream_cut_inside_a_packet_is_a_framing_error() {
    let mut r = start(IDLE);
    r.client.write_all(&packet(5, 40)[..25]).await.unwrap();
    r.client.shutdown().await.unwrap();
    assert_eq!(reply(&mut r.client).await, None);
    assert_eq!(
        r.done.await.unwrap(),
        StreamEnd::Framing(FramingError::Truncated { have: 25 })
    );
    assert_eq!(r.counters.radsec_framing_errors.load(Ordering::Relaxed), 1);
    assert!(r.handler.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let mut r = start(Duration::from_millis(50));
    assert_eq!(reply(&mut r.client).await, None);
    assert_eq!(r.done.await.unwrap(), StreamEnd::Idle);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_progress() {
    let mut r = start(IDLE);
    r.client.write_all(&packet(1, 20)).await.unwrap();
    // Wait until the request is in the handler, then shut down.
    while r.handler.seen.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    r.shutdown.cancel();
    // Requests after shutdown are not read; the one in progress completes.
    r.client.write_all(&packet(4, 20)).await.unwrap();
    r.handler.two_done.notify_one();
    assert_eq!(reply(&mut r.client).await, Some(1));
    assert_eq!(reply(&mut r.client).await, None);
    assert_eq!(r.done.await.unwrap(), StreamEnd::Shutdown);
    assert_eq!(*r.handler.seen.lock().unwrap(), vec![1]);
}

// ------------------------------------------------------------------ TLS

fn settings(dir: &std::path::Path, ca: &TestCa, clients: Vec<RadsecClient>) -> RadsecSettings {
    let (cert, key) = ca.leaf("radmfa", &["localhost"]);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    RadsecSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
        idle_timeout: IDLE,
        max_connections: 8,
        clients,
    }
}

fn client_config(
    server_ca: &TestCa,
    cert: Option<(String, String)>,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut server_ca.pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots);
    let config = match cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls_pemfile::certs(&mut cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                rustls_pemfile::private_key(&mut key.as_bytes())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Handshakes with `connector`; the server's result: the client it mapped
/// the certificate to, or its handshake error.
async fn handshake(
    tls: &RadsecTls,
    connector: TlsConnector,
) -> Result<Option<Arc<ClientEntry>>, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(tls.server_config());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor
            .accept(tcp)
            .await
            .map(|s| s.get_ref().1.peer_certificates().map(|c| c[0].clone()))
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    // TLS 1.3 clients finish before the server has checked their
    // certificate: the server's side decides.
    let _client = connector.connect(name, tcp).await;
    let cert = server.await.unwrap()?;
    Ok(cert.and_then(|c| tls.client_for(&c)))
}

#[tokio::test]
async fn handshake_maps_certificates_and_counts_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("radsec test CA");
    let mapped = RadsecClient {
        name: "proxy".into(),
        cert_cn: Some("proxy.example.com".into()),
        cert_san_dns: None,
        cert_sha256: None,
        policy: "default".into(),
        require_message_authenticator: true,
    };
    let s = settings(dir.path(), &ca, vec![mapped]);
    let counters = Arc::new(Counters::default());
    let tls = RadsecTls::load(&s, counters.clone()).unwrap();
    let rejected = || counters.radsec_rejected_certs.load(Ordering::Relaxed);

    // Mapped certificate, TLS 1.3 and TLS 1.2.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let good = client_config(&ca, Some(ca.leaf("proxy.example.com", &[])), version);
        let entry = handshake(&tls, good).await.unwrap().expect("mapped");
        assert_eq!(entry.name, "proxy");
        assert_eq!(entry.secret.expose(), RADSEC_SECRET);
    }
    assert_eq!(rejected(), 0);

    // Valid under the CA but no client matches it.
    let unmapped = client_config(
        &ca,
        Some(ca.leaf("stranger.example.com", &[])),
        &rustls::version::TLS12,
    );
    assert!(handshake(&tls, unmapped).await.is_err());
    assert_eq!(rejected(), 1);

    // Same name, but from another CA.
    let other = TestCa::new("other CA");
    let foreign = client_config(
        &ca,
        Some(other.leaf("proxy.example.com", &[])),
        &rustls::version::TLS12,
    );
    assert!(handshake(&tls, foreign).await.is_err());
    assert_eq!(rejected(), 2);

    // No certificate at all: refused by rustls before the verifier runs;
    // the listener recognises the error to count it.
    let anonymous = client_config(&ca, None, &rustls::version::TLS13);
    let err = handshake(&tls, anonymous).await.unwrap_err();
    assert!(no_certificate(&err), "{err}");
    assert_eq!(rejected(), 2);
}
