//! The sled-backed [`Store`]: opening (schema, key and replication state
//! checks) and the one write transaction every administrative change goes
//! through. The operations per record kind live in the child modules.

mod audit;
mod clients;
mod pool;
mod tokens;
mod users;

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{IVec, Transactional};

use crate::crypto::{
    hex_decode, key_check_matches, load_or_create_key, seal_key_check, SeedCipher,
};
use crate::inbox::{Inbox, INBOX_DIR};
use crate::journal::{Journal, JournalConfig, SEGMENT_MAX_BYTES};
use crate::repl::{Change, Op, Role};
use crate::schema::{
    decode, decode_u64, encode_entry, AdminTree, EntryKind, TokenRecord, META_KEY_CHECK,
    META_REPL_EPOCH, META_REPL_INSTALLING, META_REPL_LAST_EPOCH, META_REPL_LAST_SEQ,
    META_REPL_ROLE, META_SCHEMA_VERSION, META_USER_COUNT, SCHEMA_VERSION,
};
use crate::{StoreError, User};

/// How long appended audit records may stay in memory when
/// `StoreOptions::flush_every_ms` is `None` (they are then written by the
/// next append after this interval, or by [`Store::flush`]).
const DEFAULT_AUDIT_INTERVAL_MS: u64 = 200;
/// The message of [`StoreError::ReadOnly`] on a replica.
const READ_ONLY_REPLICA: &str = "read-only: this node is a replica";

/// Options for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled page cache size in bytes (default 32 MiB).
    pub cache_bytes: u64,
    /// Create the key file when it is missing (default true). Creation is refused
    /// anyway when the database already holds encrypted seeds.
    pub create_key_if_missing: bool,
    /// Interval of the background flushes (sled's and the audit journal's),
    /// which make the unflushed hot-path writes (OTP state, audit) durable
    /// (default `Some(200)`; `None` disables them, leaving only explicit
    /// [`Store::flush`] calls and admin writes).
    pub flush_every_ms: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            cache_bytes: 32 * 1024 * 1024,
            create_key_if_missing: true,
            flush_every_ms: Some(200),
        }
    }
}

/// The store: a sled database plus the seed encryption key. Cheap to clone
/// (an `Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) db: sled::Db,
    pub(crate) users: sled::Tree,
    pub(crate) tokens: sled::Tree,
    pub(crate) otp_state: sled::Tree,
    pub(crate) clients: sled::Tree,
    /// Admin API bearer tokens (hashes): see `admin_tokens.rs`.
    pub(crate) admin_tokens: sled::Tree,
    /// Imported tokens by serial: see `store/pool.rs`.
    pub(crate) token_pool: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// Replication changelog: key = seq (u64 big-endian), value =
    /// [`encode_entry`].
    pub(crate) changelog: sled::Tree,
    /// While a snapshot is installed part by part: this node's OTP states
    /// before it (key = token key, value = u64 BE state then the token
    /// record it belonged to), so an unchanged token keeps a higher local
    /// state (see `StoreLog::install_begin`).
    pub(crate) install_otp: sled::Tree,
    /// Users added by the snapshot install in progress (parts never repeat
    /// a key, so this is the user count when it ends).
    pub(crate) install_users: AtomicU64,
    /// The audit log: JSON-lines segments in `<db dir>.audit/`.
    pub(crate) journal: Arc<Journal>,
    /// Records other nodes shipped here while this node was the primary,
    /// in `<db dir>.audit/cluster/`.
    pub(crate) inbox: Inbox,
    pub(crate) cipher: SeedCipher,
    pub(crate) clients_generation: AtomicU64,
    /// Sum of committed deltas; may dip below zero for an instant when two
    /// writers publish their deltas out of commit order, hence signed.
    pub(crate) user_count: AtomicI64,
    /// Role, epoch and log position. Also the write lock: every write that
    /// touches the replicated trees (admin writes, OTP state, replication
    /// apply/install) and every consistent copy (snapshot, backup) holds it.
    pub(crate) repl: Mutex<ReplState>,
    /// Changelog entries up to this sequence number are known to be on disk
    /// (replication only serves those, see `StoreLog::changes_since`).
    pub(crate) durable_seq: AtomicU64,
    /// Bumped by every replicated change applied from outside the request
    /// path (see [`Store::data_generation`]).
    pub(crate) data_generation: AtomicU64,
    /// When this node last served a snapshot part (see
    /// [`Store::serving_snapshot`]).
    pub(crate) snapshot_served: Mutex<Option<std::time::Instant>>,
}

