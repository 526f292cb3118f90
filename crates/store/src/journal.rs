//! The audit journal: append-only JSON-lines segment files in `<db dir>.audit/`.
//!
//! * One [`AuditRecord`] per line, serialized with serde_json, so the files can
//!   be read with `grep`/`jq`. A segment is named `<start>-<seq>.jsonl`: `start`
//!   is the time (unix ms, 20 digits) of its first record — or of the previous
//!   segment's start, if that is later, so names never go back in time — and
//!   `seq` (at least 6 digits) a counter that orders segments by creation.
//! * A segment ends at 64 MiB, or when a record of a later UTC day than the
//!   segment's start arrives. Hence every record of a segment is older than the
//!   end of its start's day, which lets queries and trimming judge a segment by
//!   its name. Late records (an earlier day) go to the current segment.
//! * The process writes to a fresh segment after every open; older segments are
//!   never written again.
//! * `segments.idx` caches, one JSON line per closed segment, its size, record
//!   count and oldest/newest record time, so that queries can skip segments
//!   and stop early. It is only a cache: an entry whose size does not match
//!   the file is ignored, and missing entries are learned by reading.
//! * Appends go to a 64 KiB buffer behind one mutex (a batch takes the lock
//!   once), written to the file when it is full and at least every flush
//!   interval; a background thread writes and fsyncs every interval, and
//!   [`Journal::flush`] does both on demand.
//! * On open, a torn last line (crash in the middle of a write) is cut off.
//! * A node's own journal numbers its records (`seq`, assigned under the
//!   append lock, so file order is sequence order): audit shipping reads
//!   what follows the primary's acknowledged sequence ([`Journal::read_after`]).
//!   A journal without numbered records starts at its opening time in unix
//!   seconds x 10^6, so a wiped node's new records sort above what the
//!   primary acknowledged from its old journal (unless it wrote over a
//!   million records a second). The cluster inbox (`inbox.rs`) keeps the
//!   sequences its records came with.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::mem;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{AuditFilter, AuditRecord, StoreError};

/// One UTC day in milliseconds.
const DAY_MS: u64 = 86_400_000;
/// Segment size limit (a single larger record still gets a segment of its own).
pub(crate) const SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Buffered bytes that trigger a write to the file.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// File name suffix of a segment.
const SUFFIX: &str = ".jsonl";
/// The segment statistics cache.
const INDEX_FILE: &str = "segments.idx";
/// Read buffer of queries.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// The UTC day of a time in ms.
fn day(time_ms: u64) -> u64 {
    time_ms / DAY_MS
}

/// The last millisecond of the UTC day of `time_ms`.
fn day_last_ms(time_ms: u64) -> u64 {
    day(time_ms)
        .checked_add(1)
        .and_then(|d| d.checked_mul(DAY_MS))
        .map_or(u64::MAX, |end| end - 1)
}

/// Settings of a [`Journal`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct JournalConfig {
    /// Rotate a segment before it would exceed this many bytes.
    pub max_segment_bytes: u64,
    /// Longest time an appended record stays in the buffer while appends go on.
    pub flush_interval: Duration,
    /// Run the background thread that writes and fsyncs every `flush_interval`.
    pub background: bool,
    /// Number the records (`seq`): a node's own journal; not the inbox of
    /// records shipped from other nodes, which keep theirs.
    pub assign_seq: bool,
}

/// Where a reader of the journal stands: after the line ending at byte
/// `offset` of segment `segment` (audit shipping resumes there instead of
/// reading the segment again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalCursor {
    segment: u64,
    offset: u64,
}

/// A segment as known from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    seq: u64,
    start_ms: u64,
}

impl Segment {
    fn file_name(self) -> String {
        format!("{:020}-{:06}{SUFFIX}", self.start_ms, self.seq)
    }

    /// Parses `<digits>-<digits>.jsonl`; anything else is not a segment.
    fn parse(name: &str) -> Option<Segment> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (start, seq) = stem.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(start) || !digits(seq) {
            return None;
        }
        Some(Segment {
            seq: seq.parse().ok()?,
            start_ms: start.parse().ok()?,
        })
    }
}

/// What a complete read of a closed segment tells; one line of `segments.idx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stats {
    seq: u64,
    /// File size.
    bytes: u64,
    records: u64,
    /// Oldest record time (`u64::MAX` without records).
    min_ms: u64,
    /// Newest record time (0 without records).
    max_ms: u64,
    /// Highest record sequence (0: none, or not known by the writer).
    #[serde(default)]
    max_seq: u64,
}

impl Stats {
    fn empty(seq: u64) -> Stats {
        Stats {
            seq,
            bytes: 0,
            records: 0,
            min_ms: u64::MAX,
            max_ms: 0,
            max_seq: 0,
        }
    }

    fn add(&mut self, time_ms: u64, seq: u64) {
        self.records += 1;
        self.min_ms = self.min_ms.min(time_ms);
        self.max_ms = self.max_ms.max(time_ms);
        self.max_seq = self.max_seq.max(seq);
    }
}

/// A segment no longer written.
#[derive(Clone, Copy, Debug)]
struct Closed {
    seg: Segment,
    /// `None` until the segment has been read (or its index entry is stale).
    stats: Option<Stats>,
}

impl Closed {
    /// Inclusive range of its record times: exact when known, else what the
    /// name guarantees.
    fn bounds(&self) -> (u64, u64) {
        match self.stats {
            Some(s) => (s.min_ms, s.max_ms),
            None => (0, day_last_ms(self.seg.start_ms)),
        }
    }
}

/// The segment being written.
struct Active {
    seg: Segment,
    file: Arc<File>,
    /// Bytes in the file; always ends a line.
    written: u64,
    /// Records and times written or buffered; `bytes` includes the buffer.
    stats: Stats,
}

struct State {
    /// By `seq`.
    closed: Vec<Closed>,
    /// Created at the first append after open or rotation.
    active: Option<Active>,
    next_seq: u64,
    /// Complete lines of the active segment not yet written to its file.
    buf: Vec<u8>,
    last_write: Instant,
    /// The active file has writes that are not fsynced.
    active_unsynced: bool,
    /// Rotated files with writes that are not fsynced.
    unsynced: Vec<Arc<File>>,
    /// Segment files were created or removed since the directory was fsynced.
    dir_unsynced: bool,
    /// The `seq` of the next record (with `assign_seq`).
    next_rec_seq: u64,
}

