//! End-to-end tests of the `radmfa` command line: config errors, user, token
//! and client administration (with the server stopped, and through the
//! running server's control socket), reports.
//!
//! Logins go through pyrad (`tests/py/radreq.py`); requires python3 + pyrad.

mod common;

use common::*;
use serde_json::Value;

/// Inline login through pyrad; returns the reply code name.
fn login(server: &Server, user: &str, password: &str) -> String {
    let reply = PyRequest::access(server)
        .login(user, password)
        .send()
        .reply();
    code_name(&reply).to_owned()
}

/// Characters a terminal QR code is drawn with.
fn is_qr_line(line: &str) -> bool {
    let line = line.trim_end();
    line.chars().count() >= 21
        && line.chars().any(|c| matches!(c, '█' | '▀' | '▄' | '#'))
        && line
            .chars()
            .all(|c| matches!(c, ' ' | '█' | '▀' | '▄' | '#' | '\u{a0}'))
}

fn qr_lines(text: &str) -> usize {
    text.lines().filter(|l| is_qr_line(l)).count()
}

/// The 1-based line number of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

/// Runs `serve` and `check-config` on `text`; both must exit 2 naming
/// `FILE:LINE:` and a reason containing one of `reason_any`.
fn assert_config_error(text: &str, line: usize, reason_any: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("write config");
    let path_s = path.to_str().expect("utf-8 path");
    let ready = dir.path().join("ready.json");
    let ready_s = ready.to_str().expect("utf-8 path");
    for args in [
        vec!["--config", path_s, "serve", "--ready-file", ready_s],
        vec!["--config", path_s, "check-config"],
    ] {
        let out = run_radmfa(&args, None, dir.path());
        out.assert_code(2);
        let prefix = format!("{path_s}:{line}:");
        let at = out.stderr.find(&prefix).unwrap_or_else(|| {
            panic!(
                "`{}`: stderr does not name {prefix}\nconfig:\n{text}\nstderr:\n{}",
                out.cmdline, out.stderr
            )
        });
        let rest = &out.stderr[at + prefix.len()..];
        assert!(
            reason_any.iter().any(|r| rest.contains(r)),
            "`{}`: reason should mention one of {reason_any:?}:\n{}",
            out.cmdline,
            out.stderr
        );
        assert!(!ready.exists(), "a bad config must not start the server");
    }
}

#[test]
fn check_config_accepts_good_configs() {
    let env = Env::new();
    env.radmfa(&["check-config"]).assert_ok();
    // the embedded default and the shipped file
    run_radmfa(&["check-config"], None, env.path()).assert_ok();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/radmfa.toml");
    run_radmfa(&["--config", shipped, "check-config"], None, env.path()).assert_ok();
}

#[test]
fn bad_config_unknown_key_names_file_and_line() {
    let env = Env::new();
    let good = std::fs::read_to_string(env.config_path()).expect("read config");
    let text = good.replacen("[radius]\n", "[radius]\nbogus_key = 1\n", 1);
    let line = line_of(&text, "bogus_key");
    assert_config_error(&text, line, &["bogus_key"]);

    // inside an array of tables
    let text = good.replacen(
        "require_message_authenticator = true",
        "require_message_authenticator = true\nsecrett = \"typo\"",
        1,
    );
    let line = line_of(&text, "secrett");
    assert_config_error(&text, line, &["secrett"]);
}

#[test]
fn bad_config_wrong_type_names_file_and_line() {
    let env = Env::new();
    let good = std::fs::read_to_string(env.config_path()).expect("read config");

    let text = good.replacen(
        "duplicate_window_secs = 30",
        "duplicate_window_secs = \"thirty\"",
        1,
    );
    let line = line_of(&text, "duplicate_window_secs");
    assert_config_error(
        &text,
        line,
        &["invalid type", "expected", "duplicate_window_secs"],
    );

    let text = good.replacen(
        "require_message_authenticator = true",
        "require_message_authenticator = \"yes\"",
        1,
    );
    let line = line_of(&text, "require_message_authenticator");
    assert_config_error(
        &text,
        line,
        &["invalid type", "expected", "require_message_authenticator"],
    );

    // a TOML syntax error
    let text = good.replacen("node_id = 7", "node_id = = 7", 1);
    let line = line_of(&text, "node_id");
    assert_config_error(&text, line, &["expected", "invalid", "key", "value"]);
}

