//! Token seeds: generation, base32 (RFC 4648) and otpauth URIs (Google Authenticator Key Uri Format).

use std::fmt;
use std::fmt::Write as _;

use zeroize::Zeroizing;

use crate::{Algorithm, OtpError};

/// A new random seed of `len` bytes from the OS CSPRNG.
///
/// Use 20 bytes for SHA1, 32 for SHA256, 64 for SHA512
/// ([`Algorithm::recommended_secret_len`]).
///
/// # Panics
/// If the operating system's random number generator fails.
pub fn generate_secret(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    crate::rng::fill(&mut v);
    v
}

/// RFC 4648 base32, uppercase, without `=` padding.
pub fn base32_encode(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Decodes RFC 4648 base32 as people type and apps print it: case-insensitive,
/// spaces and `-` ignored, trailing `=` padding optional. Bits left over after
/// the last whole byte are dropped (some generators do not zero them).
/// Lengths that no byte string encodes to (1, 3 or 6 characters mod 8) and an
/// empty result are [`OtpError::BadSecret`].
pub fn base32_decode(s: &str) -> Result<Vec<u8>, OtpError> {
    let mut symbols: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(s.len()));
    let mut padding = false;
    for &b in s.as_bytes() {
        match b {
            b' ' | b'-' => {}
            b'=' => padding = true,
            _ if padding => return Err(OtpError::BadSecret),
            _ => symbols.push(base32_value(b).ok_or(OtpError::BadSecret)?),
        }
    }
    if matches!(symbols.len() % 8, 1 | 3 | 6) {
        return Err(OtpError::BadSecret);
    }
    let mut out = Vec::with_capacity(symbols.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &v in symbols.iter() {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation to the low byte is the point.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err(OtpError::BadSecret);
    }
    Ok(out)
}

/// Which kind of token an otpauth URI describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpKind {
    /// Time-based, with its period in seconds.
    Totp {
        /// Time step in seconds.
        period: u64,
    },
    /// Counter-based, with the initial counter.
    Hotp {
        /// Initial counter value.
        counter: u64,
    },
}

/// What goes into an otpauth URI.
pub struct OtpauthParams<'a> {
    /// Provider or service name; may be empty (then the label is the account alone).
    pub issuer: &'a str,
    /// Account name, usually the user name or e-mail address.
    pub account: &'a str,
    /// The raw seed.
    pub secret: &'a [u8],
    /// HMAC hash function.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u8,
    /// TOTP or HOTP, with its period or counter.
    pub kind: OtpKind,
}

