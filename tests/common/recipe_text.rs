//! The text of the worked deployment recipes (docs/recipes/): the
//! configuration blocks a page marks with `<!-- recipe: NAME -->`. A leaf
//! with no other harness in it, so tests/deploy_check.rs (which does not
//! build the whole harness) can read the blocks too.

use std::path::Path;

/// The text of docs/recipes/`name`.
pub fn page(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/recipes")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced block right after the line `<!-- recipe: NAME -->`.
pub fn block(page: &str, name: &str) -> String {
    let marker = format!("<!-- recipe: {name} -->");
    let mut lines = page.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "no `{marker}` in the recipe");
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "`{marker}` is not followed by a fenced block: {fence:?}"
    );
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

/// Replaces `from` by `to` in `text`, failing when `from` is not there (a
/// recipe that changed must fail the test, not be tested half).
#[track_caller]
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{from:?} is not in the recipe block:\n{text}"
    );
    text.replace(from, to)
}
