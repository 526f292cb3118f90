//! The directory end to end: OpenLDAP `slapd` seeded with users, OUs and
//! nested groups (tests/ldap/), radmfa binding as the user for the first
//! factor, groups deciding MFA bypass and reply attributes (checked in
//! radclient's output), `radmfa import-ldap` and a scheduled [[sync]] item
//! (add, change, remove, dry run), and the enrollment mail received by a
//! local SMTP sink (aiosmtpd).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{expect, free_tcp_port, login, totp_now, ConfigOptions, Env, SECRET};

fn tests_dir() -> PathBuf {
    common::py_dir().parent().expect("tests dir").to_path_buf()
}

struct Slapd {
    dir: PathBuf,
    port: u16,
}

impl Slapd {
    fn start(dir: &Path) -> Slapd {
        let dir = dir.join("slapd");
        let port = free_tcp_port();
        let out = Command::new("bash")
            .arg(tests_dir().join("ldap/start-slapd.sh"))
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("bash start-slapd.sh");
        assert!(
            out.status.success(),
            "start-slapd.sh (apt-get install slapd ldap-utils): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Slapd { dir, port }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Applies an LDIF change as the directory admin.
    fn modify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                "cn=admin,dc=example,dc=org",
                "-w",
            ])
            .arg("admin-secret")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("write ldif");
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("slapd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpListener::bind(("127.0.0.1", self.port)).is_err() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpSink {
    fn start(dir: &Path) -> SmtpSink {
        let ready = dir.join("smtp.ready");
        let out = dir.join("mail");
        std::fs::create_dir_all(&out).expect("mail dir");
        let child = Command::new("python3")
            .arg(common::py_dir().join("smtp_sink.py"))
            .args(["--port", "0", "--ready-file"])
            .arg(&ready)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 smtp_sink.py (pip install aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "SMTP sink not ready");
            std::thread::sleep(Duration::from_millis(50));
        };
        SmtpSink { child, port, out }
    }

    /// Every message received, as text.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user_json(env: &Env, name: &str) -> serde_json::Value {
    env.radmfa(&["user", "show", name, "--json"]).json()
}

#[test]
fn ldap_bind_groups_import_sync_and_enrollment_mail() {
    if !(common::require(
        "slapd",
        common::tools::on_path("slapd").is_some() || Path::new("/usr/sbin/slapd").exists(),
        "apt-get install slapd",
    ) && common::require_tool("ldapadd", "apt-get install ldap-utils")
        && common::require_python_module("aiosmtpd", "pip install aiosmtpd==1.4.6"))
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let sink = SmtpSink::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let extra = format!(
        r#"[directory]
kind = "ldap"
servers = ["{url}"]
bind_dn = "cn=radmfa-svc,ou=people,dc=example,dc=org"
bind_password_file = {pw:?}
base_dn = "dc=example,dc=org"
timeout_ms = 2000

[[sync]]
name = "staff"
group = "vpn-users"
method = "totp"
language = "nl"
interval_secs = 60
send_enrollment_email = true

[mail]
host = "127.0.0.1"
port = {smtp}
security = "none"
from = "radmfa <mfa@example.org>"
portal_url = "https://mfa.example.org/portal"

[[policy]]
name = "corp"
first_factor = "ldap"
otp_mode = "challenge"
mfa_bypass_groups = ["mfa-bypass"]

[[group_attributes]]
group = "vpn-users"
attributes = ["Filter-Id=vpn-acl", "Class=0x7670"]

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "corp"
"#,
        url = slapd.url(),
        pw = pw_file.display().to_string(),
        smtp = sink.port,
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    env.radmfa(&["check-config"]).assert_ok();

    // A dry run shows the import and changes nothing.
    let dry = env.radmfa(&["import-ldap", "--group", "vpn-users", "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("+ alice") && dry.stdout.contains("+ carol"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("would be"), "{}", dry.stdout);
    assert_ne!(env.radmfa(&["user", "show", "alice"]).code(), 0);

    // The scheduled sync item runs shortly after start-up: nested members
    // of vpn-users (carol through engineers) are added, and mailed.
    let server = env.start();
    let addr = server.addr_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.radmfa(&["user", "show", "carol"]).code() != 0 {
        assert!(
            Instant::now() < deadline,
            "sync did not run: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let alice = user_json(&env, "alice");
    assert_eq!(alice["phone"], "+15550107001");
    assert_eq!(alice["email"], "alice@example.org");
    assert_eq!(alice["method"], "totp");
    assert_ne!(
        env.radmfa(&["user", "show", "erin"]).code(),
        0,
        "erin is not in vpn-users"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.messages().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no enrollment mail: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mails = sink.messages();
    let to_alice = mails
        .iter()
        .find(|m| m.contains("alice@example.org"))
        .expect("a mail to alice");
    assert!(
        to_alice.contains("https://mfa.example.org/portal"),
        "{to_alice}"
    );
    assert!(to_alice.contains("Alice Archer"), "{to_alice}");

    // First factor against the directory, then the TOTP challenge; the
    // Accept carries the attributes of the (directory) group.
    let secret = common::decode_secret(common::TOTP_SECRETS[1]);
    env.enroll("alice", common::TOTP_SECRETS[1]).assert_ok();
    let r = login(&addr, "alice", "alice-pw", None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "alice", &totp_now(&secret), Some(&state));
    expect(&r, "Access-Accept");
    assert_eq!(
        r.text("Filter-Id").as_deref(),
        Some("vpn-acl"),
        "{}",
        r.output
    );
    assert!(r.output.contains("Class = 0x7670"), "{}", r.output);

    // Wrong password, locked account, MFA bypass group, not enrolled.
    let r = login(&addr, "alice", "nope", None);
    expect(&r, "Access-Reject");
    let r = login(&addr, "dave", "dave-pw", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("locked"),
        "{}",
        r.output
    );
    let r = login(&addr, "bob", "bob-pw", None);
    expect(&r, "Access-Accept");
    let r = login(&addr, "erin", "erin-pw", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("not set up"),
        "{}",
        r.output
    );
    let reasons: Vec<String> = ["alice", "dave", "bob", "erin"]
        .iter()
        .flat_map(|u| env.report(&["--user", u]))
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in [
        "wrong_password",
        "account_locked",
        "mfa_not_required_for_group",
        "not_enrolled",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }

    // The directory changes: alice's phone; engineers (carol's group) is no
    // longer nested in vpn-users.
    slapd.modify(
        "dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mobile\nmobile: +15550109999\n\n\
         dn: cn=vpn-users,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: cn=engineers,ou=groups,dc=example,dc=org\n",
    );
    let run = env.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(run.stdout.contains("~ alice: phone"), "{}", run.stdout);
    assert!(run.stdout.contains("- carol (disabled)"), "{}", run.stdout);
    assert_eq!(user_json(&env, "alice")["phone"], "+15550109999");
    assert_eq!(user_json(&env, "carol")["enabled"], false);
    // Her token survives (nothing is deleted); alice's token too.
    assert!(user_json(&env, "alice")["token"].is_object());

    // The directory goes away: a clear Reject.
    slapd.stop();
    let r = login(&addr, "alice", "alice-pw", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("cannot be checked"),
        "{}",
        r.output
    );
    let log = server.log();
    assert!(
        !log.contains("alice-pw") && !log.contains("svc-secret"),
        "{log}"
    );
}
