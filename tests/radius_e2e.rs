//! End-to-end RADIUS tests: a real `radmfa serve` process answering FreeRADIUS'
//! `radclient` and pyrad (`tests/py/radreq.py`).
//!
//! Requires `radclient` (Debian: freeradius-utils) and python3 with pyrad.

mod common;

use common::*;
use serde_json::Value;

const PROMPT: &str = "Enter the code from your authenticator app";

/// Reply-Message text of a pyrad reply.
fn reply_message(reply: &Value) -> Option<String> {
    py_attr(reply, 18).and_then(|(_, text)| text)
}

#[test]
fn inline_totp_accept_radclient_and_pyrad() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let bob = env.add_totp_user("bob", TOTP_SECRETS[1]);
    let server = env.start();

    // radclient
    let password = format!("{PASSWORD}{}", totp_now(&alice));
    let r = radclient(
        &server.addr_string(),
        "auth",
        SECRET,
        &auth_input("alice", &password),
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "radclient output:\n{}",
        r.output
    );
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "Message-Authenticator must be the first reply attribute:\n{}",
        r.output
    );
    assert!(
        r.text("Reply-Message").is_some_and(|m| !m.is_empty()),
        "Access-Accept without Reply-Message:\n{}",
        r.output
    );
    assert!(
        !r.output.contains("invalid Message-Authenticator")
            && !r.output.contains("verification failed"),
        "radclient rejected the reply's signature:\n{}",
        r.output
    );

    // pyrad, checking the raw bytes
    let reply = PyRequest::access(&server)
        .login("bob", &format!("{PASSWORD}{}", totp_now(&bob)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert_signed(&reply);
    assert!(
        reply_message(&reply).is_some_and(|m| !m.is_empty()),
        "no Reply-Message: {reply:#}"
    );

    env.wait_counter("access_accepts", 2);
    assert_eq!(env.counter("access_rejects"), 0);
    assert_eq!(env.counter("requests_received"), 2);

    let records = env.wait_report_len(&["--user", "alice"], 1);
    assert_eq!(records[0]["result"], "accept", "{records:#?}");
    assert_eq!(records[0]["user"], "alice", "{records:#?}");
}

#[test]
fn wrong_code_and_wrong_password_rejected() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    // wrong code, radclient
    let bad = format!("{PASSWORD}{}", wrong_code(&alice));
    let r = radclient(
        &server.addr_string(),
        "auth",
        SECRET,
        &auth_input("alice", &bad),
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "radclient output:\n{}",
        r.output
    );
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "Message-Authenticator must be the first reply attribute:\n{}",
        r.output
    );
    assert!(
        r.text("Reply-Message").is_some_and(|m| !m.is_empty()),
        "Access-Reject for a wrong code without Reply-Message:\n{}",
        r.output
    );

    // wrong password with the right code, pyrad
    let reply = PyRequest::access(&server)
        .login("alice", &format!("wrong-horse{}", totp_now(&alice)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Reject", "{reply:#}");
    assert_signed(&reply);

    // the user is fine otherwise (the next step: independent of whether the
    // failed attempt consumed the current one)
    let reply = PyRequest::access(&server)
        .login("alice", &format!("{PASSWORD}{}", totp_step(&alice, 1)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");

    // unknown user
    let reply = PyRequest::access(&server)
        .login("mallory", &format!("{PASSWORD}123456"))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Reject", "{reply:#}");
    assert_signed(&reply);

    env.wait_counter("access_rejects", 3);
    env.wait_counter("access_accepts", 1);
    let rejects = env.wait_report_len(&["--user", "alice", "--result", "reject"], 2);
    for rec in &rejects {
        assert!(
            rec["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "reject record without a reason: {rec}"
        );
    }
}

#[test]
fn challenge_round_trip_radclient() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let addr = server.addr_string();

    let r = radclient(&addr, "auth", SECRET, &auth_input("alice", PASSWORD));
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Challenge"),
        "radclient output:\n{}",
        r.output
    );
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "Message-Authenticator must be the first reply attribute:\n{}",
        r.output
    );
    assert_eq!(
        r.text("Reply-Message").as_deref(),
        Some(PROMPT),
        "{}",
        r.output
    );
    let state = r
        .attr("State")
        .unwrap_or_else(|| panic!("Access-Challenge without State:\n{}", r.output))
        .to_owned();
    assert!(state.starts_with("0x") && state.len() > 2, "State {state}");

    let input = format!(
        "User-Name = \"alice\"\nUser-Password = \"{}\"\nState = {state}\nMessage-Authenticator = 0x00\n",
        totp_now(&alice)
    );
    let r = radclient(&addr, "auth", SECRET, &input);
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "radclient output:\n{}",
        r.output
    );
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "{}",
        r.output
    );

    env.wait_counter("access_challenges", 1);
    env.wait_counter("access_accepts", 1);
    let records = env.wait_report_len(&["--user", "alice"], 2);
    let mut results: Vec<&str> = records
        .iter()
        .filter_map(|r| r["result"].as_str())
        .collect();
    results.sort_unstable();
    assert_eq!(results, ["accept", "challenge"], "{records:#?}");
}

#[test]
fn challenge_round_trip_pyrad_state_single_use() {
    let env = Env::new();
    let bob = env.add_totp_user("bob", TOTP_SECRETS[1]);
    let carol = env.add_totp_user("carol", TOTP_SECRETS[2]);
    let server = env.start();

    let reply = PyRequest::access(&server)
        .login("bob", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    assert_signed(&reply);
    assert_eq!(reply_message(&reply).as_deref(), Some(PROMPT), "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));
    assert!(!state.is_empty());

    let mut second = PyRequest::access(&server).login("bob", &totp_now(&bob));
    second.state_hex = Some(state.clone());
    let reply = second.send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert_signed(&reply);

    // the session is single-use: the same State with another valid code
    let mut replay = PyRequest::access(&server).login("bob", &totp_step(&bob, 1));
    replay.state_hex = Some(state);
    let reply = replay.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Reject",
        "State reused: {reply:#}"
    );
    assert_signed(&reply);

    // a forged State (last byte flipped) with a valid code is rejected
    let reply = PyRequest::access(&server)
        .login("carol", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));
    let mut forged_bytes: Vec<u8> = (0..state.len() / 2)
        .map(|i| u8::from_str_radix(&state[2 * i..2 * i + 2], 16).expect("hex State"))
        .collect();
    if let Some(last) = forged_bytes.last_mut() {
        *last ^= 0xff;
    }
    let mut forged = PyRequest::access(&server).login("carol", &totp_now(&carol));
    forged.state_hex = Some(forged_bytes.iter().map(|b| format!("{b:02x}")).collect());
    let reply = forged.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Reject",
        "forged State: {reply:#}"
    );

    // a State issued to carol does not log in bob
    let reply = PyRequest::access(&server)
        .login("carol", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));
    let mut swapped = PyRequest::access(&server).login("bob", &totp_step(&bob, 1));
    swapped.state_hex = Some(state);
    let reply = swapped.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Reject",
        "State of another user: {reply:#}"
    );
}

