//! External peers a test needs (slapd, FreeRADIUS, nginx, Chromium...).
//!
//! `cargo test --workspace` on a machine without one of them skips the tests
//! that need it, each with one line naming what to install; under `CI=true`
//! (`.ci/run` exports it) a missing peer fails the test instead, so CI never
//! passes with something silently untested. radclient, python3 and pyrad are
//! not optional: nearly every end-to-end test speaks RADIUS through them.
//!
//! Also included by crates/server/tests (`#[path]`), so it uses std only.
// Each including test binary uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the `CI` environment variable is `true` (or `1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Where `program` is on `PATH`, if anywhere.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The rule itself: `present` says whether the peer `what` is there. Returns
/// true when it is; otherwise prints one `SKIPPED` line naming `install` and
/// returns false, or panics under `CI=true`.
#[track_caller]
pub fn require(what: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        !in_ci(),
        "{what} is missing ({install}); CI=true makes a missing test peer a failure"
    );
    // The test harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .map(str::to_string)
        .unwrap_or_else(|| std::panic::Location::caller().to_string());
    // Straight to stderr: the test harness captures `eprintln!` of passing
    // tests, and this line must be seen.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: needs {what}, not installed ({install}; bash .ci/run installs every test peer)"
    );
    false
}

/// Requires the program `program` on `PATH`, from package `package`:
/// `if !require_tool("slapd", "apt-get install slapd") { return; }`.
#[track_caller]
pub fn require_tool(program: &str, install: &str) -> bool {
    require(program, on_path(program).is_some(), install)
}

/// Requires a file at `path` (a browser, a dynamic module).
#[track_caller]
pub fn require_file(path: &str, install: &str) -> bool {
    require(path, Path::new(path).exists(), install)
}

/// Requires the Python module `module` for the `python3` on `PATH`.
#[track_caller]
pub fn require_python_module(module: &str, install: &str) -> bool {
    let present = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    require(&format!("python module {module}"), present, install)
}

/// Runs `cmd` to completion like `Command::output`, but kills it and panics
/// when it runs longer than `deadline` (a hung browser or fuzzer must fail
/// the test, not hang the suite). `what` names it in the messages.
pub fn output_within(
    cmd: &mut Command,
    deadline: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")));
    let err = pipe(Box::new(child.stderr.take().expect("stderr")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} still running after {deadline:?}: killed\n{}\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
