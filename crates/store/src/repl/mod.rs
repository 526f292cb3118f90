//! Replication: a sans-io state machine (events in, actions out).
//!
//! One writable primary, read-only replicas (DESIGN.md §6). Every write on the
//! primary appends a [`Change`] `(seq, epoch, op)` to the changelog in the same
//! transaction as the data ([`ReplLog::append_local`]). Replicas connect to
//! their peers, find the primary (the node that claims it at the highest
//! epoch), and pull: a [`Msg::Pull`] names the replica's last entry, the
//! primary answers with the next bounded batch ([`Msg::Changes`]) or, when
//! that entry is trimmed or is not in its log (a fenced tail), with a
//! [`Msg::Snapshot`]. Each applied batch is acknowledged by the next pull, so
//! one batch is in flight per replica and the primary knows each replica's
//! lag; an idle, caught-up replica is pushed each new write at once.
//!
//! Fencing: every message carries the sender's epoch. A higher epoch is
//! adopted on sight (a primary steps down); a lower one is refused and
//! answered with a [`Msg::Pong`] naming ours. [`Event::Promote`] makes a
//! replica primary at epoch + 1. The old primary, when it hears of it, steps
//! down and pulls; its last entry is not in the new primary's log, so it gets a
//! snapshot and the writes it made after the promotion are gone everywhere.
//!
//! The [`Machine`] is deterministic: no clock, no sockets, no threads. The
//! driver (`radmfa-server`) owns the connections, implements [`ReplLog`] over
//! sled, persists [`Role`] and epoch on [`Action::Persist`], and feeds
//! [`Event`]s, [`Event::Tick`] included. [`MemLog`] is the in-memory model of
//! [`ReplLog`] used by the tests and the simulator (`tests/repl_sim.rs`).

mod log;
mod machine;
mod memlog;
mod msg;
pub mod wire;

pub use log::{ApplyError, ReplLog, Trimmed};
pub use machine::{Action, Event, Machine, ReplicaStatus, Role, Status, Timing, WriteRefused};
pub use memlog::MemLog;
pub use msg::{Change, Cursor, Entry, Msg, NodeId, Op, Snapshot};
