//! Every socket a node listens on, bound by the binary before the node
//! starts (hickory-dns's `ServerFuture` and mini-redis take bound sockets the
//! same way): RADIUS over UDP, RadSec, the admin API, the portal and the
//! peer link. Binding apart from serving lets a bind error stop start-up at
//! once with the address and the remedy, and lets tests bind port 0 and read
//! the bound ports from [`Bound`] (the ready file).

use std::net::{SocketAddr, TcpListener, UdpSocket};

use crate::config::RuntimeConfig;
use crate::error::{for_section, ServerError};

/// The bound listeners of a node, handed to [`crate::run`].
#[derive(Debug, Default)]
pub struct Listeners {
    /// RADIUS UDP sockets: `workers` sockets per `[radius] listen` address,
    /// sharing it with SO_REUSEPORT.
    pub udp: Vec<UdpSocket>,
    /// `[radsec] listen`.
    pub radsec: Option<TcpListener>,
    /// `[api] listen`.
    pub api: Option<TcpListener>,
    /// `[portal] listen`.
    pub portal: Option<TcpListener>,
    /// `[cluster] listen` (the peer link).
    pub peer: Option<TcpListener>,
}

impl Listeners {
    /// Binds every listener `cfg` configures, `workers` UDP sockets per RADIUS
    /// address. Errors name the address, the section and what to do.
    pub fn bind(cfg: &RuntimeConfig, workers: usize) -> Result<Listeners, ServerError> {
        let mut udp = Vec::new();
        for addr in &cfg.listen {
            let (socks, _) = bind_udp(*addr, workers)
                .map_err(|e| ServerError::Listen(format!("cannot listen on {addr}: {e}")))?;
            udp.extend(socks);
        }
        let tcp = |addr: SocketAddr| {
            bind_tcp(addr).map_err(|e| format!("cannot listen on {addr}: {}", tcp_reason(addr, &e)))
        };
        let listen = |section, addr: Option<SocketAddr>, wrap| {
            for_section(&cfg.origin, section, addr.as_ref(), wrap, |a| tcp(*a))
        };
        Ok(Listeners {
            udp,
            radsec: listen(
                "radsec",
                cfg.radsec.as_ref().map(|r| r.listen),
                ServerError::Radsec,
            )?,
            api: listen("api", cfg.api.as_ref().map(|a| a.listen), ServerError::Api)?,
            portal: listen(
                "portal",
                cfg.portal.as_ref().map(|p| p.listen),
                ServerError::Portal,
            )?,
            peer: listen(
                "cluster",
                cfg.cluster.as_ref().map(|c| c.listen),
                ServerError::Peer,
            )?,
        })
    }

    /// The bound RADIUS UDP addresses, one per configured address, in
    /// configuration order.
    pub fn radius_udp(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for a in self.udp.iter().filter_map(|s| s.local_addr().ok()) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// The reason of a TCP bind error, with the remedy when the port is taken.
fn tcp_reason(addr: SocketAddr, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "{e}: TCP port {port} is already in use by another process \
             (`ss -tlpn sport = :{port}` shows which): stop that process or listen on another port",
            port = addr.port()
        )
    } else {
        e.to_string()
    }
}

/// A non-blocking TCP listener on `addr`, as tokio binds one (SO_REUSEADDR,
/// a backlog of 1024), ready for `tokio::net::TcpListener::from_std`.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Binds `count` sockets sharing one address with SO_REUSEPORT, so the kernel
/// spreads datagrams over the workers. Port 0 picks a port once for all.
///
/// SO_REUSEPORT would also let another process of the same user join the
/// group: a second radmfa (another data directory, same port) would take
/// half the NAS traffic and answer it from its own database. So a plain
/// bind, which fails while anyone holds the address, comes first.
fn bind_udp(addr: SocketAddr, count: usize) -> std::io::Result<(Vec<UdpSocket>, SocketAddr)> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() != 0 {
        match UdpSocket::bind(addr) {
            Ok(probe) => drop(probe),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "UDP port {} is already in use by another process (another radmfa server? \
                         `ss -ulpn sport = :{}` shows which); refusing to share it: stop that \
                         process or listen on another port",
                        addr.port(),
                        addr.port()
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let mut out = Vec::new();
    let mut target = addr;
    for _ in 0..count.max(1) {
        let s = Socket::new(
            Domain::for_address(target),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        s.set_reuse_port(true)?;
        // Room for bursts of requests while workers are busy.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&target.into())?;
        let std_sock: UdpSocket = s.into();
        target = std_sock.local_addr()?;
        out.push(std_sock);
    }
    Ok((out, target))
}

/// Every address a started node listens on, for the ready file: tests and
/// scripts configure port 0 and read the bound ports from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    /// RADIUS UDP listeners (`[radius] listen`), in configuration order.
    pub radius_udp: Vec<std::net::SocketAddr>,
    /// The RadSec (RADIUS/TLS) listener.
    pub radsec: Option<std::net::SocketAddr>,
    /// The admin HTTPS API.
    pub api: Option<std::net::SocketAddr>,
    /// The user self-service portal.
    pub portal: Option<std::net::SocketAddr>,
    /// The peer link (`[cluster] listen`).
    pub peer: Option<std::net::SocketAddr>,
    /// The control socket.
    pub control: Option<std::path::PathBuf>,
}

impl Bound {
    /// The ready file's JSON: `pid`, `radius_udp` (a list) and, for each other
    /// listener that is configured, its bound `IP:PORT` (`control`: a path).
    pub fn to_json(&self, pid: u32) -> serde_json::Value {
        let mut v = serde_json::json!({
            "pid": pid,
            "radius_udp": self.radius_udp.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        });
        for (key, addr) in [
            ("radsec", self.radsec),
            ("api", self.api),
            ("portal", self.portal),
            ("peer", self.peer),
        ] {
            if let Some(a) = addr {
                v[key] = serde_json::Value::String(a.to_string());
            }
        }
        if let Some(p) = &self.control {
            v["control"] = serde_json::Value::String(p.display().to_string());
        }
        v
    }
}
