//! First factor `radius`: radmfa proxies the password to FreeRADIUS (as it
//! would to NPS), then asks for its own second factor. Upstream attributes
//! reach the NAS in the final Accept, next to the group-mapped ones; an
//! upstream Reject passes through; an upstream Access-Challenge is relayed;
//! an upstream that is down gives a clear Reject.

mod common;

use std::time::{Duration, Instant};

use common::freeradius::{mschapv2, start_freeradius, start_freeradius_acct};
use common::{expect, free_udp_port, login_with, totp_now, ConfigOptions, Env, RadReply, SECRET};

const UP_SECRET: &str = "upstream-secret-42";

/// A login whose request carries a Proxy-State (relayed back unchanged).
fn login(addr: &str, user: &str, password: &str, state: Option<&str>) -> RadReply {
    login_with(
        addr,
        user,
        password,
        state,
        "Proxy-State = 0x6e61732d3031\n",
    )
}

#[test]
fn upstream_radius_first_factor_then_totp() {
    if !common::require_tool("freeradius", "apt-get install freeradius") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let mut fr = Some(start_freeradius(dir.path(), port, UP_SECRET));
    let extra = format!(
        r#"[[upstream]]
name = "corp"
servers = ["127.0.0.1:{port}"]
secret = "{UP_SECRET}"
timeout_ms = 500
retries = 1

[[policy]]
name = "proxy"
first_factor = "radius"
upstream = "corp"
otp_mode = "challenge"
mfa_bypass_groups = ["service-accounts"]

[[group_attributes]]
group = "vpn-staff"
attributes = ["Fortinet-Group-Name=staff", "Session-Timeout=28800"]

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "proxy"
"#
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    env.radmfa(&["check-config"]).assert_ok();
    // Local records say which second factor each user has; the passwords live upstream.
    let secret = common::decode_secret(common::TOTP_SECRETS[2]);
    env.radmfa(&["user", "add", "ursula", "--group", "vpn-staff"])
        .assert_ok();
    env.enroll("ursula", common::TOTP_SECRETS[2]).assert_ok();
    env.radmfa(&["user", "add", "chris"]).assert_ok();
    env.enroll("chris", common::TOTP_SECRETS[3]).assert_ok();
    env.radmfa(&["user", "add", "victor", "--group", "service-accounts"])
        .assert_ok();
    env.radmfa(&["user", "add", "tina", "--group", "service-accounts"])
        .assert_ok();
    let server = env.start();
    let addr = server.addr_string();

    // Upstream accepts the password; our TOTP challenge follows; the final
    // Accept carries the upstream's attributes and the group's.
    let r = login(&addr, "ursula", "ursula-pw", None);
    expect(&r, "Access-Challenge");
    assert_eq!(
        r.attr("Proxy-State"),
        Some("0x6e61732d3031"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "ursula", &totp_now(&secret), Some(&state));
    expect(&r, "Access-Accept");
    assert_eq!(
        r.text("Filter-Id").as_deref(),
        Some("upstream-acl"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("Class = 0x636f72702d7374616666"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("staff"),
        "Fortinet-Group-Name: {}",
        r.output
    );
    assert_eq!(r.attr("Session-Timeout"), Some("28800"), "{}", r.output);

    // Upstream Reject passes through.
    let r = login(&addr, "ursula", "wrong", None);
    expect(&r, "Access-Reject");

    // A bypass-group member needs no second factor.
    let r = login(&addr, "victor", "victor-pw", None);
    expect(&r, "Access-Accept");

    // The upstream's Tunnel-Password is encrypted under the upstream secret
    // and our request: it reaches the NAS re-encrypted under the NAS's
    // secret and request (radclient decrypts it with SECRET).
    let r = login(&addr, "tina", "tina-pw", None);
    expect(&r, "Access-Accept");
    assert!(
        r.output.contains("Tunnel-Password:0 = \"tunnel-pw-7\""),
        "{}",
        r.output
    );

    // Chained challenge: the upstream asks its own question first.
    let r = login(&addr, "chris", "anything", None);
    expect(&r, "Access-Challenge");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("6 times 7"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "chris", "42", Some(&state));
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let chris = common::decode_secret(common::TOTP_SECRETS[3]);
    let r = login(&addr, "chris", &totp_now(&chris), Some(&state));
    expect(&r, "Access-Accept");
    assert!(
        r.output.contains("Class = 0x636861696e6564"),
        "{}",
        r.output
    );

    let reasons: Vec<String> = env
        .wait_report_len(&["--user", "ursula"], 3)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "upstream_reject"),
        "{reasons:?}"
    );

    // Upstream down: a clear Reject.
    drop(fr.take());
    let r = login(&addr, "ursula", "ursula-pw", None);
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
        !log.contains("ursula-pw") && !log.contains(UP_SECRET),
        "{log}"
    );
}

#[test]
fn mschapv2_goes_upstream_then_out_of_band_with_mppe_keys_for_the_nas() {
    if !(common::require_tool("freeradius", "apt-get install freeradius")
        && common::require_python_module("Crypto", "pip install pycryptodome==3.21.0"))
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let _fr = start_freeradius(dir.path(), port, UP_SECRET);
    let sim = common::sim::Sim::start(dir.path());
    let key_file = dir.path().join("gateway.key");
    std::fs::write(&key_file, common::sim::API_KEY).expect("key");
    let extra = format!(
        r#"[gateway]
url = "https://{sim}"
api_key_file = {key:?}
ca_file = {ca:?}
timeout_ms = 2000
retries = 0

[[upstream]]
name = "nps"
servers = ["127.0.0.1:{port}"]
secret = "{UP_SECRET}"

[[policy]]
name = "rdg"
first_factor = "radius"
upstream = "nps"

[[client]]
name = "rdg"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "rdg"
"#,
        sim = sim.addr,
        key = key_file.display().to_string(),
        ca = sim.cert.display().to_string(),
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    env.radmfa(&[
        "user",
        "add",
        "mona",
        "--method",
        "call",
        "--phone",
        "+15550108001",
    ])
    .assert_ok();
    env.radmfa(&["user", "add", "victor"]).assert_ok();
    env.enroll("victor", common::TOTP_SECRETS[0]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();

    // The same MS-CHAPv2 exchange straight to FreeRADIUS: the keys it derives.
    let up = format!("127.0.0.1:{port}");
    let direct = mschapv2(&up, UP_SECRET, "mona", "mona-pw", "seed-1", &[]);
    assert_eq!(direct["code"], 2, "{direct}");
    // Through radmfa: FreeRADIUS checks the password, the call approves, the
    // NAS gets MS-CHAP2-Success and the same keys, encrypted for it.
    let proxied = mschapv2(&addr, SECRET, "mona", "mona-pw", "seed-1", &[]);
    assert_eq!(proxied["code"], 2, "{proxied}");
    assert_eq!(proxied["response_authenticator_valid"], true);
    assert_eq!(proxied["message_authenticator_valid"], true);
    assert_eq!(proxied["ms_chap2_success"], true, "{proxied}");
    assert!(proxied["send_key"].is_string(), "{proxied}");
    assert_eq!(proxied["send_key"], direct["send_key"]);
    assert_eq!(proxied["recv_key"], direct["recv_key"]);
    assert_eq!(sim.verifications("+15550108001"), 1, "one call");

    // Wrong password: the upstream rejects, no call.
    let wrong = mschapv2(&addr, SECRET, "mona", "nope", "seed-2", &[]);
    assert_eq!(wrong["code"], 3, "{wrong}");
    assert_eq!(sim.verifications("+15550108001"), 1);

    // An authenticator-app user cannot be asked for a code over MS-CHAPv2.
    let r = mschapv2(&addr, SECRET, "victor", "victor-pw", "seed-3", &[]);
    assert_eq!(r["code"], 3, "{r}");
    assert!(
        r["reply_message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot ask for a code"),
        "{r}"
    );
}

/// Issue 15 (directory sync section): when the gateway cannot send the SMS
/// and `fail_mode = "totp_only"` falls back to the authenticator app, the
/// final Accept still carries the upstream server's Accept attributes.
#[test]
fn totp_only_fallback_keeps_upstream_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let _fr = start_freeradius(dir.path(), port, UP_SECRET);
    let extra = format!(
        r#"[[upstream]]
name = "corp"
servers = ["127.0.0.1:{port}"]
secret = "{UP_SECRET}"
timeout_ms = 500
retries = 1

[[policy]]
name = "proxy"
first_factor = "radius"
upstream = "corp"
otp_mode = "challenge"
fail_mode = "totp_only"

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "proxy"
"#
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    // One-way SMS user who also has an authenticator app; no gateway is
    // configured, so the SMS cannot be sent.
    env.radmfa(&["user", "add", "ursula"]).assert_ok();
    env.enroll("ursula", common::TOTP_SECRETS[2]).assert_ok();
    env.radmfa(&[
        "user",
        "set",
        "ursula",
        "--method",
        "sms",
        "--phone",
        "+15550107009",
    ])
    .assert_ok();
    let secret = common::decode_secret(common::TOTP_SECRETS[2]);
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "ursula", "ursula-pw", None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "ursula", &totp_now(&secret), Some(&state));
    expect(&r, "Access-Accept");
    assert_eq!(
        r.text("Filter-Id").as_deref(),
        Some("upstream-acl"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("Class = 0x636f72702d7374616666"),
        "{}",
        r.output
    );
    let reasons: Vec<String> = env
        .wait_report_len(&["--user", "ursula"], 2)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r == "gateway_not_configured_totp_fallback"),
        "{reasons:?}"
    );
}

/// `check-config --connect`: Status-Server to each upstream server (a reply
/// that verifies proves the address and the shared secret), the gateway's
/// health endpoint; the same checks are logged once at start-up.
#[test]
fn check_config_connect_upstreams_and_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let dead = free_udp_port();
    let _fr = start_freeradius(dir.path(), port, UP_SECRET);
    let sim = common::sim::Sim::start(dir.path());
    let key_file = dir.path().join("gateway.key");
    let config = |api_key: &str| {
        std::fs::write(&key_file, api_key).expect("key file");
        format!(
            r#"[gateway]
url = "https://{sim}"
api_key_file = {key:?}
ca_file = {ca:?}
timeout_ms = 2000

[[upstream]]
name = "corp"
servers = ["127.0.0.1:{port}"]
secret = "{UP_SECRET}"
timeout_ms = 1000

[[upstream]]
name = "typo"
servers = ["127.0.0.1:{port}"]
secret = "not-the-upstream-secret"
timeout_ms = 1000

[[upstream]]
name = "gone"
servers = ["127.0.0.1:{dead}"]
secret = "{UP_SECRET}"
timeout_ms = 300
"#,
            sim = sim.addr,
            key = key_file.display().to_string(),
            ca = sim.cert.display().to_string(),
        )
    };
    let env = Env::with_options(ConfigOptions {
        extra: config(common::sim::API_KEY),
        ..ConfigOptions::default()
    });
    let out = env.radmfa(&["check-config", "--connect"]);
    out.assert_code(1);
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{}", out.stdout))
            .to_owned()
    };
    assert!(
        line(&format!("ok      upstream corp 127.0.0.1:{port}")).contains("Status-Server"),
        "{}",
        out.stdout
    );
    assert!(
        // The upstream drops a request signed with another secret unanswered.
        line(&format!("FAILED  upstream typo 127.0.0.1:{port}")).contains("shared secret"),
        "{}",
        out.stdout
    );
    assert!(
        line(&format!("FAILED  upstream gone 127.0.0.1:{dead}")).contains("no answer"),
        "{}",
        out.stdout
    );
    assert!(
        line(&format!("ok      gateway https://{}", sim.addr)).contains("health"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("2 of 4 connection checks failed"),
        "{}",
        out.stderr
    );

    // The same at start-up, in the log.
    let server = env.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = server.log();
        if log.contains("start-up check failed: upstream gone") {
            break log;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for needle in [
        "start-up check ok: upstream corp",
        "start-up check failed: upstream typo",
        "start-up check ok: gateway",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    drop(server);

    // A wrong gateway key.
    std::fs::write(&key_file, "wrong-key").expect("key file");
    let out = env.radmfa(&["check-config", "--connect"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("FAILED  gateway") && l.contains("401")),
        "{}",
        out.stdout
    );
}

/// `accounting = "both:NAME"`: an Accounting-Request is forwarded to
/// FreeRADIUS (its detail file has it) and stored, and only then answered;
/// with FreeRADIUS down it is neither answered (the NAS sends it again) nor
/// stored, and the log says why once, with the remedy.
#[test]
fn accounting_is_forwarded_to_freeradius_and_unanswered_when_it_is_down() {
    if !common::require_tool("freeradius", "apt-get install freeradius") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, acct_port) = (free_udp_port(), free_udp_port());
    let fr = start_freeradius_acct(dir.path(), port, UP_SECRET, Some(acct_port));
    let extra = format!(
        r#"[[upstream]]
name = "acct"
servers = ["127.0.0.1:{acct_port}"]
secret = "{UP_SECRET}"
timeout_ms = 300
retries = 1

[[policy]]
name = "vpn"
accounting = "both:acct"

[[client]]
name = "vpn"
address = "127.0.0.1/32"
secret = "{SECRET}"
policy = "vpn"
"#
    );
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_string(),
        extra,
        ..ConfigOptions::default()
    });
    env.radmfa(&["check-config"]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    let acct = |status: &str, extra: &str| {
        common::radclient(
            &addr,
            "acct",
            SECRET,
            &format!("User-Name = \"ursula\"\nAcct-Session-Id = \"FWD-7\"\nAcct-Status-Type = {status}\nNAS-Identifier = \"vpn-gw\"\n{extra}"),
        )
    };
    expect(&acct("Start", ""), "Accounting-Response");
    expect(
        &acct("Stop", "Acct-Input-Octets = 1234\nAcct-Session-Time = 99\n"),
        "Accounting-Response",
    );
    // FreeRADIUS wrote both (it answers after its detail module ran).
    let detail = std::fs::read_to_string(dir.path().join("freeradius/log/detail"))
        .expect("FreeRADIUS detail file");
    assert_eq!(
        detail.matches("Acct-Session-Id = \"FWD-7\"").count(),
        2,
        "{detail}"
    );
    assert!(detail.contains("Acct-Status-Type = Stop"), "{detail}");
    assert!(detail.contains("Acct-Input-Octets = 1234"), "{detail}");
    assert!(detail.contains("NAS-Identifier = \"vpn-gw\""), "{detail}");
    // And radmfa stored them.
    let rows = env.report(&["--accounting"]);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[1]["session_time"], 99);

    // FreeRADIUS down: no answer, nothing stored, one WARN with the remedy.
    drop(fr);
    for _ in 0..2 {
        let r = acct("Interim-Update", "");
        assert_eq!(r.code, None, "answered without the upstream: {}", r.output);
    }
    assert_eq!(env.report(&["--accounting"]).len(), 2);
    let log = server.log();
    assert_eq!(
        log.matches("Accounting-Request not forwarded").count(),
        1,
        "{log}"
    );
    assert!(log.contains("accounting port (1813)"), "{log}");
}
