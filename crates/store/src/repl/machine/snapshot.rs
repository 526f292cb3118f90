//! Snapshots in parts, both sides: the primary reads each part from its live
//! trees when a replica asks for it, the replica installs parts one event
//! behind the request for the next and then replays the changelog until its
//! copy (fuzzy while the primary kept writing) is consistent. Apart from
//! `machine.rs` because it is the one protocol step with state of its own
//! (`Installing`, `PendingPart`, `Fuzzy`) and the one the simulator found a
//! divergence in.

use super::super::log::ReplLog;
use super::super::msg::{Cursor, Msg, NodeId, Snapshot};
use super::{part_in_order, Action, Fuzzy, Installing, Machine, PendingPart, Role};

impl Machine {
    /// Primary: the part of snapshot `pos` after `after`, asked for by
    /// replica `from`. Stateless: any position is served (a replica that
    /// installs a stale one is set right by the pull that follows it).
    pub(super) fn serve_snapshot_part(
        &mut self,
        now: u64,
        from: NodeId,
        pos: (u64, u64),
        after: Cursor,
        log: &dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let view = self.replicas.entry(from).or_default();
        view.last_seen = now;
        if let Some(s) = view.snapshot.as_mut() {
            s.0 = now; // Still transferring.
        }
        let (entries, next) = match log.snapshot_part(Some(&after), self.timing.snapshot_part_bytes)
        {
            Ok(part) => part,
            Err(e) => {
                self.last_error = Some(e.to_string());
                return;
            }
        };
        out.push(Action::Send(
            from,
            Msg::Snapshot {
                epoch: self.epoch,
                for_seq: pos.0,
                for_epoch: pos.1,
                snapshot: Snapshot {
                    seq: pos.0,
                    epoch: pos.1,
                    after: Some(after),
                    entries,
                    next,
                },
            },
        ));
    }

    /// A fuzzy snapshot copy whose log has reached the position it needed
    /// is consistent: tell the log (a store reopened before this point
    /// starts empty) and count as synced from now on.
    pub(super) fn settle_fuzzy_copy(&mut self, log: &mut dyn ReplLog) {
        let Some(until) = self.fuzzy.as_ref().and_then(|f| f.until) else {
            return;
        };
        if log.last().0 < until {
            return;
        }
        match log.install_settled() {
            Ok(()) => self.fuzzy = None,
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }

    /// Drops a fuzzy snapshot copy once it can no longer be completed from
    /// the node that sent it: this node follows another one, or a promotion
    /// raised the epoch (the writes it may hold past its log position can
    /// have been fenced). The next pull installs a snapshot again. A node
    /// that was promoted keeps its data: an operator chose it (forcing past
    /// `synced = false`), and emptying a primary would lose everything.
    pub(super) fn drop_fuzzy_copy(
        &mut self,
        now: u64,
        log: &mut dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let Some(f) = &self.fuzzy else {
            return;
        };
        let following = match self.role {
            Role::Primary => {
                self.fuzzy = None;
                if let Err(e) = log.install_settled() {
                    self.last_error = Some(e.to_string());
                }
                return;
            }
            Role::Replica { primary } => primary,
        };
        let moved = self.epoch != f.epoch || following.is_some_and(|p| p != f.from);
        if !moved {
            return;
        }
        self.fuzzy = None;
        self.synced = false;
        if let Err(e) = log.install_abort() {
            self.last_error = Some(e.to_string());
            return;
        }
        if let Some(p) = following {
            self.send_pull(p, now, log, out);
        }
    }

    pub(super) fn on_snapshot(
        &mut self,
        now: u64,
        from: NodeId,
        answers: (u64, u64),
        snapshot: Snapshot,
        log: &mut dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let Snapshot {
            seq,
            epoch,
            after,
            entries,
            next,
        } = snapshot;
        match &after {
            None => {
                if log.last() != answers {
                    return; // Late or duplicate: our log has moved since we asked.
                }
                if epoch > self.epoch || (seq == 0) != (epoch == 0) {
                    self.last_error = Some(format!("node {from} sent a malformed snapshot"));
                    return;
                }
                self.installing = None;
                self.pending = None;
                self.synced = false;
                if let Err(e) = log.install_begin(seq, epoch) {
                    self.last_error = Some(e.to_string());
                    return;
                }
            }
            Some(c) => {
                let expected = self.installing.as_ref().is_some_and(|i| {
                    i.from == from && (i.seq, i.epoch) == (seq, epoch) && i.next == *c && !i.done
                });
                if !expected {
                    return; // A duplicate, or a part of an abandoned install.
                }
            }
        }
        if !part_in_order(after.as_ref(), &entries, next.as_ref()) {
            self.last_error = Some(format!("node {from} sent a malformed snapshot part"));
            self.abort_install(log);
            return;
        }
        let done = next.is_none();
        let cursor = next.or(after).unwrap_or(Cursor {
            tree: 0,
            key: Vec::new(),
        });
        self.installing = Some(Installing {
            from,
            seq,
            epoch,
            next: cursor,
            asked_at: now,
            done,
        });
        self.pending = Some(PendingPart { entries });
        // Ask for the next part first; this one is installed at the start of
        // the next event (see `install_pending`).
        self.send_pull(from, now, log, out);
    }

    /// Installs the pending snapshot part; after the last one, ends the
    /// install and pulls from the snapshot's position (replaying what the
    /// fuzzy parts may have missed).
    pub(super) fn install_pending(
        &mut self,
        now: u64,
        log: &mut dyn ReplLog,
        out: &mut Vec<Action>,
    ) {
        let Some(part) = self.pending.take() else {
            return;
        };
        let Some(i) = self.installing.clone() else {
            return;
        };
        if let Err(e) = log.install_part(&part.entries) {
            self.last_error = Some(e.to_string());
            self.abort_install(log);
            return;
        }
        if !i.done {
            return;
        }
        self.installing = None;
        match log.install_finish(i.seq, i.epoch) {
            Ok(()) => {
                // Not synced yet: the copy is fuzzy until the replay below
                // reaches what the primary had written by then.
                self.synced = false;
                self.fuzzy = Some(Fuzzy {
                    from: i.from,
                    epoch: self.epoch,
                    until: None,
                });
                self.last_error = None;
                self.send_pull(i.from, now, log, out);
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.abort_install(log);
            }
        }
    }

    /// Drops a half-installed snapshot: empty data at `(0, 0)`, from which
    /// the next pull starts again.
    pub(super) fn abort_install(&mut self, log: &mut dyn ReplLog) {
        self.installing = None;
        self.pending = None;
        self.fuzzy = None;
        if let Err(e) = log.install_abort() {
            self.last_error = Some(e.to_string());
        }
    }
}
