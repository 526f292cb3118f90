//! Reloading the configuration of a running node (`radmfa reload`, SIGHUP)
//! against the real binary and radclient: a new client and a changed policy
//! take effect without a restart, logins in flight during a reload complete
//! (an open Access-Challenge, an out-of-band verdict the gateway delays), and
//! a bad file or a change that needs a restart is refused with the reason
//! while the running configuration stays.

mod common;

use std::time::{Duration, Instant};

use common::sim::{env_with_gateway, Sim};
use common::{expect, login, radclient_opts, totp_now, ConfigOptions, Env, Server, SECRET};

/// Rewrites the node's configuration file with `f`.
fn edit(env: &Env, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    std::fs::write(env.config_path(), f(text)).expect("config");
}

/// Waits until the node's log holds `n` occurrences of `needle`.
fn wait_log(server: &Server, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} ({n}x) in:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Access-Request from 127.0.0.1 with a short timeout.
fn quick_login(addr: &str, user: &str, password: &str) -> common::RadReply {
    let input = format!(
        "User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
    );
    radclient_opts(addr, "auth", SECRET, &input, 1)
}

#[test]
fn a_reload_adds_a_client_and_a_changed_policy_applies_to_the_next_login() {
    // The file's client is 127.0.0.2: radclient (127.0.0.1) is unknown.
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".into(),
        ..ConfigOptions::default()
    });
    env.add_user("alice", "correct-horse");
    let server = env.start();
    let addr = server.addr_string();
    let r = quick_login(&addr, "alice", "correct-horse");
    assert_eq!(r.code, None, "unknown client answered: {}", r.output);

    edit(&env, |t| {
        format!("{t}\n[[client]]\nname = \"added\"\naddress = \"127.0.0.1/32\"\nsecret = \"{SECRET}\"\npolicy = \"default\"\n")
    });
    let out = env.radmfa(&["reload"]);
    out.assert_ok();
    assert!(out.stdout.contains("[[client]] changed"), "{}", out.stdout);
    wait_log(&server, "configuration reloaded: [[client]] changed", 1);
    // Known now; alice has no token and the policy rejects such users.
    let r = login(&addr, "alice", "correct-horse", None);
    expect(&r, "Access-Reject");

    // The policy lets users without a token in: the next login is accepted
    // (SIGHUP this time).
    edit(&env, |t| {
        t.replace("unenrolled = \"reject\"", "unenrolled = \"accept\"")
    });
    server.signal("HUP");
    wait_log(&server, "configuration reloaded: [[policy]] changed", 1);
    expect(
        &login(&addr, "alice", "correct-horse", None),
        "Access-Accept",
    );
}

#[test]
fn a_challenge_open_across_a_reload_is_answered() {
    let env = Env::new();
    let secret = env.add_totp_user("bob", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    let server = env.start();
    let addr = server.addr_string();
    let r = login(&addr, "bob", common::PASSWORD, None);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_string();

    edit(&env, |t| {
        t.replace(
            "challenge_prompt = \"Enter the code from your authenticator app\"",
            "challenge_prompt = \"Your code, please\"",
        )
    });
    env.radmfa(&["reload"]).assert_ok();
    wait_log(&server, "configuration reloaded: [[policy]] changed", 1);
    let r = login(&addr, "bob", &totp_now(&secret), Some(&state));
    expect(&r, "Access-Accept");
    // The next challenge carries the new prompt.
    let r = login(&addr, "bob", common::PASSWORD, None);
    expect(&r, "Access-Challenge");
    assert_eq!(
        r.text("Reply-Message").as_deref(),
        Some("Your code, please"),
        "{}",
        r.output
    );
}

#[test]
fn an_out_of_band_login_waiting_during_a_reload_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    env.radmfa_stdin(
        &[
            "user",
            "add",
            "pat",
            "--password-stdin",
            "--method",
            "push",
            "--device-token",
            "dev-pat-01",
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
    // The gateway approves 3 s after the push.
    sim.rule("dev-pat-01", "after:3:approve");
    let server = env.start();
    let addr = server.addr_string();
    let waiting = std::thread::spawn(move || {
        let input = "User-Name = \"pat\"\nUser-Password = \"correct-horse\"\nMessage-Authenticator = 0x00\n";
        radclient_opts(&addr, "auth", SECRET, input, 8)
    });
    std::thread::sleep(Duration::from_secs(1));
    // A new gateway client (another timeout) and limits while pat waits.
    edit(&env, |t| {
        t.replace("timeout_ms = 2000\n", "timeout_ms = 2500\n")
            + "\n[limits]\nuser_per_minute = 100\n"
    });
    let out = env.radmfa(&["reload"]);
    out.assert_ok();
    assert!(
        out.stdout.contains("[gateway], [limits] changed"),
        "{}",
        out.stdout
    );
    let r = waiting.join().expect("login thread");
    expect(&r, "Access-Accept");
}

#[test]
fn a_bad_file_or_a_restart_only_change_is_refused_and_the_running_configuration_stays() {
    let env = Env::new();
    env.add_user("carol", "correct-horse");
    let server = env.start();
    let addr = server.addr_string();
    let original = std::fs::read_to_string(env.config_path()).expect("config");
    let file = env.config_path().display().to_string();

    // A policy with an unknown first factor on the line after the file's end.
    let bad_line = original.lines().count() + 4;
    edit(&env, |t| {
        format!("{t}\n[[policy]]\nname = \"broken\"\nfirst_factor = \"carrier-pigeon\"\n")
    });
    let out = env.radmfa(&["reload"]);
    assert_ne!(out.code(), 0, "a broken file was accepted: {}", out.stdout);
    let located = format!("{file}:{bad_line}:");
    assert!(
        out.stderr.contains(&located),
        "{located} not in {}",
        out.stderr
    );
    let log = wait_log(&server, "configuration reload refused", 1);
    assert!(log.contains(&located), "{log}");
    assert!(log.contains("the running configuration stays"), "{log}");
    // SIGHUP says the same in the log.
    server.signal("HUP");
    let log = wait_log(&server, "configuration reload refused", 2);
    assert_eq!(log.matches(&located).count(), 2, "{log}");

    // A new listen address needs a restart: refused by name.
    std::fs::write(
        env.config_path(),
        original.replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:1\"]"),
    )
    .expect("config");
    let out = env.radmfa(&["reload"]);
    assert_ne!(out.code(), 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("[radius] listen changed, which needs a restart"),
        "{}",
        out.stderr
    );
    // The running configuration still answers as before: carol has no
    // token and the running policy rejects her.
    let r = login(&addr, "carol", "correct-horse", None);
    expect(&r, "Access-Reject");
    // The same file with the address put back and a policy change goes through.
    std::fs::write(
        env.config_path(),
        original.replace("unenrolled = \"reject\"", "unenrolled = \"accept\""),
    )
    .expect("config");
    env.radmfa(&["reload"]).assert_ok();
    expect(
        &login(&addr, "carol", "correct-horse", None),
        "Access-Accept",
    );
}
