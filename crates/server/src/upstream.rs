//! First factor `radius`: the Access-Request is proxied to an upstream RADIUS
//! server (NPS, FreeRADIUS) with that server's own shared secret. The
//! upstream's Accept attributes are kept for our final Accept, its Reject
//! passes through, its Access-Challenge is relayed (chained challenge).
//!
//! The same client forwards Accounting-Requests to a group a policy names in
//! `accounting = "forward:NAME"` ([`Upstream::account`]).
//!
//! A reply that fails verification (Response Authenticator or
//! Message-Authenticator: almost always a shared secret that differs between
//! the two sides, or an upstream that does not sign its replies) is
//! discarded, as RFC 2865 requires. The request then times out, which alone
//! would tell an admin nothing, so the first discard of a group is logged at
//! WARN with the remedy, then at most one line per [`crate::droplog::INTERVAL`]
//! with the number discarded meanwhile (every discard is still at DEBUG).
//! A server that does not answer at all (down, unreachable, or dropping
//! requests signed with another secret) is logged the same way.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use radmfa_otp::Clock;
use radmfa_radius::{
    encode_request, hide_password, verify_response, AttrType, Attribute, Code, Error as WireError,
    Packet,
};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::secret::SharedSecret;

/// One upstream RADIUS server group.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Name referenced by policies.
    pub name: String,
    /// Servers, tried in order (the last one that answered first).
    pub servers: Vec<SocketAddr>,
    /// Shared secret between radmfa and the upstream.
    pub secret: SharedSecret,
    /// Wait for a reply this long before sending again.
    pub timeout: Duration,
    /// Extra sends of the same request to one server before the next server.
    pub retries: u32,
    /// Replies without a valid Message-Authenticator are discarded (BlastRADIUS).
    pub require_message_authenticator: bool,
}

/// Tunnel-Password (69, RFC 2868), encrypted under the shared secret.
const TUNNEL_PASSWORD: AttrType = AttrType(69);

/// What the upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAnswer {
    /// Access-Accept; its attributes (without Message-Authenticator and Proxy-State).
    Accept(Vec<Attribute>),
    /// Access-Reject; its attributes.
    Reject(Vec<Attribute>),
    /// Access-Challenge; its attributes, State included.
    Challenge(Vec<Attribute>),
}

/// No server of the group answered with a valid reply.
#[derive(Debug, thiserror::Error)]
#[error("upstream {name}: {reason}")]
pub struct UpstreamError {
    /// The group.
    pub name: String,
    /// What went wrong with the last server tried.
    pub reason: String,
}

/// A client for one upstream group.
pub struct Upstream {
    cfg: UpstreamConfig,
    /// Index of the server to try first (the last one that answered).
    preferred: AtomicUsize,
    /// Rate limit of the WARN for discarded (unverifiable) replies.
    discards: DiscardLog,
    /// Rate limit of the WARN for servers that did not answer.
    silences: DiscardLog,
    /// Rate limit of the WARN for Accounting-Requests not forwarded.
    accounting_failures: DiscardLog,
    /// Where time is read (the node's clock).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("cfg", &self.cfg)
            .field("preferred", &self.preferred)
            .finish_non_exhaustive()
    }
}

/// When the last WARN of one kind (discarded reply, no answer) of a group
/// was written, and how many were not logged since. Takes `now` so tests
/// need not sleep.
#[derive(Debug, Default)]
struct DiscardLog(Mutex<(Option<Instant>, u64)>);

impl DiscardLog {
    /// `Some(n)` when a line is due (`n` discards were not logged since the
    /// previous one); `None` inside the interval (the discard is counted).
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut st = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, skipped) = &mut *st;
        match last {
            Some(t) if now.saturating_duration_since(*t) < crate::droplog::INTERVAL => {
                *skipped += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(skipped))
            }
        }
    }
}

/// What to do about a reply that does not verify.
fn discard_remedy(e: &WireError) -> &'static str {
    match e {
        WireError::MissingMessageAuthenticator => {
            "the upstream does not sign its replies: make it send Message-Authenticator (BlastRADIUS fix), or set require_message_authenticator = false in this [[upstream]]"
        }
        WireError::BadAuthenticator | WireError::BadMessageAuthenticator => {
            "the shared secret differs: make secret/secret_file of this [[upstream]] equal to the secret the upstream has for this server"
        }
        _ => "the upstream sent a malformed reply: check what answers on this address",
    }
}