/// Replication state kept in memory under [`Inner::repl`], mirrored in `meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplState {
    /// `repl_role` is `primary`.
    pub(crate) primary: bool,
    /// `repl_epoch`.
    pub(crate) epoch: u64,
    /// `repl_last_seq`.
    pub(crate) last_seq: u64,
    /// `repl_last_epoch`.
    pub(crate) last_epoch: u64,
}

impl Drop for Inner {
    /// Writes the buffered audit records while the sled lock is still held, so
    /// a `Store` opened right after this one is dropped finds the journal
    /// complete (a background flush may still hold the journal for a moment).
    fn drop(&mut self) {
        let _ = self.journal.flush();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Turns a store error into a transaction abort.
fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The view of one write transaction over the replicated trees. Every change
/// to users, tokens, OTP state (outside the hot path) and clients goes through
/// [`WriteTx::put`] / [`WriteTx::remove`], which append one changelog entry
/// each when the transaction logs (`log_epoch`); replication's apply appends
/// the entries it receives with [`WriteTx::append`].
pub(crate) struct WriteTx<'a> {
    users: &'a TransactionalTree,
    tokens: &'a TransactionalTree,
    otp_state: &'a TransactionalTree,
    clients: &'a TransactionalTree,
    admin_tokens: &'a TransactionalTree,
    token_pool: &'a TransactionalTree,
    changelog: &'a TransactionalTree,
    /// Bit set of the [`AdminTree`]s written.
    touched: Cell<u8>,
    /// Users added minus users removed.
    user_delta: Cell<i64>,
    /// `Some(epoch)`: `put`/`remove` log themselves with this epoch.
    log_epoch: Option<u64>,
    /// Log position after the entries appended so far.
    pos: Cell<(u64, u64)>,
}

/// What a committed [`WriteTx`] changed.
pub(crate) struct TxOutcome<R> {
    pub(crate) result: R,
    touched: u8,
    delta: i64,
    /// Log position after the transaction.
    pub(crate) pos: (u64, u64),
}

impl WriteTx<'_> {
    fn tree(&self, t: AdminTree) -> &TransactionalTree {
        match t {
            AdminTree::Users => self.users,
            AdminTree::Tokens => self.tokens,
            AdminTree::OtpState => self.otp_state,
            AdminTree::Clients => self.clients,
            AdminTree::AdminTokens => self.admin_tokens,
            AdminTree::TokenPool => self.token_pool,
        }
    }

    pub(crate) fn get(&self, t: AdminTree, key: &[u8]) -> TxResult<Option<IVec>> {
        Ok(self.tree(t).get(key)?)
    }

    /// Appends one changelog entry at the next position.
    fn log(&self, epoch: u64, entry: Vec<u8>) -> TxResult<()> {
        let seq = self.pos.get().0 + 1;
        self.changelog.insert(&seq.to_be_bytes(), entry)?;
        self.pos.set((seq, epoch));
        Ok(())
    }

    /// Appends a received change; it must follow the position (checked by
    /// the caller before the transaction; checked again here).
    pub(crate) fn append(&self, c: &Change) -> TxResult<()> {
        if c.seq != self.pos.get().0 + 1 {
            return abort(StoreError::Corrupt(format!(
                "changelog: entry {} does not follow {}",
                c.seq,
                self.pos.get().0
            )));
        }
        let entry = match &c.op {
            Op::Put { tree, key, value } => {
                encode_entry(c.epoch, EntryKind::Put, *tree, key, value)
            }
            Op::Remove { tree, key } => encode_entry(c.epoch, EntryKind::Remove, *tree, key, &[]),
        };
        self.log(c.epoch, entry)
    }