#[test]
fn user_lifecycle_offline_and_through_running_server() {
    let env = Env::new();
    // offline: the store is opened directly
    env.radmfa(&[
        "user",
        "add",
        "alice",
        "--display-name",
        "Alice Example",
        "--email",
        "alice@example.com",
        "--phone",
        "+15550100",
        "--password",
        PASSWORD,
    ])
    .assert_ok();
    env.radmfa_stdin(
        &["user", "add", "bob", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )
    .assert_ok();
    env.add_user("carol", PASSWORD);
    env.add_user("dave", PASSWORD);
    for (name, secret) in [("alice", 0), ("bob", 1), ("carol", 2), ("dave", 3)] {
        env.enroll(name, TOTP_SECRETS[secret]);
    }
    let dup = env.radmfa(&["user", "add", "alice", "--password", "x-other"]);
    assert_eq!(
        dup.code(),
        1,
        "adding an existing user must fail:\n{}{}",
        dup.stdout,
        dup.stderr
    );

    let list = env.radmfa(&["user", "list", "--json"]);
    list.assert_ok();
    let listed = list.json();
    for name in ["alice", "bob", "carol", "dave"] {
        assert!(
            listed.to_string().contains(&format!("\"{name}\"")),
            "user list --json lacks {name}: {listed}"
        );
    }
    let human = env.radmfa(&["user", "list"]);
    human.assert_ok();
    assert!(
        human.stdout.contains("alice") && human.stdout.contains("dave"),
        "{}",
        human.stdout
    );

    let show = env.radmfa(&["user", "show", "alice", "--json"]);
    show.assert_ok();
    let shown = show.json();
    let shown_s = shown.to_string();
    for needle in ["alice", "Alice Example", "alice@example.com", "+15550100"] {
        assert!(
            shown_s.contains(needle),
            "user show --json lacks {needle}: {shown}"
        );
    }
    assert!(
        !shown_s.contains(PASSWORD),
        "user show must not print the password: {shown}"
    );
    assert!(
        !shown_s.contains(TOTP_SECRETS[0]),
        "user show must not print the TOTP secret: {shown}"
    );
    assert_eq!(env.radmfa(&["user", "show", "nobody"]).code(), 1);

    let server = env.start();
    let alice = decode_secret(TOTP_SECRETS[0]);
    let bob = decode_secret(TOTP_SECRETS[1]);
    let carol = decode_secret(TOTP_SECRETS[2]);
    let dave = decode_secret(TOTP_SECRETS[3]);

    assert_eq!(
        login(&server, "alice", &format!("{PASSWORD}{}", totp_now(&alice))),
        "Access-Accept"
    );

    // admin commands now go through the control socket of the running server
    env.radmfa(&["user", "disable", "bob"]).assert_ok();
    assert_eq!(
        login(&server, "bob", &format!("{PASSWORD}{}", totp_now(&bob))),
        "Access-Reject",
        "disabled user logged in"
    );
    env.radmfa(&["user", "enable", "bob"]).assert_ok();
    assert_eq!(
        login(&server, "bob", &format!("{PASSWORD}{}", totp_step(&bob, 1))),
        "Access-Accept"
    );

    // passwd: the old password (even freshly verified and cached) stops working
    common::clear_of_step_edge();
    assert_eq!(
        login(
            &server,
            "carol",
            &format!("{PASSWORD}{}", totp_step(&carol, -1))
        ),
        "Access-Accept"
    );
    env.radmfa_stdin(
        &["user", "passwd", "carol", "--password-stdin"],
        Some("second-horse\n"),
    )
    .assert_ok();
    assert_eq!(
        login(&server, "carol", &format!("{PASSWORD}{}", totp_now(&carol))),
        "Access-Reject",
        "old password accepted after user passwd"
    );
    assert_eq!(
        login(
            &server,
            "carol",
            &format!("second-horse{}", totp_step(&carol, 1))
        ),
        "Access-Accept"
    );

    // a user added while the server runs can log in at once
    env.radmfa(&["user", "add", "erin", "--password", "erin-horse"])
        .assert_ok();
    env.enroll("erin", TOTP_SECRETS[0]);
    env.radmfa(&["user", "passwd", "erin", "--password", "erin-horse-2"])
        .assert_ok();
    assert_eq!(
        login(
            &server,
            "erin",
            &format!("erin-horse-2{}", totp_now(&alice))
        ),
        "Access-Accept"
    );

    // delete
    env.radmfa(&["user", "delete", "dave"]).assert_ok();
    assert_eq!(
        login(&server, "dave", &format!("{PASSWORD}{}", totp_now(&dave))),
        "Access-Reject",
        "deleted user logged in"
    );
    assert_eq!(env.radmfa(&["user", "show", "dave"]).code(), 1);
    let list = env.radmfa(&["user", "list", "--json"]);
    list.assert_ok();
    let listed = list.json().to_string();
    assert!(
        !listed.contains("\"dave\""),
        "deleted user still listed: {listed}"
    );
    assert!(
        listed.contains("\"erin\""),
        "user added while running not listed: {listed}"
    );
    drop(server);

    // the changes made through the server are in the store
    let list = env.radmfa(&["user", "list", "--json"]);
    list.assert_ok();
    let listed = list.json().to_string();
    assert!(
        !listed.contains("\"dave\"") && listed.contains("\"erin\""),
        "{listed}"
    );
}

#[test]
fn disabled_flag_on_add() {
    let env = Env::new();
    env.radmfa(&["user", "add", "frank", "--password", PASSWORD, "--disabled"])
        .assert_ok();
    env.enroll("frank", TOTP_SECRETS[1]);
    let frank = decode_secret(TOTP_SECRETS[1]);
    let server = env.start();
    assert_eq!(
        login(&server, "frank", &format!("{PASSWORD}{}", totp_now(&frank))),
        "Access-Reject"
    );
    env.radmfa(&["user", "enable", "frank"]).assert_ok();
    assert_eq!(
        login(
            &server,
            "frank",
            &format!("{PASSWORD}{}", totp_step(&frank, 1))
        ),
        "Access-Accept"
    );
}

#[test]
fn token_enroll_prints_uri_qr_and_secret() {
    let env = Env::new();
    env.add_user("gina", PASSWORD);
    env.add_user("hank", PASSWORD);
    env.add_user("ivan", PASSWORD);

    // generated secret, with a QR code
    let out = env.radmfa(&["token", "enroll", "gina"]);
    out.assert_ok();
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no `secret: ` line:\n{}", out.stdout))
        .trim()
        .to_owned();
    assert!(secret.len() >= 16, "short secret {secret}");
    let uri = out
        .stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("otpauth://")
                .map(|_| l.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no otpauth:// URI:\n{}", out.stdout));
    assert!(uri.starts_with("otpauth://totp/radmfa:gina?"), "{uri}");
    for part in [
        format!("secret={secret}"),
        "issuer=radmfa".to_owned(),
        "algorithm=SHA1".to_owned(),
        "digits=6".to_owned(),
        "period=30".to_owned(),
    ] {
        assert!(uri.contains(&part), "URI lacks {part}: {uri}");
    }
    assert!(
        qr_lines(&out.stdout) >= 10,
        "no terminal QR code in:\n{}",
        out.stdout
    );

    // given secret, no QR code
    let out = env.enroll("hank", TOTP_SECRETS[2]);
    assert!(
        out.stdout.contains(&format!("secret={}", TOTP_SECRETS[2])),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("secret: {}", TOTP_SECRETS[2])),
        "{}",
        out.stdout
    );
    assert_eq!(
        qr_lines(&out.stdout),
        0,
        "--no-qr printed a QR code:\n{}",
        out.stdout
    );

    // parameters end up in the URI
    let out = env.radmfa(&[
        "token",
        "enroll",
        "ivan",
        "--algorithm",
        "sha256",
        "--digits",
        "8",
        "--period",
        "60",
        "--no-qr",
    ]);
    out.assert_ok();
    for part in ["algorithm=SHA256", "digits=8", "period=60"] {
        assert!(
            out.stdout.contains(part),
            "URI lacks {part}:\n{}",
            out.stdout
        );
    }

    // unknown user
    assert_ne!(
        env.radmfa(&["token", "enroll", "nobody", "--no-qr"]).code(),
        0
    );

    // the generated secret is the one the server checks
    let server = env.start();
    let gina = decode_secret(&secret);
    assert_eq!(
        login(&server, "gina", &format!("{PASSWORD}{}", totp_now(&gina))),
        "Access-Accept"
    );
    let hank = decode_secret(TOTP_SECRETS[2]);
    assert_eq!(
        login(&server, "hank", &format!("{PASSWORD}{}", totp_now(&hank))),
        "Access-Accept"
    );
}

#[test]
fn client_add_list_delete() {
    let env = Env::new();
    env.radmfa(&[
        "client",
        "add",
        "vpn",
        "--address",
        "10.1.0.0/16",
        "--secret",
        "vpn-secret-1",
    ])
    .assert_ok();
    env.radmfa_stdin(
        &[
            "client",
            "add",
            "rdgw",
            "--address",
            "10.2.3.4/32",
            "--secret-stdin",
            "--no-require-message-authenticator",
        ],
        Some("rdgw-secret-2\n"),
    )
    .assert_ok();
    let bad = env.radmfa(&[
        "client",
        "add",
        "broken",
        "--address",
        "not-a-cidr",
        "--secret",
        "x",
    ]);
    assert_ne!(bad.code(), 0, "bad CIDR accepted:\n{}", bad.stdout);

    let list = env.radmfa(&["client", "list", "--json"]);
    list.assert_ok();
    let listed = list.json().to_string();
    for needle in ["vpn", "10.1.0.0/16", "rdgw", "10.2.3.4/32"] {
        assert!(
            listed.contains(needle),
            "client list --json lacks {needle}: {listed}"
        );
    }
    assert!(!listed.contains("broken"), "{listed}");
    let human = env.radmfa(&["client", "list"]);
    human.assert_ok();
    assert!(
        human.stdout.contains("vpn") && human.stdout.contains("rdgw"),
        "{}",
        human.stdout
    );

    env.radmfa(&["client", "delete", "vpn"]).assert_ok();
    let listed = env.radmfa(&["client", "list", "--json"]).json().to_string();
    assert!(
        !listed.contains("\"vpn\"") && listed.contains("rdgw"),
        "{listed}"
    );
    assert_ne!(
        env.radmfa(&["client", "delete", "vpn"]).code(),
        0,
        "deleting a missing client"
    );
}

#[test]
fn report_json_and_csv() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    env.add_totp_user("bob", TOTP_SECRETS[1]);
    let server = env.start();
    let before_ms = unix_now() * 1000;

    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));
    req.attrs = vec!["Calling-Station-Id=02-00-00-00-00-01".into()];
    assert_eq!(code_name(&req.send().reply()), "Access-Accept");
    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", wrong_code(&alice)));
    req.attrs = vec!["Calling-Station-Id=02-00-00-00-00-01".into()];
    assert_eq!(code_name(&req.send().reply()), "Access-Reject");
    let reply = PyRequest::access(&server)
        .login("bob", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge");

    let records = env.wait_report_len(&["--user", "alice"], 2);
    const FIELDS: [&str; 10] = [
        "time_ms",
        "user",
        "mode",
        "result",
        "reason",
        "server_name",
        "server_ip",
        "client_name",
        "client_ip",
        "calling_station",
    ];
    for rec in &records {
        for f in FIELDS {
            assert!(rec.get(f).is_some(), "record lacks {f}: {rec}");
        }
        assert_eq!(rec["user"], "alice", "{rec}");
        assert_eq!(rec["server_name"], "e2e-node", "{rec}");
        assert_eq!(rec["client_name"], "localhost", "{rec}");
        assert_eq!(rec["client_ip"], "127.0.0.1", "{rec}");
        assert_eq!(rec["server_ip"], "127.0.0.1", "{rec}");
        assert_eq!(rec["calling_station"], "02-00-00-00-00-01", "{rec}");
        let t = rec["time_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("time_ms not an integer: {rec}"));
        assert!(
            t + 2000 >= before_ms && t <= unix_now() * 1000 + 2000,
            "time_ms {t} vs now {before_ms}"
        );
    }
    let mut results: Vec<&str> = records
        .iter()
        .filter_map(|r| r["result"].as_str())
        .collect();
    results.sort_unstable();
    assert_eq!(results, ["accept", "reject"]);

    // filters
    assert_eq!(env.report(&[]).len(), 3);
    let rejects = env.report(&["--result", "reject"]);
    assert_eq!(rejects.len(), 1, "{rejects:#?}");
    assert!(
        rejects[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{rejects:#?}"
    );
    let challenges = env.report(&["--result", "challenge"]);
    assert_eq!(challenges.len(), 1, "{challenges:#?}");
    assert_eq!(challenges[0]["user"], "bob");
    assert_eq!(env.report(&["--limit", "1"]).len(), 1);
    let future = (unix_now() + 3600).to_string();
    assert_eq!(env.report(&["--since", &future]).len(), 0);
    let past = (unix_now() - 3600).to_string();
    assert_eq!(env.report(&["--since", &past]).len(), 3);
    assert_eq!(env.report(&["--since", "2000-01-01T00:00:00Z"]).len(), 3);

    // CSV: a header with every field, one row per record
    // (the sign-ins: `--client localhost` leaves out the admin actions)
    let csv = env.radmfa(&[
        "report",
        "--csv",
        "--user",
        "alice",
        "--client",
        "localhost",
    ]);
    csv.assert_ok();
    let mut lines = csv.stdout.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("empty CSV"))
        .split(',')
        .map(str::trim)
        .collect();
    for f in FIELDS {
        assert!(header.contains(&f), "CSV header lacks {f}: {header:?}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "CSV rows:\n{}", csv.stdout);
    for row in &rows {
        assert!(
            row.contains("alice") && row.contains("02-00-00-00-00-01"),
            "{row}"
        );
    }
    drop(server);
}

#[test]
fn stats_needs_a_running_server() {
    let env = Env::new();
    let out = env.radmfa(&["stats", "--json"]);
    out.assert_code(1);
    assert!(!out.stderr.trim().is_empty(), "no message on stderr");

    let _server = env.start();
    let stats = env.stats();
    for field in [
        "requests_received",
        "access_accepts",
        "access_rejects",
        "access_challenges",
        "accounting_responses",
        "status_server_replies",
        "dropped_unknown_client",
        "dropped_malformed",
        "dropped_missing_message_authenticator",
        "dropped_bad_message_authenticator",
        "dropped_bad_accounting_authenticator",
        "dropped_unsupported_code",
        "duplicates_answered_from_cache",
        "duplicates_in_flight_dropped",
    ] {
        assert_eq!(
            stats.get(field).and_then(Value::as_u64),
            Some(0),
            "{field} in {stats}"
        );
    }
    let human = env.radmfa(&["stats"]);
    human.assert_ok();
    assert!(
        human.stdout.contains("requests_received"),
        "{}",
        human.stdout
    );
}

#[test]
fn user_import_csv() {
    let env = Env::new();
    let csv = env.path().join("users.csv");
    std::fs::write(
        &csv,
        format!(
            "name,password,totp_secret,display_name,email,phone\n\
             imp1,{PASSWORD},{},Imported One,imp1@example.com,+15550101\n\
             imp2,{PASSWORD},,Imported Two,,\n\
             imp3,{PASSWORD},{},,,\n",
            TOTP_SECRETS[0], TOTP_SECRETS[1]
        ),
    )
    .expect("write csv");
    env.radmfa(&["user", "import", "--csv", csv.to_str().expect("utf-8")])
        .assert_ok();
    let listed = env.radmfa(&["user", "list", "--json"]).json().to_string();
    for name in ["imp1", "imp2", "imp3"] {
        assert!(listed.contains(&format!("\"{name}\"")), "{listed}");
    }
    let shown = env
        .radmfa(&["user", "show", "imp1", "--json"])
        .json()
        .to_string();
    assert!(
        shown.contains("Imported One") && shown.contains("imp1@example.com"),
        "{shown}"
    );

    let server = env.start();
    let imp1 = decode_secret(TOTP_SECRETS[0]);
    let imp3 = decode_secret(TOTP_SECRETS[1]);
    assert_eq!(
        login(&server, "imp1", &format!("{PASSWORD}{}", totp_now(&imp1))),
        "Access-Accept"
    );
    assert_eq!(
        login(&server, "imp3", &format!("{PASSWORD}{}", totp_now(&imp3))),
        "Access-Accept"
    );
    // imp2 has no token and the policy rejects unenrolled users
    assert_eq!(
        login(&server, "imp2", &format!("{PASSWORD}123456")),
        "Access-Reject"
    );
    assert_eq!(login(&server, "imp2", PASSWORD), "Access-Reject");
}

#[test]
fn config_from_environment_variable() {
    let env = Env::new();
    let out = std::process::Command::new(radmfa_bin())
        .args(["check-config"])
        .env("RADMFA_CONFIG", env.config_path())
        .current_dir(env.path())
        .output()
        .expect("run radmfa");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // RADMFA_CONFIG pointing at a bad file must be used (and fail)
    let bad = env.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nnope = 1\n").expect("write");
    let out = std::process::Command::new(radmfa_bin())
        .args(["check-config"])
        .env("RADMFA_CONFIG", &bad)
        .current_dir(env.path())
        .output()
        .expect("run radmfa");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())),
        "{stderr}"
    );
}

/// Runs `args` and asserts it is refused, naming `why`; returns stderr.
#[track_caller]
fn refused(env: &Env, args: &[&str], why: &str) -> String {
    let out = env.radmfa(args);
    assert_ne!(
        out.code(),
        0,
        "`{}` was accepted:\n{}",
        out.cmdline,
        out.stdout
    );
    assert!(
        out.stderr.contains(why),
        "`{}`: stderr should say {why:?}:\n{}",
        out.cmdline,
        out.stderr
    );
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\r'),
        "raw control characters in the error: {:?}",
        out.stderr
    );
    out.stderr
}