#[test]
fn missing_message_authenticator_dropped() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));
    req.message_authenticator = false;
    req.timeout = 1.0;
    let out = req.send();
    assert!(
        out.reply().is_null(),
        "request without Message-Authenticator answered: {}",
        out.json
    );
    env.wait_counter("dropped_missing_message_authenticator", 1);
    assert_eq!(env.counter("access_accepts"), 0);
    assert_eq!(env.counter("access_rejects"), 0);

    // radclient without Message-Authenticator: dropped too
    let input = format!(
        "User-Name = \"alice\"\nUser-Password = \"{PASSWORD}{}\"\n",
        totp_now(&alice)
    );
    let r = radclient_opts(&server.addr_string(), "auth", SECRET, &input, 1);
    assert_eq!(
        r.code, None,
        "radclient without Message-Authenticator got a reply:\n{}",
        r.output
    );
    assert!(env.counter("dropped_missing_message_authenticator") >= 2);

    // the same login with a Message-Authenticator works
    let reply = PyRequest::access(&server)
        .login("alice", &format!("{PASSWORD}{}", totp_now(&alice)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert!(
        env.report(&["--user", "alice"]).len() == 1,
        "dropped requests must not reach the audit log"
    );
}

#[test]
fn message_authenticator_optional_when_not_required() {
    let env = Env::with_options(ConfigOptions {
        require_message_authenticator: false,
        ..ConfigOptions::default()
    });
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));
    req.message_authenticator = false;
    let reply = req.send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    // replies are signed regardless
    assert_signed(&reply);
    assert_eq!(env.counter("dropped_missing_message_authenticator"), 0);
}

#[test]
fn wrong_shared_secret_dropped() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));
    req.secret = "not-the-secret".to_owned();
    req.timeout = 1.0;
    let out = req.send();
    assert!(
        out.reply().is_null(),
        "request with a bad Message-Authenticator answered: {}",
        out.json
    );
    env.wait_counter("dropped_bad_message_authenticator", 1);
    assert_eq!(env.counter("dropped_missing_message_authenticator"), 0);
    assert_eq!(env.counter("access_rejects"), 0);
    assert!(
        env.report(&[]).is_empty(),
        "dropped request reached the audit log"
    );

    // radclient with the wrong secret: no reply either
    let r = radclient_opts(
        &server.addr_string(),
        "auth",
        "not-the-secret",
        &auth_input("alice", &format!("{PASSWORD}{}", totp_now(&alice))),
        1,
    );
    assert_eq!(r.code, None, "wrong secret got a reply:\n{}", r.output);
    assert!(env.counter("dropped_bad_message_authenticator") >= 2);
}