impl State {
    /// Start time of the next segment, for a first record at `time_ms`.
    fn next_start(&self, time_ms: u64) -> u64 {
        let last = match &self.active {
            Some(a) => a.seg.start_ms,
            None => self.closed.last().map_or(0, |c| c.seg.start_ms),
        };
        time_ms.max(last)
    }

    /// Writes the buffer to the active file. On failure the file is cut back
    /// to its last complete line and the buffer is kept.
    fn write_out(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            // Lines are only buffered for an active segment.
            self.buf.clear();
            return Ok(());
        };
        match (&*active.file).write_all(&self.buf) {
            Ok(()) => {
                active.written += self.buf.len() as u64;
                self.buf.clear();
                self.last_write = Instant::now();
                self.active_unsynced = true;
                Ok(())
            }
            Err(e) => {
                // Best effort: no partial line may stay in front of later ones.
                let _ = active.file.set_len(active.written);
                Err(e.into())
            }
        }
    }

    /// Drops this call's records from the buffer after a failed write: the
    /// buffer is cut back to `from`, and the active segment's statistics to
    /// `before` (taken when the call started buffering).
    fn unbuffer(&mut self, from: usize, before: Stats) {
        self.buf.truncate(from);
        if let Some(a) = self.active.as_mut() {
            a.stats = before;
        }
    }
}

/// The append-only audit journal. Shared as `Arc<Journal>`; a background
/// thread holds a `Weak` and ends when the journal is dropped.
pub(crate) struct Journal {
    dir: PathBuf,
    cfg: JournalConfig,
    state: Mutex<State>,
    /// Serializes [`Journal::trim`] calls.
    trim_lock: Mutex<()>,
    /// Bytes of torn last lines cut off at open.
    torn_bytes: u64,
    flusher: OnceLock<thread::Thread>,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state
/// consistent before it can fail.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// fsyncs a directory, so created and removed entries survive a power loss.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Cuts a segment back to its last complete line. Returns the bytes removed
/// and the length kept.
fn repair_tail(path: &Path) -> Result<(u64, u64), StoreError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((0, 0));
    }
    // The usual case: the file ends with a newline.
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last == [b'\n'] {
        return Ok((0, len));
    }
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    // Find the last newline, reading backwards.
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let n = usize::try_from(end.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let start = end - n as u64;
        let part = chunk.get_mut(..n).unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        file.set_len(keep)?;
        file.sync_all()?;
    }
    Ok((len - keep, keep))
}

/// The `seq` of the last record of a segment (0 when it has none): read
/// from its last complete line (the tail was repaired at open).
fn last_line_seq(path: &Path) -> Result<u64, StoreError> {
    const TAIL: u64 = 1024 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => body.get(i + 1..).unwrap_or_default(),
        None => body,
    };
    Ok(serde_json::from_slice::<Probe<'_>>(line).map_or(0, |p| p.seq))
}

/// The first `seq` of a journal that holds no numbered record: its opening
/// time in unix seconds x 10^6 (see the module comment).
fn fresh_seq_base() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs.saturating_mul(1_000_000).max(1)
}

/// Reads `segments.idx`: the last valid entry per segment; bad lines (a torn
/// last line, say) are skipped. Also returns the number of lines.
fn read_index(path: &Path) -> Result<(HashMap<u64, Stats>, usize), StoreError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((HashMap::new(), 0)),
        Err(e) => return Err(e.into()),
    };
    let mut map = HashMap::new();
    let mut lines = 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        lines += 1;
        if let Ok(s) = serde_json::from_slice::<Stats>(line) {
            map.insert(s.seq, s);
        }
    }
    Ok((map, lines))
}

/// Appends entries to `segments.idx` (not fsynced: it is a cache).
fn append_index(dir: &Path, entries: &[Stats]) -> io::Result<()> {
    let mut text = Vec::with_capacity(entries.len() * 96);
    for s in entries {
        serde_json::to_writer(&mut text, s)?;
        text.push(b'\n');
    }
    crate::private::open_options()
        .append(true)
        .create(true)
        .open(dir.join(INDEX_FILE))?
        .write_all(&text)
}

/// Replaces `segments.idx` with exactly `entries` (write, then rename).
fn rewrite_index(dir: &Path, entries: &[Stats]) -> io::Result<()> {
    let tmp = dir.join(format!("{INDEX_FILE}.tmp"));
    let mut text = Vec::with_capacity(entries.len() * 96);
    for s in entries {
        serde_json::to_writer(&mut text, s)?;
        text.push(b'\n');
    }
    crate::private::create_file(&tmp)?.write_all(&text)?;
    fs::rename(&tmp, dir.join(INDEX_FILE))
}

/// The fields a query filters on, read without allocating; the full record
/// is parsed only for candidates.
#[derive(Deserialize)]
struct Probe<'a> {
    time_ms: u64,
    #[serde(borrow)]
    user: Cow<'a, str>,
    #[serde(borrow)]
    result: Cow<'a, str>,
    #[serde(default)]
    seq: u64,
    #[serde(borrow, default)]
    server_name: Cow<'a, str>,
}

impl Probe<'_> {
    fn matches(&self, f: &AuditFilter) -> bool {
        f.user.as_deref().is_none_or(|u| u == self.user)
            && f.result.as_deref().is_none_or(|r| r == self.result)
            && f.since_ms.is_none_or(|s| self.time_ms >= s)
            && f.until_ms.is_none_or(|u| self.time_ms < u)
    }
}

/// A matching record ranked by (time, segment, line end) for `limit` queries.
struct Ranked {
    key: (u64, u64, u64),
    rec: AuditRecord,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// A segment to read for a query: the active one up to `len`.
#[derive(Clone, Copy, Debug)]
struct Part {
    closed: Closed,
    len: Option<u64>,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, repairs torn last lines and
    /// starts the background flusher if configured.
    pub(crate) fn open(dir: &Path, cfg: JournalConfig) -> Result<Arc<Journal>, StoreError> {
        crate::private::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Some(seg) = entry.file_name().to_str().and_then(Segment::parse) {
                segments.push(seg);
            }
        }
        segments.sort_by_key(|s| s.seq);
        let next_seq = segments.last().map_or(1, |s| s.seq.saturating_add(1));

