//! Online backup and offline restore (DESIGN.md §6: `radmfa backup`,
//! `radmfa restore`).
//!
//! File format (all integers big-endian):
//!
//! ```text
//! "RADMFA-BACKUP 1\n"
//! record*              u32 length, then that many bytes:
//!   header (first)     'H', role u8 (0 primary, 1 replica), repl_epoch u64,
//!                      last_seq u64, last_epoch u64, entry count u64
//!   entry (count ×)    'E', tree u8, key length u32, key, value
//! SHA-256              32 bytes: the digest of everything before it
//! ```
//!
//! Entries are the raw sled records of the replicated trees ([`TREE_USERS`]
//! .. [`TREE_CLIENTS`](crate::TREE_CLIENTS)): token seeds and PINs stay
//! sealed under the key file, which is **not** in the backup. Restore needs
//! the key file the backup was made with (kept safe separately). The audit
//! journal is copied beside the file, as the directory `<backup>.audit/`.
//!
//! [`TREE_USERS`]: crate::TREE_USERS

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::crypto::{hex_decode, load_or_create_key, SeedCipher};
use crate::repl::{Entry, Role};
use crate::schema::{decode, AdminTree, TokenRecord};
use crate::store::{check_key_outside, journal_dir, pin_aad};
use crate::{Store, StoreError, StoreOptions, User};

/// First bytes of a backup file.
pub const BACKUP_MAGIC: &[u8] = b"RADMFA-BACKUP 1\n";
const DIGEST_LEN: usize = 32;
const TAG_HEADER: u8 = b'H';
const TAG_ENTRY: u8 = b'E';

/// What a backup holds (returned by [`Store::backup`] and
/// [`Store::restore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// Log position of the copy: sequence number of the last change included.
    pub seq: u64,
    /// Epoch of that change.
    pub epoch: u64,
    /// The node's role when the backup was taken (restored as is).
    pub role: Role,
    /// The node's epoch when the backup was taken (restored as is).
    pub repl_epoch: u64,
    /// Records of the replicated trees.
    pub entries: u64,
    /// Audit journal segment files copied.
    pub audit_files: usize,
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// fsync a directory (makes renames and new entries in it durable).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    out: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn record(&mut self, payload: &[&[u8]]) -> io::Result<()> {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record over 4 GiB"))?;
        self.write_all(&len.to_be_bytes())?;
        for p in payload {
            self.write_all(p)?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes the backup file to `tmp` (fsynced).
fn write_file(
    tmp: &Path,
    primary: bool,
    repl_epoch: u64,
    seq: u64,
    epoch: u64,
    entries: &[Entry],
) -> io::Result<()> {
    let file = crate::private::create_file(tmp)?;
    let mut w = Hashing {
        out: BufWriter::with_capacity(256 * 1024, file),
        hash: Sha256::new(),
    };
    w.write_all(BACKUP_MAGIC)?;
    let count = u64::try_from(entries.len()).unwrap_or(u64::MAX);
    w.record(&[
        &[TAG_HEADER, u8::from(!primary)],
        &repl_epoch.to_be_bytes(),
        &seq.to_be_bytes(),
        &epoch.to_be_bytes(),
        &count.to_be_bytes(),
    ])?;
    for e in entries {
        let klen = u32::try_from(e.key.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "key over 4 GiB"))?;
        w.record(&[&[TAG_ENTRY, e.tree], &klen.to_be_bytes(), &e.key, &e.value])?;
    }
    let digest = w.hash.finalize();
    let mut out = w.out;
    out.write_all(&digest)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// A parsed, verified backup.
#[derive(Debug)]
struct Parsed {
    primary: bool,
    repl_epoch: u64,
    seq: u64,
    epoch: u64,
    entries: Vec<Entry>,
}

/// A reader over a byte slice that never panics.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| "truncated record".to_string())?;
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        self.take(1).map(|b| b.first().copied().unwrap_or_default())
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        <[u8; 4]>::try_from(b)
            .map(u32::from_be_bytes)
            .map_err(|_| "truncated integer".to_string())
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        <[u8; 8]>::try_from(b)
            .map(u64::from_be_bytes)
            .map_err(|_| "truncated integer".to_string())
    }
    fn record(&mut self) -> Result<Cursor<'a>, String> {
        let len = usize::try_from(self.u32()?).map_err(|_| "record too long".to_string())?;
        self.take(len).map(Cursor)
    }
}