#[test]
fn retransmission_answered_from_cache() {
    let env = Env::new();
    let carol = env.add_totp_user("carol", TOTP_SECRETS[2]);
    let server = env.start();
    let password = format!("{PASSWORD}{}", totp_now(&carol));

    let mut req = PyRequest::access(&server).login("carol", &password);
    req.sends = 2;
    let out = req.send();
    let replies = out.replies();
    assert_eq!(replies.len(), 2, "{}", out.json);
    assert_eq!(code_name(&replies[0]), "Access-Accept", "{}", out.json);
    assert_signed(&replies[0]);
    assert!(
        replies[1].is_object(),
        "retransmission not answered: {}",
        out.json
    );
    assert_eq!(
        replies[0]["raw_hex"], replies[1]["raw_hex"],
        "a retransmission must get the identical reply"
    );

    env.wait_counter("duplicates_answered_from_cache", 1);
    assert_eq!(
        env.counter("access_accepts"),
        1,
        "the duplicate was authenticated again"
    );
    let records = env.report(&["--user", "carol"]);
    assert_eq!(
        records.len(),
        1,
        "one audit record per decision: {records:#?}"
    );

    // a new request with the same code (new authenticator) is not a duplicate:
    // the code was used
    let reply = PyRequest::access(&server)
        .login("carol", &password)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Reject", "{reply:#}");
    assert_eq!(env.counter("duplicates_answered_from_cache"), 1);
}

#[test]
fn reused_totp_step_rejected() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    let code = totp_now(&alice);
    let r = radclient(
        &server.addr_string(),
        "auth",
        SECRET,
        &auth_input("alice", &format!("{PASSWORD}{code}")),
    );
    assert_eq!(r.code.as_deref(), Some("Access-Accept"), "{}", r.output);
    let r = radclient(
        &server.addr_string(),
        "auth",
        SECRET,
        &auth_input("alice", &format!("{PASSWORD}{code}")),
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Reject"),
        "a used TOTP step was accepted again:\n{}",
        r.output
    );

    // also through the challenge path
    let reply = PyRequest::access(&server)
        .login("alice", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));
    let mut again = PyRequest::access(&server).login("alice", &code);
    again.state_hex = Some(state);
    let reply = again.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Reject",
        "a used TOTP step was accepted again: {reply:#}"
    );
    assert_eq!(env.counter("duplicates_answered_from_cache"), 0);
}

#[test]
fn unknown_client_dropped_then_added_while_running() {
    let env = Env::new();
    let dave = env.add_totp_user("dave", TOTP_SECRETS[3]);
    let server = env.start();

    let mut req =
        PyRequest::access(&server).login("dave", &format!("{PASSWORD}{}", totp_now(&dave)));
    req.bind = "127.0.0.3".to_owned();
    req.timeout = 1.0;
    let out = req.send();
    assert!(
        out.reply().is_null(),
        "unknown client answered: {}",
        out.json
    );
    env.wait_counter("dropped_unknown_client", 1);

    // add the client through the running server
    env.radmfa(&[
        "client",
        "add",
        "branch",
        "--address",
        "127.0.0.3/32",
        "--secret",
        "branch-secret",
    ])
    .assert_ok();
    let list = env.radmfa(&["client", "list", "--json"]);
    list.assert_ok();
    assert!(
        list.stdout.contains("branch"),
        "client list: {}",
        list.stdout
    );

    let mut req =
        PyRequest::access(&server).login("dave", &format!("{PASSWORD}{}", totp_now(&dave)));
    req.bind = "127.0.0.3".to_owned();
    req.secret = "branch-secret".to_owned();
    let reply = req.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Accept",
        "client added while running was not picked up: {reply:#}"
    );
    assert_signed(&reply);
    let records = env.wait_report_len(&["--user", "dave"], 1);
    assert_eq!(records[0]["client_name"], "branch", "{records:#?}");
    assert_eq!(records[0]["client_ip"], "127.0.0.3", "{records:#?}");

    // and deleted again
    env.radmfa(&["client", "delete", "branch"]).assert_ok();
    let mut req =
        PyRequest::access(&server).login("dave", &format!("{PASSWORD}{}", totp_step(&dave, 1)));
    req.bind = "127.0.0.3".to_owned();
    req.secret = "branch-secret".to_owned();
    req.timeout = 1.0;
    let out = req.send();
    assert!(
        out.reply().is_null(),
        "deleted client still answered: {}",
        out.json
    );
    env.wait_counter("dropped_unknown_client", 2);
}

#[test]
fn only_listed_client_addresses_are_answered() {
    // the only client is 127.0.0.2; requests from 127.0.0.1 are unknown
    let env = Env::with_options(ConfigOptions {
        client_address: "127.0.0.2/32".to_owned(),
        ..ConfigOptions::default()
    });
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    let r = radclient_opts(
        &server.addr_string(),
        "auth",
        SECRET,
        &auth_input("alice", &format!("{PASSWORD}{}", totp_now(&alice))),
        1,
    );
    assert_eq!(
        r.code, None,
        "unlisted source address answered:\n{}",
        r.output
    );
    assert!(env.counter("dropped_unknown_client") >= 1);

    let mut req =
        PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));
    req.bind = "127.0.0.2".to_owned();
    let reply = req.send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
}

