//! Second-factor methods end to end beyond the basic SMS flow: PIN modes
//! (TOTP inline and challenge, one-way SMS, call), app push, one-way SMS
//! through pyrad, expired and exhausted SMS codes, and `fail_mode = "open"`.
//! The gateway simulator runs as a separate HTTPS process.

mod common;

use common::sim::{code_in, env_with_gateway, Sim};
use common::{assert_signed, code_name, expect, login, py_attr, totp_now, Env, PyRequest, SECRET};

fn add_user(env: &Env, name: &str, args: &[&str]) {
    let mut all = vec!["user", "add", name, "--password-stdin"];
    all.extend_from_slice(args);
    env.radmfa_stdin(&all, Some("correct-horse\n")).assert_ok();
}

/// A PIN the user chose (no change asked for at the next sign-in: these
/// tests are about PIN mode itself; the forced change is api_e2e's).
fn set_pin(env: &Env, name: &str, pin: &str) {
    env.radmfa_stdin(
        &["user", "pin", name, "--pin-stdin", "--no-change"],
        Some(&format!("{pin}\n")),
    )
    .assert_ok();
}

/// The last audit reason recorded for `user` once `n` records exist.
fn reasons(env: &Env, user: &str, n: usize) -> Vec<String> {
    env.wait_report_len(&["--user", user], n)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn pin_mode_with_totp_inline_and_challenge() {
    let env = Env::new();
    env.add_totp_user("pia", common::TOTP_SECRETS[1]);
    set_pin(&env, "pia", "4711");
    let shown = env.radmfa(&["user", "show", "pia", "--json"]).json();
    assert_eq!(shown["pin_mode"], "pin");
    assert_eq!(shown["pin_change_required"], false, "--no-change: {shown}");
    assert!(!shown.to_string().contains("4711"), "{shown}");
    let secret = common::decode_secret(common::TOTP_SECRETS[1]);
    let server = env.start();
    let addr = server.addr_string();

    // Inline without the PIN: the code is not accepted (the PIN part is wrong).
    let code = totp_now(&secret);
    let r = login(&addr, "pia", &format!("correct-horse{code}"), None);
    expect(&r, "Access-Reject");

    // Challenge: the prompt asks for the PIN first; PIN + code signs in.
    let r = login(&addr, "pia", "correct-horse", None);
    expect(&r, "Access-Challenge");
    assert!(
        r.text("Reply-Message").unwrap_or_default().contains("PIN"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let r = login(&addr, "pia", &format!("4711{code}"), Some(&state));
    expect(&r, "Access-Accept");

    // A wrong PIN with a fresh challenge is refused without using up the code.
    let r = login(&addr, "pia", "correct-horse", None);
    let state = r.attr("State").expect("State").to_string();
    let next = common::totp_step(&secret, 1);
    let r = login(&addr, "pia", &format!("4712{next}"), Some(&state));
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message").unwrap_or_default().contains("PIN"),
        "{}",
        r.output
    );
    // Inline: password, PIN, then the (next, unused) code.
    let r = login(&addr, "pia", &format!("correct-horse4711{next}"), None);
    expect(&r, "Access-Accept");

    let got = reasons(&env, "pia", 6);
    assert!(got.iter().any(|r| r == "wrong_pin"), "{got:?}");

    // Back to standard mode.
    env.radmfa(&["user", "pin", "pia", "--clear"]).assert_ok();
    let shown = env.radmfa(&["user", "show", "pia", "--json"]).json();
    assert_eq!(shown["pin_mode"], "standard");
    // Bad PINs are refused with a reason.
    let out = env.radmfa_stdin(&["user", "pin", "pia", "--pin-stdin"], Some("12ab\n"));
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("4 to 10 digits"), "{}", out.stderr);
}

#[test]
fn pin_mode_with_one_way_sms_and_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    add_user(
        &env,
        "sally",
        &["--method", "sms", "--phone", "+15550103001"],
    );
    set_pin(&env, "sally", "2468");
    add_user(
        &env,
        "carl",
        &["--method", "call", "--phone", "+15550103002"],
    );
    set_pin(&env, "carl", "97531");
    let server = env.start();
    let addr = server.addr_string();

    // One-way SMS: the answer is PIN + code.
    let r = login(&addr, "sally", "correct-horse", None);
    expect(&r, "Access-Challenge");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("PIN followed by"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let code = code_in(&sim.messages("+15550103001")[0]);
    // The code alone (PIN missing) is a wrong answer and re-prompts.
    let r = login(&addr, "sally", &code, Some(&state));
    expect(&r, "Access-Challenge");
    let r = login(&addr, "sally", &format!("2468{code}"), Some(&state));
    expect(&r, "Access-Accept");

    // Call in PIN mode: the gateway receives the PIN; the user types it.
    sim.rule("+15550103002", "enter:97531");
    let r = login(&addr, "carl", "correct-horse", None);
    expect(&r, "Access-Accept");
    let recs = sim.records("+15550103002");
    assert_eq!(recs[0]["request"]["pin_mode"], "pin", "{recs:?}");
    assert_eq!(recs[0]["request"]["pin"], "***", "the simulator hides it");
    sim.rule("+15550103002", "enter:11111");
    let r = login(&addr, "carl", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("PIN entered was not correct"),
        "{}",
        r.output
    );
    let got = reasons(&env, "carl", 2);
    assert!(got.iter().any(|r| r == "denied_or_wrong_pin"), "{got:?}");
    // The PIN never reaches radmfa's log.
    let log = server.log();
    assert!(!log.contains("97531") && !log.contains("2468"), "{log}");
}

#[test]
fn push_approve_deny_timeout_and_no_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    // A 5 s verdict timeout for the "never answers" case.
    let cfg = std::fs::read_to_string(env.config_path()).expect("config");
    std::fs::write(
        env.config_path(),
        cfg.replace("retries = 0\n", "retries = 0\nverdict_timeout_secs = 5\n"),
    )
    .expect("config");
    add_user(
        &env,
        "pat",
        &["--method", "push", "--device-token", "dev-pat-01"],
    );
    add_user(
        &env,
        "quinn",
        &["--method", "push", "--device-token", "dev-quinn-02"],
    );
    add_user(
        &env,
        "rita",
        &["--method", "push", "--device-token", "dev-rita-03"],
    );
    add_user(&env, "nodev", &["--method", "push"]);
    add_user(
        &env,
        "gina",
        &["--method", "sms_two_way", "--phone", "+15550106001"],
    );
    add_user(
        &env,
        "hugo",
        &["--method", "call", "--phone", "+15550106002"],
    );
    sim.rule("+15550106002", "timeout");
    sim.rule("dev-quinn-02", "deny");
    sim.rule("dev-rita-03", "never");
    let server = env.start();
    let addr = server.addr_string();

    expect(&login(&addr, "pat", "correct-horse", None), "Access-Accept");
    // Two-way SMS approved; a call the gateway gives up on is a timeout.
    expect(
        &login(&addr, "gina", "correct-horse", None),
        "Access-Accept",
    );
    let r = login(&addr, "hugo", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("in time"),
        "{}",
        r.output
    );
    let recs = sim.records("dev-pat-01");
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["request"]["mode"], "push");
    assert_eq!(recs[0]["request"]["device_token"], "dev-pat-01");

    let r = login(&addr, "quinn", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("denied"),
        "{}",
        r.output
    );

    let r = common::radclient_opts(
        &addr,
        "auth",
        SECRET,
        "User-Name = \"rita\"\nUser-Password = \"correct-horse\"\nMessage-Authenticator = 0x00\n",
        15,
    );
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("in time"),
        "{}",
        r.output
    );

    let r = login(&addr, "nodev", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("No mobile app"),
        "{}",
        r.output
    );
    // A wrong password sends no push.
    expect(&login(&addr, "pat", "nope", None), "Access-Reject");
    assert_eq!(sim.verifications("dev-pat-01"), 1);

    // The device token can be changed later.
    env.radmfa(&["user", "set", "nodev", "--device-token", "dev-new-04"])
        .assert_ok();
    expect(
        &login(&addr, "nodev", "correct-horse", None),
        "Access-Accept",
    );
    assert_eq!(reasons(&env, "rita", 1), vec!["no_answer".to_string()]);
}

