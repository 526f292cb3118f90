//! Client and server of the peer link together, over loopback TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::frame::{kind, Frame};
use super::*;

const LONG: Duration = Duration::from_secs(10);
/// Holds the echo handler's "slow" request until a permit is added.
static SLOW_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

type Reply = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'static>>;

/// A handler made of a closure; records every call.
struct TestHandler<F> {
    f: F,
    calls: Mutex<Vec<(u16, SocketAddr)>>,
}

impl<F> ForwardHandler for TestHandler<F>
where
    F: Fn(Vec<u8>) -> Reply + Send + Sync + 'static,
{
    fn handle(&self, from_node: u16, src: SocketAddr, packet: Vec<u8>) -> Reply {
        self.calls.lock().unwrap().push((from_node, src));
        (self.f)(packet)
    }
}

fn handler<F>(f: F) -> Arc<TestHandler<F>>
where
    F: Fn(Vec<u8>) -> Reply + Send + Sync + 'static,
{
    Arc::new(TestHandler {
        f,
        calls: Mutex::new(Vec::new()),
    })
}

/// Replies "re:" + packet; "silent" gets no reply; a first byte `d` in
/// 0..=9 with length > 1 waits `d` * 3 ms; "slow" waits until the test
/// releases it through [`SLOW_GATE`] (an ordering the test controls, not a
/// race against the clock).
fn echo() -> Arc<TestHandler<impl Fn(Vec<u8>) -> Reply + Send + Sync + 'static>> {
    handler(|packet: Vec<u8>| -> Reply {
        Box::pin(async move {
            match packet.as_slice() {
                b"silent" => return None,
                b"slow" => SLOW_GATE.acquire().await.expect("gate open").forget(),
                [d @ 0..=9, _, ..] => {
                    tokio::time::sleep(Duration::from_millis(u64::from(*d) * 3)).await
                }
                _ => {}
            }
            Some([b"re:".as_slice(), &packet].concat())
        })
    })
}

struct Cluster {
    ca: Pem,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            ca: generate_ca().unwrap(),
        }
    }
    fn node(&self, id: u16) -> PeerTls {
        let pem = generate_node_cert(&self.ca, id).unwrap();
        PeerTls::from_pem(&self.ca.cert, &pem.cert, &pem.key).unwrap()
    }
}

struct Server {
    addr: SocketAddr,
    stats: Arc<PeerStats>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(tls: PeerTls, handler: Arc<dyn ForwardHandler>) -> Server {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tls,
            handler,
        )
    }
    /// A server whose configured peers are nodes 2 and 3 (the clients below).
    fn start_on(listener: TcpListener, tls: PeerTls, handler: Arc<dyn ForwardHandler>) -> Server {
        Self::start_knowing(listener, tls, &[2, 3], handler)
    }
    fn start_knowing(
        listener: TcpListener,
        tls: PeerTls,
        peers: &[u16],
        handler: Arc<dyn ForwardHandler>,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(PeerStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            tls,
            peers.iter().copied().collect(),
            handler,
            stats.clone(),
            shutdown.clone(),
        ));
        Server {
            addr,
            stats,
            shutdown,
            task,
        }
    }
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(LONG, self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    /// Waits (bounded) until `peer_rejected` reaches `n`.
    async fn rejected(&self, n: u64) {
        let deadline = Instant::now() + LONG;
        while self.stats.peer_rejected.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "peer_rejected stayed below {n}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(self.stats.peer_rejected.load(Ordering::Relaxed), n);
    }
}

fn client(
    tls: &PeerTls,
    self_id: u16,
    peers: Vec<(u16, SocketAddr)>,
) -> (PeerClient, Arc<PeerStats>) {
    let stats = Arc::new(PeerStats::default());
    let c = PeerClient::new(tls, self_id, peers, Duration::from_secs(2), stats.clone());
    (c, stats)
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[tokio::test]
async fn round_trip_keeps_node_source_and_bytes() {
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start(cluster.node(1), h.clone()).await;
    let (c, stats) = client(&cluster.node(2), 2, vec![(1, server.addr)]);

    let v4: SocketAddr = "192.0.2.10:1645".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::7]:61000".parse().unwrap();
    let r = c.forward(1, v4, b"packet-one", LONG).await.unwrap();
    assert_eq!(r.as_deref(), Some(b"re:packet-one".as_slice()));
    let r = c
        .forward(1, v6, &[0xFF; 4096], LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.len(), 4099);
    assert_eq!(c.forward(1, v4, b"silent", LONG).await.unwrap(), None);

    assert_eq!(*h.calls.lock().unwrap(), vec![(2, v4), (2, v6), (2, v4)]);
    assert_eq!(get(&stats.forwarded_out), 3);
    assert_eq!(get(&stats.peer_connects), 1);
    assert_eq!(get(&stats.forward_failed), 0);
    assert_eq!(get(&server.stats.forwarded_in), 3);
    assert_eq!(get(&server.stats.peer_rejected), 0);
    server.stop().await;
}

