//! Can this node reach what its configuration names? The directory (bind
//! with the service account, look up a user), each upstream RADIUS server
//! (Status-Server, RFC 5997), the cloud gateway (its health endpoint) and
//! each cluster peer (the mutual-TLS peer link).
//!
//! A wrong bind password, a firewall or a shared secret typed twice
//! differently otherwise shows only when the first user signs in. So
//! `radmfa check-config --connect` runs these checks and prints them, and
//! `serve` runs the same checks once at start-up and logs each result (a
//! failure as a warning with the remedy); nothing stops the node, since the
//! peer may come up later.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use radmfa_radius::{encode_request, verify_response, Code, Packet};

use crate::config::RuntimeConfig;

/// How long the start-up checks may take in all before the rest is given up.
pub const STARTUP_BUDGET: Duration = Duration::from_secs(15);

/// What a check reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An LDAP/AD server of `[directory]`.
    Directory,
    /// A server of an `[[upstream]]` group.
    Upstream,
    /// The `[gateway]`.
    Gateway,
    /// A `[[cluster.peer]]`.
    Peer,
}

impl Kind {
    /// The stable name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Directory => "directory",
            Kind::Upstream => "upstream",
            Kind::Gateway => "gateway",
            Kind::Peer => "peer",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct Check {
    /// What kind of peer.
    pub kind: Kind,
    /// Which one, for people: `directory ldap://dc1:389`, `upstream nps 10.0.0.5:1812`.
    pub target: String,
    /// What worked, or why it failed and what to do.
    pub result: Result<String, String>,
}

/// Runs every check the configuration calls for, one after the other (a
/// handful of peers; each bounded by its own timeout). `user` is looked up
/// in the directory; without it a name that need not exist is searched,
/// which still proves the bind and the search.
pub async fn run(cfg: &RuntimeConfig, user: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(dc) = &cfg.directory {
        for server in &dc.servers {
            out.push(directory(dc, server, user).await);
        }
    }
    let mut upstreams: Vec<_> = cfg.upstreams.values().collect();
    upstreams.sort_by(|a, b| a.name.cmp(&b.name));
    for u in upstreams {
        for server in &u.servers {
            out.push(upstream(u, *server).await);
        }
    }
    if let Some(g) = &cfg.gateway {
        out.push(gateway(g).await);
    }
    if let Some(c) = &cfg.cluster {
        out.extend(peers(cfg, c).await);
    }
    out
}

/// Runs the checks once at start-up and logs each: ok at info, a failure at
/// warn with the remedy. Bounded by [`STARTUP_BUDGET`].
pub async fn log_startup(cfg: &RuntimeConfig) {
    match tokio::time::timeout(STARTUP_BUDGET, run(cfg, None)).await {
        Ok(checks) => {
            for c in checks {
                match c.result {
                    Ok(detail) => tracing::info!(
                        check = c.kind.as_str(),
                        target = %c.target,
                        "start-up check ok: {}: {detail}",
                        c.target
                    ),
                    Err(reason) => tracing::warn!(
                        check = c.kind.as_str(),
                        target = %c.target,
                        "start-up check failed: {}: {reason}",
                        c.target
                    ),
                }
            }
        }
        Err(_) => tracing::warn!(
            "start-up checks did not finish within {} s; run `radmfa check-config --connect` to see which peer hangs",
            STARTUP_BUDGET.as_secs()
        ),
    }
}

async fn directory(
    dc: &radmfa_directory::DirectoryConfig,
    server: &str,
    user: Option<&str>,
) -> Check {
    let target = format!("directory {server}");
    let mut one = dc.clone();
    one.servers = vec![server.to_string()];
    let result = match radmfa_directory::Directory::new(one) {
        Err(e) => Err(format!("{e}")),
        Ok(d) => match (d.lookup(user.unwrap_or("radmfa-connect-check")).await, user) {
            (Ok(Some(u)), Some(name)) => Ok(format!(
                "bound as {}; found {name} ({} groups)",
                bind_name(dc),
                u.groups.len()
            )),
            (Ok(None), Some(name)) => Err(format!(
                "bound as {}, but no user {name:?} under {:?} (check base_dn and user_filter)",
                bind_name(dc),
                dc.base_dn
            )),
            (Ok(_), None) => Ok(format!(
                "bound as {} and searched {:?} (give --user NAME to look one up)",
                bind_name(dc),
                dc.base_dn
            )),
            (Err(e), _) => Err(format!(
                "{e} (check servers, tls, ca_file, bind_dn and bind_password_file)"
            )),
        },
    };
    Check {
        kind: Kind::Directory,
        target,
        result,
    }
}

fn bind_name(dc: &radmfa_directory::DirectoryConfig) -> String {
    if dc.bind_dn.is_empty() {
        "anonymous".to_string()
    } else {
        format!("{:?}", dc.bind_dn)
    }
}

async fn upstream(u: &crate::upstream::UpstreamConfig, server: SocketAddr) -> Check {
    let target = format!("upstream {} {server}", u.name);
    let result = match status_server(server, u.secret.expose(), u.timeout).await {
        Ok(rtt) => Ok(format!(
            "answered Status-Server in {} ms (shared secret matches)",
            rtt.as_millis()
        )),
        Err(reason) => Err(reason),
    };
    Check {
        kind: Kind::Upstream,
        target,
        result,
    }
}

/// Sends one Status-Server (with Message-Authenticator, RFC 5997) and checks
/// the answer's authenticators: a reply that verifies proves the address,
/// the port and the shared secret.
pub async fn status_server(
    server: SocketAddr,
    secret: &[u8],
    timeout: Duration,
) -> Result<Duration, String> {
    let mut authenticator = [0u8; 16];
    rand::fill(&mut authenticator[..]);
    let identifier: u8 = rand::random();
    let request = encode_request(Code::STATUS_SERVER, identifier, &authenticator, &[], secret)
        .map_err(|e| format!("cannot encode Status-Server: {e}"))?;
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let started = Instant::now();
    socket
        .send_to(&request, server)
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let (n, from) = match got {
            Err(_) => {
                return Err(format!(
                    "no answer to Status-Server within {} ms: is the server up, does it list this \
                     host as a client with this shared secret (a request signed with another \
                     secret is dropped without an answer), and does it answer Status-Server \
                     (FreeRADIUS: status_server = yes; NPS does not answer it)?",
                    timeout.as_millis()
                ))
            }
            Ok(Err(e)) => return Err(format!("cannot receive: {e}")),
            Ok(Ok(v)) => v,
        };
        let reply = buf.get(..n).unwrap_or_default();
        if from != server || reply.get(1) != Some(&identifier) {
            continue;
        }
        verify_response(reply, &authenticator, secret, false).map_err(|e| {
            format!("the answer does not verify ({e}): the shared secret differs from the server's")
        })?;
        let code = Packet::decode(reply)
            .map(|p| p.code)
            .map_err(|e| format!("malformed answer: {e}"))?;
        if code != Code::ACCESS_ACCEPT && code != Code::ACCOUNTING_RESPONSE {
            return Err(format!("answered Status-Server with code {code}"));
        }
        return Ok(started.elapsed());
    }
}

