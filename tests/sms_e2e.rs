//! One-way SMS end to end: the radmfa binary, the gateway simulator as a
//! separate HTTPS process, and FreeRADIUS' radclient as the NAS. The code is
//! read back from the simulator, as a user would read it from their phone.

mod common;

use std::process::{Command, Stdio};

use common::sim::{code_in, env_with_gateway, Sim, PHONE};
use common::{login, Env, SECRET};

fn add_sms_user(env: &Env, name: &str) {
    env.radmfa_stdin(
        &[
            "user",
            "add",
            name,
            "--method",
            "sms",
            "--phone",
            PHONE,
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
}

#[test]
fn one_way_sms_login_through_radclient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    add_sms_user(&env, "sam");
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "sam", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    assert!(
        r.text("Reply-Message").unwrap_or_default().contains("1234"),
        "{}",
        r.output
    );
    let state = r.attr("State").expect("State").to_string();
    let sent = sim.messages(PHONE);
    assert_eq!(sent.len(), 1, "exactly one SMS: {sent:?}");
    let code = code_in(&sent[0]);
    assert_eq!(code.len(), 6, "{sent:?}");

    // A wrong code re-prompts with the same State while attempts remain.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = login(&addr, "sam", wrong, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    // The right code then signs in.
    let r = login(&addr, "sam", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    // The State is single use.
    let r = login(&addr, "sam", &code, Some(&state));
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    // Wrong password: no SMS is sent.
    let r = login(&addr, "sam", "nope", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(sim.messages(PHONE).len(), 1);
    let recs = env.wait_report_len(&["--user", "sam"], 5);
    assert!(recs.iter().any(|r| r["reason"] == "sms_sent"), "{recs:?}");
}

#[test]
fn fail_modes_when_the_gateway_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "fail_mode = \"totp_only\"");
    add_sms_user(&env, "sam");
    add_sms_user(&env, "tina");
    env.enroll("tina", common::TOTP_SECRETS[0]).assert_ok();
    let server = env.start();
    let addr = server.addr_string();
    sim.stop();

    // No authenticator app: rejected with a message saying why.
    let r = login(&addr, "sam", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("could not send"),
        "{}",
        r.output
    );
    // With an authenticator app: a TOTP challenge instead.
    let r = login(&addr, "tina", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Challenge"), "{}", r.output);
    let recs = env.wait_report_len(&["--user", "tina"], 1);
    assert_eq!(recs[0]["reason"], "gateway_unreachable_totp_fallback");
}

fn add_oob_user(env: &Env, name: &str, method: &str, phone: &str) {
    env.radmfa_stdin(
        &[
            "user",
            "add",
            name,
            "--method",
            method,
            "--phone",
            phone,
            "--password-stdin",
        ],
        Some("correct-horse\n"),
    )
    .assert_ok();
}

#[test]
fn two_way_sms_and_call_wait_for_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path());
    let env = env_with_gateway(&sim, dir.path(), "");
    add_oob_user(&env, "dana", "call", "+15550102001");
    add_oob_user(&env, "eve", "sms_two_way", "+15550102002");
    add_oob_user(&env, "fred", "call", "+15550102003");
    sim.rule("eve", "deny");
    sim.rule("fred", "after:3:approve");
    let server = env.start();
    let addr = server.addr_string();

    let r = login(&addr, "dana", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let r = login(&addr, "eve", "correct-horse", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert!(
        r.text("Reply-Message")
            .unwrap_or_default()
            .contains("denied"),
        "{}",
        r.output
    );
    // Wrong password: no call is placed.
    let r = login(&addr, "dana", "wrong", None);
    assert_eq!(r.code.as_deref(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(sim.verifications("+15550102001"), 1);

    // The NAS retransmits every second while the user takes 3 s to answer:
    // the copies are absorbed, one login is one call.
    let out = Command::new("radclient")
        .args(["-x", "-r", "6", "-t", "1", &addr, "auth", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"User-Name = \"fred\"\nUser-Password = \"correct-horse\"\nMessage-Authenticator = 0x00\n")?;
            c.wait_with_output()
        })
        .expect("radclient");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Received Access-Accept"), "{text}");
    assert_eq!(
        sim.verifications("+15550102003"),
        1,
        "exactly one call for one login"
    );
    assert!(
        env.counter("duplicates_in_flight_dropped") >= 1,
        "{:?}",
        env.stats()
    );
}
