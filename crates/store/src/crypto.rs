//! Secrets, the key file, and sealing token seeds with ChaCha20-Poly1305.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::StoreError;

/// Length of the at-rest encryption key.
pub(crate) const KEY_LEN: usize = 32;
/// Length of a ChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 12;

/// Secret bytes (a token seed). `Debug` prints `***`, the bytes are zeroized on
/// drop, and equality is checked in constant time (for equal lengths).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps `bytes`; they are zeroized when the `Secret` drops.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The secret bytes. Do not copy them into memory that is not zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

/// The at-rest cipher. `ChaCha20Poly1305` zeroizes its key on drop.
pub(crate) struct SeedCipher(ChaCha20Poly1305);

impl SeedCipher {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> SeedCipher {
        SeedCipher(ChaCha20Poly1305::new(key.into()))
    }

    /// Encrypts `plain` with a fresh random nonce, binding it to `aad`.
    pub(crate) fn seal(
        &self,
        plain: &[u8],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| StoreError::Crypto)?;
        Ok((nonce, ct))
    }

    /// Decrypts and authenticates; any failure is [`StoreError::Crypto`].
    pub(crate) fn open(&self, nonce: &[u8], ct: &[u8], aad: &[u8]) -> Result<Secret, StoreError> {
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::Crypto);
        }
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Secret::new)
            .map_err(|_| StoreError::Crypto)
    }
}

/// Lower-case hex encoding.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Hex decoding (either case); `None` on odd length or a non-hex digit.
pub(crate) fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi << 4 | lo).ok()
        })
        .collect()
}

/// Parses key file contents: exactly 32 raw bytes, or 64 hex digits optionally
/// surrounded by ASCII whitespace (e.g. a trailing newline).
fn parse_key(contents: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if contents.len() == KEY_LEN {
        key.copy_from_slice(contents);
        return Ok(key);
    }
    let text = contents.trim_ascii();
    if text.len() == KEY_LEN * 2 {
        let decoded = Zeroizing::new(
            hex_decode(text).ok_or_else(|| "contains a non-hex character".to_string())?,
        );
        key.copy_from_slice(&decoded);
        return Ok(key);
    }
    Err(format!(
        "wrong size: expected {KEY_LEN} raw bytes or {} hex digits, found {} bytes",
        KEY_LEN * 2,
        contents.len()
    ))
}

/// Fewest distinct byte values a key may have: 32 (or 16) random bytes have
/// far more (fewer than 8 happens with probability below 2^-100), while an
/// all-zero, repeated or hand-typed key has a handful.
const MIN_DISTINCT_KEY_BYTES: usize = 8;