async fn gateway(g: &radmfa_gateway::GatewayConfig) -> Check {
    let target = match &g.provider {
        radmfa_gateway::Provider::Radmfa { base_url, .. } => format!("gateway {base_url}"),
        radmfa_gateway::Provider::Twilio { base_url, .. } => format!("gateway twilio {base_url}"),
    };
    let result = match radmfa_gateway::Gateway::new(g.clone()) {
        Err(e) => Err(e.to_string()),
        Ok(gw) => match gw.health().await {
            Ok(()) => Ok("health endpoint answered; the credentials are accepted".to_string()),
            Err(e) => Err(format!(
                "{e} (check url, ca_file and api_key_file; the provider's health endpoint is \
                 GET /v1/health, Twilio's the account resource)"
            )),
        },
    };
    Check {
        kind: Kind::Gateway,
        target,
        result,
    }
}

async fn peers(cfg: &RuntimeConfig, c: &crate::config::ClusterSettings) -> Vec<Check> {
    let tls = match crate::peer::PeerTls::load(&c.ca, &c.cert, &c.key) {
        Ok(t) => t,
        Err(e) => {
            return c
                .peers
                .iter()
                .map(|(id, addr)| Check {
                    kind: Kind::Peer,
                    target: format!("peer {id} {addr}"),
                    result: Err(format!(
                        "cannot load this node's peer-link certificates: {e}"
                    )),
                })
                .collect()
        }
    };
    let client = crate::peer::PeerClient::new(
        &tls,
        cfg.node_id,
        c.peers.clone(),
        Duration::from_secs(3),
        std::sync::Arc::default(),
    );
    let mut out = Vec::new();
    for (id, addr) in &c.peers {
        let started = Instant::now();
        let result =
            match tokio::time::timeout(Duration::from_secs(5), client.connect_to(*id)).await {
                Ok(Ok(_)) => Ok(format!(
                    "peer link up in {} ms (mutual TLS, node id {id} in its certificate)",
                    started.elapsed().as_millis()
                )),
                Ok(Err(e)) => Err(format!(
                    "{e} (is node {id} running with [cluster] listen on {addr}? are both \
                     certificates issued by the same ca?)"
                )),
                Err(_) => Err(format!("no peer link within 5 s (is {addr} reachable?)")),
            };
        client.disconnect(*id);
        out.push(Check {
            kind: Kind::Peer,
            target: format!("peer {id} {addr}"),
            result,
        });
    }
    out
}