/// Attributes of the NAS request that are not copied upstream: they are
/// rebuilt (User-Password, Message-Authenticator) or belong to our session
/// with the NAS (State).
fn copied(t: AttrType) -> bool {
    t != AttrType::USER_PASSWORD && t != AttrType::MESSAGE_AUTHENTICATOR && t != AttrType::STATE
}

impl Upstream {
    /// A client for `cfg` reading time from `clock` (no I/O yet).
    pub fn new(cfg: UpstreamConfig, clock: Arc<dyn Clock>) -> Upstream {
        Upstream {
            cfg,
            clock,
            preferred: AtomicUsize::new(0),
            discards: DiscardLog::default(),
            silences: DiscardLog::default(),
            accounting_failures: DiscardLog::default(),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Sends `request` (as received from the NAS) upstream, with `password`
    /// as the User-Password (when the NAS sent one) and `state` when this
    /// answers an upstream challenge. Other attributes, Proxy-State included,
    /// are copied in order.
    ///
    /// `nas` is the NAS's shared secret and Request Authenticator: MS-MPPE
    /// keys in the upstream's Accept (MS-CHAPv2) are re-encrypted for it
    /// (without it they are dropped: they could not be read by the NAS).
    pub async fn forward(
        &self,
        request: &Packet,
        password: Option<&[u8]>,
        state: Option<&[u8]>,
        nas: Option<(&[u8], &[u8; 16])>,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let fail = |reason: String| UpstreamError {
            name: self.cfg.name.clone(),
            reason,
        };
        let mut authenticator = [0u8; 16];
        rand::fill(&mut authenticator[..]);
        let identifier: u8 = rand::random();
        let secret = self.cfg.secret.expose();
        let mut attrs: Vec<Attribute> = request
            .attributes
            .iter()
            .filter(|a| copied(a.typ))
            .cloned()
            .collect();
        if let Some(pw) = password {
            let hidden =
                hide_password(pw, secret, &authenticator).map_err(|e| fail(e.to_string()))?;
            // User-Password right after User-Name, as NAS do.
            let at = attrs
                .iter()
                .position(|a| a.typ == AttrType::USER_NAME)
                .map_or(0, |i| i + 1);
            attrs.insert(at, Attribute::new(AttrType::USER_PASSWORD, hidden));
        }
        if let Some(s) = state {
            attrs.push(Attribute::new(AttrType::STATE, s.to_vec()));
        }
        let raw = encode_request(
            Code::ACCESS_REQUEST,
            identifier,
            &authenticator,
            &attrs,
            secret,
        )
        .map_err(|e| fail(format!("cannot encode the request: {e}")))?;

        let (code, attrs) = self
            .send(
                &raw,
                identifier,
                &authenticator,
                self.cfg.require_message_authenticator,
            )
            .await
            .map_err(fail)?;
        match code {
            Code::ACCESS_ACCEPT => Ok(UpstreamAnswer::Accept(self.rekey(
                attrs,
                &authenticator,
                nas,
            ))),
            Code::ACCESS_REJECT => Ok(UpstreamAnswer::Reject(attrs)),
            Code::ACCESS_CHALLENGE => Ok(UpstreamAnswer::Challenge(attrs)),
            other => Err(fail(format!("unexpected reply code {other}"))),
        }
    }

    /// Forwards an Accounting-Request (RFC 2866) as received from the NAS
    /// (attributes in order, Proxy-State included; a new Identifier and
    /// Request Authenticator under this group's secret) and waits for an
    /// Accounting-Response, with the group's retries and servers. `Ok` only
    /// once a server answered: the NAS is answered after that. The
    /// response need not carry Message-Authenticator (it holds no secret;
    /// FreeRADIUS does not sign it); its Response Authenticator is checked.
    pub async fn account(&self, request: &Packet) -> Result<(), UpstreamError> {
        let fail = |reason: String| UpstreamError {
            name: self.cfg.name.clone(),
            reason,
        };
        let attrs: Vec<Attribute> = request
            .attributes
            .iter()
            .filter(|a| a.typ != AttrType::MESSAGE_AUTHENTICATOR)
            .cloned()
            .collect();
        let identifier: u8 = rand::random();
        let raw = encode_request(
            Code::ACCOUNTING_REQUEST,
            identifier,
            &[0; 16],
            &attrs,
            self.cfg.secret.expose(),
        )
        .map_err(|e| fail(format!("cannot encode the request: {e}")))?;
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(raw.get(4..20).unwrap_or(&[0; 16]));
        let res = match self.send(&raw, identifier, &authenticator, false).await {
            Ok((Code::ACCOUNTING_RESPONSE, _)) => Ok(()),
            Ok((other, _)) => Err(fail(format!("unexpected reply code {other}"))),
            Err(reason) => Err(fail(reason)),
        };
        if let Err(e) = &res {
            if let Some(not_logged) = self.accounting_failures.admit(self.clock.instant()) {
                warn!(
                    upstream = %self.cfg.name,
                    reason = %e.reason,
                    not_logged,
                    remedy = "the NAS was not answered and will send the Accounting-Request again: check that this [[upstream]] lists the accounting port (1813) of a running server that has this node as a client with the same secret",
                    "Accounting-Request not forwarded"
                );
            }
        }
        res
    }

    /// Sends `raw` to the group's servers in turn (the last one that
    /// answered first) until one gives a reply that verifies: its code and
    /// attributes (without Message-Authenticator and Proxy-State).
    async fn send(
        &self,
        raw: &[u8],
        identifier: u8,
        authenticator: &[u8; 16],
        require_ma: bool,
    ) -> Result<(Code, Vec<Attribute>), String> {
        if self.cfg.servers.is_empty() {
            return Err("no servers configured".into());
        }
        let n = self.cfg.servers.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut last_reason = String::new();
        for k in 0..n {
            let i = (first + k) % n;
            let server = self.cfg.servers[i];
            match self
                .exchange(server, raw, identifier, authenticator, require_ma)
                .await
            {
                Ok(answer) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(reason) => {
                    debug!(upstream = %self.cfg.name, %server, %reason, "upstream RADIUS server did not answer");
                    if let Some(not_logged) = self.silences.admit(self.clock.instant()) {
                        warn!(
                            upstream = %self.cfg.name,
                            %server,
                            %reason,
                            not_logged,
                            remedy = "check that the upstream runs and is reachable at this address, that it has this server as a client, and that both sides use the same shared secret (an upstream silently drops requests signed with another one)",
                            "upstream RADIUS server did not answer"
                        );
                    }
                    last_reason = format!("{server}: {reason}");
                }
            }
        }
        Err(last_reason)
    }

    /// MS-MPPE-Send/Recv-Key and Tunnel-Password: decrypted with our secret
    /// and Request Authenticator, encrypted again for the NAS; dropped if
    /// that fails (relayed as they are, the NAS would decrypt garbage).
    fn rekey(
        &self,
        attrs: Vec<Attribute>,
        ours: &[u8; 16],
        nas: Option<(&[u8], &[u8; 16])>,
    ) -> Vec<Attribute> {
        use radmfa_radius::{
            mppe_decrypt, mppe_encrypt, MS_MPPE_RECV_KEY, MS_MPPE_SEND_KEY, VENDOR_MICROSOFT,
        };
        attrs
            .into_iter()
            .filter_map(|a| {
                if a.typ == TUNNEL_PASSWORD {
                    // RFC 2868 §3.5: a tag, then the same salted layout as
                    // MS-MPPE keys (RFC 2548 §2.4.2).
                    let (nas_secret, nas_auth) = nas?;
                    let (&tag, hidden) = a.value.split_first()?;
                    let password = zeroize::Zeroizing::new(
                        mppe_decrypt(hidden, self.cfg.secret.expose(), ours).ok()?,
                    );
                    let salt: [u8; 2] = rand::random();
                    let mut value = vec![tag];
                    value.extend(mppe_encrypt(&password, nas_secret, nas_auth, salt).ok()?);
                    return Some(Attribute::new(TUNNEL_PASSWORD, value));
                }
                if a.typ != AttrType::VENDOR_SPECIFIC {
                    return Some(a);
                }
                let Ok((vendor, parts)) = a.vendor_parts() else {
                    return Some(a);
                };
                // MS-CHAP-MPPE-Keys (12, MS-CHAPv1) is encrypted under our secret too
                // in another layout: it cannot be relayed, so it is dropped below.
                let is_key = |t: u8| t == MS_MPPE_SEND_KEY || t == MS_MPPE_RECV_KEY || t == 12;
                if vendor != VENDOR_MICROSOFT || !parts.iter().any(|p| is_key(p.vendor_type)) {
                    return Some(a);
                }
                let (nas_secret, nas_auth) = nas?;
                let part = parts.first().filter(|p| p.vendor_type != 12)?;
                let key = zeroize::Zeroizing::new(
                    mppe_decrypt(&part.value, self.cfg.secret.expose(), ours).ok()?,
                );
                let salt: [u8; 2] = rand::random();
                let value = mppe_encrypt(&key, nas_secret, nas_auth, salt).ok()?;
                Attribute::vendor(VENDOR_MICROSOFT, part.vendor_type, &value).ok()
            })
            .collect()
    }

    /// One server: send, wait, resend the same bytes (RFC 5080), verify.
    async fn exchange(
        &self,
        server: SocketAddr,
        raw: &[u8],
        identifier: u8,
        authenticator: &[u8; 16],
        require_ma: bool,
    ) -> Result<(Code, Vec<Attribute>), String> {
        let bind: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        socket.connect(server).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; radmfa_radius::MAX_PACKET_LEN];
        for _ in 0..=self.cfg.retries {
            socket.send(raw).await.map_err(|e| e.to_string())?;
            let deadline = tokio::time::Instant::from_std(self.clock.instant() + self.cfg.timeout);
            loop {
                let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                    Err(_) => break,
                    // ICMP port unreachable: no server there.
                    Ok(Err(e)) => return Err(e.to_string()),
                    Ok(Ok(n)) => n,
                };
                let reply = &buf[..n];
                if reply.get(1) != Some(&identifier) {
                    continue;
                }
                if let Err(e) =
                    verify_response(reply, authenticator, self.cfg.secret.expose(), require_ma)
                {
                    debug!(upstream = %self.cfg.name, %server, error = %e, "reply discarded");
                    if let Some(not_logged) = self.discards.admit(self.clock.instant()) {
                        warn!(
                            upstream = %self.cfg.name,
                            %server,
                            error = %e,
                            not_logged,
                            remedy = discard_remedy(&e),
                            "upstream RADIUS reply discarded: it does not verify"
                        );
                    }
                    continue;
                }
                let Ok(packet) = Packet::decode(reply) else {
                    continue;
                };
                let attrs: Vec<Attribute> = packet
                    .attributes
                    .into_iter()
                    .filter(|a| {
                        a.typ != AttrType::MESSAGE_AUTHENTICATOR && a.typ != AttrType::PROXY_STATE
                    })
                    .collect();
                return Ok((packet.code, attrs));
            }
        }
        Err("no valid reply (timeout)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radmfa_radius::{encode_reply, unhide_password};

    const UP_SECRET: &[u8] = b"upstream-secret";

    fn nas_request() -> Packet {
        Packet {
            code: Code::ACCESS_REQUEST,
            identifier: 9,
            authenticator: [7; 16],
            attributes: vec![
                Attribute::string(AttrType::USER_NAME, "alice"),
                Attribute::new(AttrType::USER_PASSWORD, vec![0; 16]),
                Attribute::string(AttrType::CALLING_STATION_ID, "192.0.2.7"),
                Attribute::new(AttrType::PROXY_STATE, b"nas-ps".to_vec()),
                Attribute::new(AttrType::STATE, b"ours".to_vec()),
            ],
        }
    }

    /// A fake upstream answering once with `code` (optionally with a bad secret).
    async fn fake(
        code: Code,
        secret: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<Packet>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (n, from) = s.recv_from(&mut buf).await.unwrap();
            let req = Packet::decode(&buf[..n]).unwrap();
            let mut attrs = vec![Attribute::string(AttrType::FILTER_ID, "from-upstream")];
            attrs.extend(req.attrs(AttrType::PROXY_STATE).cloned());
            let reply =
                encode_reply(code, req.identifier, &req.authenticator, &attrs, secret).unwrap();
            s.send_to(&reply, from).await.unwrap();
            req
        });
        (addr, h)
    }

