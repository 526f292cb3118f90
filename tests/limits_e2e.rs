//! Rate limits and lockout end to end (`[limits]`, crates/server/src/limits.rs):
//! ten wrong TOTP codes lock a user, the right code is then refused with
//! `locked_out` until `radmfa user unlock`; the lock survives a restart; the
//! per-user limit rejects with `rate_limited`; the per-source limit drops
//! datagrams (counted, no reply); a fraud report from the gateway simulator
//! locks the user until an admin unlocks. All through radclient.

mod common;

use common::sim::{env_with_gateway, Sim};
use common::{
    auth_input, expect, login, radclient_opts, totp_now, wrong_code, ConfigOptions, Env, SECRET,
};

/// An environment whose config ends with `limits` (a `[limits]` section).
fn env_with_limits(limits: &str) -> Env {
    Env::with_options(ConfigOptions {
        extra: limits.to_string(),
        ..ConfigOptions::default()
    })
}

/// The audit reasons of `user`, oldest first, once `n` records exist.
fn reasons(env: &Env, user: &str, n: usize) -> Vec<String> {
    env.wait_report_len(&["--user", user], n)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Checks the last audit reason of `user`, once `n` records exist.
fn assert_last_reason(env: &Env, user: &str, n: usize, want: &str) {
    let got = reasons(env, user, n);
    assert_eq!(got.last().map(String::as_str), Some(want), "{got:?}");
}

/// A sign-in of `user` with the password and the current code of `secret`.
fn login_with_code(addr: &str, user: &str, secret: &[u8]) -> common::RadReply {
    login(
        addr,
        user,
        &format!("correct-horse{}", totp_now(secret)),
        None,
    )
}

/// Stops `server` and checks that it exited cleanly.
fn stop(server: common::Server) {
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

fn message(r: &common::RadReply) -> String {
    r.text("Reply-Message").unwrap_or_default()
}

#[test]
fn ten_wrong_codes_lock_until_an_admin_unlocks() {
    let env = Env::new();
    let secret = env.add_totp_user("lou", common::TOTP_SECRETS[0]);
    env.add_totp_user("other", common::TOTP_SECRETS[1]);
    let server = env.start();
    let addr = server.addr_string();

    let wrong = wrong_code(&secret);
    for i in 1..=10 {
        let r = login(&addr, "lou", &format!("correct-horse{wrong}"), None);
        expect(&r, "Access-Reject");
        assert_eq!(
            message(&r).contains("locked"),
            i == 10,
            "attempt {i}: {}",
            r.output
        );
    }
    // The right code (not consumed: no code is checked for a locked user).
    let r = login_with_code(&addr, "lou", &secret);
    expect(&r, "Access-Reject");
    assert!(message(&r).contains("locked"), "{}", r.output);
    // A challenge login is refused before the password is checked.
    let r = login(&addr, "lou", "correct-horse", None);
    expect(&r, "Access-Reject");

    let got = reasons(&env, "lou", 12);
    assert_eq!(got[..9], vec!["otp_mismatch".to_string(); 9][..], "{got:?}");
    assert_eq!(got[9], "otp_mismatch+locked_out", "{got:?}");
    assert_eq!(got[10..], ["locked_out", "locked_out"], "{got:?}");
    let shown = env.radmfa(&["user", "show", "lou", "--json"]).json();
    assert_eq!(shown["lock_reason"], "too_many_failures", "{shown}");
    let until = shown["locked_until"].as_u64().expect("locked_until");
    assert!(until > common::unix_now() + 1700, "{shown}");
    env.wait_counter("lockouts", 1);
    env.wait_counter("locked_rejects", 2);
    // Other users are not affected.
    let other = common::decode_secret(common::TOTP_SECRETS[1]);
    expect(&login_with_code(&addr, "other", &other), "Access-Accept");

    let out = env.radmfa(&["user", "unlock", "lou"]);
    out.assert_ok();
    assert!(out.stdout.contains("unlocked user lou"), "{}", out.stdout);
    let shown = env.radmfa(&["user", "show", "lou", "--json"]).json();
    assert_eq!(shown["locked_until"], 0, "{shown}");
    assert_eq!(shown["lock_reason"], "", "{shown}");
    let r = login_with_code(&addr, "lou", &secret);
    expect(&r, "Access-Accept");
    // Counting starts afresh: one more wrong code does not lock again.
    let r = login(&addr, "lou", &format!("correct-horse{wrong}"), None);
    expect(&r, "Access-Reject");
    assert!(!message(&r).contains("locked"), "{}", r.output);
}

#[test]
fn lock_survives_a_restart() {
    let env = env_with_limits("[limits]\nlockout_failures = 3\nlockout_secs = 0\n");
    let secret = env.add_totp_user("rex", common::TOTP_SECRETS[2]);
    let server = env.start();
    let addr = server.addr_string();
    let wrong = wrong_code(&secret);
    for _ in 0..3 {
        expect(
            &login(&addr, "rex", &format!("correct-horse{wrong}"), None),
            "Access-Reject",
        );
    }
    stop(server);

    // Offline, the record shows the lock (lockout_secs = 0: until unlocked).
    let shown = env.radmfa(&["user", "show", "rex", "--json"]).json();
    assert_eq!(shown["locked_until"], u64::MAX, "{shown}");

    let server = env.start();
    let addr = server.addr_string();
    let r = login_with_code(&addr, "rex", &secret);
    expect(&r, "Access-Reject");
    assert_last_reason(&env, "rex", 4, "locked_out");
    stop(server);

    // Unlocked with the server stopped (straight into the store).
    env.radmfa(&["user", "unlock", "rex"]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    let r = login_with_code(&addr, "rex", &secret);
    expect(&r, "Access-Accept");
}

#[test]
fn per_user_rate_limit_rejects_with_rate_limited() {
    let env = env_with_limits("[limits]\nuser_per_minute = 1\nuser_burst = 3\n");
    env.add_totp_user("ria", common::TOTP_SECRETS[3]);
    env.add_totp_user("sam", common::TOTP_SECRETS[0]);
    let server = env.start();
    let addr = server.addr_string();
    for _ in 0..3 {
        let r = login(&addr, "ria", "correct-horse", None);
        expect(&r, "Access-Challenge");
    }
    let r = login(&addr, "ria", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(
        message(&r).contains("Too many sign-in attempts"),
        "{}",
        r.output
    );
    assert_last_reason(&env, "ria", 4, "rate_limited");
    env.wait_counter("rate_limited_user", 1);
    // Another user has a budget of their own.
    expect(
        &login(&addr, "sam", "correct-horse", None),
        "Access-Challenge",
    );
    assert_eq!(env.counter("lockouts"), 0);
}

#[test]
fn per_source_limit_drops_without_reply() {
    let env = env_with_limits("[limits]\nsource_rps = 1\nsource_burst = 2\n");
    env.add_user("tom", "correct-horse");
    let server = env.start();
    let addr = server.addr_string();
    // Eight requests at once from 127.0.0.1: the burst (2) plus at most one
    // per second get answers, the rest are dropped.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                radclient_opts(&addr, "auth", SECRET, &auth_input("tom", "wrong-pw"), 2)
            })
        })
        .collect();
    let replies: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("radclient thread"))
        .collect();
    let unanswered = replies.iter().filter(|r| r.code.is_none()).count();
    let answered: Vec<_> = replies.iter().filter(|r| r.code.is_some()).collect();
    assert!(unanswered >= 1, "nothing was dropped: {replies:#?}");
    assert!(
        !answered.is_empty(),
        "the burst must be answered: {replies:#?}"
    );
    for r in &answered {
        expect(r, "Access-Reject");
    }
    let dropped = env.counter("rate_limited_source");
    assert!(
        dropped >= unanswered as u64,
        "{dropped} counted, {unanswered} unanswered"
    );
    assert_eq!(env.counter("rate_limited_client"), 0);
    // Dropped datagrams leave no audit record.
    assert_eq!(env.report(&["--user", "tom"]).len(), answered.len());
    // The log says why, once (not once per dropped datagram), with the remedy.
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("over the per-source-address rate limit"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("client localhost (127.0.0.1): request dropped")
            && lines[0].contains("[limits] source_rps / source_burst"),
        "{}",
        lines[0]
    );
}

