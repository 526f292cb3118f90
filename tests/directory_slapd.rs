//! radmfa-directory against a real OpenLDAP server (tests/ldap/start-slapd.sh, seeded
//! with tests/ldap/seed.ldif). Needs slapd and ldap-utils installed.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use radmfa_directory::{
    AuthFailure, DirUser, Directory, DirectoryConfig, DirectoryError, DirectoryKind, Secret,
    TlsMode,
};

#[path = "common/tools.rs"]
mod tools;

/// slapd and ldap-utils are there, or the test skips (fails under CI=true).
fn have_slapd() -> bool {
    let slapd = tools::on_path("slapd").is_some() || Path::new("/usr/sbin/slapd").exists();
    tools::require("slapd", slapd, "apt-get install slapd")
        && tools::require_tool("ldapadd", "apt-get install ldap-utils")
}

const BASE: &str = "dc=example,dc=org";
const SVC: &str = "cn=radmfa-svc,ou=people,dc=example,dc=org";

/// A running slapd; killed on drop.
struct Slapd {
    dir: tempfile::TempDir,
    url: String,
    ldaps_url: String,
    port: u16,
}

impl Slapd {
    fn start() -> Slapd {
        Slapd::start_on(None)
    }

    /// Starts on `port`, or on a free port when `None`.
    fn start_on(port: Option<u16>) -> Slapd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap/start-slapd.sh");
        let mut last = String::new();
        // A port picked by binding :0 may be taken by someone else before slapd binds it.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = port.unwrap_or_else(free_port);
            let ldaps_port = free_port();
            let out = Command::new("bash")
                .arg(&script)
                .arg(dir.path())
                .arg(port.to_string())
                .arg(ldaps_port.to_string())
                .output()
                .expect("bash tests/ldap/start-slapd.sh");
            if out.status.success() {
                return Slapd {
                    dir,
                    url: format!("ldap://127.0.0.1:{port}"),
                    ldaps_url: format!("ldaps://127.0.0.1:{ldaps_port}"),
                    port,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            stop(&dir.path().join("slapd.pid"));
        }
        panic!("slapd did not start (apt-get install slapd ldap-utils):\n{last}");
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        stop(&self.dir.path().join("slapd.pid"));
    }
}