/// Refuses a key file others may read or write, and a trivial key.
///
/// Why: anyone who can read the seed key decrypts every TOTP seed in a
/// stolen database or backup; anyone who can write it (or the cluster key)
/// swaps it for one they know. Group read is allowed (a key kept by root for
/// a service group); group write and any access by others are not. The mode
/// is checked on the file the path resolves to.
pub fn check_key_file(path: &Path, key: &[u8]) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| format!("cannot read its permissions: {e}"))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o027 != 0 {
            return Err(format!(
                "mode {mode:04o} lets other users read or change it: run `chmod 600 {}`",
                path.display()
            ));
        }
    }
    let mut seen = [false; 256];
    for b in key {
        seen[usize::from(*b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < MIN_DISTINCT_KEY_BYTES {
        return Err(format!(
            "the key is trivial ({distinct} distinct byte values, e.g. all zeros): \
             use a random one, e.g. `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// Fixed text sealed under the seed key into the store's `meta` tree at its
/// first open ([`seal_key_check`]): a later open with another key fails to
/// open it and stops with a clear error, instead of every seed failing to
/// decrypt at sign-in time.
const KEY_CHECK_TEXT: &[u8] = b"radmfa seed key check v1";
const KEY_CHECK_AAD: &[u8] = b"radmfa key check";

/// The key check value: nonce then ciphertext.
pub(crate) fn seal_key_check(cipher: &SeedCipher) -> Result<Vec<u8>, StoreError> {
    let (nonce, ct) = cipher.seal(KEY_CHECK_TEXT, KEY_CHECK_AAD)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Whether `value` (from [`seal_key_check`]) opens under `cipher` to the
/// fixed text.
pub(crate) fn key_check_matches(cipher: &SeedCipher, value: &[u8]) -> bool {
    let Some((nonce, ct)) = value.split_at_checked(NONCE_LEN) else {
        return false;
    };
    cipher
        .open(nonce, ct, KEY_CHECK_AAD)
        .is_ok_and(|plain| plain.expose().ct_eq(KEY_CHECK_TEXT).into())
}

/// Loads the key file, or creates it (32 random bytes written as 64 hex digits and
/// a newline, mode 0600) when it is missing and `create` is true.
/// `may_create` is called before creating, to veto it (e.g. when the database
/// already holds sealed seeds that a new key could never open).
pub(crate) fn load_or_create_key(
    path: &Path,
    create: bool,
    may_create: impl FnOnce() -> Result<(), String>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
    let key_err = |reason: String| StoreError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    match fs::read(path) {
        Ok(contents) => {
            let contents = Zeroizing::new(contents);
            let key = parse_key(&contents).map_err(key_err)?;
            check_key_file(path, key.as_slice()).map_err(key_err)?;
            return Ok(key);
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(key_err(format!("cannot read: {e}"))),
    }
    if !create {
        return Err(key_err("does not exist".into()));
    }
    may_create().map_err(key_err)?;

    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rng().fill_bytes(key.as_mut_slice());
    let mut text = Zeroizing::new(hex_encode(key.as_slice()));
    text.push('\n');

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let contents =
                Zeroizing::new(fs::read(path).map_err(|e| key_err(format!("cannot read: {e}")))?);
            let key = parse_key(&contents).map_err(key_err)?;
            check_key_file(path, key.as_slice()).map_err(key_err)?;
            return Ok(key);
        }
        Err(e) => return Err(key_err(format!("cannot create: {e}"))),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_err(format!("cannot write: {e}")))?;
    // Make the new directory entry durable too.
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| key_err(format!("cannot sync its directory: {e}")))?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let bytes: Vec<u8> = (0..=255).collect();
        let enc = hex_encode(&bytes);
        assert_eq!(enc.len(), 512);
        assert_eq!(hex_decode(enc.as_bytes()).as_deref(), Some(&bytes[..]));
        assert_eq!(hex_decode(b"ABcd").as_deref(), Some(&[0xab, 0xcd][..]));
        assert_eq!(hex_decode(b"abc"), None);
        assert_eq!(hex_decode(b"zz"), None);
        assert_eq!(hex_decode("é1".as_bytes()), None);
    }

    #[test]
    fn parse_key_accepts_raw_and_hex() {
        let raw = [7u8; 32];
        assert_eq!(*parse_key(&raw).unwrap(), raw);
        let hex = format!("  {}\n", hex_encode(&raw));
        assert_eq!(*parse_key(hex.as_bytes()).unwrap(), raw);
        let err = parse_key(&[1u8; 31]).unwrap_err();
        assert!(err.contains("found 31 bytes"), "{err}");
        let bad = "g".repeat(64);
        assert!(parse_key(bad.as_bytes()).is_err());
    }

    #[test]
    fn seal_open_binds_aad_and_detects_tamper() {
        let cipher = SeedCipher::new(&[42u8; 32]);
        let (nonce, ct) = cipher.seal(b"seed bytes", b"alice").unwrap();
        assert_eq!(
            cipher.open(&nonce, &ct, b"alice").unwrap().expose(),
            b"seed bytes"
        );
        assert!(matches!(
            cipher.open(&nonce, &ct, b"bob"),
            Err(StoreError::Crypto)
        ));
        let mut bad = ct.clone();
        if let Some(b) = bad.first_mut() {
            *b ^= 1;
        }
        assert!(matches!(
            cipher.open(&nonce, &bad, b"alice"),
            Err(StoreError::Crypto)
        ));
        assert!(matches!(
            cipher.open(&nonce[..11], &ct, b"alice"),
            Err(StoreError::Crypto)
        ));
        let other = SeedCipher::new(&[43u8; 32]);
        assert!(matches!(
            other.open(&nonce, &ct, b"alice"),
            Err(StoreError::Crypto)
        ));
        // Fresh nonce per seal.
        let (nonce2, _) = cipher.seal(b"seed bytes", b"alice").unwrap();
        assert_ne!(nonce, nonce2);
    }

    #[test]
    fn secret_debug_and_eq() {
        let a = Secret::new(b"topsecret".to_vec());
        assert_eq!(format!("{a:?}"), "***");
        assert_eq!(a, Secret::new(b"topsecret".to_vec()));
        assert_ne!(a, Secret::new(b"topsecreT".to_vec()));
        assert_ne!(a, Secret::new(b"top".to_vec()));
        assert_eq!(a.clone().expose(), b"topsecret");
    }
}