    pub(crate) fn put(&self, t: AdminTree, key: &[u8], value: Vec<u8>) -> TxResult<Option<IVec>> {
        if let Some(epoch) = self.log_epoch {
            self.log(
                epoch,
                encode_entry(epoch, EntryKind::Put, t.number(), key, &value),
            )?;
        }
        let old = self.tree(t).insert(key, value)?;
        self.touched.set(self.touched.get() | t.bit());
        if t == AdminTree::Users && old.is_none() {
            self.user_delta.set(self.user_delta.get() + 1);
        }
        Ok(old)
    }

    /// Removes `key`; logged only when it was present.
    pub(crate) fn remove(&self, t: AdminTree, key: &[u8]) -> TxResult<Option<IVec>> {
        let old = self.tree(t).remove(key)?;
        if old.is_some() {
            if let Some(epoch) = self.log_epoch {
                self.log(
                    epoch,
                    encode_entry(epoch, EntryKind::Remove, t.number(), key, &[]),
                )?;
            }
            self.touched.set(self.touched.get() | t.bit());
            if t == AdminTree::Users {
                self.user_delta.set(self.user_delta.get() - 1);
            }
        }
        Ok(old)
    }
}

/// Associated data of a user's sealed PIN (distinct from the seed's).
pub(crate) fn pin_aad(name: &str) -> Vec<u8> {
    let mut aad = b"pin:".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What every stored user record satisfies: an enabled user has no
/// disabled reason.
fn normalise(user: &mut User) {
    if user.enabled {
        user.disabled_reason = None;
    }
}

/// The audit journal directory of the database in `dir`: its sibling
/// `<name>.audit`, derived from the canonical path (the database directory
/// must exist).
pub(crate) fn journal_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    let canon = fs::canonicalize(dir)?;
    let Some(name) = canon.file_name() else {
        return Err(StoreError::Invalid(format!(
            "database directory {} has no name to derive the audit directory from",
            canon.display()
        )));
    };
    let mut name = name.to_os_string();
    name.push(".audit");
    Ok(canon.with_file_name(name))
}

/// sled 0.34 reports a database held by someone else as an `Io` error of kind
/// `Other` whose message starts "could not acquire lock on".
fn map_open_error(e: sled::Error, dir: &Path) -> StoreError {
    match e {
        sled::Error::Io(ref io)
            if io.kind() == std::io::ErrorKind::Other
                && io.to_string().contains("could not acquire lock") =>
        {
            StoreError::Locked {
                path: dir.to_path_buf(),
            }
        }
        other => StoreError::Db(other),
    }
}

