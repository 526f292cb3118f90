//! HOTP (RFC 4226) and TOTP (RFC 6238).

use std::fmt;
use std::str::FromStr;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::OtpError;

/// Largest accepted [`Totp::window`] (steps on each side of the current one).
pub const MAX_TOTP_WINDOW: u64 = 10;
/// Largest accepted [`Hotp::look_ahead`].
pub const MAX_HOTP_LOOK_AHEAD: u64 = 1000;
/// Largest accepted search range for [`Hotp::resync`].
pub const MAX_HOTP_RESYNC: u64 = 10_000;
/// Code lengths accepted by [`Totp::verify`] and [`Hotp::verify`].
pub const DIGITS_RANGE: std::ops::RangeInclusive<u8> = 6..=8;

/// The HMAC hash function of an HOTP/TOTP token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (the RFC 4226 default, and what most apps expect).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in otpauth URIs: `"SHA1"`, `"SHA256"` or `"SHA512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses an algorithm name, case-insensitively; `"sha1"`, `"SHA-1"` and
    /// `"SHA_1"` are all accepted.
    pub fn parse(s: &str) -> Result<Algorithm, OtpError> {
        let t = s.trim();
        let norm: String = t.chars().filter(|c| *c != '-' && *c != '_').collect();
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            if norm.eq_ignore_ascii_case(alg.as_str()) {
                return Ok(alg);
            }
        }
        // Keep the echoed name short: it may come from an untrusted file.
        Err(OtpError::BadAlgorithm(s.chars().take(32).collect()))
    }

    /// The recommended seed length in bytes (the hash output size, as in RFC 6238
    /// Appendix B): 20, 32 or 64.
    pub fn recommended_secret_len(&self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = OtpError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// RFC 4226 §5.3 dynamic truncation of an HMAC value into a 31-bit integer.
fn dynamic_truncation(hs: &[u8]) -> u32 {
    // Every supported digest is at least 20 bytes and the offset is at most 15,
    // so `offset + 4 <= 19` is always inside `hs`.
    let offset = usize::from(hs.last().copied().unwrap_or(0) & 0x0f);
    match hs.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

fn mac_truncated<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> u32 {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    dynamic_truncation(&mac.finalize().into_bytes())
}

/// The HOTP value as an integer, reduced modulo 10^digits.
fn hotp_value(secret: &[u8], counter: u64, digits: u8, algorithm: Algorithm) -> u64 {
    let msg = counter.to_be_bytes();
    let bin = u64::from(match algorithm {
        Algorithm::Sha1 => mac_truncated::<Hmac<Sha1>>(secret, &msg),
        Algorithm::Sha256 => mac_truncated::<Hmac<Sha256>>(secret, &msg),
        Algorithm::Sha512 => mac_truncated::<Hmac<Sha512>>(secret, &msg),
    });
    match 10u64.checked_pow(u32::from(digits)) {
        Some(modulus) => bin % modulus,
        None => bin,
    }
}

/// RFC 4226 HOTP value, zero-padded to `digits`.
///
/// 6, 7 and 8 digits are the supported lengths (and the only ones `verify`
/// accepts); other values are computed the same way (value mod 10^digits,
/// zero-padded) without panicking.
pub fn hotp(secret: &[u8], counter: u64, digits: u8, algorithm: Algorithm) -> String {
    let v = hotp_value(secret, counter, digits, algorithm);
    format!("{v:0width$}", width = usize::from(digits))
}

/// Parses a user-supplied code: exactly `digits` ASCII digits, else `Malformed`.
fn parse_code(code: &str, digits: u8) -> Result<u64, OtpError> {
    let bytes = code.as_bytes();
    if bytes.len() != usize::from(digits) || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(OtpError::Malformed);
    }
    Ok(bytes
        .iter()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')))
}

fn check_digits(digits: u8) -> Result<(), OtpError> {
    if DIGITS_RANGE.contains(&digits) {
        Ok(())
    } else {
        Err(OtpError::InvalidParameter("digits must be 6, 7 or 8"))
    }
}

/// TOTP parameters (RFC 6238).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totp {
    /// HMAC hash function.
    pub algorithm: Algorithm,
    /// Code length (6, 7 or 8).
    pub digits: u8,
    /// Time step X in seconds (must be > 0).
    pub period: u64,
    /// Unix time T0 at which step 0 begins.
    pub t0: u64,
    /// Steps accepted on each side of the current one (clock drift), at most [`MAX_TOTP_WINDOW`].
    pub window: u64,
}

impl Default for Totp {
    /// SHA1, 6 digits, 30 s period, T0 = 0, window 1 (one step back and forward).
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            t0: 0,
            window: 1,
        }
    }
}

