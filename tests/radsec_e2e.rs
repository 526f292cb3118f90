//! RADIUS over TLS end to end with a real RadSec client: FreeRADIUS'
//! radclient sends UDP to Debian's radsecproxy, which forwards over TLS to
//! radmfa's `[radsec]` listener. Certificates are generated per test with
//! rcgen and written as PEM files for both sides.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{expect, login, radclient_opts, totp_now, wrong_code, ConfigOptions, Env, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// Common name (and DNS name) of the certificate the mapped client uses.
const PROXY_NAME: &str = "proxy.radsec.test";
/// How long radsecproxy gets to come up and reach radmfa.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A CA that issues PEM files into a directory.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// Writes DIR/NAME.pem with the CA certificate.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.cert.pem()).expect("write CA");
        path
    }

    /// Issues a certificate for TLS client and server use with common name
    /// `cn` and subjectAltNames `sans` (DNS names or IP addresses); writes
    /// DIR/NAME.pem and DIR/NAME.key.
    fn issue(&self, dir: &Path, name: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// A radmfa node with a `[radsec]` listener on a free loopback port that
/// maps certificates named [`PROXY_NAME`] to the client "proxy".
struct Node {
    env: Env,
    server: Server,
    radsec_port: u16,
    ca: Ca,
    ca_path: PathBuf,
}

impl Node {
    fn start() -> Node {
        let ca = Ca::new("radsec e2e CA");
        let env = Env::with_options(ConfigOptions::default());
        let dir = env.path().to_path_buf();
        let ca_path = ca.write(&dir, "ca");
        // radsecproxy checks the server certificate against the address it
        // connects to (127.0.0.1).
        let (cert, key) = ca.issue(
            &dir,
            "radmfa",
            "radmfa.radsec.test",
            &["localhost", "127.0.0.1"],
        );
        let extra = format!(
            "[radsec]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n\
             ca = \"{}\"\nidle_timeout_secs = 120\n\n[[radsec.client]]\nname = \"proxy\"\n\
             cert_cn = \"{PROXY_NAME}\"\ncert_san_dns = \"{PROXY_NAME}\"\n",
            p(&cert),
            p(&key),
            p(&ca_path),
        );
        let mut text = std::fs::read_to_string(env.config_path()).expect("read config");
        text.push('\n');
        text.push_str(&extra);
        std::fs::write(env.config_path(), text).expect("write config");
        env.radmfa(&["check-config"]).assert_ok();
        let server = env.start();
        // The ready file is written once the RadSec listener is bound.
        let radsec_port = server
            .ready
            .radsec
            .unwrap_or_else(|| {
                panic!(
                    "no radsec address in the ready file; log:\n{}",
                    server.log()
                )
            })
            .port();
        Node {
            env,
            server,
            radsec_port,
            ca,
            ca_path,
        }
    }

    /// Polls a counter until it reaches at least `min`; returns its value.
    #[track_caller]
    fn wait_counter_at_least(&self, name: &str, min: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let got = self.env.counter(name);
            if got >= min {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "counter {name} stayed at {got} (< {min}); stats: {}\nlog:\n{}",
                self.env.stats(),
                self.server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// radsecproxy in the foreground with its own config, pid file and log in a
/// temporary directory: a UDP listener for radclient and one TLS server
/// block pointing at radmfa's RadSec port.
struct RadsecProxy {
    child: Child,
    dir: tempfile::TempDir,
    udp_port: u16,
}

impl RadsecProxy {
    /// Starts radsecproxy presenting `cert`/`key` and trusting `ca` for
    /// radmfa's server certificate; with `status_server` it probes radmfa
    /// with Status-Server (`StatusServer auto`: once the connection is up).
    fn start(
        radsec_port: u16,
        ca: &Path,
        cert: &Path,
        key: &Path,
        status_server: bool,
    ) -> RadsecProxy {
        let dir = tempfile::Builder::new()
            .prefix("radsecproxy-e2e-")
            .tempdir()
            .expect("temp dir");
        let udp_port = common::free_udp_port();
        let conf = dir.path().join("radsecproxy.conf");
        let pid = dir.path().join("radsecproxy.pid");
        let text = format!(
            "ListenUDP 127.0.0.1:{udp_port}\n\
             PidFile {pid}\n\
             LogLevel 5\n\
             tls radmfa {{\n\
             \tCACertificateFile {ca}\n\
             \tCertificateFile {cert}\n\
             \tCertificateKeyFile {key}\n\
             }}\n\
             client 127.0.0.1 {{\n\
             \ttype udp\n\
             \tsecret {secret}\n\
             }}\n\
             server 127.0.0.1 {{\n\
             \ttype tls\n\
             \tport {radsec_port}\n\
             \ttls radmfa\n\
             \tStatusServer {status}\n\
             }}\n\
             realm * {{\n\
             \tserver 127.0.0.1\n\
             \taccountingServer 127.0.0.1\n\
             }}\n",
            pid = p(&pid),
            ca = p(ca),
            cert = p(cert),
            key = p(key),
            secret = common::SECRET,
            status = if status_server { "auto" } else { "off" },
        );
        std::fs::write(&conf, text).expect("write radsecproxy.conf");
        let log = std::fs::File::create(dir.path().join("radsecproxy.log")).expect("log file");
        let child = Command::new("radsecproxy")
            .args(["-f", "-d", "5", "-c", p(&conf), "-i", p(&pid)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run radsecproxy ({e}); install it (Debian: apt-get install radsecproxy)")
            });
        let proxy = RadsecProxy {
            child,
            dir,
            udp_port,
        };
        // Ready once its UDP port is taken.
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::UdpSocket::bind(("127.0.0.1", udp_port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "radsecproxy did not listen on UDP {udp_port}; log:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        proxy
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.udp_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radsecproxy.log")).unwrap_or_default()
    }
}

impl Drop for RadsecProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn totp_login_accounting_and_status_server_through_radsecproxy() {
    if !common::require_tool("radsecproxy", "apt-get install radsecproxy") {
        return;
    }
    let node = Node::start();
    let secret = node.env.add_totp_user("alice", common::TOTP_SECRETS[0]);
    let dir = node.env.path().to_path_buf();
    let (cert, key) = node.ca.issue(&dir, "proxy", PROXY_NAME, &[PROXY_NAME]);
    let proxy = RadsecProxy::start(node.radsec_port, &node.ca_path, &cert, &key, true);
    let addr = proxy.addr();
    let diag = |r: &common::RadReply| {
        format!(
            "{}\nradsecproxy:\n{}\nradmfa:\n{}",
            r.output,
            proxy.log(),
            node.server.log()
        )
    };

    // Password and TOTP code inline: Accept, over TLS.
    let code = totp_now(&secret);
    let r = login(&addr, "alice", &format!("{}{code}", common::PASSWORD), None);
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", diag(&r));
    assert!(node.env.counter("radsec_connections") >= 1);

    // A wrong code: Reject with a reason the user can read.
    let bad = wrong_code(&secret);
    let r = login(&addr, "alice", &format!("{}{bad}", common::PASSWORD), None);
    expect(&r, "Access-Reject");
    assert!(r.text("Reply-Message").is_some(), "{}", diag(&r));

    // Both went through the RadSec client "proxy", not the UDP client.
    let records = node.env.wait_report_len(&["--user", "alice"], 2);
    for rec in &records {
        assert_eq!(rec["client_name"], "proxy", "{rec}");
    }

    // Accounting goes through the same pipeline, and radsecproxy passes the
    // Accounting-Response back (it carries no Message-Authenticator, which
    // radsecproxy would check differently from FreeRADIUS and pyrad).
    let r = radclient_opts(
        &addr,
        "acct",
        common::SECRET,
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"e2e-1\"\n",
        3,
    );
    expect(&r, "Accounting-Response");
    node.wait_counter_at_least("accounting_responses", 1, Duration::from_secs(5));

    // radsecproxy (StatusServer auto) probes radmfa with Status-Server on
    // the same connection; radmfa answers and radsecproxy accepts the answer.
    node.wait_counter_at_least("status_server_replies", 1, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains("got status server response") {
        assert!(
            Instant::now() < deadline,
            "radsecproxy did not accept the Status-Server reply:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(node.env.counter("radsec_rejected_certs"), 0);
    assert_eq!(node.env.counter("radsec_framing_errors"), 0);
    assert_eq!(node.env.counter("dropped_unknown_client"), 0);

    // SIGTERM with radsecproxy still connected: the connection is closed
    // gracefully and the server exits cleanly.
    let (status, log) = node.server.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("RadSec connection closed") && l.contains("server shutdown")),
        "{log}"
    );
}

/// A refused client gets no answer; radmfa counts and logs the refusal.
fn assert_refused(node: &Node, proxy: &RadsecProxy, log_says: &str) {
    let r = radclient_opts(
        &proxy.addr(),
        "auth",
        common::SECRET,
        &common::auth_input("alice", "correct-horse123456"),
        2,
    );
    assert_eq!(r.code, None, "{}", r.output);
    node.wait_counter_at_least("radsec_rejected_certs", 1, Duration::from_secs(20));
    let stats = node.env.stats();
    assert_eq!(stats["radsec_connections"], 0, "{stats}");
    assert_eq!(stats["requests_received"], 0, "{stats}");
    let log = node.server.log();
    let line = log
        .lines()
        .find(|l| l.contains(log_says))
        .unwrap_or_else(|| panic!("no {log_says:?} in the log:\n{log}"));
    assert!(line.contains("CN="), "the subject is logged: {line}");
    assert!(!line.contains("PRIVATE"), "{line}");
}

#[test]
fn certificate_from_another_ca_is_refused() {
    if !common::require_tool("radsecproxy", "apt-get install radsecproxy") {
        return;
    }
    let node = Node::start();
    let dir = node.env.path().to_path_buf();
    let other = Ca::new("some other CA");
    let (cert, key) = other.issue(&dir, "foreign", PROXY_NAME, &[PROXY_NAME]);
    let proxy = RadsecProxy::start(node.radsec_port, &node.ca_path, &cert, &key, false);
    assert_refused(&node, &proxy, "not valid under radsec.ca");
}

#[test]
fn valid_but_unmapped_certificate_is_refused() {
    if !common::require_tool("radsecproxy", "apt-get install radsecproxy") {
        return;
    }
    let node = Node::start();
    let dir = node.env.path().to_path_buf();
    let (cert, key) = node.ca.issue(
        &dir,
        "stranger",
        "stranger.radsec.test",
        &["stranger.radsec.test"],
    );
    let proxy = RadsecProxy::start(node.radsec_port, &node.ca_path, &cert, &key, false);
    assert_refused(&node, &proxy, "no [[radsec.client]] matches");
    let log = node.server.log();
    assert!(log.contains("CN=stranger.radsec.test"), "{log}");
}

/// Sends raw RADIUS packets over TLS with Python's ssl module (a RadSec
/// client that sends exactly what the test says): an Access-Request without
/// Message-Authenticator, then one whose Message-Authenticator is computed
/// with another secret. Prints the number of reply bytes received.
const RAW_RADSEC_CLIENT: &str = r#"
import hashlib, hmac, os, socket, ssl, struct, sys
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.check_hostname = False
def packet(ident, ma_secret):
    attrs = bytes([1, 7]) + b"alice"
    if ma_secret is not None:
        attrs += bytes([80, 18]) + b"\0" * 16
    auth = os.urandom(16)
    head = struct.pack("!BBH", 1, ident, 20 + len(attrs))
    if ma_secret is not None:
        mac = hmac.new(ma_secret, head + auth + attrs, hashlib.md5).digest()
        attrs = attrs[:-16] + mac
    return head + auth + attrs
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(packet(1, None) + packet(2, b"not-radsec"))
        tls.settimeout(1.5)
        got = b""
        try:
            while True:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (socket.timeout, TimeoutError):
            pass
        print(len(got))
"#;

#[test]
fn radsec_drops_are_logged_with_the_radsec_remedy() {
    let node = Node::start();
    let dir = node.env.path().to_path_buf();
    let (cert, key) = node.ca.issue(&dir, "proxy", PROXY_NAME, &[PROXY_NAME]);
    let out = Command::new("python3")
        .args([
            "-c",
            RAW_RADSEC_CLIENT,
            &node.radsec_port.to_string(),
            p(&node.ca_path),
            p(&cert),
            p(&key),
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.server.log()
    );
    assert_eq!(stdout.trim(), "0", "dropped requests got a reply");
    node.wait_counter_at_least(
        "dropped_missing_message_authenticator",
        1,
        Duration::from_secs(5),
    );
    node.wait_counter_at_least(
        "dropped_bad_message_authenticator",
        1,
        Duration::from_secs(5),
    );
    let log = node.server.log();
    let warn = |needle: &str| {
        log.lines()
            .find(|l| l.contains(" WARN ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no WARN line with {needle:?}:\n{log}"))
            .to_owned()
    };
    let line = warn("RadSec client proxy (127.0.0.1): request dropped: no Message-Authenticator.");
    assert!(
        line.contains("set require_message_authenticator = false in its [[radsec.client]]"),
        "{line}"
    );
    let line =
        warn("RadSec client proxy (127.0.0.1): request dropped: wrong Message-Authenticator.");
    assert!(line.contains("RFC 6614"), "{line}");
    assert!(!log.contains("not-radsec"), "{log}");
}

/// Issue 15 finding 3 over RadSec: a challenge issued on a connection with
/// one certificate is answered only under that certificate, even when
/// another certificate maps to the same client entry, and not over UDP;
/// the refused answers leave the challenge to its own connection.
#[test]
fn challenge_is_bound_to_the_radsec_certificate() {
    let node = Node::start();
    let secret = node.env.add_totp_user("alice", common::TOTP_SECRETS[0]);
    let dir = node.env.path().to_path_buf();
    let (cert1, key1) = node.ca.issue(&dir, "proxy1", PROXY_NAME, &[PROXY_NAME]);
    let (cert2, key2) = node.ca.issue(&dir, "proxy2", PROXY_NAME, &[PROXY_NAME]);
    let one = RadsecProxy::start(node.radsec_port, &node.ca_path, &cert1, &key1, false);
    let two = RadsecProxy::start(node.radsec_port, &node.ca_path, &cert2, &key2, false);

    let r = login(&one.addr(), "alice", common::PASSWORD, None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let code = totp_now(&secret);

    // Same client entry ("proxy"), other certificate.
    let r = login(&two.addr(), "alice", &code, Some(&state));
    expect(&r, "Access-Reject");
    // The UDP client on 127.0.0.1.
    let r = login(&node.server.addr_string(), "alice", &code, Some(&state));
    expect(&r, "Access-Reject");
    let mut reasons: Vec<String> = node
        .env
        .wait_report_len(&["--user", "alice"], 3)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["bad_state", "bad_state", "code_requested"]);

    let r = login(&one.addr(), "alice", &code, Some(&state));
    expect(&r, "Access-Accept");
}