fn stop(pid_file: &Path) {
    if let Ok(pid) = std::fs::read_to_string(pid_file) {
        let pid = pid.trim();
        let _ = Command::new("kill").arg(pid).stderr(Stdio::null()).status();
        // Wait (briefly) for it to go so its port and files are released.
        for _ in 0..50 {
            let alive = Command::new("kill")
                .args(["-0", pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A port where nothing listens.
fn dead_url() -> String {
    format!("ldap://127.0.0.1:{}", free_port())
}

fn config(servers: Vec<String>) -> DirectoryConfig {
    let mut cfg = DirectoryConfig::new(
        DirectoryKind::Ldap,
        servers,
        BASE,
        SVC,
        Secret::new("svc-secret".into()),
    );
    cfg.timeout = Duration::from_secs(3);
    cfg
}

fn directory(servers: Vec<String>) -> Directory {
    Directory::new(config(servers)).expect("directory")
}

fn reason(r: Result<DirUser, AuthFailure>) -> &'static str {
    match r {
        Ok(u) => panic!("unexpected success for {}", u.login),
        Err(f) => f.reason(),
    }
}

fn logins(users: &[DirUser]) -> Vec<&str> {
    let mut v: Vec<&str> = users.iter().map(|u| u.login.as_str()).collect();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn authenticate_ok_with_attributes_and_groups() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    let d = directory(vec![s.url.clone()]);

    let alice = d.authenticate("alice", b"alice-pw").await.expect("alice");
    assert_eq!(
        alice,
        DirUser {
            dn: "uid=alice,ou=people,dc=example,dc=org".into(),
            login: "alice".into(),
            display_name: "Alice Archer".into(),
            email: "alice@example.org".into(),
            phone: "+15550107001".into(),
            groups: vec!["vpn-users".into()],
            enabled: true,
        }
    );
    // carol is in engineers, which is itself in vpn-users.
    let carol = d.authenticate("carol", b"carol-pw").await.expect("carol");
    assert_eq!(carol.groups, vec!["engineers", "vpn-users"]);
    // bob has no mobile: telephoneNumber is the fallback.
    let bob = d.authenticate("bob", b"bob-pw").await.expect("bob");
    assert_eq!(bob.phone, "+15550107002");
    assert_eq!(bob.groups, vec!["mfa-bypass"]);
    let erin = d.authenticate("erin", b"erin-pw").await.expect("erin");
    assert!(erin.groups.is_empty());
    // UPN-style login: the local part is found when the whole name is not a uid.
    let upn = d
        .authenticate("alice@example.org", b"alice-pw")
        .await
        .expect("upn");
    assert_eq!(upn.login, "alice");
    // Depth 1: only direct groups.
    let mut cfg = config(vec![s.url.clone()]);
    cfg.max_group_depth = 1;
    let shallow = Directory::new(cfg).expect("dir");
    assert_eq!(
        shallow
            .authenticate("carol", b"carol-pw")
            .await
            .expect("carol")
            .groups,
        vec!["engineers"]
    );
}

#[tokio::test]
async fn authentication_failures_have_distinct_reasons() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    let d = directory(vec![s.url.clone()]);
    assert_eq!(
        reason(d.authenticate("alice", b"wrong").await),
        "wrong_password"
    );
    assert_eq!(
        reason(d.authenticate("mallory", b"x").await),
        "unknown_user"
    );
    // An empty password would be an unauthenticated bind that "succeeds": never sent.
    assert_eq!(reason(d.authenticate("alice", b"").await), "wrong_password");
    // Filter injection stays a literal name.
    assert_eq!(
        reason(d.authenticate("*", b"alice-pw").await),
        "unknown_user"
    );
    assert_eq!(
        reason(d.authenticate("al*", b"alice-pw").await),
        "unknown_user"
    );
    assert_eq!(
        reason(d.authenticate("alice)(uid=*", b"alice-pw").await),
        "unknown_user"
    );
    // dave carries a ppolicy permanent lock.
    assert_eq!(
        reason(d.authenticate("dave", b"dave-pw").await),
        "account_locked"
    );
    assert_eq!(
        reason(d.authenticate("dave", b"wrong").await),
        "account_locked"
    );
    // The same account through disabled_filter.
    let mut cfg = config(vec![s.url.clone()]);
    cfg.disabled_filter = Some("(pwdAccountLockedTime=*)".into());
    let d2 = Directory::new(cfg).expect("dir");
    assert_eq!(
        reason(d2.authenticate("dave", b"dave-pw").await),
        "account_disabled"
    );
    assert!(d2.authenticate("alice", b"alice-pw").await.is_ok());
    // A wrong service password is a directory error, not the user's fault.
    let mut cfg = config(vec![s.url.clone()]);
    cfg.bind_password = Secret::new("nope".into());
    let bad = Directory::new(cfg).expect("dir");
    let f = bad
        .authenticate("alice", b"alice-pw")
        .await
        .expect_err("service bind");
    assert_eq!(f.reason(), "directory_error");
    assert!(
        !f.to_string().contains("nope"),
        "no password in messages: {f}"
    );
    assert!(matches!(
        bad.lookup("alice").await,
        Err(DirectoryError::ServiceBind(_))
    ));
}

#[tokio::test]
async fn lookup_without_password() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    let d = directory(vec![s.url.clone()]);
    let carol = d.lookup("carol").await.expect("lookup").expect("carol");
    assert_eq!(carol.groups, vec!["engineers", "vpn-users"]);
    assert!(carol.enabled);
    let dave = d.lookup("dave").await.expect("lookup").expect("dave");
    assert!(!dave.enabled);
    assert_eq!(dave.email, "dave@example.org");
    assert!(d.lookup("nobody").await.expect("lookup").is_none());
    assert!(d.lookup("").await.expect("lookup").is_none());
}

#[tokio::test]
async fn failover_and_unreachable() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    // First server down: the second answers.
    let d = directory(vec![dead_url(), s.url.clone()]);
    assert_eq!(
        d.authenticate("alice", b"alice-pw")
            .await
            .expect("failover")
            .login,
        "alice"
    );
    assert_eq!(
        reason(d.authenticate("alice", b"bad").await),
        "wrong_password"
    );
    assert!(d.lookup("carol").await.expect("lookup").is_some());
    // Second server down: never needed.
    let d = directory(vec![s.url.clone(), dead_url()]);
    assert!(d.authenticate("erin", b"erin-pw").await.is_ok());

    // All down (refused): Unreachable at once.
    let d = directory(vec![dead_url(), dead_url()]);
    let t = Instant::now();
    assert_eq!(
        reason(d.authenticate("alice", b"alice-pw").await),
        "directory_unreachable"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(
        d.lookup("alice").await,
        Err(DirectoryError::Unreachable(_))
    ));
    assert!(matches!(
        d.search_users(None, None, None).await,
        Err(DirectoryError::Unreachable(_))
    ));

    // A server that accepts TCP but never answers: the timeout applies.
    let hole = TcpListener::bind("127.0.0.1:0").expect("listener");
    let hole_url = format!("ldap://{}", hole.local_addr().expect("addr"));
    let mut cfg = config(vec![hole_url.clone()]);
    cfg.timeout = Duration::from_millis(300);
    let d = Directory::new(cfg).expect("dir");
    let t = Instant::now();
    assert_eq!(
        reason(d.authenticate("alice", b"alice-pw").await),
        "directory_unreachable"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // And a hung first server fails over to the live one.
    let mut cfg = config(vec![hole_url, s.url.clone()]);
    cfg.timeout = Duration::from_millis(300);
    let d = Directory::new(cfg).expect("dir");
    assert!(d.authenticate("alice", b"alice-pw").await.is_ok());
    // The failed server is now tried last: the next call does not even
    // connect to it (a state check: no new connection on the hole, instead
    // of a wall-clock limit that flakes on a busy machine).
    hole.set_nonblocking(true).expect("nonblocking");
    let drain = || {
        let mut n = 0;
        while hole.accept().is_ok() {
            n += 1;
        }
        n
    };
    assert!(drain() >= 1, "the first call never tried the hung server");
    assert!(d.authenticate("bob", b"bob-pw").await.is_ok());
    assert_eq!(drain(), 0, "the hung server was tried again first");
}

#[tokio::test]
async fn pooled_connections_survive_a_server_restart() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    let port = s.port;
    let mut cfg = config(vec![s.url.clone()]);
    cfg.pool_size = 2;
    let d = Directory::new(cfg).expect("dir");
    assert!(d.lookup("alice").await.expect("lookup").is_some());
    // Concurrent authentications share (and refill) the pool.
    let mut tasks = Vec::new();
    for (u, p) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("erin", "erin-pw"),
    ] {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            d.authenticate(u, p.as_bytes()).await.map(|u| u.login)
        }));
    }
    for (t, want) in tasks.into_iter().zip(["alice", "bob", "carol", "erin"]) {
        assert_eq!(t.await.expect("join").expect("auth"), want);
    }
    drop(s);
    // The pooled connections are dead now: unreachable, quickly, no hang.
    let t = Instant::now();
    assert!(matches!(
        d.lookup("alice").await,
        Err(DirectoryError::Unreachable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(4));
    // The server comes back on the same address: the next call reconnects.
    let _s2 = Slapd::start_on(Some(port));
    assert_eq!(
        d.lookup("carol")
            .await
            .expect("lookup")
            .expect("carol")
            .groups,
        vec!["engineers", "vpn-users"]
    );
    assert!(d.authenticate("alice", b"alice-pw").await.is_ok());
}

#[tokio::test]
async fn search_users_by_filter_and_group() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    // A page size of 2 forces several RFC 2696 pages for the 5 users.
    let d = directory(vec![s.url.clone()]).with_page_size(2);

    let all = d.search_users(None, None, None).await.expect("all");
    assert_eq!(logins(&all), vec!["alice", "bob", "carol", "dave", "erin"]);
    let carol = all.iter().find(|u| u.login == "carol").expect("carol");
    assert_eq!(carol.groups, vec!["engineers", "vpn-users"]);
    assert!(
        !all.iter()
            .find(|u| u.login == "dave")
            .expect("dave")
            .enabled
    );
    assert!(all.iter().filter(|u| u.login != "dave").all(|u| u.enabled));

    let with_mobile = d
        .search_users(None, Some("(mobile=*)"), None)
        .await
        .expect("filter");
    assert_eq!(logins(&with_mobile), vec!["alice", "carol", "dave"]);
    let bare = d
        .search_users(Some("ou=people,dc=example,dc=org"), Some("uid=erin"), None)
        .await
        .expect("bare");
    assert_eq!(logins(&bare), vec!["erin"]);

    // Nested members: carol through engineers.
    let vpn = d
        .search_users(None, None, Some("vpn-users"))
        .await
        .expect("group");
    assert_eq!(logins(&vpn), vec!["alice", "carol"]);
    let vpn_dn = d
        .search_users(None, None, Some("cn=vpn-users,ou=groups,dc=example,dc=org"))
        .await
        .expect("group dn");
    assert_eq!(logins(&vpn_dn), vec!["alice", "carol"]);
    let bypass = d
        .search_users(None, Some("(mail=*)"), Some("mfa-bypass"))
        .await
        .expect("bypass");
    assert_eq!(logins(&bypass), vec!["bob"]);

    assert!(matches!(
        d.search_users(None, None, Some("no-such-group")).await,
        Err(DirectoryError::Config(_))
    ));
    assert!(matches!(
        d.search_users(None, Some("(((bad"), None).await,
        Err(DirectoryError::Config(_))
    ));
    assert!(matches!(
        d.search_users(Some("ou=nowhere,dc=example,dc=org"), None, None)
            .await,
        Err(DirectoryError::Ldap(_))
    ));
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server() {
    if !have_slapd() {
        return;
    }
    let s = Slapd::start();
    let ca_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap/tls/ca.pem");
    let ca = std::fs::read_to_string(ca_path).expect("tests/ldap/tls/ca.pem");

    let mut cfg = config(vec![s.url.clone()]);
    cfg.tls = TlsMode::StartTls;
    cfg.ca_pem = Some(ca.clone());
    let d = Directory::new(cfg).expect("starttls");
    assert_eq!(
        d.authenticate("carol", b"carol-pw")
            .await
            .expect("starttls auth")
            .groups,
        vec!["engineers", "vpn-users"]
    );
    assert_eq!(
        reason(d.authenticate("carol", b"nope").await),
        "wrong_password"
    );

    let mut cfg = config(vec![s.ldaps_url.clone()]);
    cfg.ca_pem = Some(ca.clone());
    let d = Directory::new(cfg).expect("ldaps");
    assert!(d.authenticate("alice", b"alice-pw").await.is_ok());
    assert_eq!(
        logins(
            &d.search_users(None, None, Some("mfa-bypass"))
                .await
                .expect("search")
        ),
        vec!["bob"]
    );

    // TlsMode::Ldaps dials an ldap:// URL with TLS from the first byte.
    let mut cfg = config(vec![s.ldaps_url.replace("ldaps://", "ldap://")]);
    cfg.tls = TlsMode::Ldaps;
    cfg.ca_pem = Some(ca);
    let d = Directory::new(cfg).expect("ldaps mode");
    assert!(d.lookup("erin").await.expect("lookup").is_some());

    // Without the test CA the certificate is not trusted: no connection, no password sent.
    let d = directory(vec![s.ldaps_url.clone()]);
    assert_eq!(
        reason(d.authenticate("alice", b"alice-pw").await),
        "directory_unreachable"
    );
    let mut cfg = config(vec![s.url.clone()]);
    cfg.tls = TlsMode::StartTls;
    let d = Directory::new(cfg).expect("starttls untrusted");
    assert!(matches!(
        d.lookup("alice").await,
        Err(DirectoryError::Unreachable(_))
    ));
}

/// Adds `ldif` as the directory admin with ManageDsaIT (`-M`), so that a
/// referral object is stored as such.
fn ldapadd_manage(s: &Slapd, ldif: &str) {
    use std::io::Write;
    let mut child = Command::new("ldapadd")
        .args([
            "-x",
            "-M",
            "-H",
            &s.url,
            "-D",
            "cn=admin,dc=example,dc=org",
            "-w",
        ])
        .arg("admin-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ldapadd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ldif.as_bytes())
        .expect("write ldif");
    let out = child.wait_with_output().expect("ldapadd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A subtree search that meets a referral object gets a search result
/// reference (Active Directory sends them for its DNS and configuration
/// partitions when searched from the domain root). It is skipped, not
/// followed (a referral could send the service account's searches anywhere)
/// and not an error: the users below the base are still found.
#[tokio::test]
async fn search_result_references_are_skipped_not_followed() {
    let s = Slapd::start();
    // Nothing listens on the referred-to server: following it would fail.
    ldapadd_manage(
        &s,
        &format!(
            "dn: ou=elsewhere,{BASE}\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\nref: {}/ou=elsewhere,{BASE}\n",
            dead_url()
        ),
    );
    let d = directory(vec![s.url.clone()]).with_page_size(2);
    let alice = d.authenticate("alice", b"alice-pw").await.expect("alice");
    assert_eq!(alice.groups, vec!["vpn-users"]);
    assert_eq!(
        reason(d.authenticate("alice", b"wrong").await),
        "wrong_password"
    );
    assert!(d.lookup("nobody").await.expect("lookup").is_none());
    let all = d.search_users(None, None, None).await.expect("all");
    assert_eq!(logins(&all), vec!["alice", "bob", "carol", "dave", "erin"]);
}