#[test]
fn status_server_answered() {
    let env = Env::new();
    let server = env.start();

    let r = radclient(
        &server.addr_string(),
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Access-Accept"),
        "radclient output:\n{}",
        r.output
    );
    assert_eq!(
        r.attrs.first().map(|(n, _)| n.as_str()),
        Some("Message-Authenticator"),
        "{}",
        r.output
    );

    let mut req = PyRequest::access(&server);
    req.code = "status-server".to_owned();
    let reply = req.send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert_signed(&reply);

    env.wait_counter("status_server_replies", 2);
    assert_eq!(
        env.counter("access_accepts"),
        0,
        "Status-Server is not an authentication"
    );
}

#[test]
fn accounting_request_answered() {
    let env = Env::new();
    let server = env.start();

    let r = radclient(
        &server.addr_string(),
        "acct",
        SECRET,
        "User-Name = \"alice\"\nAcct-Status-Type = Start\nAcct-Session-Id = \"e2e-1\"\nNAS-IP-Address = 127.0.0.1\n",
    );
    assert_eq!(
        r.code.as_deref(),
        Some("Accounting-Response"),
        "radclient output:\n{}",
        r.output
    );

    let mut req = PyRequest::access(&server);
    req.code = "accounting-request".to_owned();
    req.message_authenticator = false;
    req.user = Some("alice".to_owned());
    req.attrs = vec![
        "Acct-Status-Type=Stop".into(),
        "Acct-Session-Id=e2e-1".into(),
    ];
    let reply = req.send().reply();
    assert_eq!(code_name(&reply), "Accounting-Response", "{reply:#}");
    assert_eq!(reply["response_authenticator_valid"], true, "{reply:#}");
    // No Message-Authenticator in an Accounting-Response: clients disagree
    // on what it would cover (see crates/radius/src/auth.rs).
    assert!(py_attr(&reply, 80).is_none(), "{reply:#}");
    assert_eq!(reply["pyrad_verify_reply"], true, "{reply:#}");
    env.wait_counter("accounting_responses", 2);

    // wrong secret: the Request Authenticator does not verify
    req.secret = "not-the-secret".to_owned();
    req.timeout = 1.0;
    let out = req.send();
    assert!(
        out.reply().is_null(),
        "accounting with a bad authenticator answered: {}",
        out.json
    );
    env.wait_counter("dropped_bad_accounting_authenticator", 1);
}

#[test]
fn sigterm_graceful_shutdown() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let port = server.addr.port();
    assert!(
        server
            .log()
            .contains(&format!("listening radius_udp=127.0.0.1:{port}")),
        "no `listening radius_udp=` line:\n{}",
        server.log()
    );

    let reply = PyRequest::access(&server)
        .login("alice", &format!("{PASSWORD}{}", totp_now(&alice)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");

    let (status, log) = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM; log:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("final counters"))
        .unwrap_or_else(|| panic!("no `final counters` line in the log:\n{log}"));
    assert!(
        line.contains("access_accepts"),
        "final counters line: {line}"
    );
    assert!(
        line.contains("requests_received"),
        "final counters line: {line}"
    );

    // the store was flushed: the audit record is there with the server stopped
    let records = env.report(&["--user", "alice"]);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["result"], "accept");
    // and stats needs a running server
    env.radmfa(&["stats", "--json"]).assert_code(1);
}

#[test]
fn malformed_and_unsupported_packets_dropped() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let auth = "00112233445566778899aabbccddeeff";

    let malformed = [
        // shorter than the RADIUS header
        "0101001400112233".to_owned(),
        // Length field larger than the datagram
        format!("01020400{auth}"),
        // Length field below the minimum of 20
        format!("01030010{auth}"),
        // an attribute with length 1
        format!("01040017{auth}010100"),
        // an attribute running past the end of the packet
        format!("01050018{auth}0108616263"),
    ];
    for (i, hex) in malformed.iter().enumerate() {
        let mut req = PyRequest::access(&server);
        req.raw_hex = Some(hex.clone());
        req.timeout = 0.5;
        let out = req.send();
        assert!(
            out.reply().is_null(),
            "malformed packet {hex} answered: {}",
            out.json
        );
        env.wait_counter("dropped_malformed", i as u64 + 1);
    }

    // well-formed, but a code the server does not serve (Disconnect-Request,
    // and an Access-Accept sent to the server)
    for (i, hex) in [format!("28060014{auth}"), format!("02070014{auth}")]
        .iter()
        .enumerate()
    {
        let mut req = PyRequest::access(&server);
        req.raw_hex = Some(hex.clone());
        req.timeout = 0.5;
        let out = req.send();
        assert!(out.reply().is_null(), "packet {hex} answered: {}", out.json);
        env.wait_counter("dropped_unsupported_code", i as u64 + 1);
    }

    // the server is still serving
    let reply = PyRequest::access(&server)
        .login("alice", &format!("{PASSWORD}{}", totp_now(&alice)))
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert_eq!(env.counter("dropped_malformed"), 5);
}

