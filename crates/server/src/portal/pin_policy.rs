//! The PIN policy: what PIN a user may choose (`[portal] pin_min_length`
//! to 10 digits, and not one an attacker tries first). A leaf of its own
//! because three places apply it: the portal's PIN page, the forced PIN
//! change over RADIUS (`pipeline/pinchange.rs`) and the initial PIN
//! generated for the enrollment mail (`admin/enroll.rs`).

use crate::config::RuntimeConfig;

/// The shortest PIN allowed: `[portal] pin_min_length`, 4 without a portal.
pub(crate) fn pin_min_length(cfg: &RuntimeConfig) -> usize {
    cfg.portal.as_ref().map_or(4, |p| p.pin_min_length)
}

/// Why a PIN is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinProblem {
    /// Not only digits, or too short or long.
    Format,
    /// Every digit the same ("1111").
    Repeated,
    /// An ascending or descending run ("1234", "9876").
    Sequence,
    /// The end of the user's phone number.
    PhoneDigits,
    /// The two entries differ.
    Mismatch,
    /// The same as the current PIN.
    Unchanged,
}

/// Checks a new PIN against the policy. `phone` is the user's number (its
/// digits are compared), `current` the PIN being replaced.
pub(crate) fn check_pin(
    pin: &str,
    again: &str,
    min_len: usize,
    phone: &str,
    current: Option<&[u8]>,
) -> Result<(), PinProblem> {
    let b = pin.as_bytes();
    if !(min_len.max(4)..=10).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return Err(PinProblem::Format);
    }
    if b.iter().all(|d| *d == b[0]) {
        return Err(PinProblem::Repeated);
    }
    let run = |step: i16| {
        b.windows(2)
            .all(|w| i16::from(w[1]) - i16::from(w[0]) == step)
    };
    if run(1) || run(-1) {
        return Err(PinProblem::Sequence);
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() && digits.ends_with(pin) {
        return Err(PinProblem::PhoneDigits);
    }
    if !ct_eq(pin.as_bytes(), again.as_bytes()) {
        return Err(PinProblem::Mismatch);
    }
    if current.is_some_and(|c| ct_eq(c, pin.as_bytes())) {
        return Err(PinProblem::Unchanged);
    }
    Ok(())
}

/// Constant-time equality of two byte strings (lengths may differ).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A random initial PIN the policy accepts for a user with `phone`:
/// `min_len` digits but at least 6 (it travels by mail, and is changed at
/// the first sign-in), drawn from the OS CSPRNG until one passes
/// [`check_pin`].
pub(crate) fn generate_pin(min_len: usize, phone: &str) -> zeroize::Zeroizing<String> {
    let len = min_len.clamp(6, 10);
    loop {
        let pin = zeroize::Zeroizing::new(radmfa_otp::random_code(len, "0123456789"));
        if check_pin(&pin, &pin, min_len, phone, None).is_ok() {
            return pin;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pin: &str) -> Result<(), PinProblem> {
        check_pin(pin, pin, 4, "+31612345678", Some(b"2468"))
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"1234", b"1234"));
        assert!(!ct_eq(b"1234", b"1235"));
        assert!(!ct_eq(b"1234", b"12345"));
    }

    #[test]
    fn trivial_pins_are_refused() {
        assert_eq!(check("123"), Err(PinProblem::Format));
        assert_eq!(check("12345678901"), Err(PinProblem::Format));
        assert_eq!(check("12a4"), Err(PinProblem::Format));
        assert_eq!(check(""), Err(PinProblem::Format));
        assert_eq!(check("0000"), Err(PinProblem::Repeated));
        assert_eq!(check("9999999"), Err(PinProblem::Repeated));
        assert_eq!(check("1234"), Err(PinProblem::Sequence));
        assert_eq!(check("0123456789"), Err(PinProblem::Sequence));
        assert_eq!(check("9876"), Err(PinProblem::Sequence));
        assert_eq!(check("5678"), Err(PinProblem::Sequence));
        assert_eq!(check("5679"), Ok(()));
        assert_eq!(check("45678"), Err(PinProblem::Sequence));
        assert_eq!(check("2345678"), Err(PinProblem::Sequence));
        assert_eq!(check("12345678"), Err(PinProblem::Sequence));
        assert_eq!(check("2468"), Err(PinProblem::Unchanged));
        assert_eq!(
            check_pin("4711", "4712", 4, "", None),
            Err(PinProblem::Mismatch)
        );
    }

    #[test]
    fn phone_suffix_and_minimum_length() {
        assert_eq!(
            check_pin("5670", "5670", 4, "+31 6 1234 5670", None),
            Err(PinProblem::PhoneDigits)
        );
        assert_eq!(
            check_pin("4711", "4711", 6, "", None),
            Err(PinProblem::Format)
        );
        assert_eq!(check_pin("471108", "471108", 6, "", None), Ok(()));
    }

    #[test]
    fn generated_pins_pass_the_policy() {
        for (min, phone) in [(4, ""), (6, "+31612345678"), (8, ""), (10, "+4930123456")] {
            for _ in 0..200 {
                let pin = generate_pin(min, phone);
                assert_eq!(pin.len(), min.max(6));
                assert_eq!(check_pin(&pin, &pin, min, phone, None), Ok(()), "{}", *pin);
            }
        }
    }

    #[test]
    fn good_pins_pass() {
        for pin in ["4711", "1357", "8020", "1243", "90210", "3141592653"] {
            assert_eq!(check(pin), Ok(()), "{pin}");
        }
    }
}