impl fmt::Debug for OtpauthParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpauthParams")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret", &"***")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `@`
/// (which is legal in both the path and the query, and which the Key Uri
/// Format examples leave as is). `:` is always encoded, as it separates
/// issuer and account in the label.
fn percent_encode(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
/// (or `hotp` with `&counter=N`), as in Google Authenticator's Key Uri Format.
/// Label parts and issuer are percent-encoded; an empty issuer is left out of
/// both the label and the parameters. The result contains the secret.
pub fn otpauth_uri(p: &OtpauthParams) -> String {
    let mut u = String::with_capacity(128);
    u.push_str(match p.kind {
        OtpKind::Totp { .. } => "otpauth://totp/",
        OtpKind::Hotp { .. } => "otpauth://hotp/",
    });
    if !p.issuer.is_empty() {
        percent_encode(&mut u, p.issuer);
        u.push(':');
    }
    percent_encode(&mut u, p.account);
    u.push_str("?secret=");
    u.push_str(&base32_encode(p.secret));
    if !p.issuer.is_empty() {
        u.push_str("&issuer=");
        percent_encode(&mut u, p.issuer);
    }
    let _ = write!(u, "&algorithm={}&digits={}", p.algorithm.as_str(), p.digits);
    let _ = match p.kind {
        OtpKind::Totp { period } => write!(u, "&period={period}"),
        OtpKind::Hotp { counter } => write!(u, "&counter={counter}"),
    };
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_secret_length_and_randomness() {
        let a = generate_secret(20);
        let b = generate_secret(20);
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert_eq!(generate_secret(64).len(), 64);
        assert!(generate_secret(0).is_empty());
    }

    #[test]
    fn base32_rfc4648_vectors() {
        let cases = [
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("MZXW6YQ=").unwrap(), b"foob");
        assert_eq!(base32_decode("MY======").unwrap(), b"f");
    }

    #[test]
    fn base32_round_trip() {
        for len in 0..70 {
            let s = generate_secret(len);
            let e = base32_encode(&s);
            assert!(!e.contains('='));
            assert_eq!(e, e.to_ascii_uppercase());
            if len == 0 {
                assert_eq!(base32_decode(&e), Err(OtpError::BadSecret));
            } else {
                assert_eq!(base32_decode(&e).unwrap(), s);
                assert_eq!(base32_decode(&e.to_ascii_lowercase()).unwrap(), s);
                assert_eq!(data_encoding::BASE32_NOPAD.decode(e.as_bytes()).unwrap(), s);
            }
        }
    }

    #[test]
    fn base32_lenient_input() {
        let want = base32_decode("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(want, b"Hello!\xde\xad\xbe\xef");
        assert_eq!(base32_decode("jbsw y3dp ehpk 3pxp").unwrap(), want);
        assert_eq!(base32_decode("JBSW-Y3DP-EHPK-3PXP").unwrap(), want);
        // 26 symbols = 130 bits: the 2 extra bits are dropped even if non-zero.
        let s = base32_decode("AAAAAAAAAAAAAAAAAAAAAAAAAD").unwrap();
        assert_eq!(s, vec![0u8; 16]);
    }

    #[test]
    fn base32_rejects() {
        for bad in [
            "",
            "   ",
            "----",
            "=",
            "========",
            "A",
            "ABC",
            "ABCDEF",
            "JBSWY3DP1",
            "JBSW=Y3DP",
            "JBSWY3DÉ",
            "MY==A",
        ] {
            assert_eq!(base32_decode(bad), Err(OtpError::BadSecret), "{bad:?}");
        }
    }

    #[test]
    fn otpauth_google_example() {
        let secret = base32_decode("JBSWY3DPEHPK3PXP").unwrap();
        let uri = otpauth_uri(&OtpauthParams {
            issuer: "Example",
            account: "alice@google.com",
            secret: &secret,
            algorithm: Algorithm::Sha1,
            digits: 6,
            kind: OtpKind::Totp { period: 30 },
        });
        assert_eq!(
            uri,
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_encoding_and_hotp() {
        let uri = otpauth_uri(&OtpauthParams {
            issuer: "ACME Co: VPN",
            account: "john doe/ü&x=1",
            secret: b"12345678901234567890",
            algorithm: Algorithm::Sha256,
            digits: 8,
            kind: OtpKind::Hotp { counter: 7 },
        });
        assert_eq!(
            uri,
            "otpauth://hotp/ACME%20Co%3A%20VPN:john%20doe%2F%C3%BC%26x%3D1?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3A%20VPN&algorithm=SHA256&digits=8&counter=7"
        );
        let uri = otpauth_uri(&OtpauthParams {
            issuer: "",
            account: "bob",
            secret: b"\x00",
            algorithm: Algorithm::Sha512,
            digits: 6,
            kind: OtpKind::Totp { period: 60 },
        });
        assert_eq!(
            uri,
            "otpauth://totp/bob?secret=AA&algorithm=SHA512&digits=6&period=60"
        );
    }

    #[test]
    fn params_debug_hides_secret() {
        let p = OtpauthParams {
            issuer: "i",
            account: "a",
            secret: b"topsecretbytes",
            algorithm: Algorithm::Sha1,
            digits: 6,
            kind: OtpKind::Totp { period: 30 },
        };
        let d = format!("{p:?}");
        assert!(d.contains("***"));
        assert!(!d.contains("topsecret"));
        assert!(!d.contains("116"));
    }
}