/// Issue 15 finding 5: control characters in user names, display names,
/// emails and groups are refused by every CLI path (offline, import, and
/// through the running server's control socket), and nothing is written.
#[test]
fn control_characters_in_user_text_are_refused() {
    let env = Env::new();
    const CTRL: &str = "control characters";
    refused(&env, &["user", "add", "eve\nINFO sign-in user=admin"], CTRL);
    refused(&env, &["user", "add", "eve\u{202e}nimda"], CTRL);
    refused(&env, &["user", "add", " eve"], "white space");
    refused(&env, &["user", "add", "eve "], "white space");
    refused(
        &env,
        &[
            "user",
            "add",
            "eve",
            "--display-name",
            "Eve\r\n2026-12-07T10:00:00Z INFO sign-in user=admin",
        ],
        CTRL,
    );
    refused(
        &env,
        &["user", "add", "eve", "--email", "eve@example.org\u{1b}[2J"],
        CTRL,
    );
    refused(&env, &["user", "add", "eve", "--group", "vpn\u{7}"], CTRL);
    assert_eq!(
        env.radmfa(&["user", "list", "--json"]).json(),
        serde_json::json!([]),
        "a refused user was written"
    );

    env.radmfa(&[
        "user",
        "add",
        "eve",
        "--display-name",
        "Eve",
        "--group",
        "vpn",
    ])
    .assert_ok();
    refused(
        &env,
        &[
            "user",
            "set",
            "eve",
            "--display-name",
            "x\u{1b}]0;pwned\u{7}",
        ],
        CTRL,
    );
    refused(
        &env,
        &["user", "set", "eve", "--group", "ok", "--group", "a\nb"],
        CTRL,
    );

    // Import: one bad row refuses the whole file.
    let csv = env.path().join("users.csv");
    std::fs::write(
        &csv,
        "name,display_name\nimp1,Imported One\nimp2,\"Two\u{1b}[31m red\"\n",
    )
    .expect("write csv");
    refused(
        &env,
        &["user", "import", "--csv", csv.to_str().expect("utf-8")],
        CTRL,
    );
    assert_eq!(
        env.radmfa(&["user", "show", "imp1", "--json"]).code(),
        1,
        "imp1 was imported although the file was refused"
    );

    // The same through the running server's control socket.
    let server = env.start();
    refused(
        &env,
        &["user", "set", "eve", "--email", "e\r\nve@example.org"],
        CTRL,
    );
    refused(
        &env,
        &["user", "add", "mallory", "--display-name", "M\u{85}"],
        CTRL,
    );
    let shown = env.radmfa(&["user", "show", "eve", "--json"]).json();
    assert_eq!(shown["display_name"], "Eve", "{shown}");
    assert_eq!(shown["email"], "", "{shown}");
    assert_eq!(shown["groups"], serde_json::json!(["vpn"]), "{shown}");
    // Names are matched exactly; spaces inside a name are fine.
    env.radmfa(&["user", "add", "Eve Example"]).assert_ok();
    drop(server);
}

