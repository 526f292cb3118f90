//! Portal sessions without server-side state, so that any node behind a
//! balancer without stickiness can serve any request: the whole session
//! lives in one cookie, encrypted (ChaCha20-Poly1305) and signed
//! (HMAC-SHA-256) under keys derived from the cluster key, which every node
//! shares. The expiry is inside the sealed payload.
//!
//! Cookie value: base64url(`version | nonce (12) | ciphertext+tag | mac (32)`),
//! where `mac = HMAC(mac_key, version | nonce | ciphertext+tag)`.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Name of the session cookie. The `__Host-` prefix makes browsers insist
/// on `Secure`, `Path=/` and no `Domain`.
pub(crate) const COOKIE_NAME: &str = "__Host-radmfa-portal";

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const MAC_LEN: usize = 32;
/// Longest cookie value accepted (browsers cap a cookie near 4 KiB).
const MAX_COOKIE_LEN: usize = 4096;
const AAD: &[u8] = b"radmfa portal session v1";

type HmacSha256 = Hmac<Sha256>;

/// Where a session stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub(crate) enum Stage {
    /// Not signed in (the sign-in form's CSRF token lives here).
    Anonymous,
    /// First factor passed; the second is asked for.
    SecondFactor {
        /// User (canonical login name).
        user: String,
        /// A code sent by SMS, when that is the second factor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sms: Option<SentCode>,
    },
    /// Signed in.
    SignedIn {
        /// User (canonical login name).
        user: String,
    },
}

/// A code sent by SMS and not yet typed back. The answers to it are counted
/// on the server under `id` (see `codes.rs`), never in the cookie, which
/// can be replayed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SentCode {
    /// Random id (hex) under which the server counts the answers; empty in
    /// a cookie from an older version (then the code is refused).
    #[serde(default)]
    pub id: String,
    /// Where it went.
    pub phone: String,
    /// The code.
    pub code: String,
    /// Valid until (unix seconds).
    pub until: u64,
    /// Wrong answers allowed in all (0 in a cookie from an older version).
    #[serde(default)]
    pub max_attempts: u8,
}

impl std::fmt::Debug for SentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentCode")
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Drop for SentCode {
    fn drop(&mut self) {
        self.code.zeroize();
    }
}

/// One portal session, as sealed into the cookie.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Expiry, unix seconds.
    pub exp: u64,
    /// CSRF token (hex), checked on every POST.
    pub csrf: String,
    /// Message language ("en", "nl").
    pub lang: String,
    /// Where the session stands.
    pub stage: Stage,
    /// A new authenticator seed (base32) shown but not confirmed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll: Option<String>,
    /// A code sent to a new phone number, not confirmed yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<SentCode>,
    /// A one-shot notice (message id) shown on the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Until when (unix seconds) the user may change their second factor:
    /// set when they confirmed the current one in this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_until: Option<u64>,
    /// A code sent to the current phone to confirm the current second
    /// factor, not typed back yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_sms: Option<SentCode>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("exp", &self.exp)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.csrf.zeroize();
        if let Some(s) = &mut self.enroll {
            s.zeroize();
        }
    }
}

impl Session {
    /// A fresh anonymous session with a new CSRF token.
    pub(crate) fn anonymous(now: u64, lang: &str) -> Session {
        Session {
            exp: now + 30 * 60,
            csrf: new_token(),
            lang: lang.to_string(),
            stage: Stage::Anonymous,
            enroll: None,
            phone: None,
            notice: None,
            confirmed_until: None,
            confirm_sms: None,
        }
    }

    /// The signed-in user, if any.
    pub(crate) fn signed_in(&self) -> Option<&str> {
        match &self.stage {
            Stage::SignedIn { user } => Some(user),
            _ => None,
        }
    }

    /// Whether `given` is this session's CSRF token (constant time).
    pub(crate) fn csrf_ok(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        !self.csrf.is_empty()
            && self.csrf.len() == given.len()
            && bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// 128 random bits, hex.
pub(crate) fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b[..]);
    let s = b.iter().map(|x| format!("{x:02x}")).collect();
    b.zeroize();
    s
}