impl Totp {
    /// Checks the parameters; [`Totp::verify`] calls this first.
    pub fn validate(&self) -> Result<(), OtpError> {
        check_digits(self.digits)?;
        if self.period == 0 {
            return Err(OtpError::InvalidParameter("TOTP period must be > 0"));
        }
        if self.window > MAX_TOTP_WINDOW {
            return Err(OtpError::InvalidParameter("TOTP window too large"));
        }
        Ok(())
    }

    /// The time step `floor((unix_time - t0) / period)`; 0 before `t0`.
    /// A period of 0 (invalid) is treated as 1 rather than dividing by zero.
    pub fn step(&self, unix_time: u64) -> u64 {
        unix_time.saturating_sub(self.t0) / self.period.max(1)
    }

    /// The code for the step containing `unix_time`.
    pub fn generate(&self, secret: &[u8], unix_time: u64) -> String {
        hotp(secret, self.step(unix_time), self.digits, self.algorithm)
    }

    /// Accepts a code matching any step in `[step(now)-window, step(now)+window]`
    /// that is strictly greater than `last_used_step` (each step is accepted
    /// once). All candidate steps are computed and compared in constant time.
    /// Returns the matched step, which the caller stores as the new
    /// `last_used_step`. If the code matches only steps `<= last_used_step`,
    /// the error is [`OtpError::Replayed`].
    pub fn verify(
        &self,
        secret: &[u8],
        code: &str,
        unix_time: u64,
        last_used_step: Option<u64>,
    ) -> Result<u64, OtpError> {
        self.validate()?;
        let given = parse_code(code, self.digits)?;
        let current = self.step(unix_time);
        let lo = current.saturating_sub(self.window);
        let hi = current.saturating_add(self.window);

        // Lowest fresh matching step, and highest replayed matching step.
        let mut fresh_found = Choice::from(0);
        let mut fresh_step = 0u64;
        let mut replay_found = Choice::from(0);
        let mut replay_step = 0u64;
        for s in lo..=hi {
            let expected = hotp_value(secret, s, self.digits, self.algorithm);
            let matches = expected.ct_eq(&given);
            let fresh = Choice::from(u8::from(last_used_step.is_none_or(|l| s > l)));
            let take_fresh = matches & fresh & !fresh_found;
            fresh_step.conditional_assign(&s, take_fresh);
            fresh_found |= take_fresh;
            let replayed = matches & !fresh;
            replay_step.conditional_assign(&s, replayed);
            replay_found |= replayed;
        }
        if bool::from(fresh_found) {
            Ok(fresh_step)
        } else if bool::from(replay_found) {
            Err(OtpError::Replayed { step: replay_step })
        } else {
            Err(OtpError::Mismatch)
        }
    }
}

/// HOTP verification parameters (RFC 4226).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hotp {
    /// HMAC hash function.
    pub algorithm: Algorithm,
    /// Code length (6, 7 or 8).
    pub digits: u8,
    /// Counters accepted beyond the next expected one (RFC 4226 §7.4), at most [`MAX_HOTP_LOOK_AHEAD`].
    pub look_ahead: u64,
}

impl Default for Hotp {
    /// SHA1, 6 digits, look-ahead 10.
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: 6,
            look_ahead: 10,
        }
    }
}

impl Hotp {
    /// Checks the parameters; [`Hotp::verify`] calls this first.
    pub fn validate(&self) -> Result<(), OtpError> {
        check_digits(self.digits)?;
        if self.look_ahead > MAX_HOTP_LOOK_AHEAD {
            return Err(OtpError::InvalidParameter("HOTP look-ahead too large"));
        }
        Ok(())
    }

    /// The code for `counter`.
    pub fn generate(&self, secret: &[u8], counter: u64) -> String {
        hotp(secret, counter, self.digits, self.algorithm)
    }