#[test]
fn one_way_sms_through_pyrad_with_expiry_and_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    let cfg = std::fs::read_to_string(env.config_path()).expect("config");
    std::fs::write(
        env.config_path(),
        format!("{cfg}\n[sms]\nlifetime_secs = 10\nmax_attempts = 2\n"),
    )
    .expect("config");
    add_user(
        &env,
        "yara",
        &["--method", "sms", "--phone", "+15550104001"],
    );
    add_user(
        &env,
        "yves",
        &["--method", "sms", "--phone", "+15550104002"],
    );
    let server = env.start();

    // The challenge for `user`; `n` SMS were sent to `phone` so far. Returns
    // the State, the code and the Session-Timeout (seconds to expiry).
    let first = |user: &str, phone: &str, n: usize| -> (String, String, u64) {
        let r = PyRequest::access(&server)
            .login(user, "correct-horse")
            .send()
            .reply();
        assert_eq!(code_name(&r), "Access-Challenge", "{r}");
        assert_signed(&r);
        let (state, _) = py_attr(&r, 24).expect("State");
        let (timeout, _) = py_attr(&r, 27).expect("Session-Timeout");
        let timeout = u64::from_str_radix(&timeout, 16).expect("Session-Timeout hex");
        let sent = sim.messages(phone);
        assert_eq!(sent.len(), n, "{sent:?}");
        (state, code_in(&sent[n - 1]), timeout)
    };
    let answer = |user: &str, state: &str, code: &str| {
        let mut q = PyRequest::access(&server).login(user, code);
        q.state_hex = Some(state.to_string());
        q.send().reply()
    };

    // yves's code is left to expire while yara's cases run; the server's
    // Session-Timeout says when (no fixed sleep).
    let started = std::time::Instant::now();
    let (expiring_state, expiring_code, timeout) = first("yves", "+15550104002", 1);
    assert_eq!(timeout, 10, "Session-Timeout is sms.lifetime_secs");

    // The right code signs in.
    let (state, code, _) = first("yara", "+15550104001", 1);
    let r = answer("yara", &state, &code);
    assert_eq!(code_name(&r), "Access-Accept", "{r}");
    assert_signed(&r);
    // Reused State: rejected.
    assert_eq!(code_name(&answer("yara", &state, &code)), "Access-Reject");

    // Two wrong codes use up the attempts; the right one is then too late.
    let (state, code, _) = first("yara", "+15550104001", 2);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        code_name(&answer("yara", &state, wrong)),
        "Access-Challenge"
    );
    assert_eq!(code_name(&answer("yara", &state, wrong)), "Access-Reject");
    assert_eq!(code_name(&answer("yara", &state, &code)), "Access-Reject");

    // An expired code is rejected: answered once the lifetime the server
    // announced has passed (plus one second: it counts whole seconds).
    let expiry = std::time::Duration::from_secs(timeout + 1);
    std::thread::sleep(expiry.saturating_sub(started.elapsed()));
    let r = answer("yves", &expiring_state, &expiring_code);
    assert_eq!(code_name(&r), "Access-Reject", "{r}");
    let (_, text) = py_attr(&r, 18).expect("Reply-Message");
    assert!(text.unwrap_or_default().contains("expired"), "{r}");
}