#[test]
fn proxy_state_copied_into_replies() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let proxy_state = "70726f78792d73746174652d31"; // "proxy-state-1"

    // Access-Challenge, Access-Accept and Access-Reject all carry it back.
    let with_code = format!("{PASSWORD}{}", totp_now(&alice));
    let with_wrong_code = format!("{PASSWORD}{}", wrong_code(&alice));
    for (password, expected) in [
        (PASSWORD, "Access-Challenge"),
        (with_code.as_str(), "Access-Accept"),
        (with_wrong_code.as_str(), "Access-Reject"),
    ] {
        let mut req = PyRequest::access(&server).login("alice", password);
        req.attrs = vec![format!("Proxy-State=0x{proxy_state}")];
        let reply = req.send().reply();
        assert_eq!(code_name(&reply), expected, "{reply:#}");
        assert_signed(&reply);
        assert_eq!(
            py_attr(&reply, 33).map(|(hex, _)| hex).as_deref(),
            Some(proxy_state),
            "Proxy-State must be copied into the reply (RFC 2865 5.33): {reply:#}"
        );
    }
}

/// Lines of the server log at WARN that contain `needle`.
fn warn_lines(log: &str, needle: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" WARN ") && l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Waits until the server log has a WARN line containing `needle`.
#[track_caller]
fn wait_warn(server: &Server, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(l) = warn_lines(&server.log(), needle).into_iter().next() {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no WARN line with {needle:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn drops_logged_at_warn_once_a_minute_with_the_remedy() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let login =
        || PyRequest::access(&server).login("alice", &format!("{PASSWORD}{}", totp_now(&alice)));

    // No Message-Authenticator (pam_radius_auth 2.0, older NAS): one WARN
    // line naming the client, the reason and the remedy.
    let mut req = login();
    req.message_authenticator = false;
    req.timeout = 0.3;
    assert!(req.send().reply().is_null());
    env.wait_counter("dropped_missing_message_authenticator", 1);
    let line = wait_warn(&server, "no Message-Authenticator");
    assert!(
        line.contains("client localhost (127.0.0.1): request dropped: no Message-Authenticator. The NAS does not send one; upgrade it or set require_message_authenticator = false for this client (BlastRADIUS risk)"),
        "{line}"
    );

    // 100 more within the minute: counted, no further line.
    req.sends = 100;
    req.timeout = 0.01;
    req.send();
    env.wait_counter("dropped_missing_message_authenticator", 101);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = server.log();
    assert_eq!(
        warn_lines(&log, "no Message-Authenticator").len(),
        1,
        "one line a minute; log:\n{log}"
    );

    // Wrong shared secret: its own line, saying so.
    let mut req = login();
    req.secret = "not-the-secret".to_owned();
    req.timeout = 0.3;
    assert!(req.send().reply().is_null());
    let line = wait_warn(&server, "wrong Message-Authenticator");
    assert!(
        line.contains("client localhost (127.0.0.1): request dropped: wrong Message-Authenticator. The shared secret on the NAS differs from this client's secret in radmfa"),
        "{line}"
    );

    // Malformed.
    let mut req = PyRequest::access(&server);
    req.raw_hex = Some("0101001400112233".to_owned());
    req.timeout = 0.3;
    req.send();
    wait_warn(&server, "request dropped: not a well-formed RADIUS packet");

    // An unknown source address.
    let mut req = login();
    req.bind = "127.0.0.3".to_owned();
    req.timeout = 0.3;
    assert!(req.send().reply().is_null());
    let line = wait_warn(&server, "unknown source 127.0.0.3");
    assert!(
        line.contains(
            "request dropped: no client is configured for this address. Add a [[client]]"
        ),
        "{line}"
    );

    // A flood from many distinct addresses: 16 addresses named, then one
    // summary line; the rest only counted.
    let flood: Vec<u8> = (10..=250).collect();
    for last in &flood {
        let s = std::net::UdpSocket::bind(("127.0.0.".to_owned() + &last.to_string(), 0))
            .expect("bind 127.0.0.x");
        s.send_to(&[1u8; 20], server.addr).expect("send");
    }
    env.wait_counter("dropped_unknown_client", 1 + flood.len() as u64);
    let summary = wait_warn(&server, "other sources: ");
    assert!(summary.contains("dropped_unknown_client 1"), "{summary}");
    let log = server.log();
    assert_eq!(
        warn_lines(&log, "unknown source 127.0.0.").len(),
        16,
        "named sources are bounded; log:\n{log}"
    );
    assert_eq!(warn_lines(&log, "other sources: ").len(), 1, "{log}");
    assert!(!log.contains(SECRET), "the shared secret reached the log");
    assert!(!log.contains(PASSWORD), "a password reached the log");

    // The server still answers.
    let reply = login().send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
}

#[test]
fn debug_mode_shows_each_request_masked_and_the_reply() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start_with(&["--debug"], &[]);
    let addr = server.addr_string();
    let nas = "NAS-IP-Address = 10.1.2.3\nNAS-Identifier = \"vpn-gw\"\nCalling-Station-Id = \"203.0.113.7\"\n";

    let r = login_with(&addr, "alice", PASSWORD, None, nas);
    expect(&r, "Access-Challenge");
    let state = r.attr("State").expect("State").to_owned();
    let code = totp_now(&alice);
    let r = login_with(&addr, "alice", &code, Some(&state), nas);
    expect(&r, "Access-Accept");
    env.wait_counter("access_accepts", 1);
    // A drop shows too, each time.
    let mut req = PyRequest::access(&server).login("alice", PASSWORD);
    req.message_authenticator = false;
    req.timeout = 0.3;
    req.sends = 2;
    req.send();
    env.wait_counter("dropped_missing_message_authenticator", 2);

    let (_, log) = server.terminate();
    for expected in [
        "received Access-Request id ",
        "\n  User-Name = \"alice\"",
        "\n  User-Password = <masked, 16 octets>",
        "\n  NAS-IP-Address = 10.1.2.3",
        "\n  NAS-Identifier = \"vpn-gw\"",
        "-> client localhost (policy default: first factor Local",
        "-> Message-Authenticator: Valid, accepted",
        "-> decision",
        "sending Access-Challenge id ",
        &format!("\n  Reply-Message = \"{PROMPT}\""),
        // State: the first 8 bytes, then its length.
        &format!("\n  State = {}... (", &state[..18]),
        "sending Access-Accept id ",
        "\n  Message-Authenticator = 0x",
        // The per-request line carries the NAS's identity.
        "nas_ip=10.1.2.3",
        "nas_id=\"vpn-gw\"",
        "calling_station=\"203.0.113.7\"",
        "source=127.0.0.1:",
        "reason=\"dropped_missing_message_authenticator\"",
    ] {
        assert!(log.contains(expected), "missing {expected:?} in:\n{log}");
    }
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(" DEBUG ") && l.contains("dropped: no Message-Authenticator"))
            .count(),
        2,
        "every drop at debug:\n{log}"
    );
    assert!(
        !log.contains(&state[2..]),
        "the whole State was logged:\n{log}"
    );
    for secret in [SECRET, PASSWORD] {
        assert!(!log.contains(secret), "{secret:?} reached the log:\n{log}");
    }
}