#[tokio::test]
async fn unknown_peer_and_oversized_packet() {
    let cluster = Cluster::new();
    let (c, stats) = client(
        &cluster.node(2),
        2,
        vec![(1, "127.0.0.1:9".parse().unwrap())],
    );
    assert!(c.knows(1));
    assert!(!c.knows(3));
    let src: SocketAddr = "10.0.0.1:1".parse().unwrap();
    assert_eq!(
        c.forward(3, src, b"x", LONG).await,
        Err(ForwardError::UnknownPeer(3))
    );
    assert_eq!(
        c.forward(1, src, &vec![0; 20_000], LONG).await,
        Err(ForwardError::PacketTooLarge(20_000))
    );
    assert_eq!(get(&stats.forward_failed), 2);
    assert_eq!(get(&stats.peer_connects), 0);
}

#[tokio::test]
async fn many_concurrent_forwards_share_one_connection() {
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start(cluster.node(1), h.clone()).await;
    let (c, stats) = client(&cluster.node(2), 2, vec![(1, server.addr)]);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u16 {
        let c = c.clone();
        tasks.spawn(async move {
            // Later requests wait less: replies come back out of order.
            let delay = 9 - (i % 10) as u8;
            let packet = [&[delay][..], &i.to_be_bytes(), b"-payload"].concat();
            let src = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1000 + i));
            let reply = c.forward(1, src, &packet, LONG).await;
            (packet, reply)
        });
    }
    let mut n = 0;
    while let Some(done) = tasks.join_next().await {
        let (packet, reply) = done.unwrap();
        assert_eq!(
            reply.unwrap().unwrap(),
            [b"re:".as_slice(), &packet].concat()
        );
        n += 1;
    }
    assert_eq!(n, 200);
    assert_eq!(get(&stats.forwarded_out), 200);
    assert_eq!(get(&stats.peer_connects), 1);
    assert_eq!(get(&server.stats.forwarded_in), 200);
    let calls = h.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 200);
    for i in 0..200u16 {
        let src = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1000 + i));
        assert!(calls.contains(&(2, src)));
    }
    server.stop().await;
}