/// Rewrites a backup file with python3 (hashlib, independent of the code
/// under test): `old` replaced by `new` in exactly one record, the record
/// length and the trailing SHA-256 recomputed.
fn tamper_backup(src: &std::path::Path, dst: &std::path::Path, old: &str, new: &str) {
    const SCRIPT: &str = r#"
import hashlib, struct, sys
src, dst, old, new = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
data = open(src, "rb").read()
magic = b"RADMFA-BACKUP 1\n"
assert data.startswith(magic)
body, pos, out, hits = data[len(magic):-32], 0, bytearray(magic), 0
while pos < len(body):
    (n,) = struct.unpack(">I", body[pos:pos + 4])
    rec = body[pos + 4:pos + 4 + n]
    pos += 4 + n
    if old in rec:
        rec, hits = rec.replace(old, new), hits + 1
    out += struct.pack(">I", len(rec)) + rec
assert hits == 1, hits
out += hashlib.sha256(bytes(out)).digest()
open(dst, "wb").write(out)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(src)
        .arg(dst)
        .args([old, new])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 15 finding 5: records written before names were checked (a
/// restored backup, an audit journal) are printed by `user list`, `user
/// show` and `report` with control characters escaped, so they cannot forge
/// lines or drive the terminal.
#[test]
fn stored_control_characters_are_printed_escaped() {
    let a = Env::new();
    a.radmfa(&[
        "user",
        "add",
        "carol",
        "--display-name",
        "Carol Example",
        "--email",
        "carol@example.org",
    ])
    .assert_ok();
    let file = a.path().join("radmfa.backup");
    a.radmfa(&["backup", file.to_str().expect("utf-8")])
        .assert_ok();
    let forged = a.path().join("forged.backup");
    // JSON escapes: the restored record holds a raw ESC, CR and LF.
    tamper_backup(
        &file,
        &forged,
        r#""display_name":"Carol Example""#,
        r#""display_name":"Carol\u001b[2J\r\nINFO forged line""#,
    );
    let b = Env::new();
    std::fs::create_dir_all(b.data_dir()).expect("data dir");
    for key in ["seed.key", "cluster.key"] {
        let from = a.data_dir().join(key);
        if from.exists() {
            std::fs::copy(&from, b.data_dir().join(key)).expect("copy key");
        }
    }
    b.radmfa(&["restore", forged.to_str().expect("utf-8")])
        .assert_ok();
    let raw = b.radmfa(&["user", "show", "carol", "--json"]).json();
    assert_eq!(
        raw["display_name"], "Carol\u{1b}[2J\r\nINFO forged line",
        "the tampered record did not restore: {raw}"
    );

    // An audit record an older version wrote, in the journal.
    let now_ms = unix_now() * 1000;
    let rec = serde_json::json!({
        "time_ms": now_ms, "user": "mallory\u{1b}[31m\r\nINFO forged record",
        "mode": "pap", "result": "reject", "reason": "unknown_user",
        "server_name": "e2e-node", "server_ip": "127.0.0.1",
        "client_name": "localhost", "client_ip": "127.0.0.1",
        "calling_station": "\u{1b}]0;owned\u{7}",
    });
    let journal = b.data_dir().join("db.audit");
    std::fs::create_dir_all(&journal).expect("journal dir");
    std::fs::write(
        journal.join(format!("{now_ms:020}-000999.jsonl")),
        format!("{rec}\n"),
    )
    .expect("write segment");

    for args in [
        &["user", "list"][..],
        &["user", "show", "carol"],
        &["report"],
    ] {
        let out = b.radmfa(args);
        out.assert_ok();
        let text = &out.stdout;
        assert!(
            !text.contains(['\u{1b}', '\r', '\u{7}']),
            "`{}` printed raw control characters: {text:?}",
            out.cmdline
        );
        assert!(
            !text.lines().any(|l| l.starts_with("INFO forged")),
            "`{}` printed a forged line: {text}",
            out.cmdline
        );
    }
    let list = b.radmfa(&["user", "list"]).stdout;
    assert!(
        list.contains(r"Carol\u{1b}[2J\r\nINFO forged line"),
        "{list}"
    );
    let report = b.radmfa(&["report"]).stdout;
    assert!(
        report.contains(r"mallory\u{1b}[31m\r\nINFO forged record"),
        "{report}"
    );
    assert!(report.contains(r"\u{1b}]0;owned\u{7}"), "{report}");
}

/// Issue 15 finding 7: `radmfa report --csv` defuses spreadsheet formulas
/// like the admin API (one writer). Parsed with the csv crate's reader.
#[test]
fn report_csv_defuses_formulas() {
    let env = Env::new();
    let server = env.start();
    let formulas = [
        "=HYPERLINK(\"http://evil.example/\",\"open\")",
        "+1+cmd|' /C calc'!A0",
        "@SUM(1+1)",
    ];
    for user in formulas {
        let mut req = PyRequest::access(&server).login(user, PASSWORD);
        req.attrs = vec!["Calling-Station-Id=-2+3".into()];
        assert_eq!(code_name(&req.send().reply()), "Access-Reject");
    }
    env.wait_report_len(&[], formulas.len());
    let out = env.radmfa(&["report", "--csv"]);
    out.assert_ok();
    let mut r = csv::Reader::from_reader(out.stdout.as_bytes());
    let header = r.headers().expect("CSV header").clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column: {header:?}"))
    };
    let (user, station) = (col("user"), col("calling_station"));
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("CSV row")).collect();
    assert_eq!(rows.len(), formulas.len(), "{}", out.stdout);
    for (row, f) in rows.iter().zip(formulas) {
        assert_eq!(&row[user], format!("'{f}"), "{}", out.stdout);
        assert_eq!(&row[station], "'-2+3", "{}", out.stdout);
        for field in row.iter() {
            assert!(
                !field.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula let through: {field:?}\n{}",
                out.stdout
            );
        }
    }
    drop(server);
}

// ------------------------------------------------------- hardening (issue 15)

/// Mode bits (permissions only) of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets the mode of `path`.
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every directory and file under `dir` (not `dir` itself).
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, bool)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        let is_dir = entry.file_type().expect("type").is_dir();
        if is_dir {
            out.extend(walk(&path));
        }
        out.push((path, is_dir));
    }
    out
}

/// `radmfa serve` that must fail before it is ready: its exit code and log.
fn serve_fails(env: &Env) -> (i32, String) {
    let mut server = env.spawn_serve(None);
    let status = server
        .wait_exit(std::time::Duration::from_secs(60))
        .unwrap_or_else(|| panic!("serve kept running; log:\n{}", server.log()));
    assert!(
        !server.ready_path().exists(),
        "a server that failed to start wrote its ready file; log:\n{}",
        server.log()
    );
    (status.code().unwrap_or(-1), server.log())
}

#[test]
fn out_of_range_numbers_and_short_secrets_stop_start_up() {
    let env = Env::new();
    let good = std::fs::read_to_string(env.config_path()).expect("read config");

    // Unbounded before: start-up hashed the argon2 decoy for ever.
    let text = good.replacen("iterations = 1", "iterations = 4000000000", 1);
    let line = line_of(&text, "iterations");
    assert_config_error(
        &text,
        line,
        &["password.iterations must be between 1 and 16"],
    );
    // Overflowed into a sled panic before.
    let text = good.replacen(
        "[server]\n",
        "[server]\nstore_cache_mib = 100000000000\n",
        1,
    );
    let line = line_of(&text, "store_cache_mib");
    assert_config_error(
        &text,
        line,
        &["server.store_cache_mib must be between 1 and 65536"],
    );
    // Clamped silently before.
    let text = good.replacen(
        "duplicate_window_secs = 30",
        "duplicate_window_secs = 3600",
        1,
    );
    let line = line_of(&text, "duplicate_window_secs");
    assert_config_error(&text, line, &["between 1 and 600, not 3600"]);

    // A one-character client secret was accepted (the CLI and API ask 8).
    let text = good.replacen("secret = \"testing123\"", "secret = \"x\"", 1);
    let line = line_of(&text, "secret = \"x\"");
    assert_config_error(&text, line, &["shared secret is too short", "at least 8"]);
    let text = good.replacen("secret = \"testing123\"", "secret = \"1234567\"", 1);
    assert_config_error(&text, line, &["at least 8"]);
    // Eight characters are enough.
    let text = good.replacen("secret = \"testing123\"", "secret = \"12345678\"", 1);
    let path = env.path().join("eight.toml");
    std::fs::write(&path, text).expect("write");
    run_radmfa(
        &["--config", path.to_str().expect("utf-8"), "check-config"],
        None,
        env.path(),
    )
    .assert_ok();
}

#[test]
fn catch_all_client_without_message_authenticator_is_warned() {
    let warning = "accepts requests from any address";
    let open = Env::with_options(ConfigOptions {
        client_address: "0.0.0.0/0".to_owned(),
        require_message_authenticator: false,
        ..ConfigOptions::default()
    });
    let (_, log) = open.start().terminate();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(
        log.contains("require_message_authenticator = true"),
        "{log}"
    );

    // The same for a client added with the CLI (kept in the store).
    let env = Env::new();
    env.radmfa_stdin(
        &[
            "client",
            "add",
            "anywhere",
            "--address",
            "::/0",
            "--secret-stdin",
            "--no-require-message-authenticator",
        ],
        Some("a-long-shared-secret\n"),
    )
    .assert_ok();
    let (_, log) = env.start().terminate();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(log.contains("\"anywhere\""), "{log}");

    // Signed requests required, or a narrow address: no warning.
    for (address, require_ma) in [("0.0.0.0/0", true), ("10.0.0.0/8", false)] {
        let env = Env::with_options(ConfigOptions {
            client_address: address.to_owned(),
            require_message_authenticator: require_ma,
            ..ConfigOptions::default()
        });
        let (_, log) = env.start().terminate();
        assert!(!log.contains(warning), "{address} {require_ma}: {log}");
    }
}

#[test]
fn data_files_are_owner_only_under_a_permissive_umask() {
    let env = Env::new();
    // umask 000: without our own umask everything would be 0777/0666.
    let mut server = env.spawn_serve(Some(0o000));
    server.wait_ready();
    env.add_user("alice", PASSWORD);
    assert_eq!(login(&server, "alice", "wrong-password"), "Access-Reject");
    let backup = env.path().join("b.backup");
    env.radmfa(&["backup", backup.to_str().expect("utf-8")])
        .assert_ok();
    env.radmfa(&["stats", "--json"]).assert_ok();
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    let data = env.data_dir();
    assert_eq!(mode_of(data), 0o700, "data dir");
    for key in ["seed.key", "cluster.key"] {
        assert_eq!(mode_of(&data.join(key)), 0o600, "{key}");
    }
    let entries = walk(data);
    assert!(
        entries
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "jsonl")),
        "no audit segment under {}: {entries:?}",
        data.display()
    );
    for (path, is_dir) in entries
        .iter()
        .chain(&walk(&env.path().join("b.backup.audit")))
    {
        let want = if *is_dir { 0o700 } else { 0o600 };
        // The control socket is removed at exit; anything else must be
        // owner-only (sled's own files included).
        assert_eq!(mode_of(path), want, "{}", path.display());
    }
    assert_eq!(mode_of(&backup), 0o600, "backup file");
    assert_eq!(mode_of(&env.path().join("b.backup.audit")), 0o700);

    // An existing data directory open to others is reported at start-up,
    // once, with the remedy.
    chmod(data, 0o755);
    let (_, log) = env.start().terminate();
    let line = format!("{} is open to other users (mode 0755)", data.display());
    assert_eq!(log.matches(&line).count(), 1, "{log}");
    assert!(
        log.contains(&format!("chmod 700 {}", data.display())),
        "{log}"
    );
}