/// The portal's cookie keys, derived from the cluster key.
pub struct CookieKeys {
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKeys(***)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl CookieKeys {
    /// HKDF-SHA-256 (RFC 5869) with a fixed salt: one extract, then one
    /// expand block per key, each with its own `info`.
    pub fn derive(cluster_key: &[u8]) -> CookieKeys {
        let prk = Zeroizing::new(hmac(b"radmfa portal hkdf salt v1", &[cluster_key]));
        CookieKeys {
            enc: Zeroizing::new(hmac(&prk[..], &[b"radmfa portal cookie enc", &[1]])),
            mac: Zeroizing::new(hmac(&prk[..], &[b"radmfa portal cookie mac", &[1]])),
        }
    }

    /// Seals a session into a cookie value.
    pub(crate) fn seal(&self, s: &Session) -> String {
        let plain = Zeroizing::new(serde_json::to_vec(s).unwrap_or_default());
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.enc[..]));
        // Encryption with a valid key and nonce length cannot fail.
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len() + MAC_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        let mac = hmac(&self.mac[..], &[&out]);
        out.extend_from_slice(&mac);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a cookie value: `None` when it is malformed, forged, from
    /// another cluster or expired at `now`.
    pub(crate) fn open(&self, value: &str, now: u64) -> Option<Session> {
        if value.len() > MAX_COOKIE_LEN {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        if raw.len() < 1 + NONCE_LEN + 16 + MAC_LEN || raw[0] != VERSION {
            return None;
        }
        let (body, mac) = raw.split_at(raw.len() - MAC_LEN);
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.mac[..]).ok()?;
        m.update(body);
        m.verify_slice(mac).ok()?; // constant time
        let (nonce, ct) = body[1..].split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.enc[..]));
        let plain = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
                .ok()?,
        );
        let s: Session = serde_json::from_slice(&plain).ok()?;
        (s.exp > now).then_some(s)
    }
}

/// The session cookie's value in a `Cookie` request header, if present.
pub(crate) fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE_NAME).then_some(v)
    })
}

/// `Set-Cookie` for a session; the browser keeps it until the session ends.
pub(crate) fn set_cookie(value: &str, max_age: u64) -> String {
    format!("{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that deletes the session cookie.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(now: u64) -> Session {
        let mut s = Session::anonymous(now, "en");
        s.stage = Stage::SignedIn {
            user: "alice".into(),
        };
        s.enroll = Some("JBSWY3DPEHPK3PXP".into());
        s
    }

    #[test]
    fn round_trip_and_expiry() {
        let keys = CookieKeys::derive(b"0123456789abcdef0123456789abcdef");
        let s = signed_in(1000);
        let c = keys.seal(&s);
        assert!(!c.contains("alice") && !c.contains("JBSWY3DP"), "encrypted");
        let back = keys.open(&c, 1001).expect("opens");
        assert_eq!(back.signed_in(), Some("alice"));
        assert_eq!(back.enroll.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert!(back.csrf_ok(&s.csrf));
        assert!(!back.csrf_ok(""));
        assert!(!back.csrf_ok(&new_token()));
        assert!(keys.open(&c, s.exp).is_none(), "expired");
    }

    #[test]
    fn other_key_tampering_and_garbage_are_refused() {
        let keys = CookieKeys::derive(b"0123456789abcdef0123456789abcdef");
        let other = CookieKeys::derive(b"fedcba9876543210fedcba9876543210");
        let c = keys.seal(&signed_in(1000));
        assert!(other.open(&c, 1001).is_none());
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&c)
            .unwrap();
        for i in [0, 5, 20, raw.len() - 1] {
            raw[i] ^= 1;
            let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            assert!(keys.open(&t, 1001).is_none(), "flipped byte {i}");
            raw[i] ^= 1;
        }
        for junk in ["", "x", "%%%", &"A".repeat(5000), &c[..c.len() / 2]] {
            assert!(keys.open(junk, 1001).is_none());
        }
    }

    #[test]
    fn cookie_header_parsing() {
        let h = format!("a=b; {COOKIE_NAME}=xyz; c=d");
        assert_eq!(cookie_value(&h), Some("xyz"));
        assert_eq!(cookie_value("a=b"), None);
        assert!(set_cookie("v", 60).contains("Secure; HttpOnly; SameSite=Strict"));
    }
}
