//! How `radmfa serve` sets up the allocator (mimalloc) before anything
//! runs: its options are read from the environment once, when the process
//! loads, and the workspace forbids the `unsafe` calls that would change
//! them later (`mi_option_set`). So `serve` starts itself again, once, with
//! the options below in its environment (same process id, arguments and
//! environment otherwise; the exec happens before any thread, socket or
//! file is opened). Separate from `serve.rs`: it runs before logging exists
//! and knows nothing of the server.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The options and why (`benches/README.md`, "Replication and memory").
///
/// `MIMALLOC_PURGE_DELAY=0`: memory freed in whole pages goes back to the
/// system (`madvise`) when it is freed. With the default (1 s) the purge is
/// only scheduled, and carried out later by a thread that allocates: memory
/// freed by a bulk phase (the changelog trim, serving a snapshot, a burst of
/// logins) before its threads went idle stayed resident, 25 to 30 MB on a
/// node with a million users. A warm node allocates and frees within pages
/// it keeps, so the steady state makes few such calls.
const OPTIONS: &[(&str, &str)] = &[("MIMALLOC_PURGE_DELAY", "0")];

/// Set in the environment of the process started again: it is never
/// started a third time, whatever the options say.
const MARK: &str = "RADMFA_ALLOCATOR_SET";

/// Starts this process again with [`OPTIONS`] unless it already runs with
/// them. An option the caller set in the environment is kept as it is (an
/// operator, or a benchmark comparing settings, decides). Returns only when
/// the process is not started again: it already was, or the exec failed
/// (then the server runs with mimalloc's defaults, and says so on standard
/// error: logging does not exist yet).
pub fn configure() {
    if std::env::var_os(MARK).is_some() {
        return;
    }
    let missing: Vec<&(&str, &str)> = OPTIONS
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("note: allocator options not set (cannot find this program: {e}); mimalloc's defaults apply");
            return;
        }
    };
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let arg0 = if args.is_empty() {
        exe.clone().into_os_string()
    } else {
        args.remove(0)
    };
    let mut cmd = Command::new(&exe);
    cmd.arg0(arg0).args(args).env(MARK, "1");
    for (name, value) in missing {
        cmd.env(name, value);
    }
    let e = cmd.exec();
    eprintln!(
        "note: allocator options not set (starting {} again failed: {e}); mimalloc's defaults apply",
        exe.display()
    );
}