    fn upstream(servers: Vec<SocketAddr>) -> Upstream {
        Upstream::new(
            UpstreamConfig {
                name: "nps".into(),
                servers,
                secret: SharedSecret::new(UP_SECRET.to_vec()),
                timeout: Duration::from_millis(300),
                retries: 1,
                require_message_authenticator: true,
            },
            Arc::new(radmfa_otp::SystemClock),
        )
    }

    #[tokio::test]
    async fn forwards_with_its_own_secret_and_returns_the_accept_attributes() {
        let (addr, h) = fake(Code::ACCESS_ACCEPT, UP_SECRET).await;
        let up = upstream(vec![addr]);
        let answer = up
            .forward(&nas_request(), Some(b"pw-123"), Some(b"up-state"), None)
            .await
            .unwrap();
        assert_eq!(
            answer,
            UpstreamAnswer::Accept(vec![Attribute::string(
                AttrType::FILTER_ID,
                "from-upstream"
            )])
        );
        let seen = h.await.unwrap();
        let pw = seen.attr(AttrType::USER_PASSWORD).unwrap();
        assert_eq!(
            unhide_password(&pw.value, UP_SECRET, &seen.authenticator).unwrap(),
            b"pw-123"
        );
        assert_eq!(seen.attr(AttrType::STATE).unwrap().value, b"up-state");
        assert_eq!(
            seen.attrs(AttrType::STATE).count(),
            1,
            "our State is not sent upstream"
        );
        assert_eq!(seen.attr(AttrType::PROXY_STATE).unwrap().value, b"nas-ps");
        assert_eq!(
            seen.attributes.first().unwrap().typ,
            AttrType::MESSAGE_AUTHENTICATOR
        );
        assert_eq!(seen.attributes.get(2).unwrap().typ, AttrType::USER_PASSWORD);
    }