        let (index, index_lines) = read_index(&dir.join(INDEX_FILE))?;
        let mut torn_bytes = 0;
        let mut removed_any = false;
        let mut closed = Vec::with_capacity(segments.len());
        for seg in segments {
            let path = dir.join(seg.file_name());
            let (cut, len) = repair_tail(&path)?;
            torn_bytes += cut;
            if len == 0 {
                // No complete record: nothing to keep.
                fs::remove_file(&path)?;
                removed_any = true;
            } else {
                let stats = index.get(&seg.seq).copied().filter(|s| s.bytes == len);
                closed.push(Closed { seg, stats });
            }
        }
        if removed_any {
            sync_dir(dir)?;
        }
        let next_rec_seq = match closed.last() {
            _ if !cfg.assign_seq => 0,
            Some(Closed { stats: Some(s), .. }) if s.max_seq > 0 => s.max_seq + 1,
            Some(last) => match last_line_seq(&dir.join(last.seg.file_name()))? {
                0 => fresh_seq_base(),
                n => n + 1,
            },
            None => fresh_seq_base(),
        };
        let known: Vec<Stats> = closed.iter().filter_map(|c| c.stats).collect();
        if known.len() != index_lines {
            // Drop the entries of trimmed or changed segments. A cache: a
            // failure only costs reads later.
            let _ = rewrite_index(dir, &known);
        }

        let journal = Arc::new(Journal {
            dir: dir.to_path_buf(),
            cfg,
            state: Mutex::new(State {
                closed,
                active: None,
                next_seq,
                buf: Vec::with_capacity(WRITE_BUFFER_BYTES + 4096),
                last_write: Instant::now(),
                active_unsynced: false,
                unsynced: Vec::new(),
                dir_unsynced: false,
                next_rec_seq,
            }),
            trim_lock: Mutex::new(()),
            torn_bytes,
            flusher: OnceLock::new(),
        });
        if cfg.background {
            let weak = Arc::downgrade(&journal);
            let handle = thread::Builder::new()
                .name("radmfa-audit-flush".into())
                .spawn(move || flusher_loop(&weak, cfg.flush_interval))?;
            let _ = journal.flusher.set(handle.thread().clone());
        }
        Ok(journal)
    }

    /// The journal directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of torn last lines removed when the journal was opened.
    pub(crate) fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// Ends the active segment (writing its buffer) and starts a new one whose
    /// first record is at `time_ms`. The new file is created before anything
    /// changes, so a failure leaves the current segment in place.
    fn rotate(&self, st: &mut State, time_ms: u64) -> Result<(), StoreError> {
        st.write_out()?;
        let seg = Segment {
            seq: st.next_seq,
            start_ms: st.next_start(time_ms),
        };
        let file = crate::private::open_options()
            .append(true)
            .create_new(true)
            .open(self.dir.join(seg.file_name()))?;
        st.next_seq = st.next_seq.saturating_add(1);
        st.dir_unsynced = true;
        let new = Active {
            seg,
            file: Arc::new(file),
            written: 0,
            stats: Stats::empty(seg.seq),
        };
        if let Some(old) = st.active.replace(new) {
            if mem::take(&mut st.active_unsynced) {
                st.unsynced.push(old.file);
            }
            let stats = Stats {
                bytes: old.written,
                ..old.stats
            };
            st.closed.push(Closed {
                seg: old.seg,
                stats: Some(stats),
            });
            // A cache: a failure only costs reads later.
            let _ = append_index(&self.dir, &[stats]);
        }
        Ok(())
    }