#[tokio::test]
async fn client_refuses_a_server_of_another_ca() {
    let ours = Cluster::new();
    let theirs = Cluster::new();
    let h = echo();
    let server = Server::start(theirs.node(1), h.clone()).await;
    let (c, stats) = client(&ours.node(2), 2, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert!(matches!(r, Err(ForwardError::Unreachable(_))), "{r:?}");
    assert_eq!(get(&stats.peer_connects), 0);
    assert_eq!(get(&stats.forward_failed), 1);
    // The server saw the handshake fail too.
    server.rejected(1).await;
    assert!(h.calls.lock().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn server_refuses_a_client_of_another_ca() {
    let ours = Cluster::new();
    let theirs = Cluster::new();
    let h = echo();
    let server = Server::start(ours.node(1), h.clone()).await;
    // This client trusts both CAs (so it accepts our server) but holds a
    // certificate of the other cluster.
    let pem = generate_node_cert(&theirs.ca, 2).unwrap();
    let both = format!("{}{}", ours.ca.cert, theirs.ca.cert);
    let tls = PeerTls::from_pem(&both, &pem.cert, &pem.key).unwrap();
    let (c, _) = client(&tls, 2, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert!(
        matches!(r, Err(ForwardError::Closed | ForwardError::Unreachable(_))),
        "{r:?}"
    );
    server.rejected(1).await;
    assert!(h.calls.lock().unwrap().is_empty());
    assert_eq!(get(&server.stats.forwarded_in), 0);
    server.stop().await;
}

#[tokio::test]
async fn hello_must_match_the_certificate() {
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start(cluster.node(1), h.clone()).await;
    // node-3's certificate, claiming to be node 2.
    let (c, _) = client(&cluster.node(3), 2, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert!(
        matches!(r, Err(ForwardError::Closed | ForwardError::Unreachable(_))),
        "{r:?}"
    );
    server.rejected(1).await;
    assert!(h.calls.lock().unwrap().is_empty());

    // The same certificate with the right id is accepted.
    let (c, _) = client(&cluster.node(3), 3, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert_eq!(r, Ok(Some(b"re:x".to_vec())));
    assert_eq!(h.calls.lock().unwrap().first().map(|c| c.0), Some(3));
    server.stop().await;
}

#[tokio::test]
async fn a_node_that_is_not_a_configured_peer_is_refused_despite_its_certificate() {
    // Node 3 was removed from the configuration (its certificate, signed by
    // the cluster CA, cannot be revoked): it can neither forward requests
    // nor send admin requests or replication messages.
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start_knowing(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        cluster.node(1),
        &[2],
        h.clone(),
    );
    let (c, _) = client(&cluster.node(3), 3, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert!(
        matches!(r, Err(ForwardError::Closed | ForwardError::Unreachable(_))),
        "{r:?}"
    );
    server.rejected(1).await;
    let (c, _) = client(&cluster.node(3), 3, vec![(1, server.addr)]);
    let answer = c.admin(1, b"{}".to_vec(), LONG).await;
    assert!(answer.is_err(), "{answer:?}");
    server.rejected(2).await;
    assert!(h.calls.lock().unwrap().is_empty());

    // A configured peer gets through.
    let (c, _) = client(&cluster.node(2), 2, vec![(1, server.addr)]);
    let r = c
        .forward(1, "10.0.0.1:1".parse().unwrap(), b"x", LONG)
        .await;
    assert_eq!(r, Ok(Some(b"re:x".to_vec())));
    server.stop().await;
}

#[tokio::test]
async fn unreachable_fast_then_reconnects() {
    let cluster = Cluster::new();
    let (server_tls, h) = (cluster.node(1), echo());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (c, stats) = client(&cluster.node(2), 2, vec![(1, addr)]);
    let src: SocketAddr = "10.0.0.1:1".parse().unwrap();

    // Nobody listens: refused (Unreachable, not a Timeout: the 10 s timeout
    // was not waited for).
    let r = c.forward(1, src, b"a", LONG).await;
    assert!(matches!(r, Err(ForwardError::Unreachable(_))), "{r:?}");
    // While backing off, callers do not even try: something listens on the
    // port now, and no connection reaches it.
    let probe = std::net::TcpListener::bind(addr).unwrap();
    probe.set_nonblocking(true).unwrap();
    let r = c.forward(1, src, b"a", LONG).await;
    assert!(matches!(r, Err(ForwardError::Unreachable(_))), "{r:?}");
    assert!(probe.accept().is_err(), "connected during the back-off");
    drop(probe);

    // The owner comes up; after the back-off the next forward connects.
    let server = Server::start_on(
        TcpListener::bind(addr).await.unwrap(),
        server_tls.clone(),
        h.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        c.forward(1, src, b"b", LONG).await,
        Ok(Some(b"re:b".to_vec()))
    );
    assert_eq!(get(&stats.peer_connects), 1);

    // It goes down: the open connection is closed.
    server.stop().await;
    let r = c.forward(1, src, b"c", LONG).await;
    assert!(
        matches!(r, Err(ForwardError::Closed | ForwardError::Unreachable(_))),
        "{r:?}"
    );

    // And comes back on the same port: the client opens a new connection.
    let server = Server::start_on(
        TcpListener::bind(addr).await.unwrap(),
        server_tls,
        h.clone(),
    );
    let deadline = Instant::now() + LONG;
    let reply = loop {
        match c.forward(1, src, b"d", LONG).await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("no reconnect: {e}"),
        }
    };
    assert_eq!(reply, Some(b"re:d".to_vec()));
    assert_eq!(get(&stats.peer_connects), 2);
    server.stop().await;
}

#[tokio::test]
async fn slow_owner_times_out_and_the_late_reply_is_harmless() {
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start(cluster.node(1), h.clone()).await;
    let (c, stats) = client(&cluster.node(2), 2, vec![(1, server.addr)]);
    let src: SocketAddr = "10.0.0.1:1".parse().unwrap();

    // Connected first, so the short timeout below covers only the wait.
    assert_eq!(
        c.forward(1, src, b"warm", LONG).await,
        Ok(Some(b"re:warm".to_vec()))
    );
    // The handler holds "slow" until released below, so the Timeout can only
    // come from the forward's own deadline, before the reply exists.
    let r = c.forward(1, src, b"slow", Duration::from_millis(100)).await;
    assert_eq!(r, Err(ForwardError::Timeout));
    // The connection still works, before and after the late reply arrives.
    assert_eq!(
        c.forward(1, src, b"quick", LONG).await,
        Ok(Some(b"re:quick".to_vec()))
    );
    // Release the slow request; its late reply arrives and is dropped.
    SLOW_GATE.add_permits(1);
    let deadline = Instant::now() + LONG;
    while get(&server.stats.forwarded_in) < 3 {
        assert!(Instant::now() < deadline, "the slow request never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get(&server.stats.forwarded_in), 3);
    assert_eq!(
        c.forward(1, src, b"again", LONG).await,
        Ok(Some(b"re:again".to_vec()))
    );
    assert_eq!(get(&stats.peer_connects), 1);
    assert_eq!(get(&stats.forward_failed), 1);
    assert_eq!(get(&stats.forwarded_out), 3);
    server.stop().await;
}

/// Opens an authenticated raw connection to `addr` as node `id`.
async fn raw(
    cluster: &Cluster,
    id: u16,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let connector = TlsConnector::from(cluster.node(id).client_config());
    tls::connect(&connector, addr, 1, id, LONG).await.unwrap()
}

/// Reads until the server closes the stream; returns what came.
async fn read_to_close(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(LONG, stream.read_to_end(&mut got))
        .await
        .expect("the server did not close the connection");
    got
}

#[tokio::test]
async fn server_closes_on_bad_frames() {
    let cluster = Cluster::new();
    let h = echo();
    let server = Server::start(cluster.node(1), h.clone()).await;

    // An unknown kind after a valid Hello.
    let mut s = raw(&cluster, 2, server.addr).await;
    s.write_all(&[0, 0, 0, 9, 77, 0, 0, 0, 0, 0, 0, 0, 1])
        .await
        .unwrap();
    assert!(read_to_close(&mut s).await.is_empty());

    // An oversized length prefix.
    let mut s = raw(&cluster, 2, server.addr).await;
    s.write_all(&[2, 0, 0, 0, 2]).await.unwrap();
    assert!(read_to_close(&mut s).await.is_empty());

    // A second Hello, and a Reply sent the wrong way.
    for frame in [
        Frame::Hello {
            node_id: 2,
            version: 1,
        },
        Frame::Reply { id: 1, reply: None },
    ] {
        let mut s = raw(&cluster, 2, server.addr).await;
        s.write_all(&frame.encode().unwrap()).await.unwrap();
        assert!(read_to_close(&mut s).await.is_empty());
    }

    // A valid Forward is answered with a Reply echoing its id.
    let mut s = raw(&cluster, 2, server.addr).await;
    let forward = Frame::Forward {
        id: 42,
        src: "10.1.1.1:5".parse().unwrap(),
        packet: b"ok".to_vec(),
    };
    s.write_all(&forward.encode().unwrap()).await.unwrap();
    let reply = tokio::time::timeout(LONG, frame::read_frame(&mut s))
        .await
        .unwrap();
    assert_eq!(
        reply,
        Ok(Some(Frame::Reply {
            id: 42,
            reply: Some(b"re:ok".to_vec())
        }))
    );
    assert!(h.calls.lock().unwrap().len() == 1);
    // A wrong protocol version in the Hello is refused.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector = TlsConnector::from(cluster.node(2).client_config());
    let name = rustls::pki_types::ServerName::try_from(node_server_name(1)).unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    let mut hello = Frame::Hello {
        node_id: 2,
        version: 1,
    }
    .encode()
    .unwrap();
    *hello.last_mut().unwrap() = 2;
    assert_eq!(hello.get(4), Some(&kind::HELLO));
    s.write_all(&hello).await.unwrap();
    assert!(read_to_close(&mut s).await.is_empty());
    server.rejected(1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_first_frame_longer_than_a_hello_is_refused_before_its_body() {
    // A valid certificate, then a length prefix of 16 MiB as the first
    // frame: refused at once (it used to be buffered until the 5 s Hello
    // deadline), so connections that have not said who they are hold no
    // large buffers.
    let cluster = Cluster::new();
    let server = Server::start(cluster.node(1), echo()).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let connector = TlsConnector::from(cluster.node(2).client_config());
    let name = rustls::pki_types::ServerName::try_from(node_server_name(1)).unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    let len = u32::try_from(frame::MAX_FRAME).unwrap();
    s.write_all(&len.to_be_bytes()).await.unwrap();
    s.write_all(&[kind::HELLO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1])
        .await
        .unwrap();
    let started = Instant::now();
    assert!(read_to_close(&mut s).await.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.rejected(1).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let cluster = Cluster::new();
    let server = Server::start(cluster.node(1), echo()).await;
    let mut s = raw(&cluster, 2, server.addr).await;
    // An idle authenticated connection and one stuck before its handshake.
    let idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
    assert!(read_to_close(&mut s).await.is_empty());
    drop(idle);
}

#[test]
fn stats_as_json() {
    let stats = PeerStats::default();
    bump(&stats.forwarded_out);
    bump(&stats.peer_rejected);
    bump(&stats.peer_rejected);
    assert_eq!(
        stats.to_json(),
        serde_json::json!({
            "forwarded_out": 1, "forward_failed": 0, "forwarded_in": 0,
            "peer_connects": 0, "peer_rejected": 2,
        })
    );
}

#[test]
fn server_names() {
    assert_eq!(node_server_name(0), "node-0.radmfa.cluster");
    assert_eq!(node_server_name(65535), "node-65535.radmfa.cluster");
}
