//! One-time codes and PINs: verifying a TOTP/HOTP code (its step or counter
//! consumed once, cluster-wide) and cutting a User-Password into password,
//! PIN and code. Shared by every path that checks a code (inline,
//! challenge answer, code-only policy, the portal).

use radmfa_otp::{Hotp, OtpError, Totp};
use radmfa_store::{Token, TokenAlgorithm, TokenKind, User};
use tracing::warn;

use super::decision::*;
use super::node::Node;

impl Node {
    /// The user's PIN in PIN mode (`Ok(None)` in standard mode); a PIN that
    /// does not decrypt is a store problem, answered with a Reject.
    pub(super) fn pin_of(
        &self,
        user: &User,
        mode: Mode,
    ) -> Result<Option<radmfa_store::Secret>, Box<Decision>> {
        self.store.open_pin(user).map_err(|e| {
            warn!(error = %e, "cannot open the user's PIN");
            Box::new(Decision::reject(
                &user.name,
                mode,
                Reason::PinUnreadable,
                MSG_TRY_AGAIN,
            ))
        })
    }

    /// Verifies a one-time code and consumes its step/counter.
    pub(super) fn check_code(
        &self,
        user: &User,
        token: &Token,
        code: &str,
        mode: Mode,
    ) -> Decision {
        let name = user.name.as_str();
        let last = match self.hot.otp_state(&self.store, name) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "otp state read failed");
                return Decision::reject(name, mode, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        let algorithm = match token.algorithm {
            TokenAlgorithm::Sha1 => radmfa_otp::Algorithm::Sha1,
            TokenAlgorithm::Sha256 => radmfa_otp::Algorithm::Sha256,
            TokenAlgorithm::Sha512 => radmfa_otp::Algorithm::Sha512,
        };
        let secret = token.secret.expose();
        let verdict = match token.kind {
            TokenKind::Totp => Totp {
                algorithm,
                digits: token.digits,
                period: token.period.max(1),
                t0: 0,
                window: self.cfg().otp_window,
            }
            .verify(secret, code, self.clock.now_unix(), last),
            TokenKind::Hotp => Hotp {
                algorithm,
                digits: token.digits,
                look_ahead: self.cfg().hotp_look_ahead,
            }
            .verify(secret, code, last.map_or(0, |c| c.saturating_add(1))),
        };
        match verdict {
            Ok(used) => match self.hot.advance_otp(&self.store, name, used) {
                Ok(true) => Decision::accept(user, mode, Reason::Ok),
                Ok(false) => Decision::reject(name, mode, Reason::OtpReplayed, MSG_REUSED_CODE),
                Err(e) => {
                    warn!(error = %e, "otp state write failed");
                    Decision::reject(name, mode, Reason::StoreError, MSG_TRY_AGAIN)
                }
            },
            Err(OtpError::Replayed { .. }) => {
                Decision::reject(name, mode, Reason::OtpReplayed, MSG_REUSED_CODE)
            }
            Err(OtpError::Malformed) => {
                Decision::reject(name, mode, Reason::OtpMalformed, MSG_WRONG_CODE)
            }
            Err(_) => Decision::reject(name, mode, Reason::OtpMismatch, MSG_WRONG_CODE),
        }
    }
}

/// The second factor a token is.
pub(super) fn token_factor(token: &Token) -> SecondFactor {
    match token.kind {
        TokenKind::Totp => SecondFactor::Totp,
        TokenKind::Hotp => SecondFactor::Hotp,
    }
}

/// PIN mode: the PIN typed in front of the code. Returns what follows the
/// PIN, or `None` when the input does not start with it (constant time in
/// the PIN's bytes).
pub(super) fn strip_pin<'a>(pin: &[u8], given: &'a [u8]) -> Option<&'a [u8]> {
    let (head, rest) = given.split_at_checked(pin.len())?;
    bool::from(subtle::ConstantTimeEq::ct_eq(head, pin)).then_some(rest)
}

/// Inline PIN mode: `password` + PIN (+ code, already split off). Returns the
/// password part and whether the PIN part matches.
pub(super) fn split_pin_suffix<'a>(pin: &[u8], pw_pin: &'a [u8]) -> Option<(&'a [u8], bool)> {
    let cut = pw_pin.len().checked_sub(pin.len()).filter(|c| *c > 0)?;
    let (pw, given) = pw_pin.split_at_checked(cut)?;
    Some((pw, bool::from(subtle::ConstantTimeEq::ct_eq(given, pin))))
}

/// Splits "password123456" into ("password", "123456") when the last
/// `digits` characters are ASCII digits and something precedes them.
pub(super) fn split_code(password: &[u8], digits: usize) -> Option<(&[u8], &str)> {
    let cut = password.len().checked_sub(digits).filter(|c| *c > 0)?;
    let (pw, code) = password.split_at_checked(cut)?;
    if code.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(code).ok().map(|c| (pw, c))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_code_forms() {
        assert_eq!(
            split_code(b"secret123456", 6),
            Some((&b"secret"[..], "123456"))
        );
        assert_eq!(split_code(b"123456", 6), None, "nothing before the code");
        assert_eq!(split_code(b"secret12345x", 6), None);
        assert_eq!(split_code(b"pw", 6), None);
        assert_eq!(split_code(b"p12345678", 8), Some((&b"p"[..], "12345678")));
    }
}