    /// Appends records (one lock, one buffer copy). On error the records of
    /// this call that were not yet written are dropped; a call that crossed a
    /// segment boundary may have recorded the records before it.
    pub(crate) fn append(&self, recs: &[AuditRecord]) -> Result<(), StoreError> {
        if recs.is_empty() {
            return Ok(());
        }
        // Serialized under the lock: the sequence numbers follow file order.
        let mut st = lock(&self.state);
        let mut lines = Vec::with_capacity(recs.len() * 320);
        let mut ends = Vec::with_capacity(recs.len());
        let mut seq = st.next_rec_seq;
        for rec in recs {
            serde_json::to_writer(&mut lines, rec)
                .map_err(|e| StoreError::Corrupt(format!("encoding audit record: {e}")))?;
            let rec_seq = if self.cfg.assign_seq {
                // The record's own `seq` is 0 and not written: add the
                // journal's in front of the closing brace.
                if lines.last() == Some(&b'}') {
                    lines.pop();
                    let sep = if lines.last() == Some(&b'{') { "" } else { "," };
                    lines.extend_from_slice(format!("{sep}\"seq\":{seq}}}").as_bytes());
                }
                seq += 1;
                seq - 1
            } else {
                rec.seq
            };
            lines.push(b'\n');
            ends.push((rec.time_ms, rec_seq, lines.len()));
        }
        // Taken now: numbers of records that fail to be written below are
        // not reused (a gap is harmless to shipping, a reuse would not be).
        st.next_rec_seq = seq;

        // Where this call's records start in the buffer, and the active
        // segment's statistics before them.
        let mut from = st.buf.len();
        let mut before = st.active.as_ref().map(|a| a.stats);
        let mut begin = 0;
        for (time_ms, rec_seq, end) in ends {
            let line = lines.get(begin..end).unwrap_or_default();
            begin = end;
            let len = line.len() as u64;
            let rotate = match &st.active {
                None => true,
                Some(a) => {
                    day(time_ms) > day(a.seg.start_ms)
                        || (a.stats.records > 0 && a.stats.bytes + len > self.cfg.max_segment_bytes)
                }
            };
            if rotate {
                if let Err(e) = st.write_out() {
                    if let Some(b) = before {
                        st.unbuffer(from, b);
                    }
                    return Err(e);
                }
                // This call's earlier records are written: nothing to undo.
                self.rotate(&mut st, time_ms)?;
                from = 0;
                before = st.active.as_ref().map(|a| a.stats);
            }
            st.buf.extend_from_slice(line);
            if let Some(a) = st.active.as_mut() {
                a.stats.bytes += len;
                a.stats.add(time_ms, rec_seq);
            }
        }
        if st.buf.len() >= WRITE_BUFFER_BYTES || st.last_write.elapsed() >= self.cfg.flush_interval
        {
            if let Err(e) = st.write_out() {
                if let Some(b) = before {
                    st.unbuffer(from, b);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes the buffer and fsyncs every file written since the last sync
    /// (and the directory if segments were created or removed).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let (active, rotated, dir) = {
            let mut st = lock(&self.state);
            st.write_out()?;
            let active = if mem::take(&mut st.active_unsynced) {
                st.active.as_ref().map(|a| Arc::clone(&a.file))
            } else {
                None
            };
            (
                active,
                mem::take(&mut st.unsynced),
                mem::take(&mut st.dir_unsynced),
            )
        };
        // fsync outside the lock: appends go on meanwhile.
        let result = (|| -> io::Result<()> {
            for f in &rotated {
                f.sync_data()?;
            }
            if let Some(f) = &active {
                f.sync_data()?;
            }
            if dir {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Try again next time.
            let mut st = lock(&self.state);
            st.unsynced.extend(rotated);
            if let Some(f) = active {
                st.unsynced.push(f);
            }
            st.dir_unsynced |= dir;
            return Err(e.into());
        }
        Ok(())
    }

    /// Reads one segment from byte `from` (a line start) up to `len` bytes
    /// if given, calling `each` with the byte offset after the line, the
    /// probed fields and the line of every record, and returns the
    /// statistics of what it read (the segment's, from 0). A missing file (trimmed meanwhile) reads as
    /// empty (`None`); an unterminated last line (being written) is skipped.
    fn scan(
        &self,
        seg: Segment,
        from: u64,
        len: Option<u64>,
        mut each: impl FnMut(u64, &Probe<'_>, &[u8]) -> Result<(), StoreError>,
    ) -> Result<Option<Stats>, StoreError> {
        self.scan_until(seg, from, len, |end, probe, body| {
            each(end, probe, body).map(|()| ControlFlow::Continue(()))
        })
    }

    /// [`Journal::scan`] that stops at the first line `each` answers
    /// `Break` to (the statistics then cover the lines read so far): a
    /// reader that has what it wants does not parse the rest of the segment.
    fn scan_until(
        &self,
        seg: Segment,
        from: u64,
        len: Option<u64>,
        mut each: impl FnMut(u64, &Probe<'_>, &[u8]) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<Option<Stats>, StoreError> {
        let path = self.dir.join(seg.file_name());
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if from > 0 {
            file.seek(SeekFrom::Start(from))?;
        }
        let limit = len.map_or(u64::MAX, |l| l.saturating_sub(from));
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file.take(limit));
        let mut stats = Stats::empty(seg.seq);
        let mut line = Vec::with_capacity(512);
        let mut line_no = 0u64;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(Some(stats));
            }
            line_no += 1;
            let Some(body) = line.strip_suffix(b"\n") else {
                return Ok(Some(stats));
            };
            stats.bytes += line.len() as u64;
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let corrupt = |e: serde_json::Error| {
                StoreError::Corrupt(format!(
                    "audit journal {} line {line_no}: {e}",
                    path.display()
                ))
            };
            let probe = serde_json::from_slice::<Probe<'_>>(body).map_err(corrupt)?;
            stats.add(probe.time_ms, probe.seq);
            let flow = each(from + stats.bytes, &probe, body).map_err(|e| match e {
                StoreError::Corrupt(m) => StoreError::Corrupt(format!(
                    "audit journal {} line {line_no}: {m}",
                    path.display()
                )),
                other => other,
            })?;
            if flow.is_break() {
                return Ok(Some(stats));
            }
        }
    }

    /// The segments a query must consider (active one last, with the length
    /// written so far), after writing out the buffer so that everything
    /// appended before the call is visible.
    fn snapshot(&self) -> Vec<Part> {
        let mut st = lock(&self.state);
        // A failed write keeps the records buffered; the query then shows what
        // is on disk.
        let _ = st.write_out();
        let mut parts: Vec<Part> = st
            .closed
            .iter()
            .map(|&closed| Part { closed, len: None })
            .collect();
        if let Some(a) = &st.active {
            parts.push(Part {
                closed: Closed {
                    seg: a.seg,
                    stats: Some(a.stats),
                },
                len: Some(a.written),
            });
        }
        parts
    }

    /// Caches the statistics learned by reading whole closed segments.
    fn learn(&self, learned: &[Stats]) {
        if learned.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        let mut new = Vec::with_capacity(learned.len());
        for s in learned {
            if let Some(c) = st.closed.iter_mut().find(|c| c.seg.seq == s.seq) {
                if c.stats.is_none() {
                    c.stats = Some(*s);
                    new.push(*s);
                }
            }
        }
        // A cache: a failure only costs reads later.
        let _ = append_index(&self.dir, &new);
    }

    /// Records matching `f`, oldest first (same time: insertion order); with a
    /// limit the newest `limit` matches.
    pub(crate) fn query(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_where(f, &|_| true)
    }

    /// [`Journal::query`] with one more condition on each record (applied
    /// before the limit).
    pub(crate) fn query_where(
        &self,
        f: &AuditFilter,
        extra: &dyn Fn(&AuditRecord) -> bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let since = f.since_ms.unwrap_or(0);
        if f.until_ms.is_some_and(|u| u <= since) || f.limit == Some(0) {
            return Ok(Vec::new());
        }
        let parts: Vec<Part> = self
            .snapshot()
            .into_iter()
            .filter(|p| {
                let (lo, hi) = p.closed.bounds();
                hi >= since && f.until_ms.is_none_or(|u| lo < u)
            })
            .collect();
        let mut learned = Vec::new();
        let parse = |body: &[u8]| {
            serde_json::from_slice::<AuditRecord>(body)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        let result = match f.limit {
            None => {
                let mut out = Vec::new();
                for p in &parts {
                    let stats = self.scan(p.closed.seg, 0, p.len, |_, probe, body| {
                        if probe.matches(f) {
                            let rec = parse(body)?;
                            if f.matches(&rec) && extra(&rec) {
                                out.push(rec);
                            }
                        }
                        Ok(())
                    })?;
                    if let (None, None, Some(s)) = (p.closed.stats, p.len, stats) {
                        learned.push(s);
                    }
                }
                // Stable: equal times keep file (insertion) order.
                out.sort_by_key(|r| r.time_ms);
                out
            }
            Some(limit) => {
                // newest_before[i]: the newest record time parts[..=i] can hold.
                let newest_before: Vec<u64> = parts
                    .iter()
                    .scan(0u64, |m, p| {
                        *m = (*m).max(p.closed.bounds().1);
                        Some(*m)
                    })
                    .collect();
                let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::new();
                for (p, newest) in parts.iter().zip(newest_before).rev() {
                    if heap.len() >= limit {
                        if let Some(Reverse(oldest)) = heap.peek() {
                            // This and all older segments hold nothing newer
                            // (an equal time from an older segment ranks lower).
                            if newest <= oldest.key.0 {
                                break;
                            }
                        }
                    }
                    let seq = p.closed.seg.seq;
                    let stats = self.scan(p.closed.seg, 0, p.len, |line_end, probe, body| {
                        if !probe.matches(f) {
                            return Ok(());
                        }
                        let key = (probe.time_ms, seq, line_end);
                        if heap.len() >= limit && heap.peek().is_some_and(|Reverse(o)| key <= o.key)
                        {
                            return Ok(());
                        }
                        let rec = parse(body)?;
                        if f.matches(&rec) && extra(&rec) {
                            heap.push(Reverse(Ranked { key, rec }));
                            if heap.len() > limit {
                                heap.pop();
                            }
                        }
                        Ok(())
                    })?;
                    if let (None, None, Some(s)) = (p.closed.stats, p.len, stats) {
                        learned.push(s);
                    }
                }
                let mut out: Vec<Ranked> = heap.into_iter().map(|Reverse(r)| r).collect();
                out.sort_unstable();
                out.into_iter().map(|r| r.rec).collect()
            }
        };
        self.learn(&learned);
        Ok(result)
    }

    /// Up to `max` records with `seq > after`, in file order (for a node's
    /// own journal: sequence order), read from `cursor` when it names a
    /// segment still present (else from the first segment that can hold
    /// them: segments whose known highest `seq` is at most `after` are
    /// skipped). Returns them and where the next read starts.
    pub(crate) fn read_after(
        &self,
        after: u64,
        cursor: Option<JournalCursor>,
        max: usize,
    ) -> Result<(Vec<AuditRecord>, Option<JournalCursor>), StoreError> {
        let parts = self.snapshot();
        let resume = cursor.filter(|c| parts.iter().any(|p| p.closed.seg.seq == c.segment));
        let mut out = Vec::new();
        let mut next = resume;
        for p in &parts {
            let seg = p.closed.seg;
            let from = match resume {
                Some(c) if seg.seq < c.segment => continue,
                Some(c) if seg.seq == c.segment => c.offset,
                _ => 0,
            };
            if from == 0 && p.closed.stats.is_some_and(|s| s.max_seq <= after) {
                next = Some(JournalCursor {
                    segment: seg.seq,
                    offset: p.len.unwrap_or(p.closed.stats.map_or(0, |s| s.bytes)),
                });
                continue;
            }
            // Stops at the record that fills the batch: a sender behind by
            // many records read (and parsed) the whole rest of the segment
            // for every batch, on the CPU that answers RADIUS.
            let mut full = false;
            self.scan_until(seg, from, p.len, |end, probe, body| {
                if probe.seq > after {
                    let rec = serde_json::from_slice::<AuditRecord>(body)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    out.push(rec);
                    full = out.len() >= max;
                }
                next = Some(JournalCursor {
                    segment: seg.seq,
                    offset: end,
                });
                Ok(if full {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            if full {
                break;
            }
        }
        Ok((out, next))
    }

    /// The sequence number of the segment being written (or the next one),
    /// and the `seq` the next record will get (own journal).
    pub(crate) fn position(&self) -> (u64, u64) {
        let st = lock(&self.state);
        let segment = st.active.as_ref().map_or(st.next_seq, |a| a.seg.seq);
        (segment, st.next_rec_seq)
    }

    /// The highest `seq` per `server_name` in the segments from `segment`
    /// on (the inbox's recovery), read without keeping the records.
    pub(crate) fn max_seq_by_node_from(
        &self,
        segment: u64,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut marks: HashMap<String, u64> = HashMap::new();
        for p in self
            .snapshot()
            .iter()
            .filter(|p| p.closed.seg.seq >= segment)
        {
            self.scan(p.closed.seg, 0, p.len, |_, probe, _| {
                let m = marks.entry(probe.server_name.to_string()).or_default();
                *m = (*m).max(probe.seq);
                Ok(())
            })?;
        }
        Ok(marks)
    }

    /// Removes whole segments whose records are all older than
    /// `older_than_ms`; returns the number of records removed. A segment is
    /// judged by its cached statistics, else by its name (its start day ended
    /// before the cutoff: removed, read only to count), else, when it started
    /// before the cutoff, by reading it; other segments are kept unread. The
    /// active segment goes too when its newest record is older than the cutoff.
    pub(crate) fn trim(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        let _one_at_a_time = lock(&self.trim_lock);
        let mut candidates = {
            let mut st = lock(&self.state);
            let retire = st
                .active
                .as_ref()
                .is_some_and(|a| a.stats.records > 0 && a.stats.max_ms < older_than_ms);
            if retire {
                st.write_out()?;
                if let Some(a) = st.active.take() {
                    // Now an ordinary closed segment, about to be removed.
                    st.active_unsynced = false;
                    st.closed.push(Closed {
                        seg: a.seg,
                        stats: Some(Stats {
                            bytes: a.written,
                            ..a.stats
                        }),
                    });
                }
            }
            st.closed.clone()
        };

        let mut learned = Vec::new();
        for c in candidates.iter_mut().filter(|c| c.stats.is_none()) {
            if day_last_ms(c.seg.start_ms) >= older_than_ms && c.seg.start_ms < older_than_ms {
                c.stats = self.scan(c.seg, 0, None, |_, _, _| Ok(()))?;
                learned.extend(c.stats);
            }
        }
        self.learn(&learned);

        let mut removed = 0u64;
        let mut gone = Vec::new();
        let mut result = Ok(());
        for c in candidates {
            if c.bounds().1 >= older_than_ms {
                continue;
            }
            let path = self.dir.join(c.seg.file_name());
            let count = match c.stats {
                Some(s) => s.records,
                None => match count_lines(&path) {
                    Ok(n) => n,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            match fs::remove_file(&path) {
                Ok(()) => removed += count,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
            gone.push(c.seg.seq);
        }
        {
            let mut st = lock(&self.state);
            st.closed.retain(|c| !gone.contains(&c.seg.seq));
        }
        if !gone.is_empty() {
            sync_dir(&self.dir)?;
        }
        result?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}

/// Counts the non-blank lines of a file (records of a segment); a missing file
/// counts zero.
fn count_lines(path: &Path) -> Result<u64, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut count = 0u64;
    // Whether the current line has a non-blank byte.
    let mut content = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(count);
        }
        for &b in chunk {
            if b == b'\n' {
                count += u64::from(content);
                content = false;
            } else if !b.is_ascii_whitespace() {
                content = true;
            }
        }
        let n = chunk.len();
        reader.consume(n);
    }
}

/// The background flusher: every `interval`, writes and fsyncs; ends when the
/// journal is gone.
fn flusher_loop(journal: &Weak<Journal>, interval: Duration) {
    loop {
        thread::park_timeout(interval);
        let Some(j) = journal.upgrade() else {
            return;
        };
        // An error is reported by the next append or flush that hits it.
        let _ = j.flush();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
        let _ = self.flush();
        // The active segment is closed from now on: cache its statistics.
        let st = lock(&self.state);
        if let Some(a) = st.active.as_ref().filter(|_| st.buf.is_empty()) {
            let _ = append_index(
                &self.dir,
                &[Stats {
                    bytes: a.written,
                    ..a.stats
                }],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_segment_bytes: u64) -> JournalConfig {
        JournalConfig {
            max_segment_bytes,
            flush_interval: Duration::from_millis(200),
            background: false,
            assign_seq: false,
        }
    }

    fn rec(time_ms: u64, user: &str, result: &str) -> AuditRecord {
        AuditRecord {
            time_ms,
            user: user.into(),
            mode: "pap+totp".into(),
            result: result.into(),
            reason: String::new(),
            server_name: "node-a".into(),
            server_ip: "127.0.0.1".into(),
            client_name: "vpn".into(),
            client_ip: "127.0.0.2".into(),
            calling_station: String::new(),
            ..AuditRecord::default()
        }
    }

    fn all(j: &Journal) -> Vec<AuditRecord> {
        j.query(&AuditFilter::default()).unwrap()
    }

    fn limit(j: &Journal, n: usize) -> Vec<AuditRecord> {
        j.query(&AuditFilter {
            limit: Some(n),
            ..AuditFilter::default()
        })
        .unwrap()
    }

    fn segment_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(SUFFIX))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn segment_names_round_trip() {
        let s = Segment {
            seq: 7,
            start_ms: 1_732_700_000_000,
        };
        assert_eq!(s.file_name(), "00000001732700000000-000007.jsonl");
        assert_eq!(Segment::parse(&s.file_name()), Some(s));
        let big = Segment {
            seq: 12_345_678,
            start_ms: u64::MAX,
        };
        assert_eq!(Segment::parse(&big.file_name()), Some(big));
        for bad in [
            "x.jsonl",
            "1-2.json",
            "-2.jsonl",
            "1-.jsonl",
            "1-2-3.jsonl",
            "+1-2.jsonl",
            "99999999999999999999999-1.jsonl",
            "1-2.jsonl.gz",
        ] {
            assert_eq!(Segment::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn torn_last_line_is_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        j.append(&[rec(1, "a", "accept"), rec(2, "b", "reject")])
            .unwrap();
        j.flush().unwrap();
        drop(j);
        let names = segment_files(dir.path());
        assert_eq!(names.len(), 1);
        let path = dir.path().join(&names[0]);
        let good = fs::read(&path).unwrap();
        // A crash in the middle of the third line.
        let torn = br#"{"time_ms":3,"user":"c","mo"#;
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);

        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(j.torn_bytes(), torn.len() as u64);
        assert_eq!(fs::read(&path).unwrap(), good);
        let times: Vec<u64> = all(&j).iter().map(|r| r.time_ms).collect();
        assert_eq!(times, [1, 2]);
        // Appending goes on cleanly (in a new segment).
        j.append(&[rec(4, "d", "accept")]).unwrap();
        let times: Vec<u64> = all(&j).iter().map(|r| r.time_ms).collect();
        assert_eq!(times, [1, 2, 4]);
        drop(j);
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(j.torn_bytes(), 0);
        assert_eq!(all(&j).len(), 3);
    }

    #[test]
    fn segment_with_only_a_torn_line_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let name = Segment {
            seq: 3,
            start_ms: 10,
        }
        .file_name();
        // A crash that left zeros but no complete line.
        fs::write(dir.path().join(&name), [0u8; 100]).unwrap();
        fs::write(dir.path().join("notes.txt"), b"not a segment").unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(j.torn_bytes(), 100);
        assert!(!dir.path().join(&name).exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(all(&j).is_empty());
        // Numbering goes on after the removed segment.
        j.append(&[rec(11, "a", "accept")]).unwrap();
        j.flush().unwrap();
        assert!(segment_files(dir.path()).contains(&"00000000000000000011-000004.jsonl".into()));
    }

    #[test]
    fn corrupt_line_is_reported_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        j.append(&[rec(1, "a", "accept")]).unwrap();
        j.flush().unwrap();
        drop(j);
        let name = segment_files(dir.path()).remove(0);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(&name))
            .unwrap();
        f.write_all(b"\n{not json}\n").unwrap();
        drop(f);
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        match j.query(&AuditFilter::default()) {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains(&name) && m.contains("line 3"), "{m}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn rotation_by_size_and_day_keeps_query_order() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about three records per segment.
        let j = Journal::open(dir.path(), cfg(600)).unwrap();
        let d1 = DAY_MS;
        let d2 = 2 * DAY_MS;
        let mut expected = Vec::new();
        // Day 0, in order, with duplicate times.
        for i in 0..10u64 {
            let r = rec(1000 + i / 2, &format!("u{i}"), "accept");
            j.append(std::slice::from_ref(&r)).unwrap();
            expected.push(r);
        }
        // A batch across the day boundary, with a late record from day 0.
        let batch = vec![
            rec(d1 + 5, "b0", "accept"),
            rec(d1 + 5, "b1", "reject"),
            rec(500, "late", "accept"),
            rec(d1 + 9, "b2", "accept"),
            rec(d2 + 1, "b3", "challenge"),
            rec(d2 + 1, "b4", "accept"),
        ];
        j.append(&batch).unwrap();
        expected.extend(batch);
        expected.sort_by_key(|r| r.time_ms); // stable: insertion order kept
        assert_eq!(all(&j), expected);

        j.flush().unwrap();
        let names = segment_files(dir.path());
        assert!(names.len() >= 5, "{names:?}");
        let segs: Vec<Segment> = names.iter().filter_map(|n| Segment::parse(n)).collect();
        // Sequence and start never go back; every record is before the end of
        // its segment's start day.
        for w in segs.windows(2) {
            assert!(
                w[0].seq < w[1].seq && w[0].start_ms <= w[1].start_ms,
                "{names:?}"
            );
        }
        for s in &segs {
            j.scan(*s, 0, None, |_, p, _| {
                assert!(day(p.time_ms) <= day(s.start_ms), "{} in {s:?}", p.time_ms);
                Ok(())
            })
            .unwrap();
        }

        // Limits across segments: newest matches, oldest first.
        for n in [1, 2, 3, 7, 16, 100] {
            let want = &expected[expected.len().saturating_sub(n)..];
            assert_eq!(limit(&j, n), want, "limit {n}");
        }
        let bob = j
            .query(&AuditFilter {
                since_ms: Some(d1),
                until_ms: Some(d2 + 1),
                ..AuditFilter::default()
            })
            .unwrap();
        let users: Vec<&str> = bob.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(users, ["b0", "b1", "b2"]);
        let late = j
            .query(&AuditFilter {
                until_ms: Some(1000),
                limit: Some(5),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(late, [rec(500, "late", "accept")]);

        // The same after reopening.
        drop(j);
        let j = Journal::open(dir.path(), cfg(600)).unwrap();
        assert_eq!(all(&j), expected);
        assert_eq!(limit(&j, 4), &expected[expected.len() - 4..]);
    }

    #[test]
    fn oversized_record_gets_its_own_segment() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(100)).unwrap();
        let mut big = rec(5, "big", "reject");
        big.reason = "x".repeat(500);
        j.append(&[rec(1, "a", "accept"), big.clone(), rec(6, "b", "accept")])
            .unwrap();
        j.flush().unwrap();
        assert_eq!(segment_files(dir.path()).len(), 3);
        assert_eq!(all(&j), [rec(1, "a", "accept"), big, rec(6, "b", "accept")]);
    }

    #[test]
    fn trim_removes_whole_segments_only() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        let day_recs = |d: u64| -> Vec<AuditRecord> {
            (0..4)
                .map(|i| rec(d * DAY_MS + i * 1000, "u", "accept"))
                .collect()
        };
        for d in 0..4 {
            j.append(&day_recs(d)).unwrap();
        }
        assert_eq!(segment_files(dir.path()).len(), 4);
        // Nothing is wholly older than the start of day 0.
        assert_eq!(j.trim(0).unwrap(), 0);
        // In the middle of day 1: day 0 goes, day 1 stays whole.
        assert_eq!(j.trim(DAY_MS + 1500).unwrap(), 4);
        assert_eq!(all(&j).len(), 12);
        assert_eq!(all(&j).first().map(|r| r.time_ms), Some(DAY_MS));
        // Just after day 1's newest record: it goes.
        assert_eq!(j.trim(DAY_MS + 3001).unwrap(), 4);
        assert_eq!(j.trim(DAY_MS + 3001).unwrap(), 0);
        assert_eq!(segment_files(dir.path()).len(), 2);
        // Everything, including the active segment; appends go on afterwards.
        assert_eq!(j.trim(u64::MAX).unwrap(), 8);
        assert!(segment_files(dir.path()).is_empty());
        assert!(all(&j).is_empty());
        j.append(&[rec(3 * DAY_MS, "v", "accept")]).unwrap();
        assert_eq!(all(&j), [rec(3 * DAY_MS, "v", "accept")]);
        assert_eq!(j.trim(u64::MAX).unwrap(), 1);
    }

    #[test]
    fn trim_counts_records_of_unread_segments() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        j.append(&(0..50).map(|i| rec(i, "u", "accept")).collect::<Vec<_>>())
            .unwrap();
        drop(j);
        // Reopened: the segment is closed, and day 0 < day of the cutoff.
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(j.trim(DAY_MS).unwrap(), 50);
        assert!(all(&j).is_empty());
    }

    #[test]
    fn concurrent_appends_keep_every_record() {
        let dir = tempfile::tempdir().unwrap();
        // Small segments: rotations happen under contention.
        let j = Journal::open(dir.path(), cfg(4096)).unwrap();
        let threads = 6u64;
        let per = 400u64;
        std::thread::scope(|s| {
            for t in 0..threads {
                let j = &j;
                s.spawn(move || {
                    for i in 0..per {
                        let r = rec(i, &format!("t{t}-{i}"), "accept");
                        if i % 3 == 0 {
                            j.append(&[r.clone(), rec(i, &format!("t{t}-{i}b"), "accept")])
                                .unwrap();
                        } else {
                            j.append(&[r]).unwrap();
                        }
                        if i % 97 == 0 {
                            j.flush().unwrap();
                        }
                    }
                });
            }
        });
        let recs = all(&j);
        let batched = (0..per).filter(|i| i % 3 == 0).count() as u64;
        assert_eq!(recs.len() as u64, threads * (per + batched));
        let mut names: Vec<&str> = recs.iter().map(|r| r.user.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), recs.len(), "a record was duplicated");
        // A batch stays together and in order.
        for w in recs.windows(2) {
            assert!(w[0].time_ms <= w[1].time_ms);
        }
        for (i, r) in recs.iter().enumerate() {
            if let Some(base) = r.user.strip_suffix('b') {
                assert_eq!(recs[i - 1].user, base, "batch split");
            }
        }
        assert!(segment_files(dir.path()).len() > 10);
        drop(j);
        let j = Journal::open(dir.path(), cfg(4096)).unwrap();
        assert_eq!(all(&j), recs);
    }

    /// A node's own journal numbers its records in file order, across
    /// segments and reopenings; `read_after` returns what follows a
    /// sequence, from a cursor or without one.
    #[test]
    fn own_journal_numbers_records_and_reads_after_a_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let own = JournalConfig {
            assign_seq: true,
            ..cfg(400)
        };
        let first;
        {
            let j = Journal::open(dir.path(), own).unwrap();
            first = j.position().1;
            // Starts at the opening time x 10^6 (see the module comment).
            assert!(first >= 1_700_000_000 * 1_000_000, "{first}");
            let recs: Vec<AuditRecord> = (0..10)
                .map(|i| rec(1_800_000_000_000 + i, "u", "accept"))
                .collect();
            j.append(&recs).unwrap();
            j.flush().unwrap();
        }
        let j = Journal::open(dir.path(), own).unwrap();
        assert_eq!(j.position().1, first + 10);
        j.append(&[rec(1_800_000_000_000 + 10, "v", "reject")])
            .unwrap();
        let all = j.query(&AuditFilter::default()).unwrap();
        let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (first..first + 11).collect::<Vec<_>>());
        // Several small segments (400 bytes): read in pieces with a cursor.
        let (part, cursor) = j.read_after(first + 2, None, 3).unwrap();
        let seqs: Vec<u64> = part.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [first + 3, first + 4, first + 5]);
        let (rest, end) = j.read_after(first + 5, cursor, 100).unwrap();
        let seqs: Vec<u64> = rest.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (first + 6..first + 11).collect::<Vec<_>>());
        // Nothing new: nothing returned, from the end cursor or by sequence.
        assert!(j.read_after(first + 10, end, 100).unwrap().0.is_empty());
        assert!(j.read_after(first + 10, None, 100).unwrap().0.is_empty());
        // A record appended later is found from the end cursor.
        j.append(&[rec(1_800_000_000_000 + 11, "w", "accept")])
            .unwrap();
        let (last, _) = j.read_after(first + 10, end, 100).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].seq, last[0].user.as_str()), (first + 11, "w"));
    }

