//! The replication changelog over sled, and [`StoreLog`]: the
//! [`ReplLog`] the replication [`Machine`](crate::repl::Machine) runs on.
//!
//! * The `changelog` tree maps a sequence number (u64 big-endian) to one
//!   entry: `epoch` (u64 BE), kind (0 put, 1 remove), tree number (u8), key
//!   length (u32 BE), key, then the value (put only); the encoding, the tree
//!   numbers and the `meta` keys are in `schema.rs`. Entries are written in
//!   the transaction of the data they describe: by every administrative
//!   write (`Store::write`) and by [`ReplLog::append_local`] /
//!   [`ReplLog::apply`]. [`Store::advance_otp_state`] (the authentication
//!   hot path) is not logged: replay protection is node-local, and
//!   replicated data never lowers a node's OTP state for an unchanged token.
//! * `meta` keeps the log position (`repl_last_seq`, `repl_last_epoch`),
//!   updated in those same transactions, so it survives
//!   [`Store::trim_changelog`] and snapshot installs.
//! * Tree numbers ([`Op::tree`]): [`TREE_USERS`](crate::TREE_USERS),
//!   [`TREE_TOKENS`](crate::TREE_TOKENS),
//!   [`TREE_OTP_STATE`](crate::TREE_OTP_STATE),
//!   [`TREE_CLIENTS`](crate::TREE_CLIENTS),
//!   [`TREE_ADMIN_TOKENS`](crate::TREE_ADMIN_TOKENS); keys and values are the
//!   raw sled bytes (seeds and PINs stay sealed: every node needs the same
//!   key file).
//! * Only entries known to be on disk are served to replicas
//!   ([`ReplLog::changes_since`] and [`ReplLog::snapshot`] flush first when
//!   a commit is not flushed yet): a primary that crashes and loses its
//!   unflushed tail must not have shipped it, or it would later write other
//!   entries under the same `(seq, epoch)`.

use std::sync::atomic::Ordering;

use crate::repl::{ApplyError, Change, Cursor, Entry, Op, ReplLog, Snapshot, Trimmed};
use crate::schema::{
    decode_entry, decode_u64, AdminTree, META_REPL_INSTALLING, META_REPL_LAST_EPOCH,
    META_REPL_LAST_SEQ, META_USER_COUNT,
};
use crate::store::ReplState;
use crate::{Store, StoreError};

/// Entries inserted per sled batch while installing a snapshot.
const INSTALL_BATCH: usize = 4096;
/// Changelog entries removed per lock hold by [`Store::trim_changelog`].
const TRIM_BATCH: usize = 4096;

/// Collections of sled's deferred frees run by [`help_deferred_frees`].
const DEFERRED_FREE_ROUNDS: usize = 256;

/// Frees what sled retired during a bulk operation (a snapshot part
/// installed or read, a trim batch).
///
/// sled frees replaced tree nodes and evicted pages through crossbeam-epoch,
/// whose collector frees at most 8 bags of 64 retired objects per 128
/// pins. A replica inserting a snapshot without pause retires objects
/// faster than that: the backlog took a million-user catch-up from 280 MB
/// to 1.5 GB. Each round here moves this thread's bag to the global queue
/// and collects up to 8 bags whose epoch has passed; a round on an empty
/// queue costs a pin.
fn help_deferred_frees() {
    for _ in 0..DEFERRED_FREE_ROUNDS {
        crossbeam_epoch::pin().flush();
    }
}

/// Storage errors as the machine sees them.
fn storage(e: StoreError) -> ApplyError {
    ApplyError::Storage(e.to_string())
}

/// The tree of an operation, or a storage error naming the unknown number.
fn tree_of(op: &Op) -> Result<AdminTree, ApplyError> {
    AdminTree::from_number(op.tree())
        .ok_or_else(|| ApplyError::Storage(format!("unknown replicated tree {}", op.tree())))
}

/// The sled [`ReplLog`]: a [`Store`] seen by the replication machine.
///
/// Cheap to clone; every clone (and the `Store` itself) shares one write
/// lock, so the machine's calls, the request path's writes and backups are
/// serialized where they touch the replicated trees.
#[derive(Clone, Debug)]
pub struct StoreLog {
    store: Store,
}