#[test]
fn key_files_open_to_others_or_trivial_stop_start_up() {
    let env = Env::new();
    drop(env.start()); // creates both key files, 0600
    let data = env.data_dir();
    let cluster_key = data.join("cluster.key");
    let seed_key = data.join("seed.key");

    chmod(&cluster_key, 0o666);
    let (code, log) = serve_fails(&env);
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(&format!("{}: mode 0666", cluster_key.display()))
            && log.contains(&format!("chmod 600 {}", cluster_key.display())),
        "{log}"
    );
    chmod(&cluster_key, 0o600);

    chmod(&seed_key, 0o644);
    let (_, log) = serve_fails(&env);
    assert!(
        log.contains(&format!("chmod 600 {}", seed_key.display())),
        "{log}"
    );
    // The offline CLI refuses it too.
    let out = env.radmfa(&["user", "list"]);
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    chmod(&seed_key, 0o600);

    // An all-zero cluster key (owner-only) is trivial.
    let good = std::fs::read(&cluster_key).expect("key");
    std::fs::write(&cluster_key, format!("{}\n", "00".repeat(32))).expect("write");
    let (_, log) = serve_fails(&env);
    assert!(log.contains("trivial"), "{log}");
    std::fs::write(&cluster_key, good).expect("write");
    env.start().terminate();
}

#[test]
fn wrong_seed_key_stops_start_up() {
    let env = Env::new();
    let secret = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let seed_key = env.data_dir().join("seed.key");
    let right = std::fs::read(&seed_key).expect("key");
    // Another well-formed, owner-only key: before, the node started and
    // every TOTP login failed to decrypt its seed.
    let other: String = (0u8..32)
        .map(|i| format!("{:02x}", i.wrapping_mul(37) ^ 0x5a))
        .collect();
    std::fs::write(&seed_key, format!("{other}\n")).expect("write");
    let (code, log) = serve_fails(&env);
    assert_ne!(code, 0);
    assert!(
        log.contains(&format!("{}", seed_key.display()))
            && log.contains("is not the key this database was created with"),
        "{log}"
    );
    let out = env.radmfa(&["user", "list"]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("not the key this database"),
        "{}",
        out.stderr
    );

    // The right key: alice signs in.
    std::fs::write(&seed_key, right).expect("write");
    let server = env.start();
    let code = format!("{PASSWORD}{}", totp_now(&secret));
    assert_eq!(login(&server, "alice", &code), "Access-Accept");
}

#[test]
fn sigterm_during_a_slow_start_up_stops_the_node() {
    // The largest argon2 cost the bounds allow at 256 MiB: the start-up
    // decoy hash takes seconds (minutes in a debug build).
    let env = Env::with_options(ConfigOptions::default());
    let text = std::fs::read_to_string(env.config_path())
        .expect("config")
        .replacen("memory_kib = 1024", "memory_kib = 262144", 1)
        .replacen("iterations = 1", "iterations = 16", 1);
    std::fs::write(env.config_path(), text).expect("config");
    let mut server = env.spawn_serve(None);
    // The UDP sockets are bound (logged) before the slow part begins.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.log().contains("listening radius_udp=") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        server.wait_exit(std::time::Duration::ZERO).is_none(),
        "{}",
        server.log()
    );
    server.signal("TERM");
    let status = server
        .wait_exit(std::time::Duration::from_secs(5))
        .unwrap_or_else(|| panic!("SIGTERM ignored during start-up; log:\n{}", server.log()));
    assert!(status.success(), "{status:?}: {}", server.log());
    let log = server.log();
    assert!(log.contains("stopped during start-up"), "{log}");
    assert!(!server.ready_path().exists(), "ready file written: {log}");
}

#[test]
fn ready_file_is_written_only_after_every_listener_is_up() {
    // Start-up fails late (the API certificate cannot be loaded): before,
    // the ready file was already written by then.
    let env = Env::with_options(ConfigOptions {
        extra: "[api]\nlisten = \"127.0.0.1:0\"\ncert = \"missing.pem\"\nkey = \"missing.key\"\n"
            .to_owned(),
        ..ConfigOptions::default()
    });
    let (code, log) = serve_fails(&env);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("[api]"), "{log}");
}

/// Issue 17: the binary binds every listener before the node starts; a TCP
/// port another process holds (here the admin API's) stops start-up before
/// the TLS files are even read, naming the section, the address and what to do.
#[test]
fn taken_tcp_port_stops_start_up_with_the_remedy() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let env = Env::with_options(ConfigOptions {
        extra: format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\ncert = \"missing.pem\"\nkey = \"missing.key\"\n"
        ),
        ..ConfigOptions::default()
    });
    let (code, log) = serve_fails(&env);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!("[api]: cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("TCP port {port} is already in use"))
            && log.contains(&format!("ss -tlpn sport = :{port}")),
        "{log}"
    );
    assert!(!log.contains("missing.pem"), "{log}");
    drop(holder);
}

// ------------------------------------------------ issue 16: a CLI an admin can trust

/// The audit reasons of `user`'s records, oldest first.
fn reasons_of(env: &Env, user: &str, n: usize) -> Vec<String> {
    env.wait_report_len(&["--user", user], n)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn token_enroll_needs_replace_and_token_list_show_delete() {
    let env = Env::new();
    let old = env.add_totp_user("tom", TOTP_SECRETS[0]);
    let new = decode_secret(TOTP_SECRETS[1]);

    // A second enroll would silently replace a working token: refused.
    let out = env.radmfa(&[
        "token",
        "enroll",
        "tom",
        "--secret",
        TOTP_SECRETS[1],
        "--no-qr",
    ]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("already has a totp token") && out.stderr.contains("--replace"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("otpauth://"), "{}", out.stdout);

    let list = env.radmfa(&["token", "list", "--json"]);
    list.assert_ok();
    let listed = list.json();
    let tom = listed
        .as_array()
        .and_then(|a| a.iter().find(|t| t["user"] == "tom"))
        .unwrap_or_else(|| panic!("token list lacks tom: {listed}"));
    assert_eq!(
        (
            &tom["kind"],
            &tom["digits"],
            &tom["period"],
            &tom["algorithm"]
        ),
        (
            &json_str("totp"),
            &Value::from(6),
            &Value::from(30),
            &json_str("SHA1")
        ),
        "{tom}"
    );
    assert!(tom["last_used"].is_null(), "{tom}");
    assert!(
        !list.stdout.contains(TOTP_SECRETS[0]),
        "token list shows the seed"
    );
    let table = env.radmfa(&["token", "list"]);
    table.assert_ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("tom") && l.contains("totp")),
        "{}",
        table.stdout
    );

    let server = env.start();
    // The refused enroll left the working token alone.
    common::clear_of_step_edge();
    assert_eq!(
        login(
            &server,
            "tom",
            &format!("{PASSWORD}{}", totp_step(&old, -1))
        ),
        "Access-Accept"
    );
    let shown = env.radmfa(&["token", "show", "tom", "--json"]).json();
    let step = (unix_now() / PERIOD) - 1;
    assert!(
        shown["last_used"]
            .as_u64()
            .is_some_and(|s| s + 1 >= step && s <= step + 1),
        "last_used should be the step just used (~{step}): {shown}"
    );

    // --replace, through the running server: the old token stops at once.
    env.radmfa(&[
        "token",
        "enroll",
        "tom",
        "--secret",
        TOTP_SECRETS[1],
        "--no-qr",
        "--replace",
    ])
    .assert_ok();
    assert_eq!(
        login(&server, "tom", &format!("{PASSWORD}{}", totp_now(&old))),
        "Access-Reject",
        "the replaced token still works"
    );
    assert_eq!(
        login(&server, "tom", &format!("{PASSWORD}{}", totp_now(&new))),
        "Access-Accept"
    );

    // delete: the user stays, without a token.
    env.radmfa(&["token", "delete", "tom"]).assert_ok();
    assert_eq!(login(&server, "tom", PASSWORD), "Access-Reject");
    assert_eq!(
        reasons_of(&env, "tom", 4).last().map(String::as_str),
        Some("not_enrolled")
    );
    env.radmfa(&["user", "show", "tom"]).assert_ok();
    let out = env.radmfa(&["token", "show", "tom"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("token not found: tom"),
        "{}",
        out.stderr
    );

    // One wording for a missing user, whatever the command.
    for args in [
        vec!["user", "show", "nobody"],
        vec!["user", "set", "nobody", "--email", "x@example.com"],
        vec!["user", "unlock", "nobody"],
        vec!["token", "show", "nobody"],
        vec!["token", "delete", "nobody"],
        vec!["token", "enroll", "nobody", "--no-qr"],
    ] {
        let out = env.radmfa(&args);
        out.assert_code(1);
        assert!(
            out.stderr.contains("user not found: nobody"),
            "`{}`: {}",
            out.cmdline,
            out.stderr
        );
    }
    drop(server);
}

fn json_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

#[test]
fn token_enroll_digits_default_from_config() {
    let env = Env::new();
    let text = std::fs::read_to_string(env.config_path()).expect("read config");
    std::fs::write(
        env.config_path(),
        text.replacen("digits = 6", "digits = 8", 1),
    )
    .expect("write config");
    env.add_user("dora", PASSWORD);
    let out = env.radmfa(&["token", "enroll", "dora", "--no-qr"]);
    out.assert_ok();
    assert!(out.stdout.contains("digits=8"), "{}", out.stdout);
    let shown = env.radmfa(&["token", "show", "dora", "--json"]).json();
    assert_eq!(shown["digits"], 8, "{shown}");
    // --digits still wins.
    env.add_user("dave", PASSWORD);
    let out = env.radmfa(&["token", "enroll", "dave", "--no-qr", "--digits", "6"]);
    assert!(out.stdout.contains("digits=6"), "{}", out.stdout);
}

/// RFC 4226 Appendix D: the HOTP values of the secret "12345678901234567890"
/// for counters 0 to 9.
const RFC4226_CODES: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];
/// Base32 of "12345678901234567890".
const RFC4226_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn hotp_resync_with_two_consecutive_codes() {
    let env = Env::new();
    let text = std::fs::read_to_string(env.config_path()).expect("read config");
    std::fs::write(
        env.config_path(),
        text.replacen("digits = 6", "digits = 6\nhotp_look_ahead = 2", 1),
    )
    .expect("write config");
    env.add_user("hugo", PASSWORD);
    env.radmfa(&[
        "token",
        "enroll",
        "hugo",
        "--type",
        "hotp",
        "--secret",
        RFC4226_SECRET,
        "--no-qr",
    ])
    .assert_ok();
    env.add_totp_user("tina", TOTP_SECRETS[2]);
    let server = env.start();
    // The token was pressed five times unused: counter 5 is beyond the look-ahead.
    assert_eq!(
        login(&server, "hugo", &format!("{PASSWORD}{}", RFC4226_CODES[5])),
        "Access-Reject"
    );
    // Codes out of order, or not consecutive: refused, nothing changes.
    for (a, b) in [(6, 5), (5, 7)] {
        let out = env.radmfa(&[
            "token",
            "resync",
            "hugo",
            RFC4226_CODES[a],
            RFC4226_CODES[b],
        ]);
        out.assert_code(1);
        assert!(out.stderr.contains("not consecutive"), "{}", out.stderr);
    }
    let out = env.radmfa(&["token", "resync", "tina", "123456", "654321"]);
    out.assert_code(1);
    assert!(out.stderr.contains("TOTP"), "{}", out.stderr);

    // Two consecutive codes (counters 5 and 6): the next one (7) is accepted.
    let out = env.radmfa(&[
        "token",
        "resync",
        "hugo",
        RFC4226_CODES[5],
        RFC4226_CODES[6],
    ]);
    out.assert_ok();
    let shown = env.radmfa(&["token", "show", "hugo", "--json"]).json();
    assert_eq!(shown["last_used"], 6, "{shown}");
    assert_eq!(
        login(&server, "hugo", &format!("{PASSWORD}{}", RFC4226_CODES[6])),
        "Access-Reject",
        "a code given to resync must not log in"
    );
    assert_eq!(
        login(&server, "hugo", &format!("{PASSWORD}{}", RFC4226_CODES[7])),
        "Access-Accept"
    );
    assert_eq!(
        login(&server, "hugo", &format!("{PASSWORD}{}", RFC4226_CODES[9])),
        "Access-Accept",
        "the normal look-ahead works again"
    );
}