/// Verifies the digest, then parses. The error is the reason, for
/// [`StoreError::Backup`].
fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let (body, digest) = bytes
        .split_at_checked(bytes.len().saturating_sub(DIGEST_LEN))
        .filter(|(body, _)| body.len() >= BACKUP_MAGIC.len())
        .ok_or_else(|| "too short to be a radmfa backup".to_string())?;
    if !body.starts_with(BACKUP_MAGIC) {
        return Err("not a radmfa backup (bad magic line)".into());
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch: the file is corrupt or truncated".into());
    }
    let mut c = Cursor(body.get(BACKUP_MAGIC.len()..).unwrap_or_default());
    let mut h = c.record()?;
    if h.u8()? != TAG_HEADER {
        return Err("first record is not the header".into());
    }
    let primary = match h.u8()? {
        0 => true,
        1 => false,
        r => return Err(format!("unknown role {r}")),
    };
    let (repl_epoch, seq, epoch, count) = (h.u64()?, h.u64()?, h.u64()?, h.u64()?);
    if !h.0.is_empty() {
        return Err("trailing bytes in the header".into());
    }
    if primary && repl_epoch == 0 {
        return Err("primary at epoch 0".into());
    }
    let mut entries = Vec::with_capacity(usize::try_from(count.min(1 << 20)).unwrap_or(0));
    while !c.0.is_empty() {
        let mut r = c.record()?;
        if r.u8()? != TAG_ENTRY {
            return Err("unexpected record after the header".into());
        }
        let tree = r.u8()?;
        if AdminTree::from_number(tree).is_none() {
            return Err(format!("unknown tree {tree}"));
        }
        let klen = usize::try_from(r.u32()?).map_err(|_| "key too long".to_string())?;
        let key = r.take(klen)?.to_vec();
        entries.push(Entry {
            tree,
            key,
            value: r.0.to_vec(),
        });
    }
    if u64::try_from(entries.len()).ok() != Some(count) {
        return Err(format!(
            "header announces {count} entries, the file holds {}",
            entries.len()
        ));
    }
    Ok(Parsed {
        primary,
        repl_epoch,
        seq,
        epoch,
        entries,
    })
}

/// Checks that `cipher` opens the first sealed seed and the first sealed PIN
/// of the backup (a wrong key file would make every one of them useless).
fn check_key(cipher: &SeedCipher, entries: &[Entry]) -> Result<(), String> {
    let wrong = "does not decrypt the seeds of this backup: \
                 use the key file the backup was made with";
    let token = entries
        .iter()
        .find(|e| AdminTree::from_number(e.tree) == Some(AdminTree::Tokens));
    if let Some(e) = token {
        let rec: TokenRecord = decode("token", &e.key, &e.value).map_err(|err| err.to_string())?;
        let nonce = hex_decode(rec.nonce.as_bytes()).ok_or(wrong)?;
        let sealed = hex_decode(rec.sealed.as_bytes()).ok_or(wrong)?;
        cipher.open(&nonce, &sealed, &e.key).map_err(|_| wrong)?;
    }
    let pin = entries
        .iter()
        .filter(|e| AdminTree::from_number(e.tree) == Some(AdminTree::Users))
        .filter_map(|e| decode::<User>("user", &e.key, &e.value).ok())
        .find_map(|u| u.pin.clone().map(|p| (u.name, p)));
    if let Some((name, p)) = pin {
        let nonce = hex_decode(p.nonce.as_bytes()).ok_or(wrong)?;
        let sealed = hex_decode(p.sealed.as_bytes()).ok_or(wrong)?;
        cipher
            .open(&nonce, &sealed, &pin_aad(&name))
            .map_err(|_| wrong)?;
    }
    Ok(())
}