impl StoreLog {
    /// The log of `store`.
    pub fn new(store: Store) -> StoreLog {
        StoreLog { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Store {
    /// This store as a [`ReplLog`] (same as [`StoreLog::new`]).
    pub fn repl_log(&self) -> StoreLog {
        StoreLog::new(self.clone())
    }

    /// Removes changelog entries, keeping the last `keep_last` (the data and
    /// the log position are unchanged; a replica further behind then gets a
    /// snapshot). Returns the number of entries removed. Works in batches of
    /// 4096 under the write lock; stops at the first storage error (the next
    /// call goes on from there).
    pub fn trim_changelog(&self, keep_last: u64) -> usize {
        self.trim_changelog_while(keep_last, || true)
    }

    /// [`Store::trim_changelog`] that stops between two batches once
    /// `go_on` says no (a node shutting down).
    pub fn trim_changelog_while(&self, keep_last: u64, go_on: impl Fn() -> bool) -> usize {
        let mut removed = 0;
        // Each batch starts after the last key the one before removed: sled
        // does not merge emptied leaves, so a scan from the start of the
        // tree walked (and paged in) every leaf emptied so far, which made
        // trimming millions of entries quadratic. Entries below `from` that
        // appear meanwhile (a snapshot install restarting the log lower) are
        // left to the next call, which starts from the beginning again.
        let mut from = 0u64;
        while go_on() {
            let st = self.lock_repl();
            let upto = st.last_seq.saturating_sub(keep_last);
            if from > upto {
                return removed;
            }
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self
                .inner
                .changelog
                .range(from.to_be_bytes()..=upto.to_be_bytes())
            {
                let Ok((k, _)) = kv else { break };
                if let Ok(seq) = decode_u64("changelog key", &k) {
                    from = seq.saturating_add(1);
                }
                batch.remove(k);
                n += 1;
                if n == TRIM_BATCH {
                    break;
                }
            }
            if n == 0 || self.inner.changelog.apply_batch(batch).is_err() {
                return removed;
            }
            removed += n;
            drop(st);
            help_deferred_frees();
            if n < TRIM_BATCH {
                return removed;
            }
        }
        removed
    }

    /// Whether a replica is installing a snapshot from this node: a part
    /// was served less than `within` ago. Background work (trimming the
    /// changelog) waits meanwhile: it would take CPU and the write lock
    /// from the catch-up, and could trim the entries the replica replays
    /// after its last part.
    pub fn serving_snapshot(&self, within: std::time::Duration) -> bool {
        self.snapshot_served().is_some_and(|t| t.elapsed() < within)
    }

    fn snapshot_part_served(&self) {
        *self.snapshot_served() = Some(std::time::Instant::now());
    }

    fn snapshot_served(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        let served = &self.inner.snapshot_served;
        served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Flushes when changelog entries past the durable mark exist.
    fn ensure_durable(&self, last: u64) -> Result<(), StoreError> {
        if self.inner.durable_seq.load(Ordering::SeqCst) < last {
            self.flush_to(last)?;
        }
        Ok(())
    }

    /// A copy of the replicated trees at the position of `st` (the caller
    /// holds the write lock).
    pub(crate) fn copy_trees(&self, st: &ReplState) -> Result<Snapshot, StoreError> {
        let i = &*self.inner;
        let mut entries = Vec::new();
        for t in AdminTree::ALL {
            let tree = match t {
                AdminTree::Users => &i.users,
                AdminTree::Tokens => &i.tokens,
                AdminTree::OtpState => &i.otp_state,
                AdminTree::Clients => &i.clients,
                AdminTree::AdminTokens => &i.admin_tokens,
                AdminTree::TokenPool => &i.token_pool,
            };
            for kv in tree.iter() {
                let (k, v) = kv?;
                entries.push(Entry {
                    tree: t.number(),
                    key: k.to_vec(),
                    value: v.to_vec(),
                });
            }
        }
        Ok(Snapshot {
            seq: st.last_seq,
            epoch: st.last_epoch,
            after: None,
            entries,
            next: None,
        })
    }

    /// Replaces the replicated trees by `entries` and the log position by
    /// `(seq, epoch)`, discarding the changelog (a restore, or a snapshot
    /// received whole): [`Store::install_begin`], one part, then
    /// [`Store::install_finish`]. The caller holds the write lock and has
    /// checked the tree numbers.
    pub(crate) fn install_entries(
        &self,
        st: &mut ReplState,
        seq: u64,
        epoch: u64,
        entries: &[Entry],
    ) -> Result<(), StoreError> {
        self.install_begin(st, seq)?;
        self.install_part(entries)?;
        self.install_finish(st, seq, epoch)?;
        // A whole snapshot in one piece (restore, tools): nothing to replay.
        self.install_settled()
    }

    fn data_trees(&self) -> [&sled::Tree; 6] {
        let i = &*self.inner;
        [
            &i.users,
            &i.tokens,
            &i.otp_state,
            &i.clients,
            &i.admin_tokens,
            &i.token_pool,
        ]
    }

    fn tree(&self, t: AdminTree) -> &sled::Tree {
        let i = &*self.inner;
        match t {
            AdminTree::Users => &i.users,
            AdminTree::Tokens => &i.tokens,
            AdminTree::OtpState => &i.otp_state,
            AdminTree::Clients => &i.clients,
            AdminTree::AdminTokens => &i.admin_tokens,
            AdminTree::TokenPool => &i.token_pool,
        }
    }

    /// After the trees changed outside the request path. `users`: the user
    /// count, when known (counting walks the whole tree: not per part).
    fn trees_changed(&self, users: Option<u64>) {
        let i = &*self.inner;
        i.data_generation.fetch_add(1, Ordering::SeqCst);
        i.clients_generation.fetch_add(1, Ordering::SeqCst);
        if let Some(users) = users {
            i.user_count
                .store(i64::try_from(users).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
    }

    /// Starts installing a snapshot (too big for one sled transaction in
    /// general; crash-safe by a marker):
    /// 1. `meta`: set `repl_installing`, position `(0, 0)`; flush.
    /// 2. Keep this node's OTP states with their token records in
    ///    `repl_install_otp` (OTP advances are node-local: an unchanged token
    ///    keeps the higher of its local and the snapshot's state).
    /// 3. Clear the changelog and the data trees.
    ///
    /// Then [`Store::install_part`] per part and [`Store::install_finish`].
    /// A store opened with `repl_installing` set wipes the data trees and the
    /// changelog and starts at `(0, 0)`: the replica then re-syncs (a
    /// restore into it must be redone).
    pub(crate) fn install_begin(&self, st: &mut ReplState, seq: u64) -> Result<(), StoreError> {
        let i = &*self.inner;
        let mut begin = sled::Batch::default();
        begin.insert(META_REPL_INSTALLING, &seq.to_be_bytes());
        begin.insert(META_REPL_LAST_SEQ, &0u64.to_be_bytes());
        begin.insert(META_REPL_LAST_EPOCH, &0u64.to_be_bytes());
        i.meta.apply_batch(begin)?;
        (st.last_seq, st.last_epoch) = (0, 0);
        i.durable_seq.store(0, Ordering::SeqCst);
        i.db.flush()?;

        i.install_otp.clear()?;
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in i.otp_state.iter() {
            let (k, local) = kv?;
            let Some(token) = i.tokens.get(&k)? else {
                continue;
            };
            let mut v = Vec::with_capacity(local.len() + token.len());
            v.extend_from_slice(&local);
            v.extend_from_slice(&token);
            batch.insert(k, v);
            n += 1;
            if n == INSTALL_BATCH {
                i.install_otp.apply_batch(std::mem::take(&mut batch))?;
                n = 0;
            }
        }
        i.install_otp.apply_batch(batch)?;
        i.changelog.clear()?;
        for tree in self.data_trees() {
            tree.clear()?;
        }
        i.install_users.store(0, Ordering::SeqCst);
        self.trees_changed(Some(0));
        Ok(())
    }

    /// Adds one part's entries (ascending `(tree, key)`, tree numbers
    /// checked by the caller) in batches. An OTP state whose token record
    /// is byte-identical to the one this node had keeps the higher value.
    pub(crate) fn install_part(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut start = 0;
        while start < entries.len() {
            let t = entries[start].tree;
            let end = entries[start..]
                .iter()
                .position(|e| e.tree != t)
                .map_or(entries.len(), |n| start + n);
            let Some(kind) = AdminTree::from_number(t) else {
                return Err(StoreError::Corrupt(format!("unknown replicated tree {t}")));
            };
            if kind == AdminTree::Users {
                let n = u64::try_from(end - start).unwrap_or(u64::MAX);
                self.inner.install_users.fetch_add(n, Ordering::SeqCst);
            }
            self.insert_entries(kind, &entries[start..end])?;
            start = end;
        }
        self.trees_changed(None);
        Ok(())
    }

    /// Inserts `entries` of one tree in batches.
    fn insert_entries(&self, kind: AdminTree, entries: &[Entry]) -> Result<(), StoreError> {
        let tree = self.tree(kind);
        for chunk in entries.chunks(INSTALL_BATCH) {
            let mut batch = sled::Batch::default();
            for e in chunk {
                if kind == AdminTree::OtpState {
                    if let Some(local) = self.kept_otp_state(&e.key, &e.value)? {
                        batch.insert(e.key.as_slice(), local);
                        continue;
                    }
                }
                batch.insert(e.key.as_slice(), e.value.as_slice());
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }

    /// The local OTP state to keep instead of `incoming` for `key`: this
    /// node's own, when it is higher and the token is the same enrollment.
    /// Forgets the local state either way.
    fn kept_otp_state(&self, key: &[u8], incoming: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let i = &*self.inner;
        let Some(saved) = i.install_otp.remove(key)? else {
            return Ok(None);
        };
        let Some((local, token)) = saved.split_at_checked(8) else {
            return Ok(None);
        };
        let same_token = i.tokens.get(key)?.is_some_and(|t| t.as_ref() == token);
        let higher = match (
            decode_u64("otp state", local),
            decode_u64("otp state", incoming),
        ) {
            (Ok(l), Ok(n)) => l > n,
            (Ok(_), Err(_)) => true,
            _ => false,
        };
        Ok((same_token && higher).then(|| local.to_vec()))
    }

    /// Ends an install: local OTP states the snapshot had none for are put
    /// back when their token is unchanged, then `meta` (one batch): position
    /// `(seq, epoch)`, user count; flush. `repl_installing` stays until
    /// [`Store::install_settled`]: the parts were read from live trees, so
    /// the data may hold changes past `seq` until the replica has replayed
    /// the changelog far enough, and a store reopened before that wipes.
    pub(crate) fn install_finish(
        &self,
        st: &mut ReplState,
        seq: u64,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let i = &*self.inner;
        let mut batch = sled::Batch::default();
        for kv in i.install_otp.iter() {
            let (k, saved) = kv?;
            if let Some((local, token)) = saved.split_at_checked(8) {
                if i.tokens.get(&k)?.is_some_and(|t| t.as_ref() == token) {
                    batch.insert(k, local);
                }
            }
        }
        i.otp_state.apply_batch(batch)?;
        i.install_otp.clear()?;

        let users = i.install_users.swap(0, Ordering::SeqCst);
        let mut end = sled::Batch::default();
        end.insert(META_REPL_LAST_SEQ, &seq.to_be_bytes());
        end.insert(META_REPL_LAST_EPOCH, &epoch.to_be_bytes());
        end.insert(META_USER_COUNT, &users.to_be_bytes());
        i.meta.apply_batch(end)?;
        (st.last_seq, st.last_epoch) = (seq, epoch);
        i.db.flush()?;
        // Not `fetch_max`: the log may have been replaced by a shorter one.
        i.durable_seq.store(seq, Ordering::SeqCst);
        self.trees_changed(Some(users));
        Ok(())
    }

    /// The installed copy is consistent: remove `repl_installing`; flush.
    pub(crate) fn install_settled(&self) -> Result<(), StoreError> {
        self.inner.meta.remove(META_REPL_INSTALLING)?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Gives up an install (or empties a replica): no data, no changelog,
    /// position `(0, 0)`.
    pub(crate) fn install_abort(&self, st: &mut ReplState) -> Result<(), StoreError> {
        let i = &*self.inner;
        i.changelog.clear()?;
        for tree in self.data_trees() {
            tree.clear()?;
        }
        i.install_otp.clear()?;
        let mut end = sled::Batch::default();
        end.insert(META_REPL_LAST_SEQ, &0u64.to_be_bytes());
        end.insert(META_REPL_LAST_EPOCH, &0u64.to_be_bytes());
        end.insert(META_USER_COUNT, &0u64.to_be_bytes());
        end.remove(META_REPL_INSTALLING);
        i.meta.apply_batch(end)?;
        (st.last_seq, st.last_epoch) = (0, 0);
        i.db.flush()?;
        i.durable_seq.store(0, Ordering::SeqCst);
        self.trees_changed(Some(0));
        Ok(())
    }

    /// Entries of the live trees after `after`, about `max_bytes` of keys
    /// and values (see [`ReplLog::snapshot_part`]).
    pub(crate) fn read_part(
        &self,
        after: Option<&Cursor>,
        max_bytes: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>), StoreError> {
        use std::ops::Bound;
        let mut out = Vec::new();
        let mut size = 0usize;
        for t in AdminTree::ALL {
            let n = t.number();
            let range = match after {
                Some(c) if c.tree > n => continue,
                Some(c) if c.tree == n => self
                    .tree(t)
                    .range::<&[u8], _>((Bound::Excluded(c.key.as_slice()), Bound::Unbounded)),
                _ => self.tree(t).iter(),
            };
            for kv in range {
                let (k, v) = kv?;
                size = size.saturating_add(k.len() + v.len());
                out.push(Entry {
                    tree: n,
                    key: k.to_vec(),
                    value: v.to_vec(),
                });
                if size >= max_bytes {
                    let next = Cursor {
                        tree: n,
                        key: k.to_vec(),
                    };
                    return Ok((out, Some(next)));
                }
            }
        }
        Ok((out, None))
    }
}

impl ReplLog for StoreLog {
    fn last(&self) -> (u64, u64) {
        let st = self.store.lock_repl();
        (st.last_seq, st.last_epoch)
    }

    /// Serves durable entries only: when hot-path entries are pending it
    /// flushes first; if that flush fails it serves up to the durable mark.
    /// A stored entry that does not decode is reported as `Trimmed` (the
    /// peer then gets a snapshot).
    fn changes_since(&self, seq: u64, max: usize) -> Result<Vec<Change>, Trimmed> {
        let (last, _) = self.last();
        if seq >= last || max == 0 {
            return Ok(Vec::new());
        }
        let _ = self.store.ensure_durable(last);
        let limit = self
            .store
            .inner
            .durable_seq
            .load(Ordering::SeqCst)
            .min(last);
        if seq >= limit {
            return Ok(Vec::new());
        }
        let from = seq + 1;
        let mut out = Vec::new();
        for kv in self
            .store
            .inner
            .changelog
            .range(from.to_be_bytes()..=limit.to_be_bytes())
            .take(max)
        {
            let (k, v) = kv.map_err(|_| Trimmed)?;
            let key = decode_u64("changelog key", &k).map_err(|_| Trimmed)?;
            let change = decode_entry(key, &v).map_err(|_| Trimmed)?;
            if change.seq != from + out.len() as u64 {
                // A hole: the entries asked for were trimmed (or replaced).
                return Err(Trimmed);
            }
            out.push(change);
        }
        if out.is_empty() {
            return Err(Trimmed);
        }
        Ok(out)
    }

    fn append_local(&mut self, epoch: u64, op: Op) -> Result<Change, ApplyError> {
        let t = tree_of(&op)?;
        let store = &self.store;
        let mut st = store.lock_repl();
        let seq = st.last_seq + 1;
        if epoch < st.last_epoch {
            return Err(ApplyError::EpochRegression {
                seq,
                epoch,
                previous: st.last_epoch,
            });
        }
        let change = Change { seq, epoch, op };
        let out = store
            .run_tx(&st, None, |tx| {
                match &change.op {
                    Op::Put { key, value, .. } => {
                        tx.put(t, key, value.clone())?;
                    }
                    Op::Remove { key, .. } => {
                        tx.remove(t, key)?;
                    }
                }
                tx.append(&change)
            })
            .map_err(storage)?;
        store.publish(&mut st, &out);
        store.inner.data_generation.fetch_add(1, Ordering::SeqCst);
        drop(st);
        store.flush_to(seq).map_err(storage)?;
        Ok(change)
    }

    /// Applies in one transaction, then flushes. One deviation from a plain
    /// replay: an OTP state put never lowers the local value (a replica's
    /// local replay protection survives the primary's older state).
    fn apply(&mut self, changes: &[Change]) -> Result<(), ApplyError> {
        let store = &self.store;
        let mut st = store.lock_repl();
        let (mut seq, mut epoch) = (st.last_seq, st.last_epoch);
        let start = changes.iter().position(|c| c.seq > seq);
        let fresh = start.and_then(|i| changes.get(i..)).unwrap_or(&[]);
        let mut trees = Vec::with_capacity(fresh.len());
        for c in fresh {
            if Some(c.seq) != seq.checked_add(1) {
                return Err(ApplyError::Gap {
                    expected: seq.saturating_add(1),
                    got: c.seq,
                });
            }
            if c.epoch < epoch {
                return Err(ApplyError::EpochRegression {
                    seq: c.seq,
                    epoch: c.epoch,
                    previous: epoch,
                });
            }
            trees.push(tree_of(&c.op)?);
            (seq, epoch) = (c.seq, c.epoch);
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let out = store
            .run_tx(&st, None, |tx| {
                for (c, &t) in fresh.iter().zip(&trees) {
                    match &c.op {
                        Op::Put { key, value, .. } => {
                            let keep_local = t == AdminTree::OtpState
                                && tx.get(t, key)?.is_some_and(|cur| {
                                    match (decode_u64("", &cur), decode_u64("", value)) {
                                        (Ok(cur), Ok(new)) => cur > new,
                                        _ => false,
                                    }
                                });
                            if !keep_local {
                                tx.put(t, key, value.clone())?;
                            }
                        }
                        Op::Remove { key, .. } => {
                            tx.remove(t, key)?;
                        }
                    }
                    tx.append(c)?;
                }
                Ok(())
            })
            .map_err(storage)?;
        store.publish(&mut st, &out);
        store.inner.data_generation.fetch_add(1, Ordering::SeqCst);
        let end = st.last_seq;
        drop(st);
        store.flush_to(end).map_err(storage)
    }

    /// Holds the write lock while copying. On a storage error it returns a
    /// deliberately malformed snapshot (`seq` 0 with epoch `u64::MAX`), which
    /// every replica refuses (the primary retries later).
    fn snapshot(&self) -> Snapshot {
        let st = self.store.lock_repl();
        let _ = self.store.ensure_durable(st.last_seq);
        self.store.copy_trees(&st).unwrap_or(Snapshot {
            seq: 0,
            epoch: u64::MAX,
            after: None,
            entries: Vec::new(),
            next: None,
        })
    }

    fn snapshot_part(
        &self,
        after: Option<&Cursor>,
        max_bytes: usize,
    ) -> Result<(Vec<Entry>, Option<Cursor>), ApplyError> {
        self.store.snapshot_part_served();
        let part = self.store.read_part(after, max_bytes).map_err(storage)?;
        help_deferred_frees();
        // Whatever the part read was committed, so its changes are at or
        // before the position now: make them durable before they leave
        // (a primary that lost them in a crash must not have shipped them).
        let st = self.store.lock_repl();
        self.store.ensure_durable(st.last_seq).map_err(storage)?;
        Ok(part)
    }

    fn install_begin(&mut self, seq: u64, _epoch: u64) -> Result<(), ApplyError> {
        let mut st = self.store.lock_repl();
        self.store.install_begin(&mut st, seq).map_err(storage)
    }

    fn install_part(&mut self, entries: &[Entry]) -> Result<(), ApplyError> {
        check_trees(entries)?;
        let st = self.store.lock_repl();
        self.store.install_part(entries).map_err(storage)?;
        drop(st);
        help_deferred_frees();
        Ok(())
    }

    fn install_finish(&mut self, seq: u64, epoch: u64) -> Result<(), ApplyError> {
        let mut st = self.store.lock_repl();
        self.store
            .install_finish(&mut st, seq, epoch)
            .map_err(storage)
    }

    fn install_settled(&mut self) -> Result<(), ApplyError> {
        let _st = self.store.lock_repl();
        self.store.install_settled().map_err(storage)
    }

    fn install_abort(&mut self) -> Result<(), ApplyError> {
        let mut st = self.store.lock_repl();
        self.store.install_abort(&mut st).map_err(storage)
    }

    /// Checks every tree number before anything changes, then installs
    /// under one hold of the write lock.
    fn install_snapshot(&mut self, s: Snapshot) -> Result<(), ApplyError> {
        check_trees(&s.entries)?;
        let mut st = self.store.lock_repl();
        self.store
            .install_entries(&mut st, s.seq, s.epoch, &s.entries)
            .map_err(storage)
    }
}

/// Every entry names a replicated tree.
fn check_trees(entries: &[Entry]) -> Result<(), ApplyError> {
    match entries
        .iter()
        .find(|e| AdminTree::from_number(e.tree).is_none())
    {
        Some(e) => Err(ApplyError::Storage(format!(
            "unknown replicated tree {}",
            e.tree
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the store in `dir`, waiting for the lock a store just closed
    /// there may still hold for a moment (sled's background threads).
    fn open(dir: &tempfile::TempDir) -> Store {
        for _ in 0..100 {
            match Store::open(
                &dir.path().join("db"),
                &dir.path().join("key"),
                &crate::StoreOptions::default(),
            ) {
                Err(StoreError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other.unwrap(),
            }
        }
        panic!("the store stayed locked for 2 s");
    }

    #[test]
    fn interrupted_install_is_wiped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.add_user(&crate::User::new("alice")).unwrap();
        store
            .add_client(&crate::Client {
                name: "nas".into(),
                address: "192.0.2.1/32".parse().unwrap(),
                secret: "s".into(),
                policy: "default".into(),
                require_message_authenticator: true,
            })
            .unwrap();
        // As left by a crash in the middle of `install_steps`.
        store
            .inner
            .meta
            .insert(META_REPL_INSTALLING, &9u64.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = open(&dir);
        assert_eq!(store.repl_log().last(), (0, 0));
        assert_eq!(store.user_count(), 0);
        assert!(store.list_users().unwrap().is_empty());
        assert!(store.list_clients().unwrap().is_empty());
        assert!(store.inner.changelog.is_empty());
        assert!(store
            .inner
            .meta
            .get(META_REPL_INSTALLING)
            .unwrap()
            .is_none());
        store.add_user(&crate::User::new("bob")).unwrap();
        assert_eq!(store.repl_log().last(), (1, 1));
    }

    #[test]
    fn database_from_before_the_changelog_needs_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.add_user(&crate::User::new("alice")).unwrap();
        // An older version wrote no changelog and no position.
        store.inner.changelog.clear().unwrap();
        store.inner.meta.remove(META_REPL_LAST_SEQ).unwrap();
        store.inner.meta.remove(META_REPL_LAST_EPOCH).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = open(&dir);
        let log = store.repl_log();
        assert_eq!(log.last(), (1, 1));
        // A new replica (at 0) is sent a snapshot, which holds the old data.
        assert_eq!(log.changes_since(0, 10), Err(Trimmed));
        assert_eq!(log.snapshot().entries.len(), 1);
        store.add_user(&crate::User::new("bob")).unwrap();
        assert_eq!(log.changes_since(1, 10).unwrap().len(), 1);

        // An empty one starts at (0, 0).
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(open(&empty).repl_log().last(), (0, 0));
    }

    #[test]
    fn changelog_out_of_step_with_meta_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.add_user(&crate::User::new("alice")).unwrap();
        store
            .inner
            .meta
            .insert(META_REPL_LAST_SEQ, &5u64.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let err = Store::open(
            &dir.path().join("db"),
            &dir.path().join("key"),
            &crate::StoreOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("changelog")),
            "{err}"
        );
    }
}