#[test]
fn client_list_json_shows_config_clients_and_clashes_are_refused() {
    let env = Env::new();
    let add = |name: &str, address: &str, force: bool| {
        let mut args = vec![
            "client",
            "add",
            name,
            "--address",
            address,
            "--secret",
            "vpn-secret-123",
        ];
        if force {
            args.push("--force");
        }
        env.radmfa(&args)
    };
    add("vpn", "10.1.0.0/16", false).assert_ok();

    let list = env.radmfa(&["client", "list", "--json"]);
    list.assert_ok();
    let listed = list.json();
    let names: Vec<(&str, &str)> = listed
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["source"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("localhost", "config"), ("vpn", "store")],
        "{listed}"
    );
    assert!(!list.stdout.contains(SECRET), "client list shows a secret");

    // The name of a config-file client, an exact address: refused.
    let out = add("localhost", "10.9.9.9", false);
    out.assert_code(1);
    assert!(
        out.stderr.contains("already exists: localhost"),
        "{}",
        out.stderr
    );
    let out = add("vpn2", "10.1.7.7/16", false);
    out.assert_code(1);
    assert!(
        out.stderr.contains("already the address of client \"vpn\""),
        "{}",
        out.stderr
    );
    // An overlap: refused, or added with --force and a warning.
    let out = add("branch", "10.1.2.0/24", false);
    out.assert_code(1);
    assert!(
        out.stderr.contains("overlaps client \"vpn\"") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    let out = add("branch", "10.1.2.0/24", true);
    out.assert_ok();
    assert!(
        out.stderr.contains("warning: ")
            && out.stderr.contains("\"branch\" answers for 10.1.2.0/24"),
        "{}",
        out.stderr
    );
    let listed = env.radmfa(&["client", "list", "--json"]).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    let table = env.radmfa(&["client", "list"]);
    for name in ["localhost", "vpn", "branch"] {
        assert!(table.stdout.contains(name), "{}", table.stdout);
    }
}

#[test]
fn duplicate_clients_in_the_config_file_stop_start_up() {
    let env = Env::new();
    let good = std::fs::read_to_string(env.config_path()).expect("read config");
    let twice = format!(
        "{good}\n[[client]]\nname = \"localhost\"\naddress = \"10.0.0.1\"\nsecret = \"other-secret-1\"\n"
    );
    let line = twice
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("name = \"localhost\""))
        .map(|(i, _)| i + 1)
        .last()
        .expect("second client");
    assert_config_error(&twice, line, &["defined twice"]);
    let alphabet = good.replacen("[otp]\n", "[sms]\nalphabet = \"012345678\"\n\n[otp]\n", 1);
    assert_config_error(
        &alphabet,
        line_of(&alphabet, "alphabet"),
        &["at least 10 distinct"],
    );
}

#[test]
fn user_add_warns_and_the_audit_reason_says_why() {
    let env = Env::new();
    let out = env.radmfa(&[
        "user",
        "add",
        "sam",
        "--method",
        "sms",
        "--password",
        PASSWORD,
    ]);
    out.assert_ok();
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("phone_missing"),
        "{}",
        out.stderr
    );
    let out = env.radmfa(&["user", "add", "nina"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("no_password"),
        "{}",
        out.stderr
    );
    let out = env.radmfa(&["user", "add", "olga", "--password", PASSWORD]);
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    let server = env.start();
    assert_eq!(login(&server, "sam", PASSWORD), "Access-Reject");
    assert_eq!(login(&server, "nina", "anything123456"), "Access-Reject");
    assert_eq!(reasons_of(&env, "sam", 1), ["phone_missing"]);
    assert_eq!(reasons_of(&env, "nina", 1), ["no_password"]);
}

