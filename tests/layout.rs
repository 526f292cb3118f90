//! Keeps the workspace's layout readable: `tools/layout.py --check` finds no
//! import circle between source files, no production file over 1,200 lines
//! before its test part (`src/main.rs` over 600) and no function over 150
//! lines. The checker itself is run against small trees with a known defect
//! first, so a checker that stopped seeing anything fails here too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the checker on `root`; returns (exit success, stdout).
fn layout(root: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(repo().join("tools/layout.py"))
        .arg("--check")
        .arg("--root")
        .arg(root)
        .output()
        .expect("python3 runs tools/layout.py");
    assert!(
        out.stderr.is_empty(),
        "tools/layout.py wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Writes `files` (path, text) under a fresh directory.
fn tree(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn the_checker_sees_a_circle_between_two_modules() {
    let t = tree(&[
        ("crates/a/src/lib.rs", "mod x;\nmod y;\n".into()),
        (
            "crates/a/src/x.rs",
            "use crate::y::B;\npub struct A(pub B);\n".into(),
        ),
        (
            "crates/a/src/y.rs",
            "pub struct B;\npub fn f(_: crate::x::A) {}\n".into(),
        ),
    ]);
    let (ok, out) = layout(t.path());
    assert!(!ok, "a circle passed: {out}");
    assert!(
        out.contains("import circle of 2 files: crates/a/src/x.rs, crates/a/src/y.rs"),
        "{out}"
    );
}

#[test]
fn the_checker_follows_re_exports_and_skips_test_modules() {
    // lib.rs re-exports x's item and y imports it through the root: no circle,
    // since lib.rs defines nothing y needs. The test module may import anything.
    let t = tree(&[
        (
            "crates/a/src/lib.rs",
            "mod x;\nmod y;\npub use x::A;\n#[cfg(test)]\nmod tests;\n".into(),
        ),
        ("crates/a/src/x.rs", "pub struct A;\n".into()),
        (
            "crates/a/src/y.rs",
            "use crate::A;\npub fn f(_: A) {}\n".into(),
        ),
        ("crates/a/src/tests.rs", "use crate::y::f;\n".into()),
    ]);
    let (ok, out) = layout(t.path());
    assert!(ok, "{out}");
    // The same tree with the item defined in lib.rs is a circle through it.
    let t = tree(&[
        (
            "crates/a/src/lib.rs",
            "mod y;\npub use y::f;\npub struct A;\n".into(),
        ),
        (
            "crates/a/src/y.rs",
            "use crate::A;\npub fn f(_: A) {}\n".into(),
        ),
    ]);
    let (ok, out) = layout(t.path());
    assert!(!ok && out.contains("import circle of 2 files"), "{out}");
}

#[test]
fn the_checker_counts_file_and_function_lengths() {
    let long_fn = format!("pub fn f() {{\n{}}}\n", "    let _ = 1;\n".repeat(150));
    let long_file = "pub const X: u8 = 1;\n".repeat(1201);
    let t = tree(&[
        ("crates/a/src/lib.rs", "mod x;\nmod y;\n".into()),
        ("crates/a/src/x.rs", long_fn),
        (
            "crates/a/src/y.rs",
            format!(
                "{long_file}#[cfg(test)]\nmod tests {{\n{}}}\n",
                "\n".repeat(2000)
            ),
        ),
        ("src/main.rs", "fn main() {}\n".repeat(601)),
    ]);
    let (ok, out) = layout(t.path());
    assert!(!ok, "{out}");
    assert!(
        out.contains("crates/a/src/x.rs:1: fn f is 152 lines"),
        "{out}"
    );
    assert!(
        out.contains("crates/a/src/y.rs: 1201 lines before its test part"),
        "{out}"
    );
    assert!(
        out.contains("src/main.rs: 601 lines before its test part (limit 600)"),
        "{out}"
    );
}

#[test]
fn the_workspace_has_no_import_circle_and_no_oversized_file_or_function() {
    let (ok, out) = layout(&repo());
    assert!(ok, "tools/layout.py --check:\n{out}");
}