/// Reads (initializing when absent) the replication keys of `meta`.
///
/// A database without `repl_last_seq` predates the changelog: if it holds
/// data, its position becomes `(1, 1)` with no entry kept, so that a replica
/// starting from `(0, 0)` gets a snapshot rather than an incomplete history.
/// A fresh database starts at `(0, 0)`, primary of epoch 1.
fn load_repl_state(
    meta: &sled::Tree,
    changelog: &sled::Tree,
    data: [&sled::Tree; 6],
) -> Result<ReplState, StoreError> {
    let (last_seq, last_epoch) = match meta.get(META_REPL_LAST_SEQ)? {
        Some(v) => {
            let seq = decode_u64("repl_last_seq", &v)?;
            let epoch = match meta.get(META_REPL_LAST_EPOCH)? {
                Some(v) => decode_u64("repl_last_epoch", &v)?,
                None => return Err(StoreError::Corrupt("repl_last_epoch is missing".into())),
            };
            (seq, epoch)
        }
        None => {
            let pos: (u64, u64) = if data.iter().all(|t| t.is_empty()) {
                (0, 0)
            } else {
                (1, 1)
            };
            let mut batch = sled::Batch::default();
            batch.insert(META_REPL_LAST_SEQ, &pos.0.to_be_bytes());
            batch.insert(META_REPL_LAST_EPOCH, &pos.1.to_be_bytes());
            meta.apply_batch(batch)?;
            pos
        }
    };
    if let Some((k, _)) = changelog.last()? {
        let seq = decode_u64("changelog key", &k)?;
        if seq != last_seq {
            return Err(StoreError::Corrupt(format!(
                "changelog ends at {seq} but repl_last_seq is {last_seq}"
            )));
        }
    }
    let primary = match meta.get(META_REPL_ROLE)?.as_deref() {
        None => {
            meta.insert(META_REPL_ROLE, b"primary")?;
            true
        }
        Some(b"primary") => true,
        Some(b"replica") => false,
        Some(other) => {
            return Err(StoreError::Corrupt(format!(
                "repl_role {:?} is neither primary nor replica",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let epoch = match meta.get(META_REPL_EPOCH)? {
        Some(v) => decode_u64("repl_epoch", &v)?,
        None => {
            meta.insert(META_REPL_EPOCH, &1u64.to_be_bytes())?;
            1
        }
    };
    Ok(ReplState {
        primary,
        epoch,
        last_seq,
        last_epoch,
    })
}

/// Compares the seed key with the key check value in `meta`, writing one at
/// the first open. A database from before key check values holds none: the
/// key must then open its first sealed seed before the value is written (so
/// a wrong key is never recorded as the right one). The value is per node
/// and never replicated; replicas share the primary's key and so write the
/// same kind of value under the same key.
fn verify_key_check(
    meta: &sled::Tree,
    tokens: &sled::Tree,
    cipher: &SeedCipher,
) -> Result<(), String> {
    let wrong = "is not the key this database was created with (its key check value \
                 does not decrypt): restore the original key file; every TOTP seed and PIN \
                 in the database is sealed under it";
    let db = |e: sled::Error| format!("cannot read the key check value: {e}");
    if let Some(value) = meta.get(META_KEY_CHECK).map_err(db)? {
        return if key_check_matches(cipher, &value) {
            Ok(())
        } else {
            Err(wrong.to_string())
        };
    }
    if first_seed_opens(tokens, cipher).map_err(|e| e.to_string())? == Some(false) {
        return Err("does not decrypt the token seeds in this database: \
                    restore the original key file"
            .to_string());
    }
    let value = seal_key_check(cipher).map_err(|e| e.to_string())?;
    meta.insert(META_KEY_CHECK, value)
        .map_err(|e| format!("cannot write the key check value: {e}"))?;
    Ok(())
}

/// Whether `cipher` opens the first sealed seed of `tokens`; `None` when no
/// seed is stored.
fn first_seed_opens(tokens: &sled::Tree, cipher: &SeedCipher) -> Result<Option<bool>, StoreError> {
    let Some((key, value)) = tokens.first()? else {
        return Ok(None);
    };
    let rec: TokenRecord = decode("token", &key, &value)?;
    Ok(Some(
        hex_decode(rec.nonce.as_bytes())
            .zip(hex_decode(rec.sealed.as_bytes()))
            .is_some_and(|(nonce, sealed)| cipher.open(&nonce, &sealed, &key).is_ok()),
    ))
}

/// Refuses a key file inside the database directory: a copy of the directory
/// (backup, snapshot) must not carry the key along.
pub(crate) fn check_key_outside(dir: &Path, key_file: &Path) -> Result<(), StoreError> {
    let key_err = |reason: String| StoreError::KeyFile {
        path: key_file.to_path_buf(),
        reason,
    };
    let dir = fs::canonicalize(dir)?;
    let parent = match key_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = fs::canonicalize(parent)
        .map_err(|e| key_err(format!("cannot resolve its directory: {e}")))?;
    if parent.starts_with(&dir) {
        return Err(key_err(format!(
            "must be kept outside the database directory {}",
            dir.display()
        )));
    }
    Ok(())
}

impl Store {
    /// Opens the sled database in `dir` (created if missing) and the seed key in
    /// `key_file`.
    ///
    /// Key file format: exactly 32 raw bytes, or 64 hex digits (either case)
    /// with optional surrounding whitespace. When missing and
    /// `opts.create_key_if_missing` is set, 32 random bytes are written as 64
    /// lower-case hex digits and a newline, with mode 0600 — unless the database
    /// already holds sealed seeds (a new key could not open them). The key file
    /// must lie outside `dir`.
    ///
    /// Errors: [`StoreError::Locked`] if another process (or another `Store` in
    /// this process) has `dir` open; [`StoreError::KeyFile`] for a missing,
    /// unreadable or wrongly sized key; [`StoreError::Corrupt`] for an unknown
    /// schema version.
    pub fn open(dir: &Path, key_file: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        // Owner-only before sled puts anything in it (sled's own files get
        // the umask's mode; this directory keeps them from other users).
        crate::private::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(opts.flush_every_ms)
            .open()
            .map_err(|e| map_open_error(e, dir))?;
        let users = db.open_tree("users")?;
        let tokens = db.open_tree("tokens")?;
        let otp_state = db.open_tree("otp_state")?;
        let clients = db.open_tree("clients")?;
        let admin_tokens = db.open_tree("admin_tokens")?;
        let token_pool = db.open_tree("token_pool")?;
        // An `audit` tree left by an older version is not opened: the audit
        // log lives in the journal.
        let meta = db.open_tree("meta")?;
        let changelog = db.open_tree("changelog")?;
        let install_otp = db.open_tree("repl_install_otp")?;

        match meta.get(META_SCHEMA_VERSION)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version: not 4 bytes".into()))?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "database schema version {found} is not supported (expected {SCHEMA_VERSION})"
                    )));
                }
            }
            None => {
                meta.insert(META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())?;
            }
        }

        let data = [
            &users,
            &tokens,
            &otp_state,
            &clients,
            &admin_tokens,
            &token_pool,
        ];
        if meta.get(META_REPL_INSTALLING)?.is_some() {
            // A snapshot install was interrupted: the data trees hold a mix of
            // old and new data. Finish the wipe; the node re-syncs from (0, 0).
            for tree in data.into_iter().chain([&changelog, &install_otp]) {
                tree.clear()?;
            }
            let mut batch = sled::Batch::default();
            batch.insert(META_REPL_LAST_SEQ, &0u64.to_be_bytes());
            batch.insert(META_REPL_LAST_EPOCH, &0u64.to_be_bytes());
            batch.insert(META_USER_COUNT, &0u64.to_be_bytes());
            batch.remove(META_REPL_INSTALLING);
            meta.apply_batch(batch)?;
        }
        let repl = load_repl_state(&meta, &changelog, data)?;

        check_key_outside(dir, key_file)?;
        let key = load_or_create_key(key_file, opts.create_key_if_missing, || {
            if tokens.is_empty() {
                Ok(())
            } else {
                Err(
                    "does not exist, and the database holds encrypted token seeds: \
                     restore the original key file"
                        .into(),
                )
            }
        })?;
        let cipher = SeedCipher::new(&key);
        drop(key);
        verify_key_check(&meta, &tokens, &cipher).map_err(|reason| StoreError::KeyFile {
            path: key_file.to_path_buf(),
            reason,
        })?;

        let count = match meta.get(META_USER_COUNT)? {
            Some(v) => decode_u64("user count", &v)?,
            None => {
                let n = u64::try_from(users.len()).unwrap_or(u64::MAX);
                meta.insert(META_USER_COUNT, &n.to_be_bytes())?;
                n
            }
        };
        db.flush()?;

        let journal = Journal::open(
            &journal_dir(dir)?,
            JournalConfig {
                max_segment_bytes: SEGMENT_MAX_BYTES,
                flush_interval: Duration::from_millis(
                    opts.flush_every_ms
                        .unwrap_or(DEFAULT_AUDIT_INTERVAL_MS)
                        .max(1),
                ),
                background: opts.flush_every_ms.is_some(),
                assign_seq: true,
            },
        )?;
        let inbox = Inbox::open(&journal_dir(dir)?.join(INBOX_DIR))?;

        Ok(Store {
            inner: Arc::new(Inner {
                path: dir.to_path_buf(),
                db,
                users,
                tokens,
                otp_state,
                clients,
                admin_tokens,
                token_pool,
                meta,
                journal,
                inbox,
                cipher,
                changelog,
                install_otp,
                install_users: AtomicU64::new(0),
                clients_generation: AtomicU64::new(1),
                user_count: AtomicI64::new(i64::try_from(count).unwrap_or(i64::MAX)),
                durable_seq: AtomicU64::new(repl.last_seq),
                repl: Mutex::new(repl),
                data_generation: AtomicU64::new(1),
                snapshot_served: Mutex::new(None),
            }),
        })
    }

    /// The replication state under the write lock. A poisoned lock (a panic
    /// while it was held) is taken over after reloading the state from
    /// `meta`, the durable truth.
    pub(crate) fn lock_repl(&self) -> MutexGuard<'_, ReplState> {
        match self.inner.repl.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                let i = &*self.inner;
                if let Ok(state) = load_repl_state(
                    &i.meta,
                    &i.changelog,
                    [
                        &i.users,
                        &i.tokens,
                        &i.otp_state,
                        &i.clients,
                        &i.admin_tokens,
                        &i.token_pool,
                    ],
                ) {
                    *guard = state;
                }
                i.repl.clear_poison();
                guard
            }
        }
    }

    /// Runs `f` in one sled transaction over the replicated trees, the
    /// changelog and `meta` (retried on conflict, so `f` must be repeatable),
    /// starting at the log position of `st`. With `log_epoch`, every
    /// `put`/`remove` appends a changelog entry of that epoch. Keeps the user
    /// count and the log position in `meta`. The caller holds the write lock
    /// (`st` is its guard) and calls [`Store::publish`] after.
    pub(crate) fn run_tx<R>(
        &self,
        st: &ReplState,
        log_epoch: Option<u64>,
        f: impl Fn(&WriteTx<'_>) -> TxResult<R>,
    ) -> Result<TxOutcome<R>, StoreError> {
        let i = &*self.inner;
        let start = (st.last_seq, st.last_epoch);
        (
            &i.users,
            &i.tokens,
            &i.otp_state,
            &i.clients,
            &i.meta,
            &i.changelog,
            &i.admin_tokens,
            &i.token_pool,
        )
            .transaction(
                |(users, tokens, otp_state, clients, meta, changelog, at, pool)| {
                    let tx = WriteTx {
                        users,
                        tokens,
                        otp_state,
                        clients,
                        admin_tokens: at,
                        token_pool: pool,
                        changelog,
                        touched: Cell::new(0),
                        user_delta: Cell::new(0),
                        log_epoch,
                        pos: Cell::new(start),
                    };
                    let result = f(&tx)?;
                    let delta = tx.user_delta.get();
                    if delta != 0 {
                        let count = match meta.get(META_USER_COUNT)? {
                            Some(v) => match decode_u64("user count", &v) {
                                Ok(n) => n,
                                Err(e) => return abort(e),
                            },
                            None => 0,
                        };
                        let count = count.saturating_add_signed(delta);
                        meta.insert(META_USER_COUNT, &count.to_be_bytes())?;
                    }
                    let pos = tx.pos.get();
                    if pos != start {
                        meta.insert(META_REPL_LAST_SEQ, &pos.0.to_be_bytes())?;
                        meta.insert(META_REPL_LAST_EPOCH, &pos.1.to_be_bytes())?;
                    }
                    Ok(TxOutcome {
                        result,
                        touched: tx.touched.get(),
                        delta,
                        pos,
                    })
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Db(e),
            })
    }

    /// After a committed [`Store::run_tx`]: moves the in-memory log position
    /// and publishes the counters. Returns whether the clients changed.
    pub(crate) fn publish<R>(&self, st: &mut ReplState, out: &TxOutcome<R>) -> bool {
        let i = &*self.inner;
        (st.last_seq, st.last_epoch) = out.pos;
        if out.delta != 0 {
            i.user_count.fetch_add(out.delta, Ordering::SeqCst);
        }
        let clients = out.touched & AdminTree::Clients.bit() != 0;
        if clients {
            i.clients_generation.fetch_add(1, Ordering::SeqCst);
        }
        clients
    }

    /// Flushes the database; changelog entries up to `seq` are then durable.
    pub(crate) fn flush_to(&self, seq: u64) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        self.inner.durable_seq.fetch_max(seq, Ordering::SeqCst);
        Ok(())
    }

    /// The single path of every administrative write: runs `f` in one sled
    /// transaction over the admin trees (retried on conflict, so `f` must be
    /// repeatable) under the write lock, appends one changelog entry per
    /// change (epoch `repl_epoch`) in that transaction, keeps the user count
    /// and the log position in `meta`, then publishes the counters and flushes
    /// to disk before returning. [`StoreError::ReadOnly`] on a replica.
    pub(crate) fn write<R>(
        &self,
        f: impl Fn(&WriteTx<'_>) -> TxResult<R>,
    ) -> Result<R, StoreError> {
        let mut st = self.lock_repl();
        if !st.primary {
            return Err(StoreError::ReadOnly(READ_ONLY_REPLICA.into()));
        }
        if st.last_epoch > st.epoch {
            return Err(StoreError::ReadOnly(format!(
                "read-only: the changelog holds epoch {} but this node is primary of epoch {}",
                st.last_epoch, st.epoch
            )));
        }
        let epoch = st.epoch;
        let out = self.run_tx(&st, Some(epoch), f)?;
        self.publish(&mut st, &out);
        let end = st.last_seq;
        drop(st);
        self.flush_to(end)?;
        Ok(out.result)
    }

    /// Writes everything to disk (fsync): sled's unflushed hot-path writes and
    /// the buffered audit records.
    pub fn flush(&self) -> Result<(), StoreError> {
        let last = self.lock_repl().last_seq;
        self.flush_to(last)?;
        self.inner.journal.flush()
    }

    /// This node's replication role and epoch, as persisted in `meta`
    /// (`repl_role`, `repl_epoch`). A fresh store is `(Role::Primary, 1)`. A
    /// replica is reported as `Role::Replica { primary: None }` (which node
    /// is primary is not persisted: the machine finds it again).
    pub fn repl_state(&self) -> (Role, u64) {
        let st = self.lock_repl();
        let role = if st.primary {
            Role::Primary
        } else {
            Role::Replica { primary: None }
        };
        (role, st.epoch)
    }

    /// Persists the role and epoch (flushed before it returns), as the driver
    /// must on [`Action::Persist`](crate::repl::Action::Persist). On a
    /// replica every administrative write then fails with
    /// [`StoreError::ReadOnly`]. [`StoreError::Invalid`] for a primary at
    /// epoch 0.
    pub fn set_repl_state(&self, role: Role, epoch: u64) -> Result<(), StoreError> {
        let primary = role == Role::Primary;
        if primary && epoch == 0 {
            return Err(StoreError::Invalid("a primary needs an epoch >= 1".into()));
        }
        let mut st = self.lock_repl();
        let mut batch = sled::Batch::default();
        batch.insert(
            META_REPL_ROLE,
            if primary { &b"primary"[..] } else { b"replica" },
        );
        batch.insert(META_REPL_EPOCH, &epoch.to_be_bytes());
        self.inner.meta.apply_batch(batch)?;
        self.inner.db.flush()?;
        st.primary = primary;
        st.epoch = epoch;
        Ok(())
    }

    /// A counter that increments whenever replication changed the data
    /// behind the caller's back ([`ReplLog::apply`], [`ReplLog::install_snapshot`],
    /// [`ReplLog::append_local`] through [`StoreLog`](crate::StoreLog); it
    /// starts at 1 when the store opens). Hot caches (users, tokens, clients,
    /// policies) compare it with the value they were filled at and reload on
    /// change. [`Store::clients_generation`] moves too when clients changed.
    ///
    /// [`ReplLog::apply`]: crate::repl::ReplLog::apply
    /// [`ReplLog::install_snapshot`]: crate::repl::ReplLog::install_snapshot
    /// [`ReplLog::append_local`]: crate::repl::ReplLog::append_local
    pub fn data_generation(&self) -> u64 {
        self.inner.data_generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::encode;
    use crate::{AuditFilter, Secret, Token, TokenAlgorithm, TokenKind};

    /// A store in `dir` (also used by the child modules' tests).
    pub(super) fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(
            &dir.path().join("db"),
            &dir.path().join("key"),
            &StoreOptions::default(),
        )
        .unwrap()
    }

    /// A TOTP token with this seed.
    pub(super) fn token(seed: &[u8]) -> Token {
        Token {
            kind: TokenKind::Totp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 30,
            secret: Secret::new(seed.to_vec()),
            created: 5,
        }
    }

    #[test]
    fn store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Store>();
    }

    #[test]
    fn journal_dir_is_a_sibling_of_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        fs::create_dir(&db).unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(journal_dir(&db).unwrap(), base.join("db.audit"));
        // A trailing slash or a `..` detour names the same directory.
        let mut slash = db.clone().into_os_string();
        slash.push("/");
        assert_eq!(
            journal_dir(Path::new(&slash)).unwrap(),
            base.join("db.audit")
        );
        assert_eq!(
            journal_dir(&db.join("..").join("db")).unwrap(),
            base.join("db.audit")
        );
        assert!(journal_dir(Path::new("/")).is_err());
    }

    #[test]
    fn old_audit_tree_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store
            .inner
            .db
            .open_tree("audit")
            .unwrap()
            .insert([0u8; 16], &b"{not an audit record"[..])
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = open(&dir);
        assert!(store
            .query_audit(&AuditFilter::default())
            .unwrap()
            .is_empty());
        assert_eq!(store.trim_audit(u64::MAX).unwrap(), 0);
    }

    #[test]
    fn lock_error_is_mapped() {
        let io = std::io::Error::other("could not acquire lock on \"/x/db\": Os { code: 11 }");
        assert!(matches!(
            map_open_error(sled::Error::Io(io), Path::new("/x")),
            StoreError::Locked { .. }
        ));
        let io = std::io::Error::other("disk on fire");
        assert!(matches!(
            map_open_error(sled::Error::Io(io), Path::new("/x")),
            StoreError::Db(_)
        ));
    }

    #[test]
    fn corrupt_records_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store.inner.users.insert("bad", &b"{not json"[..]).unwrap();
        assert!(matches!(store.get_user("bad"), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.list_users(), Err(StoreError::Corrupt(_))));
        store.inner.otp_state.insert("bad", &b"123"[..]).unwrap();
        assert!(matches!(
            store.otp_state("bad"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.advance_otp_state("bad", 9),
            Err(StoreError::Corrupt(_))
        ));
        // A tampered nonce field (not hex) is a crypto failure, not a panic.
        store
            .inner
            .users
            .insert("t", encode(&User::new("t")).unwrap())
            .unwrap();
        let rec = TokenRecord {
            kind: TokenKind::Hotp,
            algorithm: TokenAlgorithm::Sha1,
            digits: 6,
            period: 0,
            created: 0,
            nonce: "zz".into(),
            sealed: "00".into(),
            serial: None,
        };
        store
            .inner
            .tokens
            .insert("t", encode(&rec).unwrap())
            .unwrap();
        assert!(matches!(store.get_token("t"), Err(StoreError::Crypto)));
    }

    #[test]
    fn schema_version_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store
            .inner
            .meta
            .insert(META_SCHEMA_VERSION, &99u32.to_be_bytes())
            .unwrap();
        drop(store);
        let err = Store::open(
            &dir.path().join("db"),
            &dir.path().join("key"),
            &StoreOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("99")),
            "{err}"
        );
    }
}
