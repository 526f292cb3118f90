//! The directory end to end: OpenLDAP `slapd` seeded with users, OUs and
//! nested groups (tests/ldap/), radmfa binding as the user for the first
//! factor, groups deciding MFA bypass and reply attributes (checked in
//! radclient's output), `radmfa import-ldap` and a scheduled [[sync]] item
//! (add, change, remove, dry run), and the enrollment mail received by a
//! local SMTP sink (aiosmtpd).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::smtp::SmtpSink;
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

/// slapd and ldapadd are installed (else the test skips, or fails in CI).
fn slapd_present() -> bool {
    common::require(
        "slapd",
        common::tools::on_path("slapd").is_some() || Path::new("/usr/sbin/slapd").exists(),
        "apt-get install slapd",
    ) && common::require_tool("ldapadd", "apt-get install ldap-utils")
}

/// Waits until the scheduled sync that runs shortly after start-up has
/// added `user`.
fn wait_synced(env: &Env, server: &common::Server, user: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.radmfa(&["user", "show", user]).code() != 0 {
        assert!(
            Instant::now() < deadline,
            "sync did not run: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn user_json(env: &Env, name: &str) -> serde_json::Value {
    env.radmfa(&["user", "show", name, "--json"]).json()
}

#[test]
fn ldap_bind_groups_import_sync_and_enrollment_mail() {
    if !(slapd_present()
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
    wait_synced(&env, &server, "carol");
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

    // The directory goes away: a clear Reject, in alice's language (Dutch,
    // set by the sync item).
    slapd.stop();
    let r = login(&addr, "alice", "alice-pw", None);
    expect(&r, "Access-Reject");
    assert_eq!(
        r.text("Reply-Message").unwrap_or_default(),
        common::i18n::text("nl", "radius.password_unchecked", &[]),
        "{}",
        r.output
    );
    let log = server.log();
    assert!(
        !log.contains("alice-pw") && !log.contains("svc-secret"),
        "{log}"
    );
}

/// Adds a [portal] section (certificate made by `radmfa cluster`, the
/// directory policy signs users in) and the cluster key; returns its port.
fn add_portal(env: &Env) -> u16 {
    let port = free_tcp_port();
    let pki = env.path().join("pki");
    let pki_s = pki.to_str().expect("utf-8");
    env.radmfa(&["cluster", "ca", "--dir", pki_s]).assert_ok();
    env.radmfa(&["cluster", "cert", "--dir", pki_s, "--node-id", "3"])
        .assert_ok();
    let mut text = std::fs::read_to_string(env.config_path()).expect("config");
    text.push_str(&format!(
        "\n[portal]\nlisten = \"127.0.0.1:{port}\"\ncert = {:?}\nkey = {:?}\npolicy = \"corp\"\n",
        pki.join("node-3.pem").display().to_string(),
        pki.join("node-3.key").display().to_string(),
    ));
    std::fs::write(env.config_path(), text).expect("config");
    std::fs::create_dir_all(env.data_dir()).expect("data dir");
    let key = env.data_dir().join("cluster.key");
    std::fs::write(
        &key,
        "4b1d0c9e7a2f5b8c3d6e1f4a7b0c3d6e9f2a5b8c1d4e7f0a3b6c9d2e5f8a1b4c\n",
    )
    .expect("cluster key");
    // Key files must be owner-only.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod cluster key");
    port
}

/// The value of the first hidden `csrf` field of a portal page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("end of csrf value")].to_string()
}

/// `name=value` of the session cookie a response sets, if any.
fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .next()
}

/// Signs `user` in to the portal over plain HTTPS (first factor only: the
/// user has no second factor yet) and presses "This was not me".
async fn report_not_me(port: u16, user: &str, password: &str) {
    let base = format!("https://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .get(format!("{base}/signin"))
        .send()
        .await
        .expect("GET /signin");
    let mut cookie = session_cookie(&r).expect("session cookie");
    let csrf = csrf_of(&r.text().await.expect("body"));
    let r = http
        .post(format!("{base}/signin"))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("user", user), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("POST /signin");
    let status = r.status();
    let next = session_cookie(&r);
    assert!(
        status.is_redirection(),
        "sign-in: {status}: {}",
        r.text().await.unwrap_or_default()
    );
    cookie = next.expect("signed-in cookie");
    let r = http
        .get(format!("{base}/home"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("GET /home");
    assert!(r.status().is_success(), "home: {}", r.status());
    let csrf = csrf_of(&r.text().await.expect("body"));
    let r = http
        .post(format!("{base}/not-me"))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("t", "0")])
        .send()
        .await
        .expect("POST /not-me");
    assert!(r.status().is_success(), "not-me: {}", r.status());
}

fn sync_config(slapd: &Slapd, pw_file: &Path, fields: &str) -> String {
    format!(
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
interval_secs = 86400
{fields}

[[policy]]
name = "corp"
first_factor = "ldap"
otp_mode = "challenge"

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "corp"
"#,
        url = slapd.url(),
        pw = pw_file.display().to_string(),
    )
}

fn reasons(env: &Env, user: &str) -> Vec<String> {
    env.report(&["--user", user])
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Sync never undoes a local decision (issue 15): a user disabled by an
/// admin or after a fraud report stays disabled; a user who left the set is
/// disabled with that reason and enabled again when back; a phone and
/// groups set locally survive an empty or differing directory value, and
/// are overwritten only when the item says the directory wins. The reason
/// shows in `user show` and in the report of refused RADIUS sign-ins.
#[test]
fn sync_keeps_local_decisions_and_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra: sync_config(&slapd, &pw_file, ""),
        ..ConfigOptions::default()
    });
    let port = add_portal(&env);
    env.radmfa(&["check-config"]).assert_ok();
    let vpn = "dn: cn=vpn-users,ou=groups,dc=example,dc=org\nchangetype: modify\n";
    slapd.modify(&format!(
        "{vpn}add: member\nmember: uid=bob,ou=people,dc=example,dc=org\nmember: uid=erin,ou=people,dc=example,dc=org\n"
    ));

    // First import (no server: the CLI writes the store itself).
    let run = env.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("4 added, 0 updated, 0 disabled"),
        "{}",
        run.stdout
    );
    assert_eq!(user_json(&env, "bob")["phone"], "+15550107002");
    assert_eq!(
        user_json(&env, "bob")["disabled_reason"],
        serde_json::Value::Null
    );
    env.radmfa(&["user", "disable", "alice"]).assert_ok();
    assert_eq!(user_json(&env, "alice")["disabled_reason"], "admin");
    env.radmfa(&[
        "user",
        "set",
        "bob",
        "--phone",
        "+15550100001",
        "--group",
        "local-admins",
    ])
    .assert_ok();

    // erin (no phone, no token: she signs in on her password alone)
    // reports a sign-in as not hers in the portal.
    let server = env.start();
    let addr = server.addr_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "portal not up: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(report_not_me(port, "erin", "erin-pw"));
    let erin = user_json(&env, "erin");
    assert_eq!(erin["enabled"], false, "{erin}");
    assert_eq!(erin["disabled_reason"], "fraud", "{erin}");

    // The directory: carol leaves the set (engineers is no longer in
    // vpn-users); bob loses his phone number. His directory groups
    // (mfa-bypass, vpn-users) differ from the one set locally.
    slapd.modify(&format!(
        "{vpn}delete: member\nmember: cn=engineers,ou=groups,dc=example,dc=org\n\n\
         dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\ndelete: telephoneNumber\n"
    ));
    // Through the running server's control socket this time.
    let run = env.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(run.stdout.contains("- carol (disabled)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("bob: phone, groups set locally, kept"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("alice (stays disabled: admin)")
            && run.stdout.contains("erin (stays disabled: fraud)"),
        "{}",
        run.stdout
    );
    for (user, reason) in [
        ("alice", "admin"),
        ("erin", "fraud"),
        ("carol", "left_directory"),
    ] {
        let u = user_json(&env, user);
        assert_eq!(u["enabled"], false, "{u}");
        assert_eq!(u["disabled_reason"], reason, "{u}");
    }
    let bob = user_json(&env, "bob");
    assert_eq!(bob["phone"], "+15550100001", "{bob}");
    assert_eq!(bob["groups"], serde_json::json!(["local-admins"]), "{bob}");

    // Refused RADIUS sign-ins say why in the report.
    for (user, password, reason) in [
        ("alice", "alice-pw", "user_disabled"),
        ("erin", "erin-pw", "user_disabled_fraud"),
        ("carol", "carol-pw", "user_disabled_left_directory"),
    ] {
        let r = login(&addr, user, password, None);
        expect(&r, "Access-Reject");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = reasons(&env, user);
            if got.iter().any(|r| r == reason) {
                break;
            }
            assert!(Instant::now() < deadline, "{user}: {reason} not in {got:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // carol is back, bob's directory phone is a new number: carol is
    // enabled again, alice and erin stay disabled, bob keeps his own number.
    slapd.modify(&format!(
        "{vpn}add: member\nmember: cn=engineers,ou=groups,dc=example,dc=org\n\n\
         dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modify\nadd: telephoneNumber\ntelephoneNumber: +15550109002\n"
    ));
    let run = env.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(run.stdout.contains("~ carol: enabled"), "{}", run.stdout);
    let carol = user_json(&env, "carol");
    assert_eq!(carol["enabled"], true, "{carol}");
    assert_eq!(carol["disabled_reason"], serde_json::Value::Null, "{carol}");
    assert_eq!(user_json(&env, "alice")["disabled_reason"], "admin");
    assert_eq!(user_json(&env, "erin")["disabled_reason"], "fraud");
    assert_eq!(user_json(&env, "bob")["phone"], "+15550100001");
    let (_, log) = server.terminate();
    assert!(
        !log.contains("erin-pw") && !log.contains("svc-secret"),
        "{log}"
    );

    // The item says the directory wins for phone and groups.
    let mut text = std::fs::read_to_string(env.config_path()).expect("config");
    text = text.replace(
        "interval_secs = 86400\n",
        "interval_secs = 86400\nfields = { phone = \"directory_wins\", groups = \"directory_wins\" }\n",
    );
    std::fs::write(env.config_path(), text).expect("config");
    env.radmfa(&["check-config"]).assert_ok();
    let run = env.radmfa(&["import-ldap", "--item", "staff"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("~ bob: phone, groups"),
        "{}",
        run.stdout
    );
    let bob = user_json(&env, "bob");
    assert_eq!(bob["phone"], "+15550109002", "{bob}");
    assert_eq!(
        bob["groups"],
        serde_json::json!(["mfa-bypass", "vpn-users"]),
        "{bob}"
    );
    assert_eq!(user_json(&env, "alice")["enabled"], false);
}

/// Issue 15 finding 5 at the directory sync: an entry whose display name
/// holds CR/LF and an escape sequence is left alone (not written, not
/// disabled) and the import says so, escaped; the other entries are imported.
#[test]
fn import_leaves_entries_with_control_characters_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let env = Env::with_options(ConfigOptions {
        extra: format!(
            r#"[directory]
kind = "ldap"
servers = ["{url}"]
bind_dn = "cn=radmfa-svc,ou=people,dc=example,dc=org"
bind_password_file = {pw:?}
base_dn = "dc=example,dc=org"
timeout_ms = 2000
"#,
            url = slapd.url(),
            pw = pw_file.display().to_string(),
        ),
        ..ConfigOptions::default()
    });
    let forged = "Erin\r\n2026-12-07T10:00:00Z INFO sign-in user=admin\u{1b}[2J";
    slapd.modify(&format!(
        "dn: uid=erin,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: displayName\ndisplayName:: {}\n",
        data_encoding::BASE64.encode(forged.as_bytes())
    ));
    let out = env.radmfa(&["import-ldap", "--filter", "(|(uid=erin)(uid=bob))"]);
    out.assert_ok();
    assert!(out.stdout.contains("+ bob"), "{}", out.stdout);
    assert!(!out.stdout.contains("erin"), "{}", out.stdout);
    assert!(
        out.stderr.contains("left alone") && out.stderr.contains(r"Erin\r\n2026-12-07"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stdout.contains('\u{1b}'),
        "{out:?}"
    );
    assert_eq!(user_json(&env, "bob")["display_name"], "Bob Baker");
    assert_ne!(env.radmfa(&["user", "show", "erin"]).code(), 0);
}

/// Issue 15 (directory sync): with `first_factor = "ldap"`, every path to
/// an Accept (inline code, Access-Challenge, one-way SMS) applies the
/// user's live directory groups to `[[group_attributes]]`, not only the
/// groups stored in the local record (here: none).
#[test]
fn live_directory_groups_apply_on_every_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let sim = common::sim::Sim::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let key_file = dir.path().join("gateway.key");
    std::fs::write(&key_file, common::sim::API_KEY).expect("key file");
    let extra = format!(
        r#"[directory]
kind = "ldap"
servers = ["{url}"]
bind_dn = "cn=radmfa-svc,ou=people,dc=example,dc=org"
bind_password_file = {pw:?}
base_dn = "dc=example,dc=org"
timeout_ms = 2000

[gateway]
url = "https://{sim}"
api_key_file = {key:?}
ca_file = {ca:?}
timeout_ms = 2000
retries = 0

[[policy]]
name = "corp"
first_factor = "ldap"
otp_mode = "auto"

[[policy]]
name = "corp-inline"
first_factor = "ldap"
otp_mode = "inline"

[[group_attributes]]
group = "vpn-users"
attributes = ["Filter-Id=vpn-acl"]

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "corp"

[[client]]
name = "vpn-inline"
address = "127.0.0.2/32"
secret = "{SECRET}"
policy = "corp-inline"
"#,
        url = slapd.url(),
        pw = pw_file.display().to_string(),
        sim = sim.addr,
        key = key_file.display().to_string(),
        ca = sim.cert.display().to_string(),
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.3/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    // Local records without groups: only the directory says vpn-users
    // (carol through the nested engineers group).
    env.radmfa(&["user", "add", "alice"]).assert_ok();
    env.enroll("alice", common::TOTP_SECRETS[1]);
    env.radmfa(&[
        "user",
        "add",
        "carol",
        "--method",
        "sms",
        "--phone",
        "+15550107003",
    ])
    .assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    let secret = common::decode_secret(common::TOTP_SECRETS[1]);
    let has_acl = |r: &common::RadReply| {
        assert_eq!(
            r.text("Filter-Id").as_deref(),
            Some("vpn-acl"),
            "{}",
            r.output
        );
    };

    // Inline: password + code, through the inline client.
    common::clear_of_step_edge();
    let mut inline = common::PyRequest::access(&server).login(
        "alice",
        &format!("alice-pw{}", common::totp_step(&secret, -1)),
    );
    inline.bind = "127.0.0.2".to_owned();
    let reply = inline.send().reply();
    assert_eq!(common::code_name(&reply), "Access-Accept", "{reply:#}");
    assert_eq!(
        common::py_attr(&reply, 11)
            .and_then(|(_, text)| text)
            .as_deref(),
        Some("vpn-acl"),
        "{reply:#}"
    );

    // Access-Challenge, answered with the next code.
    let r = login(&addr, "alice", "alice-pw", None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "alice", &totp_now(&secret), Some(&state));
    expect(&r, "Access-Accept");
    has_acl(&r);

    // One-way SMS.
    let r = login(&addr, "carol", "carol-pw", None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let code = common::sim::code_in(sim.messages("+15550107003").last().expect("sms"));
    let r = login(&addr, "carol", &code, Some(&state));
    expect(&r, "Access-Accept");
    has_acl(&r);
}

/// `check-config --connect`: each directory server is bound with the service
/// account and a user looked up; a wrong password, a dead server and a user
/// that is not there each fail with their own reason.
#[test]
fn check_config_connect_binds_and_looks_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let dead = format!("ldap://127.0.0.1:{}", free_tcp_port());
    let extra = format!(
        r#"[directory]
kind = "ldap"
servers = ["{url}", "{dead}"]
bind_dn = "cn=radmfa-svc,ou=people,dc=example,dc=org"
bind_password_file = {pw:?}
base_dn = "dc=example,dc=org"
timeout_ms = 2000
"#,
        url = slapd.url(),
        pw = pw_file.display().to_string(),
    );
    let env = Env::with_options(ConfigOptions {
        extra,
        ..ConfigOptions::default()
    });
    let ok = format!("ok      directory {}", slapd.url());
    let failed = format!("FAILED  directory {}", slapd.url());
    let line = |out: &common::CmdOutput, prefix: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{}{}", out.stdout, out.stderr))
            .to_owned()
    };

    let out = env.radmfa(&["check-config", "--connect", "--user", "alice"]);
    out.assert_code(1);
    assert!(line(&out, &ok).contains("found alice"), "{}", out.stdout);
    line(&out, &format!("FAILED  directory {dead}"));

    let out = env.radmfa(&["check-config", "--connect", "--user", "nobody-here"]);
    assert!(line(&out, &failed).contains("no user"), "{}", out.stdout);

    let out = env.radmfa(&["check-config", "--connect"]);
    assert!(line(&out, &ok).contains("bound as"), "{}", out.stdout);

    std::fs::write(&pw_file, "not-the-password\n").expect("pw");
    let out = env.radmfa(&["check-config", "--connect", "--user", "alice"]);
    out.assert_code(1);
    assert!(
        line(&out, &failed).contains("bind_password_file"),
        "{}",
        out.stdout
    );
}

/// docs/recipes/vpn-active-directory.md as written, against slapd: the
/// page's `ad.toml` block with only the site-specific values replaced (URL
/// and TLS, `kind`, DNs, password file, the VPN's address), then the
/// recipe's steps: check-config --connect, `import-ldap --item vpn-users
/// --dry-run` (shows the group's nested members, writes nothing), the
/// scheduled sync at start, and a login: LDAP password, challenge, code,
/// Accept with the group's attribute.
#[test]
fn recipe_vpn_with_active_directory() {
    use common::recipes::{self, block, page, replace};
    if !(slapd_present()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let slapd = Slapd::start(dir.path());
    let pw_file = dir.path().join("ldap.pw");
    std::fs::write(&pw_file, "svc-secret\n").expect("pw");
    let mut text = block(&page("vpn-active-directory.md"), "ad.toml");
    for (from, to) in [
        ("kind = \"ad\"", "kind = \"ldap\"".to_string()),
        (
            "servers = [\"ldaps://dc1.corp.example:636\", \"ldaps://dc2.corp.example:636\"]",
            format!("servers = [\"{}\"]", slapd.url()),
        ),
        ("tls = \"ldaps\"", "tls = \"none\"".to_string()),
        ("ca_file = \"/etc/radmfa/corp-ca.pem\"\n", String::new()),
        (
            "CN=radmfa-svc,OU=Service,DC=corp,DC=example",
            "cn=radmfa-svc,ou=people,dc=example,dc=org".to_string(),
        ),
        ("DC=corp,DC=example", "dc=example,dc=org".to_string()),
        ("/etc/radmfa/ldap.pw", pw_file.display().to_string()),
        ("10.0.0.5/32", "127.0.0.1/32".to_string()),
    ] {
        text = replace(&text, from, &to);
    }
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra: text,
        ..ConfigOptions::default()
    });
    let secret = "change-me-vpn-secret";
    let out = env.radmfa(&["check-config", "--connect", "--user", "alice"]);
    out.assert_ok();
    assert!(
        out.stdout
            .contains(&format!("ok      directory {}", slapd.url())),
        "{}",
        out.stdout
    );
    let dry = env.radmfa(&["import-ldap", "--item", "vpn-users", "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("+ alice")
            && dry.stdout.contains("+ carol")
            && dry.stdout.contains("would be"),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains("+ erin"),
        "erin is not in vpn-users: {}",
        dry.stdout
    );
    assert_ne!(
        env.radmfa(&["user", "show", "alice"]).code(),
        0,
        "--dry-run wrote"
    );

    let server = env.start();
    let addr = server.addr_string();
    wait_synced(&env, &server, "carol");
    let seed = recipes::enrolled_seed(&env.radmfa(&["token", "enroll", "alice"]));
    let r = recipes::login(&addr, secret, "alice", "alice-pw", None);
    expect(&r, "Access-Challenge");
    let prompt = r.text("Reply-Message").unwrap_or_default();
    assert_eq!(prompt, "Enter the code from your authenticator app");
    let state = r.attr("State").expect("State").to_string();
    common::clear_of_step_edge();
    let r = recipes::login(&addr, secret, "alice", &totp_now(&seed), Some(&state));
    expect(&r, "Access-Accept");
    let filter_id = r.text("Filter-Id").unwrap_or_default();
    assert_eq!(filter_id, "vpn-acl", "the group's attribute: {}", r.output);
    let r = recipes::login(&addr, secret, "alice", "wrong-pw", None);
    expect(&r, "Access-Reject");
}