/// Runs `radmfa ARGS` on a pseudo-terminal, typing each of `typed` after the
/// prompt it waits for; returns (exit status, everything the terminal showed).
fn on_terminal(args: &[&str], typed: &[(&str, &str)]) -> (i32, String) {
    let script = r#"
import json, os, pty, select, sys, time
argv, typed = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def read_until(token, timeout=30):
    global seen
    end = time.time() + timeout
    while token.encode() not in seen and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk
for prompt, text in typed:
    read_until(prompt)
    os.write(fd, text.encode() + b"\n")
read_until("\x00", timeout=20)
_, status = os.waitpid(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "seen": seen.decode(errors="replace")}))
"#;
    let mut argv = vec![radmfa_bin().to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let typed: Vec<(String, String)> = typed
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &serde_json::to_string(&argv).expect("json"),
            &serde_json::to_string(&typed).expect("json"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        v["status"].as_i64().unwrap_or(-1) as i32,
        v["seen"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn stdin_secrets_on_a_terminal_are_prompted_without_echo() {
    let env = Env::new();
    let config = env.config_path().to_str().expect("utf-8").to_owned();
    let typed = "s3cret-horse-typed";
    let (status, seen) = on_terminal(
        &[
            "--config",
            &config,
            "user",
            "add",
            "pat",
            "--password-stdin",
        ],
        &[("Password: ", typed), ("Password (again): ", typed)],
    );
    assert_eq!(status, 0, "{seen}");
    assert!(seen.contains("Password: "), "no prompt: {seen:?}");
    assert!(seen.contains("added user pat"), "{seen:?}");
    assert!(!seen.contains(typed), "the password was echoed: {seen:?}");

    // Two entries that differ: nothing is changed.
    let (status, seen) = on_terminal(
        &[
            "--config",
            &config,
            "user",
            "passwd",
            "pat",
            "--password-stdin",
        ],
        &[
            ("Password: ", "first-try-1"),
            ("Password (again): ", "second-try-2"),
        ],
    );
    assert_eq!(status, 1, "{seen}");
    assert!(seen.contains("differ"), "{seen:?}");

    // A shared secret the same way.
    let (status, seen) = on_terminal(
        &[
            "--config",
            &config,
            "client",
            "add",
            "vpn",
            "--address",
            "10.3.0.0/16",
            "--secret-stdin",
        ],
        &[
            ("Shared secret: ", "typed-shared-secret-1"),
            ("Shared secret (again): ", "typed-shared-secret-1"),
        ],
    );
    assert_eq!(status, 0, "{seen}");
    assert!(!seen.contains("typed-shared-secret-1"), "echoed: {seen:?}");

    // The typed password is the one stored.
    env.enroll("pat", TOTP_SECRETS[3]);
    let server = env.start();
    let pat = decode_secret(TOTP_SECRETS[3]);
    assert_eq!(
        login(&server, "pat", &format!("{typed}{}", totp_now(&pat))),
        "Access-Accept"
    );
}

#[test]
fn readable_times_and_report_since_forms() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    assert_eq!(
        login(&server, "alice", &format!("{PASSWORD}{}", totp_now(&alice))),
        "Access-Accept"
    );
    env.wait_report_len(&["--user", "alice"], 1);

    let day = 86_400;
    let date = |unix: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix),
        )
        .to_string()[..10]
            .to_owned()
    };
    let now = unix_now();
    for (since, n) in [
        ("1h", 1),
        ("90s", 1),
        ("today", 1),
        ("yesterday", 1),
        (date(now).as_str(), 1),
        (date(now + day).as_str(), 0),
        ("2000-01-01", 1),
    ] {
        assert_eq!(env.report(&["--since", since]).len(), n, "--since {since}");
    }
    assert_eq!(env.report(&["--until", "1h"]).len(), 0, "--until 1h");
    let out = env.radmfa(&["report", "--since", "last tuesday"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("--since") && out.stderr.contains("not a time"),
        "{}",
        out.stderr
    );

    // CSV: an ISO 8601 `time` column, the same instant as time_ms.
    let csv = env.radmfa(&["report", "--csv"]);
    csv.assert_ok();
    let mut lines = csv.stdout.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.first(), Some(&"time"), "{header:?}");
    let ms_col = header
        .iter()
        .position(|h| *h == "time_ms")
        .expect("time_ms");
    let row: Vec<&str> = lines.next().expect("a row").split(',').collect();
    let iso = row[0];
    assert!(
        iso.len() == 24 && iso.ends_with('Z') && iso.as_bytes()[10] == b'T',
        "not ISO 8601 UTC with ms: {iso}"
    );
    let parsed = humantime::parse_rfc3339(iso)
        .expect("RFC 3339")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    assert_eq!(parsed.to_string(), row[ms_col], "{iso} vs {}", row[ms_col]);

    // user show: ISO 8601, not unix seconds.
    let show = env.radmfa(&["user", "show", "alice"]);
    show.assert_ok();
    let created = show
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("created"))
        .expect("created line")
        .trim();
    assert!(
        created.starts_with(&date(now)[..4]) && created.ends_with('Z'),
        "{created}"
    );
    let token = show
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("token"))
        .expect("token line");
    assert!(
        token.contains("totp") && token.contains("enrolled 20"),
        "{token}"
    );
    drop(server);
}

#[test]
fn output_into_a_closed_pipe_is_quiet() {
    let env = Env::new();
    let csv = env.path().join("many.csv");
    let mut text = String::from("name,display_name\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "user{i:05},Someone With A Long Display Name {i}\n"
        ));
    }
    std::fs::write(&csv, text).expect("csv");
    env.radmfa(&["user", "import", "--csv", csv.to_str().expect("utf-8")])
        .assert_ok();
    for args in ["user list", "user list --json"] {
        let script = format!(
            "{:?} --config {:?} {args} 2>{:?} | head -n 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            radmfa_bin(),
            env.config_path(),
            env.path().join("err.txt")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash");
        let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let err = std::fs::read_to_string(env.path().join("err.txt")).unwrap_or_default();
        assert!(!err.contains("panicked"), "`{args}` panicked: {err}");
        assert!(err.trim().is_empty(), "`{args}` wrote to stderr: {err}");
        assert_eq!(status, "141", "`{args}` | head: exit status");
    }
}

#[test]
fn first_serve_says_what_it_serves_and_the_next_step() {
    let env = Env::new();
    let server = env.start();
    let log = server.log();
    assert!(
        log.contains("serving 0 users for 1 RADIUS clients"),
        "{log}"
    );
    assert!(
        log.contains("no users yet") && log.contains("radmfa user add"),
        "{log}"
    );
    assert!(
        !log.contains("cluster key"),
        "a cluster-key line without a cluster: {log}"
    );
    drop(server);
    env.add_user("uma", PASSWORD);
    let server = env.start();
    let log = server.log();
    assert!(log.contains("serving 1 users"), "{log}");
    assert!(!log.contains("no users yet"), "{log}");
}

/// A cluster node for the peer checks: node `id` listening on `listen` with
/// `peers`, the certificates, cluster key and seed key of `shared`.
fn cluster_node(shared: &std::path::Path, id: u16, listen: u16, peers: &[(u16, u16)]) -> Env {
    let env = Env::new();
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let path = |name: &str| shared.join(name).display().to_string();
    let text = text
        .replace(
            "node_id = 7\n",
            &format!("node_id = {id}\nkey_file = {:?}\n", path("seed.key")),
        )
        .replace(
            "[challenge]\n",
            &format!(
                "[challenge]\ncluster_key_file = {:?}\n",
                path("certs/cluster.key")
            ),
        );
    let role = if id == 1 { "primary" } else { "replica" };
    let mut text = format!(
        "{text}\n[cluster]\nlisten = \"127.0.0.1:{listen}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\nrole = \"{role}\"\n",
        path("certs/ca.pem"),
        path(&format!("certs/node-{id}.pem")),
        path(&format!("certs/node-{id}.key")),
    );
    for (peer, port) in peers {
        text.push_str(&format!(
            "\n[[cluster.peer]]\nnode_id = {peer}\naddress = \"127.0.0.1:{port}\"\n"
        ));
    }
    std::fs::write(env.config_path(), text).expect("config");
    env
}