#[test]
fn concurrent_logins_each_log_in_their_own_span() {
    let env = Env::new();
    let users: Vec<(String, Vec<u8>)> = (1..=12)
        .map(|i| {
            let name = format!("u{i}");
            let secret = env.add_totp_user(&name, TOTP_SECRETS[i % TOTP_SECRETS.len()]);
            (name, secret)
        })
        .collect();
    let server = env.start();
    let addr = server.addr_string();
    std::thread::scope(|s| {
        for (name, secret) in &users {
            let addr = &addr;
            s.spawn(move || {
                let pw = format!("{PASSWORD}{}", totp_now(secret));
                expect(&login(addr, name, &pw, None), "Access-Accept");
            });
        }
    });
    env.wait_counter("access_accepts", 12);
    let (_, log) = server.terminate();
    let mut seen = Vec::new();
    for line in log.lines() {
        assert!(
            line.matches("access{").count() <= 1,
            "a log line nests another request's span:\n{line}\nlog:\n{log}"
        );
        if line.contains(": accept mode=") {
            seen.extend(
                users
                    .iter()
                    .filter(|(n, _)| line.contains(&format!("user=\"{n}\""))),
            );
        }
    }
    assert_eq!(seen.len(), 12, "one accept line per user:\n{log}");
}

/// Issue 15 finding 5: a User-Name with control characters is refused
/// (`invalid_user_name`) and reaches neither the audit record nor the log
/// raw: both hold it escaped, so no line can be forged. The same for a
/// Calling-Station-Id in the record.
#[test]
fn user_name_with_control_characters_refused_and_recorded_escaped() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();
    let forged = "alice\r\n2026-12-07T10:00:00.000000Z  INFO access{user=admin}: accept\u{1b}[2K";
    let mut req =
        PyRequest::access(&server).login(forged, &format!("{PASSWORD}{}", totp_now(&alice)));
    req.attrs = vec!["Calling-Station-Id=02-00\u{1b}[8m".into()];
    let reply = req.send().reply();
    assert_eq!(code_name(&reply), "Access-Reject");
    assert_signed(&reply);
    assert_eq!(
        reply_message(&reply).as_deref(),
        Some("The user name contains control characters.")
    );

    let recs = env.wait_report_len(&["--result", "reject"], 1);
    let escaped = r"alice\r\n2026-12-07T10:00:00.000000Z  INFO access{user=admin}: accept\u{1b}[2K";
    assert_eq!(recs[0]["user"], escaped, "{recs:?}");
    assert_eq!(recs[0]["reason"], "invalid_user_name", "{recs:?}");
    assert_eq!(recs[0]["calling_station"], r"02-00\u{1b}[8m", "{recs:?}");

    let (_, log) = server.terminate();
    assert!(
        !log.contains('\u{1b}') && !log.contains('\r'),
        "raw control characters in the log:\n{log:?}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-07T10:00:00.000000Z")),
        "a forged line in the log:\n{log}"
    );
}