/// Copies the audit segments (`*.jsonl`) of `src` into the new directory
/// `dest`, each up to its length when listed (a torn last line is repaired
/// when the journal is opened; `segments.idx` is a cache and is rebuilt).
/// Segments trimmed meanwhile are skipped. Returns the number copied.
fn copy_audit(src: &Path, dest: &Path) -> io::Result<usize> {
    crate::private::create_dir(dest)?;
    let mut copied = 0;
    let listing = match fs::read_dir(src) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in listing {
        let entry = entry?;
        let name = entry.file_name();
        if !entry.file_type()?.is_file() || !name.to_string_lossy().ends_with(".jsonl") {
            continue;
        }
        let mut from = match File::open(entry.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = from.metadata()?.len();
        let mut to = crate::private::create_file(&dest.join(&name))?;
        io::copy(&mut (&mut from).take(len), &mut to)?;
        to.sync_all()?;
        copied += 1;
    }
    sync_dir(dest)?;
    Ok(copied)
}

impl Store {
    /// Online backup to the file `path` (which must not exist), with the
    /// audit journal copied to the directory `<path>.audit/`.
    ///
    /// The replicated trees (users, tokens, OTP state, clients) and the log
    /// position are copied under the write lock (writes wait for the copy in
    /// memory, not for the file), so the file is exactly the state after
    /// change `seq`. The audit journal is flushed and copied afterwards. The
    /// file is written as `<path>.tmp`, fsynced and renamed. Seeds and PINs
    /// stay sealed: keep the key file too (see [`Store::restore`]).
    ///
    /// File format (integers big-endian): the line `RADMFA-BACKUP 1\n`
    /// ([`BACKUP_MAGIC`]); records, each a u32 length and that many bytes:
    /// first the header (`'H'`, role u8 0 = primary / 1 = replica,
    /// `repl_epoch` u64, last seq u64, last epoch u64, entry count u64), then
    /// one entry per record (`'E'`, tree number u8, key length u32, key,
    /// value); last, the SHA-256 (32 bytes) of everything before it.
    pub fn backup(&self, path: &Path) -> Result<BackupInfo, StoreError> {
        let err = |reason: String| StoreError::Backup {
            path: path.to_path_buf(),
            reason,
        };
        let audit_dest = with_suffix(path, ".audit");
        if exists(path) || exists(&audit_dest) {
            return Err(err(format!(
                "{} or {} already exists: a backup never overwrites another",
                path.display(),
                audit_dest.display()
            )));
        }
        let (snap, primary, repl_epoch) = {
            let st = self.lock_repl();
            (self.copy_trees(&st)?, st.primary, st.epoch)
        };
        let tmp = with_suffix(path, ".tmp");
        write_file(
            &tmp,
            primary,
            repl_epoch,
            snap.seq,
            snap.epoch,
            &snap.entries,
        )?;

        self.inner.journal.flush()?;
        let audit_tmp = with_suffix(path, ".audit.tmp");
        if exists(&audit_tmp) {
            // Left by an interrupted backup to this same path.
            fs::remove_dir_all(&audit_tmp)?;
        }
        let audit_files = copy_audit(self.audit_dir(), &audit_tmp)?;
        fs::rename(&audit_tmp, &audit_dest)?;
        fs::rename(&tmp, path)?;
        sync_dir(parent_of(path))?;
        Ok(BackupInfo {
            seq: snap.seq,
            epoch: snap.epoch,
            role: role_of(primary),
            repl_epoch,
            entries: u64::try_from(snap.entries.len()).unwrap_or(u64::MAX),
            audit_files,
        })
    }

    /// Restores the backup file `backup` (and its `<backup>.audit/`
    /// directory, when present) into `dir`, a database directory that must
    /// not exist or be empty (its audit directory `<dir>.audit` likewise).
    /// Offline: run it while no node uses `dir`.
    ///
    /// Before anything is written: the checksum is verified
    /// ([`StoreError::Backup`] on a single flipped byte), the records are
    /// parsed, and `key_file` — which must exist: the key file the backup
    /// was made with — must open the backup's first sealed seed and PIN
    /// ([`StoreError::KeyFile`] otherwise). Then the store is created with
    /// the backup's data, log position, role and epoch, and flushed. If that
    /// is interrupted, empty `dir` and `<dir>.audit` and run it again.
    pub fn restore(backup: &Path, dir: &Path, key_file: &Path) -> Result<BackupInfo, StoreError> {
        let err = |reason: String| StoreError::Backup {
            path: backup.to_path_buf(),
            reason,
        };
        let dir_is_empty = |d: &Path| -> Result<bool, StoreError> {
            match fs::read_dir(d) {
                Ok(mut l) => Ok(l.next().is_none()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
                Err(e) => Err(e.into()),
            }
        };
        if !dir_is_empty(dir)? {
            return Err(err(format!(
                "restore target {} is not empty: restore only into a directory without a database",
                dir.display()
            )));
        }
        let name = dir
            .file_name()
            .ok_or_else(|| err(format!("restore target {} has no name", dir.display())))?;
        let mut audit_name = name.to_os_string();
        audit_name.push(".audit");
        let audit_target = fs::canonicalize(parent_of(dir))?.join(audit_name);
        if !dir_is_empty(&audit_target)? {
            return Err(err(format!(
                "audit directory {} is not empty",
                audit_target.display()
            )));
        }

        let bytes = fs::read(backup)?;
        let parsed = parse(&bytes).map_err(err)?;
        drop(bytes);
        let key = load_or_create_key(key_file, false, || Err("does not exist".into()))?;
        let cipher = SeedCipher::new(&key);
        drop(key);
        check_key(&cipher, &parsed.entries).map_err(|reason| StoreError::KeyFile {
            path: key_file.to_path_buf(),
            reason,
        })?;

        let created = !exists(dir);
        crate::private::create_dir_all(dir)?;
        if let Err(e) = check_key_outside(dir, key_file) {
            if created {
                let _ = fs::remove_dir(dir);
            }
            return Err(e);
        }
        let audit_src = with_suffix(backup, ".audit");
        let audit_dir = journal_dir(dir)?;
        let audit_files = if exists(&audit_src) {
            if exists(&audit_dir) {
                fs::remove_dir(&audit_dir)?; // empty, checked above
            }
            copy_audit(&audit_src, &audit_dir)?
        } else {
            0
        };
        let opts = StoreOptions {
            create_key_if_missing: false,
            ..StoreOptions::default()
        };
        let store = Store::open(dir, key_file, &opts)?;
        {
            let mut st = store.lock_repl();
            store.install_entries(&mut st, parsed.seq, parsed.epoch, &parsed.entries)?;
        }
        store.set_repl_state(role_of(parsed.primary), parsed.repl_epoch)?;
        store.flush()?;
        Ok(BackupInfo {
            seq: parsed.seq,
            epoch: parsed.epoch,
            role: role_of(parsed.primary),
            repl_epoch: parsed.repl_epoch,
            entries: u64::try_from(parsed.entries.len()).unwrap_or(u64::MAX),
            audit_files,
        })
    }
}

fn role_of(primary: bool) -> Role {
    if primary {
        Role::Primary
    } else {
        Role::Replica { primary: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("b");
        let entries = vec![
            Entry {
                tree: 1,
                key: b"alice".to_vec(),
                value: b"{}".to_vec(),
            },
            Entry {
                tree: 4,
                key: b"nas".to_vec(),
                value: vec![],
            },
        ];
        write_file(&tmp, false, 3, 9, 2, &entries).unwrap();
        fs::read(&tmp).unwrap()
    }

    #[test]
    fn write_parse_round_trip() {
        let bytes = sample();
        assert!(bytes.starts_with(BACKUP_MAGIC));
        let p = parse(&bytes).unwrap();
        assert_eq!(
            (p.primary, p.repl_epoch, p.seq, p.epoch, p.entries.len()),
            (false, 3, 9, 2, 2)
        );
        assert_eq!(p.entries[1].key, b"nas");
        assert!(p.entries[1].value.is_empty());
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(parse(&b).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn malformed_records_behind_a_valid_digest_are_refused() {
        // A valid digest over a bad body: each structural check must fire.
        let seal = |body: Vec<u8>| {
            let mut b = body.clone();
            b.extend_from_slice(&Sha256::digest(&body));
            b
        };
        let mut header = BACKUP_MAGIC.to_vec();
        header.extend_from_slice(&34u32.to_be_bytes());
        header.extend_from_slice(&[TAG_HEADER, 0]);
        for v in [1u64, 0, 0, 1] {
            header.extend_from_slice(&v.to_be_bytes());
        }
        // Count 1 but no entry.
        assert!(parse(&seal(header.clone()))
            .unwrap_err()
            .contains("announces"));
        // An entry of an unknown tree.
        let mut bad_tree = header.clone();
        bad_tree.extend_from_slice(&6u32.to_be_bytes());
        bad_tree.extend_from_slice(&[TAG_ENTRY, 9, 0, 0, 0, 0]);
        assert!(parse(&seal(bad_tree)).unwrap_err().contains("unknown tree"));
        // A key length past the record.
        let mut long_key = header.clone();
        long_key.extend_from_slice(&6u32.to_be_bytes());
        long_key.extend_from_slice(&[TAG_ENTRY, 1, 0, 0, 0, 9]);
        assert!(parse(&seal(long_key)).unwrap_err().contains("truncated"));
        // A record length past the end.
        let mut past = header;
        past.extend_from_slice(&60u32.to_be_bytes());
        past.push(TAG_ENTRY);
        assert!(parse(&seal(past)).unwrap_err().contains("truncated"));
        assert!(parse(&seal(b"RADMFA-BACKUP 2\n".to_vec()))
            .unwrap_err()
            .contains("magic"));
    }
}
