//! Online backup while the server runs, restore into a fresh node, and a
//! corrupted backup refused before anything is written.

mod common;

use common::{expect, login, Env, PASSWORD};

#[test]
fn backup_while_serving_restore_on_a_fresh_node() {
    let a = Env::new();
    a.add_totp_user("alice", common::TOTP_SECRETS[0]);
    a.add_user("bob", PASSWORD);
    a.radmfa_stdin(
        &[
            "client",
            "add",
            "vpn-2",
            "--address",
            "10.9.0.0/24",
            "--secret-stdin",
        ],
        Some("s3cret-2\n"),
    )
    .assert_ok();
    let server = a.start();
    let secret = common::decode_secret(common::TOTP_SECRETS[0]);
    let step = common::unix_now() / common::PERIOD;
    let used = common::totp_at(&secret, step * common::PERIOD);
    let r = login(
        &server.addr_string(),
        "alice",
        &format!("{PASSWORD}{used}"),
        None,
    );
    expect(&r, "Access-Accept");

    // Online: through the running server's control socket.
    let file = a.path().join("radmfa.backup");
    let out = a.radmfa(&["backup", file.to_str().expect("utf-8")]);
    out.assert_ok();
    assert!(out.stdout.contains("backup written"), "{}", out.stdout);
    assert!(file.exists());
    assert!(a.path().join("radmfa.backup.audit").is_dir());
    // Not over an existing file.
    assert_ne!(
        a.radmfa(&["backup", file.to_str().expect("utf-8")]).code(),
        0
    );
    let users_a = a.radmfa(&["user", "list", "--json"]).json();
    let clients_a = a.radmfa(&["client", "list", "--json"]).json();
    drop(server);

    // A fresh node with the same seed key restores it: identical records,
    // and the restored token still signs alice in.
    let b = Env::new();
    std::fs::create_dir_all(b.data_dir()).expect("data dir");
    std::fs::copy(a.data_dir().join("seed.key"), b.data_dir().join("seed.key")).expect("key");
    std::fs::copy(
        a.data_dir().join("cluster.key"),
        b.data_dir().join("cluster.key"),
    )
    .expect("cluster key");

    // A flipped byte is refused and nothing is written.
    let bad = b.path().join("bad.backup");
    let mut bytes = std::fs::read(&file).expect("backup");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&bad, bytes).expect("write");
    let out = b.radmfa(&["restore", bad.to_str().expect("utf-8")]);
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("cannot restore"), "{}", out.stderr);
    assert!(!b.data_dir().join("db").exists(), "nothing written");

    b.radmfa(&["restore", file.to_str().expect("utf-8"), "--as", "primary"])
        .assert_ok();
    assert_eq!(b.radmfa(&["user", "list", "--json"]).json(), users_a);
    assert_eq!(b.radmfa(&["client", "list", "--json"]).json(), clients_a);
    // The backup and everything restored are owner-only (issue 15 #6),
    // whatever the test's own umask.
    assert_eq!(mode_of(&file), 0o600, "backup file");
    assert_eq!(mode_of(&a.path().join("radmfa.backup.audit")), 0o700);
    for dir in [b.data_dir().join("db"), b.data_dir().join("db.audit")] {
        assert_eq!(mode_of(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode_of(&path), want, "{}", path.display());
        }
    }
    // Restoring over an existing database is refused.
    assert_ne!(
        b.radmfa(&["restore", file.to_str().expect("utf-8")]).code(),
        0
    );
    let server = b.start();
    // The step used before the backup is still refused after the restore
    // (replay protection travels with the backup; the step is still inside
    // the drift window, this test takes seconds)...
    let r = login(
        &server.addr_string(),
        "alice",
        &format!("{PASSWORD}{used}"),
        None,
    );
    expect(&r, "Access-Reject");
    let recs = b.wait_report_len(&["--user", "alice"], 2);
    assert_eq!(recs[1]["reason"], "otp_replayed", "{recs:?}");
    // ...and the next step signs in.
    let next = common::totp_at(&secret, (step + 1) * common::PERIOD);
    let r = login(
        &server.addr_string(),
        "alice",
        &format!("{PASSWORD}{next}"),
        None,
    );
    expect(&r, "Access-Accept");
}

/// Permission bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