/// Issue 15 finding 12: a second server (another data directory) on the
/// port a running one holds refuses to start, naming the port, instead of
/// taking half the traffic through SO_REUSEPORT; the first keeps answering.
#[test]
fn second_server_on_the_same_port_refuses_to_start() {
    let first = Env::new();
    let alice = first.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = first.start();
    let port = server.addr.port();

    let second = Env::new();
    let config = std::fs::read_to_string(second.config_path()).expect("config");
    assert!(config.contains("\"127.0.0.1:0\""), "{config}");
    std::fs::write(
        second.config_path(),
        config.replace("\"127.0.0.1:0\"", &format!("\"127.0.0.1:{port}\"")),
    )
    .expect("config");
    let ready = second.path().join("ready.json");
    let mut child = std::process::Command::new(radmfa_bin())
        .arg("--config")
        .arg(second.config_path())
        .args(["serve", "--ready-file"])
        .arg(&ready)
        .current_dir(second.path())
        .env_remove("RADMFA_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the second server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the second server on port {port} kept running (ready file: {}); stderr:\n{}",
                ready.exists(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains(&format!("UDP port {port} is already in use")),
        "{stderr}"
    );
    assert!(!ready.exists(), "the second server wrote its ready file");

    // The first still answers every request (none went to the second).
    for step in 0..3 {
        let r = PyRequest::access(&server)
            .login(
                "alice",
                &format!("{PASSWORD}{}", totp_step(&alice, step - 1)),
            )
            .send()
            .reply();
        assert_eq!(code_name(&r), "Access-Accept", "step {step}");
    }
}

/// The audit reasons of `user` once `n` records exist (any order).
fn audit_reasons(env: &Env, user: &str, n: usize) -> Vec<String> {
    let mut got: Vec<String> = env
        .wait_report_len(&["--user", user], n)
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    got.sort_unstable();
    got
}

/// A second client, 127.0.0.2 ("kiosk"), whose policy asks for the code
/// only (`first_factor = "none"`), beside the default password policy.
fn env_with_code_only_kiosk() -> Env {
    Env::with_options(ConfigOptions {
        extra: r#"[[policy]]
name = "code-only"
first_factor = "none"
otp_mode = "challenge"
unenrolled = "reject"
challenge_prompt = "Enter the code from your authenticator app"

[[client]]
name = "kiosk"
address = "127.0.0.2/32"
secret = "kiosk-secret"
policy = "code-only"
require_message_authenticator = true
"#
        .to_owned(),
        ..ConfigOptions::default()
    })
}

fn from_kiosk(server: &Server, user: &str, password: &str) -> PyRequest {
    let mut req = PyRequest::access(server).login(user, password);
    req.bind = "127.0.0.2".to_owned();
    req.secret = "kiosk-secret".to_owned();
    req
}

/// Issue 15 finding 3: a challenge started on a code-only client cannot be
/// finished through a client whose policy needs a password, and that
/// refused answer leaves the challenge to its own client.
#[test]
fn challenge_answer_through_another_client_is_bad_state() {
    let env = env_with_code_only_kiosk();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let server = env.start();

    // The kiosk asks alice for her code: no password involved.
    let reply = from_kiosk(&server, "alice", "x").send().reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));

    // The answer through the password client (127.0.0.1) is refused.
    let mut elsewhere = PyRequest::access(&server).login("alice", &totp_now(&alice));
    elsewhere.state_hex = Some(state.clone());
    let reply = elsewhere.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Reject",
        "a code-only challenge was finished through a password client: {reply:#}"
    );
    assert_signed(&reply);
    assert_eq!(
        audit_reasons(&env, "alice", 2),
        ["bad_state", "code_requested"]
    );

    // The kiosk's own answer still works: the refused one did not end it.
    let mut own = from_kiosk(&server, "alice", &totp_now(&alice));
    own.state_hex = Some(state);
    let reply = own.send().reply();
    assert_eq!(code_name(&reply), "Access-Accept", "{reply:#}");
    assert_eq!(
        audit_reasons(&env, "alice", 3),
        ["bad_state", "code_requested", "ok"]
    );
}