#[test]
fn fail_open_accepts_on_the_first_factor_when_the_gateway_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "fail_mode = \"open\"");
    add_user(
        &env,
        "olga",
        &["--method", "sms", "--phone", "+15550105001"],
    );
    let server = env.start();
    let addr = server.addr_string();
    sim.stop();
    expect(&login(&addr, "olga", "wrong", None), "Access-Reject");
    expect(
        &login(&addr, "olga", "correct-horse", None),
        "Access-Accept",
    );
    let got = reasons(&env, "olga", 2);
    assert!(
        got.iter().any(|r| r == "gateway_unreachable_fail_open"),
        "{got:?}"
    );
}

#[test]
fn totp_sha256_8_digits_60s_and_hotp_sign_in() {
    let env = Env::new();
    add_user(&env, "tess", &[]);
    env.radmfa(&[
        "token",
        "enroll",
        "tess",
        "--secret",
        common::TOTP_SECRETS[2],
        "--algorithm",
        "sha256",
        "--digits",
        "8",
        "--period",
        "60",
        "--no-qr",
    ])
    .assert_ok();
    add_user(&env, "hans", &["--method", "hotp"]);
    env.radmfa(&[
        "token",
        "enroll",
        "hans",
        "--secret",
        common::TOTP_SECRETS[3],
        "--type",
        "hotp",
        "--no-qr",
    ])
    .assert_ok();
    let tess = common::decode_secret(common::TOTP_SECRETS[2]);
    let hans = common::decode_secret(common::TOTP_SECRETS[3]);
    let server = env.start();
    let addr = server.addr_string();
    let pw = |code: &str| format!("correct-horse{code}");

    // TOTP, SHA-256, 8 digits, 60 s steps (codes from Python's hmac): the
    // SHA-1 code of the same step is refused, the SHA-256 one accepted once.
    let now = common::unix_now();
    let sha1 = common::totp_with(&tess, now, "sha1", 8, 60);
    let sha256 = common::totp_with(&tess, now, "sha256", 8, 60);
    assert_ne!(sha1, sha256);
    expect(&login(&addr, "tess", &pw(&sha1), None), "Access-Reject");
    expect(&login(&addr, "tess", &pw(&sha256), None), "Access-Accept");
    expect(&login(&addr, "tess", &pw(&sha256), None), "Access-Reject");
    assert_eq!(
        reasons(&env, "tess", 3),
        ["otp_mismatch", "ok", "otp_replayed"],
        "{}",
        server.log()
    );

    // HOTP (RFC 4226): counter 0 signs in once; a counter ahead within the
    // look-ahead signs in; one behind the last used is refused.
    let hotp = |c: u64| common::hotp_at(&hans, c, "sha1", 6);
    expect(&login(&addr, "hans", &pw(&hotp(0)), None), "Access-Accept");
    expect(&login(&addr, "hans", &pw(&hotp(0)), None), "Access-Reject");
    expect(&login(&addr, "hans", &pw(&hotp(4)), None), "Access-Accept");
    expect(&login(&addr, "hans", &pw(&hotp(2)), None), "Access-Reject");
    expect(&login(&addr, "hans", &pw(&hotp(5)), None), "Access-Accept");
    let got = reasons(&env, "hans", 5);
    assert_eq!(got[0], "ok", "{got:?}");
    assert_eq!(got[2], "ok", "{got:?}");
    assert_eq!(got[4], "ok", "{got:?}");
    assert_ne!(got[1], "ok", "{got:?}");
    assert_ne!(got[3], "ok", "{got:?}");
}
