//! The user portal end to end: two radmfa nodes sharing a cluster key, the
//! gateway simulator for text messages, and a real headless Chromium driven
//! by Playwright (`tests/portal/flow.mjs`). The script signs in, is made to
//! change the PIN the admin set (a trivial one is refused), enrolls an
//! authenticator app from the key shown on the page, verifies a phone number
//! with the code the simulator received, checks CSRF refusals, carries node
//! A's cookie to node B, and reports a sign-in as "not me" in Dutch. This
//! test then signs in through radclient with the new PIN and a code of the
//! enrolled app, and checks what the portal wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::sim::{env_with_gateway, Sim, API_KEY, PHONE};
use common::{expect, free_tcp_port, login, Env, PASSWORD};

const USER: &str = "paula";
const REPORTER: &str = "nora";
const ADMIN_PIN: &str = "2468";
const NEW_PIN: &str = "4711";
const CLUSTER_KEY: &str = "9f0c4e7a2b6d81f35a0e9c7b4d2f6a8193e5c7a1b3d5f70921436587a9cbedf0";

fn portal_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("portal")
}

/// `npm ci` in tests/portal when playwright-core is not installed yet
/// (.ci/run installs it beforehand).
fn ensure_playwright() {
    let dir = portal_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let out = common::tools::output_within(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        Duration::from_secs(600),
        "npm ci in tests/portal",
    );
    assert!(
        out.status.success(),
        "npm ci in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appends a [portal] section (listening on `port`, with a certificate made
/// by `radmfa cluster`) and writes the shared cluster key.
fn add_portal(env: &Env, port: u16) {
    let pki = env.path().join("pki");
    env.radmfa(&["cluster", "ca", "--dir", pki.to_str().expect("utf-8")])
        .assert_ok();
    env.radmfa(&[
        "cluster",
        "cert",
        "--dir",
        pki.to_str().expect("utf-8"),
        "--node-id",
        "7",
    ])
    .assert_ok();
    let mut text = std::fs::read_to_string(env.config_path()).expect("config");
    text.push_str(&format!(
        "\n[portal]\nlisten = \"127.0.0.1:{port}\"\ncert = {:?}\nkey = {:?}\nsession_minutes = 10\n",
        pki.join("node-7.pem").display().to_string(),
        pki.join("node-7.key").display().to_string(),
    ));
    std::fs::write(env.config_path(), text).expect("config");
    std::fs::create_dir_all(env.data_dir()).expect("data dir");
    std::fs::write(
        env.data_dir().join("cluster.key"),
        format!("{CLUSTER_KEY}\n"),
    )
    .expect("cluster key");
    env.radmfa(&["check-config"]).assert_ok();
}

/// Waits until the portal accepts TCP connections (it starts just after
/// the ready file is written).
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "portal on port {port} not up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("portal-screenshots")
}

#[test]
fn portal_in_chromium_enroll_pin_phone_and_report() {
    if !(common::require_file("/usr/bin/chromium", "apt-get install chromium")
        && common::require_tool("node", "apt-get install nodejs npm")
        && common::require_tool("npm", "apt-get install nodejs npm"))
    {
        return;
    }
    ensure_playwright();
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());

    // Node A: the user with an admin-set PIN and no second factor yet.
    let a = env_with_gateway(&sim, dir.path(), "");
    a.add_user(USER, PASSWORD);
    a.radmfa_stdin(
        &["user", "pin", USER, "--pin-stdin"],
        Some(&format!("{ADMIN_PIN}\n")),
    )
    .assert_ok();
    let shown = a.radmfa(&["user", "show", USER, "--json"]).json();
    assert_eq!(shown["pin_change_required"], true, "{shown}");
    a.add_user(REPORTER, PASSWORD);
    let port_a = free_tcp_port();
    add_portal(&a, port_a);
    // Node B: another process with the same cluster key (its own store).
    let b = env_with_gateway(&sim, dir.path(), "");
    b.add_user(USER, PASSWORD);
    let port_b = free_tcp_port();
    add_portal(&b, port_b);

    let server_a = a.start();
    let server_b = b.start();
    wait_for_port(port_a);
    wait_for_port(port_b);
    let addr = server_a.addr_string();

    // A RADIUS sign-in the reporter will say was not theirs (refused: no token).
    let r = login(&addr, REPORTER, PASSWORD, None);
    expect(&r, "Access-Reject");
    a.wait_report_len(&["--user", REPORTER], 1);

    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    // Chromium under Playwright: a deadline, so a hung browser fails the
    // test instead of hanging the suite.
    let out = common::tools::output_within(
        Command::new("node")
            .arg(portal_dir().join("flow.mjs"))
            .current_dir(portal_dir())
            .env("PORTAL_A", format!("https://127.0.0.1:{port_a}"))
            .env("PORTAL_B", format!("https://127.0.0.1:{port_b}"))
            .env("PORTAL_USER", USER)
            .env("PORTAL_PASSWORD", PASSWORD)
            .env("PORTAL_NEW_PIN", NEW_PIN)
            .env("PORTAL_PHONE", PHONE)
            .env("PORTAL_REPORTER", REPORTER)
            .env("PORTAL_SHOTS", &shots)
            .env("SIM_ADDR", &sim.addr)
            .env("SIM_CERT", &sim.cert)
            .env("SIM_KEY", API_KEY),
        Duration::from_secs(300),
        "node tests/portal/flow.mjs",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flow.mjs failed:\n{stdout}\n{}\nnode A log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server_a.log()
    );
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON result from flow.mjs: {stdout}"));
    let secret_b32 = result["secret"].as_str().expect("secret").to_string();
    let used_step = result["signinStep"].as_u64().expect("signinStep");
    assert!(
        result["screenshots"].as_u64().unwrap_or(0) >= 10,
        "{result}"
    );
    let pngs = std::fs::read_dir(&shots)
        .expect("screenshots")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
        })
        .count();
    assert!(pngs >= 10, "{pngs} screenshots in {}", shots.display());

    // What the portal wrote, through the control socket.
    let shown = a.radmfa(&["user", "show", USER, "--json"]).json();
    assert_eq!(shown["pin_change_required"], false, "{shown}");
    assert_eq!(shown["pin_mode"], "pin", "{shown}");
    assert_eq!(shown["phone"], PHONE, "{shown}");
    assert_eq!(shown["method"], "totp", "{shown}");
    assert_eq!(shown["token"]["kind"], "totp", "{shown}");

    // RADIUS with the enrolled app: password + new PIN + a fresh code.
    let secret = common::decode_secret(&secret_b32);
    let step = common::unix_now() / common::PERIOD;
    assert!(step >= used_step, "clock went back");
    let code = common::totp_at(&secret, (step + 1) * common::PERIOD);
    let r = login(&addr, USER, &format!("{PASSWORD}{NEW_PIN}{code}"), None);
    expect(&r, "Access-Accept");

    // The report: audit record, account disabled, RADIUS refused.
    let recs = a.report(&["--user", REPORTER]);
    assert!(
        recs.iter()
            .any(|r| r["reason"] == "fraud_reported_by_user" && r["client_name"] == "portal"),
        "{recs:?}"
    );
    let shown = a.radmfa(&["user", "show", REPORTER, "--json"]).json();
    assert_eq!(shown["enabled"], false, "{shown}");
    // The reporter has no token, so a reject alone proves nothing: the
    // refusal must be for the disabled account.
    let r = login(&addr, REPORTER, PASSWORD, None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("account is disabled"),
        "{}",
        r.output
    );
    let after = a.wait_report_len(&["--user", REPORTER], recs.len() + 1);
    assert_eq!(after[recs.len()]["reason"], "user_disabled", "{after:?}");

    // Portal sign-ins are in the audit log; no secret reached the logs.
    let recs = a.report(&["--user", USER]);
    assert!(
        recs.iter()
            .any(|r| r["mode"] == "portal+totp" && r["result"] == "accept"),
        "{recs:?}"
    );
    let (_, log) = server_a.terminate();
    for secret in [secret_b32.as_str(), PASSWORD] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the server log:\n{log}"
        );
    }
    drop(server_b);
}