/// Issue 15 finding 3: sending another user's State does not destroy that
/// user's pending challenge.
#[test]
fn another_users_state_leaves_their_challenge_alone() {
    let env = Env::new();
    let alice = env.add_totp_user("alice", TOTP_SECRETS[0]);
    let bob = env.add_totp_user("bob", TOTP_SECRETS[1]);
    let server = env.start();

    let reply = PyRequest::access(&server)
        .login("alice", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    let (state, _) = py_attr(&reply, 24).unwrap_or_else(|| panic!("no State: {reply:#}"));

    let mut bobs = PyRequest::access(&server).login("bob", &totp_now(&bob));
    bobs.state_hex = Some(state.clone());
    let reply = bobs.send().reply();
    assert_eq!(code_name(&reply), "Access-Reject", "{reply:#}");
    assert_eq!(audit_reasons(&env, "bob", 1), ["state_user_mismatch"]);

    let mut own = PyRequest::access(&server).login("alice", &totp_now(&alice));
    own.state_hex = Some(state);
    let reply = own.send().reply();
    assert_eq!(
        code_name(&reply),
        "Access-Accept",
        "alice's challenge was destroyed by bob's answer: {reply:#}"
    );
}

/// Issue 15 finding 4: a rejected login costs the same number of argon2
/// verifications whoever the user is and whatever the password looks like:
/// two under `otp_mode = "auto"` (both readings of a password ending in
/// digits are checked, everything else is padded with the decoy), one under
/// `inline`. Measured with the server's own counter, not with a clock.
#[test]
fn rejected_logins_cost_a_fixed_number_of_argon2_runs() {
    let env = Env::with_options(ConfigOptions {
        extra: r#"[[policy]]
name = "inline"
first_factor = "local"
otp_mode = "inline"
unenrolled = "reject"
challenge_prompt = "Enter the code from your authenticator app"

[[client]]
name = "inline-nas"
address = "127.0.0.2/32"
secret = "inline-secret"
policy = "inline"
require_message_authenticator = true
"#
        .to_owned(),
        ..ConfigOptions::default()
    });
    // A user whose hash was made with other argon2 parameters than the
    // server runs with (the config is changed after this one is added).
    env.add_totp_user("old", TOTP_SECRETS[1]);
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text.replace(
        "memory_kib = 1024\niterations = 1",
        "memory_kib = 2048\niterations = 2",
    );
    std::fs::write(env.config_path(), text).expect("config");
    env.add_totp_user("alice", TOTP_SECRETS[0]);
    env.radmfa(&["user", "add", "nohash", "--method", "none"])
        .assert_ok();
    env.add_user("plain", PASSWORD);
    env.radmfa(&["user", "set", "plain", "--method", "none"])
        .assert_ok();
    let server = env.start();

    let cases = [
        ("alice", "wrong-password"),
        ("alice", "wrong-pass123456"),
        ("alice", "123456"),
        ("alice", ""),
        ("old", "wrong-password"),
        ("old", "wrong-pass123456"),
        ("plain", "wrong-password"),
        ("plain", "wrong-pass123456"),
        ("nohash", "wrong-password"),
        ("nohash", "wrong-pass123456"),
        ("nobody", "wrong-password"),
        ("nobody", "wrong-pass123456"),
    ];
    for (bind, secret, per_request) in [("127.0.0.1", SECRET, 2), ("127.0.0.2", "inline-secret", 1)]
    {
        for (user, password) in cases {
            let before = env.counter("argon2_verifications");
            let mut req = PyRequest::access(&server).login(user, password);
            req.bind = bind.to_owned();
            req.secret = secret.to_owned();
            let reply = req.send().reply();
            assert_eq!(code_name(&reply), "Access-Reject", "{user}: {reply:#}");
            assert_eq!(
                env.counter("argon2_verifications") - before,
                per_request,
                "argon2 runs for {user} / {password:?} from {bind}"
            );
        }
    }
    assert_eq!(
        env.counter("argon2_rehashes"),
        0,
        "a rejected login rehashed"
    );

    // A successful sign-in replaces the old-parameter hash (once); a hash
    // already made with the configured parameters is left alone.
    for user in ["old", "alice", "old"] {
        let reply = PyRequest::access(&server)
            .login(user, PASSWORD)
            .send()
            .reply();
        assert_eq!(code_name(&reply), "Access-Challenge", "{user}: {reply:#}");
    }
    assert_eq!(env.counter("argon2_rehashes"), 1);
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = env.start();
    let reply = PyRequest::access(&server)
        .login("old", PASSWORD)
        .send()
        .reply();
    assert_eq!(code_name(&reply), "Access-Challenge", "{reply:#}");
    assert_eq!(env.counter("argon2_verifications"), 1);
    assert_eq!(
        env.counter("argon2_rehashes"),
        0,
        "the upgraded hash was not stored"
    );

    // The password passed (from the verified-credential cache) and the code
    // is wrong: no padding, no argon2 at all. Its Reply-Message already says
    // the code was wrong; padding it made every wrong or replayed code cost
    // two argon2 runs (the benchmark's inline rate fell from ~40k to ~1k/s).
    for (bind, secret) in [("127.0.0.1", SECRET), ("127.0.0.2", "inline-secret")] {
        let before = env.counter("argon2_verifications");
        let mut req = PyRequest::access(&server).login("old", &format!("{PASSWORD}000000"));
        req.bind = bind.to_owned();
        req.secret = secret.to_owned();
        let reply = req.send().reply();
        assert_eq!(code_name(&reply), "Access-Reject", "{reply:#}");
        assert_eq!(
            env.counter("argon2_verifications") - before,
            0,
            "a wrong code after the right password ran argon2 (from {bind})"
        );
    }
}