#[test]
fn status_and_check_config_connect_show_unreachable_peers() {
    let shared = tempfile::tempdir().expect("tempdir");
    let certs = shared.path().join("certs");
    run_radmfa(
        &[
            "cluster",
            "init",
            "--dir",
            certs.to_str().expect("utf-8"),
            "--nodes",
            "3",
        ],
        None,
        shared.path(),
    )
    .assert_ok();
    let (p1, p2, p3) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let primary = cluster_node(shared.path(), 1, p1, &[(2, p2), (3, p3)]);
    let replica = cluster_node(shared.path(), 2, p2, &[(1, p1)]);
    primary.add_user("ann", PASSWORD);

    let _b = replica.start();
    let a = primary.start();

    // Node 2 answers on the peer link, node 3 (never started) does not.
    let out = primary.radmfa(&["check-config", "--connect"]);
    out.assert_code(1);
    let ok2 = format!("ok      peer 2 127.0.0.1:{p2}");
    let failed3 = format!("FAILED  peer 3 127.0.0.1:{p3}");
    assert!(
        out.stdout.contains(&ok2) && out.stdout.contains(&failed3),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("1 of 2 connection checks failed"),
        "{}",
        out.stderr
    );
    // The same checks at start-up, in the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !a.log().contains("start-up check failed: peer 3") {
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // status: one aligned row per peer, the unreachable one included.
    // Cells of the peer row `id` by column, cut at the header's column starts.
    fn cells(table: &str, id: &str) -> Option<Vec<String>> {
        let lines: Vec<&str> = table.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("PEER"))?;
        let starts: Vec<usize> = [
            "PEER",
            "ADDRESS",
            "ROLE",
            "STATE",
            "ACKED SEQ",
            "LAG",
            "LAST SEEN",
        ]
        .iter()
        .map(|h| lines[header].find(h))
        .collect::<Option<_>>()?;
        let row = lines[header + 1..]
            .iter()
            .find(|l| l.split_whitespace().next() == Some(id))?;
        Some(
            starts
                .iter()
                .enumerate()
                .map(|(i, &from)| {
                    let to = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(row.len())
                        .min(row.len());
                    row.get(from.min(to)..to).unwrap_or("").trim().to_owned()
                })
                .collect(),
        )
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let table = loop {
        let out = primary.radmfa(&["status"]);
        out.assert_ok();
        if cells(&out.stdout, "2").is_some_and(|c| c[3] == "connected") {
            break out.stdout;
        }
        assert!(std::time::Instant::now() < deadline, "{}", out.stdout);
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let two = cells(&table, "2").expect("row 2");
    assert_eq!(two[1], format!("127.0.0.1:{p2}"), "{table}");
    assert_eq!(two[2], "replica", "{table}");
    let three = cells(&table, "3").unwrap_or_else(|| panic!("no row for peer 3:\n{table}"));
    assert_eq!(three[1], format!("127.0.0.1:{p3}"), "{table}");
    assert!(three[3].starts_with("unreachable"), "{table}");
    let replica_status = replica.radmfa(&["status"]);
    replica_status.assert_ok();
    assert!(
        replica_status
            .stdout
            .lines()
            .any(|l| l.starts_with('1') && l.contains("primary") && l.contains("connected")),
        "{}",
        replica_status.stdout
    );
}

/// An inline login of `user` (password [`PASSWORD`]) with the HOTP code
/// Python computes for `seed` at `counter`; returns the reply code name.
fn hotp_login(server: &Server, user: &str, seed: &[u8], counter: u64, digits: u32) -> String {
    let code = hotp_at(seed, counter, "sha1", digits);
    login(server, user, &format!("{PASSWORD}{code}"))
}

/// The RFC 6030 example documents (tests/data/pskc/README.md).
fn pskc_figure(n: u32) -> String {
    format!(
        "{}/tests/data/pskc/rfc6030-figure{n}.pskcxml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn migration_csv_import_every_field_dry_run_and_errors() {
    let env = Env::new();
    let csv = env.path().join("users.csv");
    let hotp_b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // "12345678901234567890"
    std::fs::write(
        &csv,
        format!(
            "Token_Type,name,password,secret,counter,digits,algorithm,language,pin,groups,enabled,method,phone,extension\n\
             hotp,mig1,{PASSWORD},{hotp_b32},5,8,sha1,nl-BE,,vpn;staff,yes,hotp,+31201234567,123#\n\
             ,mig2,{PASSWORD},,,,,de,4711,,no,sms,+4930123456,\n"
        ),
    )
    .expect("write csv");
    let path = csv.to_str().expect("utf-8");
    // Dry run: says what would change, writes nothing, shows no secret.
    let dry = env.radmfa(&["user", "import", "--csv", path, "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("line 2: add mig1") && dry.stdout.contains("line 3: add mig2"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("language=nl-BE"), "{}", dry.stdout);
    assert!(
        !dry.stdout.contains("4711") && !dry.stdout.contains(hotp_b32),
        "{}",
        dry.stdout
    );
    assert!(
        env.radmfa(&["user", "show", "mig1"]).code() != 0,
        "dry run wrote"
    );
    env.radmfa(&["user", "import", "--csv", path]).assert_ok();
    let shown = env.radmfa(&["user", "show", "mig1", "--json"]).json();
    assert_eq!(shown["extension"], "123#", "{shown}");
    assert_eq!(shown["method"], "hotp", "{shown}");
    assert!(shown.to_string().contains("staff"), "{shown}");
    let mig2 = env.radmfa(&["user", "show", "mig2", "--json"]).json();
    assert_eq!(mig2["enabled"], false, "{mig2}");
    assert_eq!(mig2["pin_mode"], "pin", "{mig2}");
    assert_eq!(mig2["pin_change_required"], true, "{mig2}");

    // A bad value: the file is refused whole, naming file, line and column.
    let bad = env.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "name,secret,digits,language\nok1,{hotp_b32},6,fr\nbad1,{hotp_b32},9,en\nbad2,,,xx\n"
        ),
    )
    .expect("write csv");
    let bad_path = bad.to_str().expect("utf-8");
    let out = env.radmfa(&["user", "import", "--csv", bad_path]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains(&format!(
            "{bad_path}:3: column \"digits\": 9 is not 6, 7 or 8"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("{bad_path}:4: column \"language\"")),
        "{}",
        out.stderr
    );
    assert!(
        env.radmfa(&["user", "show", "ok1"]).code() != 0,
        "half imported"
    );
    // --continue-on-error imports the good row and lists the bad ones.
    let out = env.radmfa(&["user", "import", "--csv", bad_path, "--continue-on-error"]);
    out.assert_ok();
    assert!(
        out.stderr.contains(":3: column \"digits\""),
        "{}",
        out.stderr
    );
    env.radmfa(&["user", "show", "ok1"]).assert_ok();
    // Unknown column: refused, named.
    std::fs::write(&bad, "name,colour\nx,red\n").expect("write csv");
    let out = env.radmfa(&["user", "import", "--csv", bad_path]);
    assert!(
        out.code() != 0 && out.stderr.contains(":1: column \"colour\": unknown column"),
        "{}",
        out.stderr
    );

    // The imported HOTP token (counter 5, 8 digits) signs in with the code
    // Python computes for counter 5; counter 4 (before the imported one) fails.
    let seed = b"12345678901234567890";
    let server = env.start();
    assert_eq!(hotp_login(&server, "mig1", seed, 4, 8), "Access-Reject");
    assert_eq!(hotp_login(&server, "mig1", seed, 5, 8), "Access-Accept");
}

#[test]
fn pskc_import_rfc_6030_examples_assign_login_revoke() {
    let env = Env::new();
    env.add_user("jsmith", PASSWORD);
    // Figure 7 (PBKDF2): a wrong password imports nothing.
    let out = env.radmfa_stdin(
        &["token", "import-pskc", &pskc_figure(7), "--password-stdin"],
        Some("qwertz\n"),
    );
    assert!(
        out.code() != 0
            && out.stderr.contains("wrong password")
            && out.stderr.contains("nothing imported"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    env.radmfa_stdin(
        &["token", "import-pskc", &pskc_figure(7), "--password-stdin"],
        Some("qwerty\n"),
    )
    .assert_ok();
    // Figure 6 (pre-shared key): its serial is 987654321 too, so it is
    // refused as already imported; after revoking it imports.
    let psk = env.path().join("psk.hex");
    std::fs::write(&psk, "12345678901234567890123456789012\n").expect("psk");
    let psk_args = [
        "token",
        "import-pskc",
        &pskc_figure(6),
        "--psk-file",
        psk.to_str().expect("utf-8"),
    ];
    let out = env.radmfa(&psk_args);
    assert!(
        out.code() != 0 && out.stderr.contains("already imported"),
        "{}",
        out.stderr
    );
    env.radmfa(&["token", "revoke", "987654321"]).assert_ok();
    env.radmfa(&psk_args).assert_ok();
    // Figure 10: four tokens, one device with two keys; figure 3 names
    // UID=jsmith and is assigned at import.
    let dry = env.radmfa(&["token", "import-pskc", &pskc_figure(10), "--dry-run"]);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("9999999/4") && dry.stdout.contains("would import 4 tokens"),
        "{}",
        dry.stdout
    );
    env.radmfa(&["token", "import-pskc", &pskc_figure(10)])
        .assert_ok();
    let list = env
        .radmfa(&["token", "list", "--unassigned", "--json"])
        .json();
    assert_eq!(list.as_array().map(Vec::len), Some(5), "{list}");
    env.radmfa(&["token", "revoke", "987654321"]).assert_ok();
    let fig3 = env.radmfa(&["token", "import-pskc", &pskc_figure(3)]);
    fig3.assert_ok();
    assert!(
        fig3.stdout.contains("assigned to jsmith"),
        "{}",
        fig3.stdout
    );
    // The RFC's secret with counter 0, 8 digits: Python's code signs in.
    let seed = b"12345678901234567890";
    let server = env.start();
    assert_eq!(hotp_login(&server, "jsmith", seed, 0, 8), "Access-Accept");
    // Assign another by serial through the running server, then revoke it.
    env.add_user("ann", PASSWORD);
    env.radmfa(&["token", "assign", "654321", "ann"])
        .assert_ok();
    assert_eq!(hotp_login(&server, "ann", seed, 0, 8), "Access-Accept");
    env.radmfa(&["token", "revoke", "654321"]).assert_ok();
    assert_eq!(hotp_login(&server, "ann", seed, 1, 8), "Access-Reject");
}

/// A file written by an independent implementation (python-pskc),
/// PBKDF2-encrypted: every token imports with its seed (checked by a login
/// with a code Python computes).
#[test]
fn pskc_import_of_a_python_pskc_file() {
    if !require_python_module("pskc", "python-pskc==1.4") {
        return;
    }
    let env = Env::new();
    let n: usize = std::env::var("RADMFA_PSKC_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let file = env.path().join("gen.pskcxml");
    let script = format!(
        "import pskc, sys\n\
         p = pskc.PSKC()\n\
         for i in range({n}):\n\
         \x20   k = p.add_key(serial='GEN%06d' % i, secret=(b'%020d' % i), algorithm='urn:ietf:params:xml:ns:keyprov:pskc:hotp', response_length=6, counter=i % 7)\n\
         p.encryption.setup_pbkdf2('s3cret-pass', iterations=2000)\n\
         p.write(sys.argv[1])\n"
    );
    let py = std::process::Command::new("python3")
        .args(["-c", &script, file.to_str().expect("utf-8")])
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let out = env.radmfa_stdin(
        &[
            "token",
            "import-pskc",
            file.to_str().expect("utf-8"),
            "--password-stdin",
        ],
        Some("s3cret-pass\n"),
    );
    out.assert_ok();
    assert!(
        out.stdout.contains(&format!("imported {n} tokens")),
        "{}",
        out.stdout
    );
    env.add_user("gen", PASSWORD);
    let last = n - 1;
    env.radmfa(&["token", "assign", &format!("GEN{last:06}"), "gen"])
        .assert_ok();
    let seed = format!("{last:020}");
    let server = env.start();
    let counter = (last % 7) as u64;
    assert_eq!(
        hotp_login(&server, "gen", seed.as_bytes(), counter, 6),
        "Access-Accept"
    );
}