    #[tokio::test]
    async fn a_reply_signed_with_another_secret_is_ignored_and_the_next_server_used() {
        let (bad, _h1) = fake(Code::ACCESS_ACCEPT, b"wrong-secret").await;
        let (good, _h2) = fake(Code::ACCESS_REJECT, UP_SECRET).await;
        let up = upstream(vec![bad, good]);
        let answer = up
            .forward(&nas_request(), Some(b"pw"), None, None)
            .await
            .unwrap();
        assert!(matches!(answer, UpstreamAnswer::Reject(_)), "{answer:?}");
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_wrong_upstream_secret_is_logged_at_warn_once_a_minute_with_the_remedy() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // The test runtime is single-threaded: the default stays in place.
        let _default = tracing::subscriber::set_default(subscriber);
        // Two servers answering with another secret: two discards, one line.
        let (bad1, _h1) = fake(Code::ACCESS_ACCEPT, b"wrong-secret").await;
        let (bad2, _h2) = fake(Code::ACCESS_ACCEPT, b"wrong-secret").await;
        let mut up = upstream(vec![bad1, bad2]);
        up.cfg.retries = 0;
        assert!(up
            .forward(&nas_request(), Some(b"pw"), None, None)
            .await
            .is_err());
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("reply discarded"))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains("WARN"), "{log}");
        assert!(lines[0].contains("upstream=nps"), "{log}");
        assert!(lines[0].contains("shared secret differs"), "{log}");
        assert!(!log.contains("wrong-secret") && !log.contains("upstream-secret"));
    }

    #[tokio::test]
    async fn a_silent_upstream_is_logged_at_warn_once_a_minute_with_the_remedy() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut up = upstream(vec![silent.local_addr().unwrap()]);
        up.cfg.retries = 0;
        for _ in 0..3 {
            assert!(up
                .forward(&nas_request(), Some(b"pw"), None, None)
                .await
                .is_err());
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("did not answer"))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert!(lines[0].contains("WARN") && lines[0].contains("upstream=nps"));
        assert!(lines[0].contains("same shared secret"), "{log}");
    }

    #[test]
    fn discard_lines_are_one_per_interval_with_the_count_in_between() {
        let log = DiscardLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit(t0), Some(0));
        assert_eq!(log.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(59)), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(log.admit(t0 + Duration::from_secs(61)), None);
    }

    #[tokio::test]
    async fn nobody_answering_is_an_error() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let up = upstream(vec![silent.local_addr().unwrap()]);
        let started = std::time::Instant::now();
        let err = up
            .forward(&nas_request(), Some(b"pw"), None, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nps"), "{err}");
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "two sends of 300 ms"
        );
    }
}