    /// Accepts a code for a counter in `[next_counter, next_counter+look_ahead]`
    /// and returns the lowest matching counter; the caller stores `matched + 1`
    /// as the next counter. All candidates are compared in constant time.
    pub fn verify(&self, secret: &[u8], code: &str, next_counter: u64) -> Result<u64, OtpError> {
        self.validate()?;
        let given = parse_code(code, self.digits)?;
        let hi = next_counter.saturating_add(self.look_ahead);
        let mut found = Choice::from(0);
        let mut matched = 0u64;
        for c in next_counter..=hi {
            let expected = hotp_value(secret, c, self.digits, self.algorithm);
            let take = expected.ct_eq(&given) & !found;
            matched.conditional_assign(&c, take);
            found |= take;
        }
        if bool::from(found) {
            Ok(matched)
        } else {
            Err(OtpError::Mismatch)
        }
    }

    /// Resynchronises a token that drifted beyond the look-ahead (RFC 4226 §7.4):
    /// finds the lowest counter `c` in `[next_counter, next_counter+search]` such
    /// that `first` is the code for `c` and `second` the code for `c + 1`, and
    /// returns `c + 1` (the caller stores `c + 2` as the next counter).
    /// `search` is at most [`MAX_HOTP_RESYNC`].
    pub fn resync(
        &self,
        secret: &[u8],
        first: &str,
        second: &str,
        next_counter: u64,
        search: u64,
    ) -> Result<u64, OtpError> {
        check_digits(self.digits)?;
        if search > MAX_HOTP_RESYNC {
            return Err(OtpError::InvalidParameter("HOTP resync range too large"));
        }
        let a = parse_code(first, self.digits)?;
        let b = parse_code(second, self.digits)?;
        let hi = next_counter.saturating_add(search);
        if hi == u64::MAX {
            return Err(OtpError::InvalidParameter("HOTP counter exhausted"));
        }
        let mut found = Choice::from(0);
        let mut matched = 0u64;
        let mut prev = hotp_value(secret, next_counter, self.digits, self.algorithm);
        for c in next_counter..=hi {
            let next = hotp_value(secret, c + 1, self.digits, self.algorithm);
            let take = prev.ct_eq(&a) & next.ct_eq(&b) & !found;
            matched.conditional_assign(&(c + 1), take);
            found |= take;
            prev = next;
        }
        if bool::from(found) {
            Ok(matched)
        } else {
            Err(OtpError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in (0u64..).zip(expected) {
            assert_eq!(
                hotp(SEED20, counter, 6, Algorithm::Sha1),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc4226_truncated_values() {
        // Appendix D "Truncated" decimal column for counters 0 and 1.
        let msg0 = 0u64.to_be_bytes();
        let msg1 = 1u64.to_be_bytes();
        assert_eq!(mac_truncated::<Hmac<Sha1>>(SEED20, &msg0), 1_284_755_224);
        assert_eq!(mac_truncated::<Hmac<Sha1>>(SEED20, &msg1), 1_094_287_082);
    }

    #[test]
    fn rfc6238_appendix_b() {
        let cases: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in cases {
            for (alg, seed, want) in [
                (Algorithm::Sha1, SEED20, sha1),
                (Algorithm::Sha256, SEED32, sha256),
                (Algorithm::Sha512, SEED64, sha512),
            ] {
                let totp = Totp {
                    algorithm: alg,
                    digits: 8,
                    ..Totp::default()
                };
                assert_eq!(totp.generate(seed, t), want, "{alg} at {t}");
                assert_eq!(totp.verify(seed, want, t, None), Ok(totp.step(t)));
            }
        }
    }

    #[test]
    fn step_computation() {
        let t = Totp::default();
        assert_eq!(t.step(0), 0);
        assert_eq!(t.step(29), 0);
        assert_eq!(t.step(30), 1);
        assert_eq!(t.step(59), 1);
        let t = Totp {
            t0: 100,
            period: 60,
            ..Totp::default()
        };
        assert_eq!(t.step(50), 0);
        assert_eq!(t.step(160), 1);
        // An invalid period never divides by zero.
        let z = Totp {
            period: 0,
            ..Totp::default()
        };
        assert_eq!(z.step(7), 7);
        assert_eq!(
            z.verify(SEED20, "123456", 7, None),
            Err(OtpError::InvalidParameter("TOTP period must be > 0"))
        );
    }

    #[test]
    fn drift_window() {
        let totp = Totp::default();
        let now = 1_700_000_000;
        let cur = totp.step(now);
        let code_at = |s: u64| hotp(SEED20, s, 6, Algorithm::Sha1);
        assert_eq!(totp.verify(SEED20, &code_at(cur), now, None), Ok(cur));
        assert_eq!(
            totp.verify(SEED20, &code_at(cur - 1), now, None),
            Ok(cur - 1)
        );
        assert_eq!(
            totp.verify(SEED20, &code_at(cur + 1), now, None),
            Ok(cur + 1)
        );
        for s in [cur - 2, cur + 2] {
            let c = code_at(s);
            // Skip the (1e-6) chance that this code collides with an accepted step.
            if (cur - 1..=cur + 1).all(|k| code_at(k) != c) {
                assert_eq!(totp.verify(SEED20, &c, now, None), Err(OtpError::Mismatch));
            }
        }
        let strict = Totp {
            window: 0,
            ..Totp::default()
        };
        assert_eq!(strict.verify(SEED20, &code_at(cur), now, None), Ok(cur));
        assert_eq!(
            strict.verify(SEED20, &code_at(cur - 1), now, None),
            Err(OtpError::Mismatch)
        );
        assert_eq!(
            strict.verify(SEED20, &code_at(cur + 1), now, None),
            Err(OtpError::Mismatch)
        );
    }

    #[test]
    fn window_at_time_zero_does_not_underflow() {
        let totp = Totp {
            window: 3,
            ..Totp::default()
        };
        let code = totp.generate(SEED20, 0);
        assert_eq!(totp.verify(SEED20, &code, 0, None), Ok(0));
        let edge = Totp {
            period: 1,
            ..Totp::default()
        };
        let code = edge.generate(SEED20, u64::MAX);
        assert_eq!(edge.verify(SEED20, &code, u64::MAX, None), Ok(u64::MAX));
    }

    #[test]
    fn replay_protection() {
        let totp = Totp::default();
        let now = 1_700_000_000;
        let cur = totp.step(now);
        let code = totp.generate(SEED20, now);
        let used = totp.verify(SEED20, &code, now, None).unwrap();
        assert_eq!(used, cur);
        // Same step again.
        assert_eq!(
            totp.verify(SEED20, &code, now, Some(used)),
            Err(OtpError::Replayed { step: cur })
        );
        // An older step than the last used one.
        let older = hotp(SEED20, cur - 1, 6, Algorithm::Sha1);
        if older != code {
            assert_eq!(
                totp.verify(SEED20, &older, now, Some(used)),
                Err(OtpError::Replayed { step: cur - 1 })
            );
        }
        // A newer step is accepted.
        let newer = hotp(SEED20, cur + 1, 6, Algorithm::Sha1);
        assert_eq!(totp.verify(SEED20, &newer, now, Some(used)), Ok(cur + 1));
        // After the newer step, the current one is a replay too.
        assert_eq!(
            totp.verify(SEED20, &code, now, Some(cur + 1)),
            Err(OtpError::Replayed { step: cur })
        );
    }

    #[test]
    fn malformed_codes() {
        let totp = Totp::default();
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+12345",
            " 123456",
            "１２３４５６",
            "-12345",
        ] {
            assert_eq!(
                totp.verify(SEED20, bad, 59, None),
                Err(OtpError::Malformed),
                "{bad:?}"
            );
        }
        let hotp = Hotp::default();
        assert_eq!(hotp.verify(SEED20, "75522", 0), Err(OtpError::Malformed));
    }

    #[test]
    fn invalid_parameters() {
        for digits in [0u8, 5, 9, 10, 255] {
            let t = Totp {
                digits,
                ..Totp::default()
            };
            assert!(matches!(
                t.verify(SEED20, "123456", 59, None),
                Err(OtpError::InvalidParameter(_))
            ));
        }
        let t = Totp {
            window: MAX_TOTP_WINDOW + 1,
            ..Totp::default()
        };
        assert!(matches!(t.validate(), Err(OtpError::InvalidParameter(_))));
        let h = Hotp {
            look_ahead: MAX_HOTP_LOOK_AHEAD + 1,
            ..Hotp::default()
        };
        assert!(matches!(
            h.verify(SEED20, "755224", 0),
            Err(OtpError::InvalidParameter(_))
        ));
    }

    #[test]
    fn hotp_other_digit_counts_do_not_panic() {
        assert_eq!(hotp(SEED20, 0, 8, Algorithm::Sha1), "84755224");
        assert_eq!(hotp(SEED20, 0, 7, Algorithm::Sha1), "4755224");
        assert_eq!(hotp(SEED20, 0, 10, Algorithm::Sha1), "1284755224");
        assert_eq!(hotp(SEED20, 0, 0, Algorithm::Sha1), "0");
        assert_eq!(hotp(SEED20, 0, 30, Algorithm::Sha1).len(), 30);
        assert_eq!(hotp(&[], 0, 6, Algorithm::Sha256).len(), 6);
    }

    #[test]
    fn hotp_look_ahead() {
        let h = Hotp::default();
        // The user pressed the button 5 times without logging in.
        assert_eq!(h.verify(SEED20, "254676", 0), Ok(5));
        // Next counter is now 6: older codes are refused.
        assert_eq!(h.verify(SEED20, "254676", 6), Err(OtpError::Mismatch));
        assert_eq!(h.verify(SEED20, "969429", 6), Err(OtpError::Mismatch));
        assert_eq!(h.verify(SEED20, "287922", 6), Ok(6));
        // Exactly at the look-ahead edge is accepted, one beyond is not.
        let h0 = Hotp {
            look_ahead: 0,
            ..Hotp::default()
        };
        assert_eq!(h0.verify(SEED20, "755224", 0), Ok(0));
        assert_eq!(h0.verify(SEED20, "287082", 0), Err(OtpError::Mismatch));
        let h9 = Hotp {
            look_ahead: 9,
            ..Hotp::default()
        };
        assert_eq!(h9.verify(SEED20, "520489", 0), Ok(9));
        let h8 = Hotp {
            look_ahead: 8,
            ..Hotp::default()
        };
        assert_eq!(h8.verify(SEED20, "520489", 0), Err(OtpError::Mismatch));
        // Counter near the top does not overflow.
        let top = hotp(SEED20, u64::MAX, 6, Algorithm::Sha1);
        assert_eq!(h.verify(SEED20, &top, u64::MAX - 2), Ok(u64::MAX));
    }

    #[test]
    fn hotp_resync() {
        let h = Hotp::default();
        let secret = b"resync secret 123456";
        let far = 500u64;
        let c1 = h.generate(secret, far);
        let c2 = h.generate(secret, far + 1);
        // Too far for the normal look-ahead (unless it collides with counters 0..=10).
        if (0..=10).all(|c| h.generate(secret, c) != c1) {
            assert_eq!(h.verify(secret, &c1, 0), Err(OtpError::Mismatch));
        }
        assert_eq!(h.resync(secret, &c1, &c2, 0, 1000), Ok(far + 1));
        // The pair must be consecutive and in order.
        assert_eq!(h.resync(secret, &c2, &c1, 0, 1000), Err(OtpError::Mismatch));
        // Outside the search range.
        assert_eq!(h.resync(secret, &c1, &c2, 0, 100), Err(OtpError::Mismatch));
        assert!(matches!(
            h.resync(secret, &c1, &c2, 0, MAX_HOTP_RESYNC + 1),
            Err(OtpError::InvalidParameter(_))
        ));
        // After resync (next = far + 2) the normal look-ahead works again.
        let c3 = h.generate(secret, far + 3);
        assert_eq!(h.verify(secret, &c3, far + 2), Ok(far + 3));
    }

    #[test]
    fn algorithm_names() {
        for (s, a) in [
            ("sha1", Algorithm::Sha1),
            ("SHA-1", Algorithm::Sha1),
            ("SHA1", Algorithm::Sha1),
            ("sha-256", Algorithm::Sha256),
            ("SHA256", Algorithm::Sha256),
            ("Sha512", Algorithm::Sha512),
            ("SHA_512", Algorithm::Sha512),
        ] {
            assert_eq!(Algorithm::parse(s), Ok(a), "{s}");
        }
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::parse(a.as_str()), Ok(a));
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(
            Algorithm::parse("md5"),
            Err(OtpError::BadAlgorithm("md5".to_owned()))
        );
        assert!(Algorithm::parse("SHA-").is_err());
        assert!(Algorithm::parse("").is_err());
        let long = "x".repeat(1000);
        assert_eq!(
            Algorithm::parse(&long),
            Err(OtpError::BadAlgorithm("x".repeat(32)))
        );
    }
}
