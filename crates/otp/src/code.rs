//! One-time codes sent by SMS or voice.

use subtle::ConstantTimeEq;

/// The alphabet [`random_code`] falls back to when given an empty one.
pub const DIGITS: &str = "0123456789";

/// Buffered reader of OS randomness, so a code costs one system call.
struct RandomWords {
    buf: [u8; 64],
    pos: usize,
}

impl RandomWords {
    fn new() -> Self {
        Self {
            buf: [0; 64],
            pos: 64,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos + 4 > self.buf.len() {
            crate::rng::fill(&mut self.buf);
            self.pos = 0;
        }
        let mut w = [0u8; 4];
        if let Some(src) = self.buf.get(self.pos..self.pos + 4) {
            w.copy_from_slice(src);
        }
        self.pos += 4;
        u32::from_le_bytes(w)
    }
}

impl Drop for RandomWords {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

/// A code of `length` characters drawn uniformly and independently from the
/// distinct characters of `alphabet`, from the OS CSPRNG with rejection
/// sampling (no modulo bias). Repeated characters in `alphabet` count once; an
/// empty `alphabet` means [`DIGITS`]. `length == 0` gives an empty string:
/// callers must validate the configured length.
///
/// Compare a received code with [`codes_match`].
///
/// # Panics
/// If the operating system's random number generator fails.
pub fn random_code(length: usize, alphabet: &str) -> String {
    let mut symbols: Vec<char> = Vec::new();
    for c in alphabet.chars() {
        if !symbols.contains(&c) {
            symbols.push(c);
        }
    }
    if symbols.is_empty() {
        symbols = DIGITS.chars().collect();
    }
    // A `&str` cannot hold more than u32::MAX distinct chars (there are fewer than 2^21).
    let n = u32::try_from(symbols.len()).unwrap_or(u32::MAX);
    // Largest multiple of n that fits: values at or above it are rejected.
    let limit = u32::MAX - (u32::MAX % n);
    let mut rng = RandomWords::new();
    let mut out = String::with_capacity(length);
    let mut produced = 0usize;
    while produced < length {
        let x = rng.next_u32();
        if x >= limit {
            continue;
        }
        let idx = usize::try_from(x % n).unwrap_or(0);
        if let Some(&c) = symbols.get(idx) {
            out.push(c);
            produced += 1;
        }
    }
    out
}

/// Compares an expected code with what the user typed, in constant time with
/// respect to the contents (the lengths are not secret).
pub fn codes_match(expected: &str, given: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_alphabet() {
        for len in [0usize, 1, 6, 8, 100] {
            let c = random_code(len, "0123456789");
            assert_eq!(c.len(), len);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        let c = random_code(50, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789");
        assert_eq!(c.len(), 50);
        assert!(c
            .chars()
            .all(|ch| "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(ch)));
        let c = random_code(10, "äö€");
        assert_eq!(c.chars().count(), 10);
        assert!(c.chars().all(|ch| "äö€".contains(ch)));
        assert_eq!(random_code(12, "x"), "x".repeat(12));
        let c = random_code(6, "");
        assert_eq!(c.len(), 6);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn codes_differ() {
        let a = random_code(16, DIGITS);
        let b = random_code(16, DIGITS);
        assert_ne!(a, b);
    }

    /// Chi-square test over 10 digits: 60,000 draws, 9 degrees of freedom.
    /// The 99.99th percentile of chi2(9) is about 33.7; a biased generator
    /// (e.g. `byte % 10` from raw bytes gives +20% on 0..5) scores far above.
    #[test]
    fn roughly_uniform() {
        let mut counts = [0u64; 10];
        for _ in 0..1000 {
            for b in random_code(60, DIGITS).bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        assert_eq!(total, 60_000);
        let expected = total as f64 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| {
                let d = c as f64 - expected;
                d * d / expected
            })
            .sum();
        assert!(chi2 < 33.7, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn duplicates_in_alphabet_do_not_bias() {
        // "aab" must give a and b with equal probability.
        let s = random_code(20_000, "aab");
        let a = s.bytes().filter(|&b| b == b'a').count();
        // Binomial(20000, 0.5): sd ~ 71; 6 sd = 424.
        assert!((9_576..=10_424).contains(&a), "a = {a}");
    }

    #[test]
    fn compare() {
        assert!(codes_match("123456", "123456"));
        assert!(!codes_match("123456", "123457"));
        assert!(!codes_match("123456", "12345"));
        assert!(!codes_match("123456", ""));
    }
}