    #[test]
    fn background_flusher_writes_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(
            dir.path(),
            JournalConfig {
                max_segment_bytes: SEGMENT_MAX_BYTES,
                flush_interval: Duration::from_millis(20),
                background: true,
                assign_seq: false,
            },
        )
        .unwrap();
        // Two quick appends: the second stays buffered (interval not over).
        j.append(&[rec(1, "a", "accept")]).unwrap();
        j.append(&[rec(2, "b", "accept")]).unwrap();
        let name = segment_files(dir.path()).remove(0);
        let path = dir.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read(&path)
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            < 2
        {
            assert!(Instant::now() < deadline, "flusher did not write");
            thread::sleep(Duration::from_millis(5));
        }
        drop(j);
    }

    /// Appends `garbage` as a line to a segment file.
    fn spoil(path: &Path) {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(b"{garbage}\n").unwrap();
    }

    #[test]
    fn segment_stats_are_cached_in_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        for d in 0..3u64 {
            j.append(&[
                rec(d * DAY_MS + 7, "a", "accept"),
                rec(d * DAY_MS + 3, "b", "accept"),
            ])
            .unwrap();
        }
        drop(j);
        let (index, lines) = read_index(&dir.path().join(INDEX_FILE)).unwrap();
        // Two were rotated; the third was closed by the drop.
        assert_eq!(lines, 3);
        let s1 = index.get(&1).copied().unwrap();
        assert_eq!((s1.records, s1.min_ms, s1.max_ms), (2, 3, 7));

        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        let known = |j: &Journal| {
            lock(&j.state)
                .closed
                .iter()
                .map(|c| c.stats.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(known(&j), [true, true, true]);
        // Without the index, a full read learns the statistics.
        drop(j);
        fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(known(&j), [false, false, false]);
        assert_eq!(all(&j).len(), 6);
        assert_eq!(known(&j), [true, true, true]);
        drop(j);
        assert_eq!(read_index(&dir.path().join(INDEX_FILE)).unwrap().0.len(), 3);

        // An entry whose size no longer matches its file is ignored, and the
        // index is rewritten without it.
        let first = dir.path().join(
            Segment {
                seq: 1,
                start_ms: 7,
            }
            .file_name(),
        );
        spoil(&first);
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        assert_eq!(known(&j), [false, true, true]);
        assert_eq!(read_index(&dir.path().join(INDEX_FILE)).unwrap().1, 2);
        assert!(matches!(
            j.query(&AuditFilter::default()),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn queries_skip_segments_that_cannot_match() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), cfg(SEGMENT_MAX_BYTES)).unwrap();
        for d in 0..4u64 {
            j.append(
                &(0..10)
                    .map(|i| rec(d * DAY_MS + i, "u", "accept"))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        }
        j.flush().unwrap();
        // Spoil the two oldest segments: only queries that read them fail.
        let names = segment_files(dir.path());
        let segs: Vec<&String> = names.iter().filter(|n| n.ends_with(SUFFIX)).collect();
        assert_eq!(segs.len(), 4);
        spoil(&dir.path().join(segs[0]));
        spoil(&dir.path().join(segs[1]));
        assert!(matches!(
            j.query(&AuditFilter::default()),
            Err(StoreError::Corrupt(_))
        ));
        // The newest 15 lie in the last two segments: the scan stops there.
        let newest = limit(&j, 15);
        assert_eq!(newest.len(), 15);
        assert_eq!(newest.first().map(|r| r.time_ms), Some(2 * DAY_MS + 5));
        // since/until skip by the known time ranges.
        let later = j
            .query(&AuditFilter {
                since_ms: Some(2 * DAY_MS + 9),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(later.len(), 11);
        assert!(matches!(
            j.query(&AuditFilter {
                until_ms: Some(DAY_MS + 1),
                ..AuditFilter::default()
            }),
            Err(StoreError::Corrupt(_))
        ));
        // One more than the last two segments hold: the third must be read.
        assert!(matches!(
            j.query(&AuditFilter {
                limit: Some(21),
                ..AuditFilter::default()
            }),
            Err(StoreError::Corrupt(_))
        ));
    }
}