#[test]
fn fraud_report_locks_until_an_admin_unlocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    let phone = "+15550107001";
    env.radmfa_stdin(
        &[
            "user",
            "add",
            "fay",
            "--password-stdin",
            "--method",
            "call",
            "--phone",
            phone,
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
    sim.rule(phone, "fraud");
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "fay", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(message(&r).contains("not yours"), "{}", r.output);
    assert_eq!(sim.verifications(phone), 1);
    let shown = env.radmfa(&["user", "show", "fay", "--json"]).json();
    assert_eq!(shown["lock_reason"], "fraud_reported", "{shown}");
    assert_eq!(shown["locked_until"], u64::MAX, "{shown}");

    // Locked: no call is placed even though the phone would approve now.
    sim.rule(phone, "approve");
    let r = login(&addr, "fay", "correct-horse", None);
    expect(&r, "Access-Reject");
    assert!(message(&r).contains("locked"), "{}", r.output);
    assert_eq!(sim.verifications(phone), 1, "no call for a locked user");
    let got = reasons(&env, "fay", 2);
    assert_eq!(got, ["fraud_reported+locked_out", "locked_out"], "{got:?}");
    env.wait_counter("lockouts", 1);

    env.radmfa(&["user", "unlock", "fay"]).assert_ok();
    expect(&login(&addr, "fay", "correct-horse", None), "Access-Accept");
    assert_eq!(sim.verifications(phone), 2);
}

/// One way a second factor can fail, driven through radclient.
enum Failing<'a> {
    /// Inline `password + code` with a wrong code.
    Inline(&'a str),
    /// One-way SMS: the challenge is answered with a wrong code.
    SmsWrongCode(&'static str),
    /// Out of band (call, two-way SMS, push): the simulator denies.
    Denied(&'static str),
}

/// Every method that can fail a second factor counts towards lockout
/// (`lockout_failures = 2`): TOTP and HOTP (wrong code), a wrong PIN, one-way
/// SMS (wrong code), a call denied or answered with a wrong PIN, and a
/// two-way SMS and a push denied on the phone. The failure that reaches the limit locks; then the right answer is
/// refused with `locked_out` (no SMS sent, no call placed).
#[test]
fn every_second_factor_method_counts_towards_lockout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    let cfg = std::fs::read_to_string(env.config_path()).expect("config");
    std::fs::write(
        env.config_path(),
        format!("{cfg}\n[limits]\nlockout_failures = 2\nlockout_secs = 0\nuser_per_minute = 0\n"),
    )
    .expect("config");
    let add = |name: &str, args: &[&str]| {
        let mut all = vec!["user", "add", name, "--password-stdin"];
        all.extend_from_slice(args);
        env.radmfa_stdin(&all, Some("correct-horse\n")).assert_ok();
    };
    let enroll = |name: &str, b32: &str, kind: &str| {
        env.radmfa(&[
            "token", "enroll", name, "--secret", b32, "--type", kind, "--no-qr",
        ])
        .assert_ok();
    };
    add("ltotp", &[]);
    enroll("ltotp", common::TOTP_SECRETS[0], "totp");
    add("lhotp", &["--method", "hotp"]);
    enroll("lhotp", common::TOTP_SECRETS[1], "hotp");
    add("lpin", &[]);
    enroll("lpin", common::TOTP_SECRETS[2], "totp");
    env.radmfa_stdin(
        &["user", "pin", "lpin", "--pin-stdin", "--no-change"],
        Some("4711\n"),
    )
    .assert_ok();
    add("lsms", &["--method", "sms", "--phone", "+15550108001"]);
    add("lcall", &["--method", "call", "--phone", "+15550108002"]);
    // A call in PIN mode: a denial may be a wrong PIN typed on the phone.
    env.radmfa_stdin(
        &["user", "pin", "lcall", "--pin-stdin", "--no-change"],
        Some("97531\n"),
    )
    .assert_ok();
    add(
        "ltwo",
        &["--method", "sms_two_way", "--phone", "+15550108003"],
    );
    add(
        "lpush",
        &["--method", "push", "--device-token", "dev-lpush-01"],
    );
    for key in ["+15550108002", "+15550108003", "dev-lpush-01"] {
        sim.rule(key, "deny");
    }
    let server = env.start();
    let addr = server.addr_string();

    let totp = common::decode_secret(common::TOTP_SECRETS[0]);
    let hotp = common::decode_secret(common::TOTP_SECRETS[1]);
    let pin = common::decode_secret(common::TOTP_SECRETS[2]);
    // A 6-digit code no HOTP counter the server may look at produces.
    let near: Vec<String> = (0..=12)
        .map(|c| common::hotp_at(&hotp, c, "sha1", 6))
        .collect();
    let wrong_hotp = (0..10u8)
        .map(|d| char::from(b'0' + d).to_string().repeat(6))
        .find(|c| !near.contains(c))
        .expect("a code outside the look-ahead");
    let wrong_totp = format!("correct-horse{}", wrong_code(&totp));
    let wrong_hotp = format!("correct-horse{wrong_hotp}");
    let wrong_pin = format!("correct-horse1234{}", totp_now(&pin));
    let cases = [
        ("ltotp", Failing::Inline(&wrong_totp), "otp_mismatch"),
        ("lhotp", Failing::Inline(&wrong_hotp), "otp_mismatch"),
        ("lpin", Failing::Inline(&wrong_pin), "wrong_pin"),
        (
            "lsms",
            Failing::SmsWrongCode("+15550108001"),
            "sms_code_wrong_retry",
        ),
        (
            "lcall",
            Failing::Denied("+15550108002"),
            "denied_or_wrong_pin",
        ),
        ("ltwo", Failing::Denied("+15550108003"), "denied_by_user"),
        ("lpush", Failing::Denied("dev-lpush-01"), "denied_by_user"),
    ];
    for (user, how, reason) in &cases {
        for attempt in 1..=2 {
            let r = match how {
                Failing::Inline(pw) => login(&addr, user, pw, None),
                Failing::SmsWrongCode(phone) => {
                    let r = login(&addr, user, "correct-horse", None);
                    expect(&r, "Access-Challenge");
                    let state = r.attr("State").expect("State").to_string();
                    let sent = sim.messages(phone);
                    let code = common::sim::code_in(sent.last().expect("an SMS"));
                    let wrong = if code == "000000" { "111111" } else { "000000" };
                    login(&addr, user, wrong, Some(&state))
                }
                Failing::Denied(key) => {
                    let r = login(&addr, user, "correct-horse", None);
                    assert_eq!(sim.verifications(key), attempt, "{user}");
                    r
                }
            };
            assert_ne!(
                r.code.as_deref(),
                Some("Access-Accept"),
                "{user}: {}",
                r.output
            );
            assert_eq!(
                message(&r).contains("locked"),
                attempt == 2,
                "{user} attempt {attempt}: {}",
                r.output
            );
        }
        // One-way SMS also records the challenge (`sms_sent`) of each attempt.
        let per_attempt = if matches!(how, Failing::SmsWrongCode(_)) {
            2
        } else {
            1
        };
        let mut got = reasons(&env, user, 2 * per_attempt);
        got.retain(|r| r != "sms_sent");
        assert_eq!(
            got,
            [reason.to_string(), format!("{reason}+locked_out")],
            "{user}"
        );
        let shown = env.radmfa(&["user", "show", user, "--json"]).json();
        assert_eq!(shown["lock_reason"], "too_many_failures", "{user}: {shown}");
    }

    // Locked: the right answer is refused, and nothing reaches the phone.
    expect(&login_with_code(&addr, "ltotp", &totp), "Access-Reject");
    let right_hotp = format!("correct-horse{}", common::hotp_at(&hotp, 0, "sha1", 6));
    expect(&login(&addr, "lhotp", &right_hotp, None), "Access-Reject");
    let right_pin = format!("correct-horse4711{}", totp_now(&pin));
    expect(&login(&addr, "lpin", &right_pin, None), "Access-Reject");
    let sms_sent = sim.messages("+15550108001").len();
    for key in ["+15550108002", "+15550108003", "dev-lpush-01"] {
        sim.rule(key, "approve");
    }
    for user in ["lsms", "lcall", "ltwo", "lpush"] {
        expect(&login(&addr, user, "correct-horse", None), "Access-Reject");
    }
    assert_eq!(
        sim.messages("+15550108001").len(),
        sms_sent,
        "SMS to a locked user"
    );
    assert_eq!(
        sim.verifications("+15550108002"),
        2,
        "call to a locked user"
    );
    assert_eq!(
        sim.verifications("dev-lpush-01"),
        2,
        "push to a locked user"
    );
    for (user, how, _) in &cases {
        let n = if matches!(how, Failing::SmsWrongCode(_)) {
            5
        } else {
            3
        };
        assert_last_reason(&env, user, n, "locked_out");
    }
    env.wait_counter("lockouts", cases.len() as u64);
}
