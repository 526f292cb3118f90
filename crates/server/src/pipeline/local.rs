//! First factor `local` (argon2id hash in the store) and `none` (the code
//! alone), with the second factor that follows: inline code, Access-
//! Challenge, or a gateway method. A rejected request costs a fixed number
//! of argon2 runs whoever the user is.

use radmfa_store::{Method, Token, User};
use tracing::warn;

use super::codes::{split_code, split_pin_suffix, strip_pin, token_factor};
use super::decision::*;
use super::login::Login;
use super::node::Node;
use super::password::{argon2_per_reject, ARGON2_RUNS, PASSWORD_PASSED};
use crate::config::{FirstFactor, OtpMode, Unenrolled};
use crate::i18n::Key;

impl Node {
    /// First factor `local` (or `none`), at a fixed argon2 cost: a
    /// rejected request costs exactly [`argon2_per_reject`] verifications
    /// whoever the user is (unknown, without a password hash, hashed with
    /// other parameters) and whatever the password's shape, padded with
    /// verifications of the decoy hash. What passes the first factor is not
    /// padded: only someone who knows the password gets there. The decision
    /// itself is [`Node::first_leg`]'s.
    pub(super) async fn local_first_leg(&self, login: &Login<'_>, password: &[u8]) -> Decision {
        let (decision, spent, passed) = ARGON2_RUNS
            .scope(
                std::cell::Cell::new(0),
                PASSWORD_PASSED.scope(std::cell::Cell::new(false), async {
                    let d = self.first_leg(login, password).await;
                    (
                        d,
                        ARGON2_RUNS.with(std::cell::Cell::get),
                        PASSWORD_PASSED.with(std::cell::Cell::get),
                    )
                }),
            )
            .await;
        // A reject after the password passed (a wrong or replayed code) is
        // not padded: its answer already says the password was right, and
        // padding it would cost every wrong code two argon2 runs.
        if decision.answer == Answer::Reject && !passed {
            for _ in spent..argon2_per_reject(login.policy) {
                self.verify_argon2(self.decoy_hash.clone(), password).await;
            }
        }
        decision
    }

    /// First factor `local` or `none` and what follows it: decides by the
    /// user's record (unknown, no password, disabled, bypass group, method)
    /// whether the password alone, a gateway method, or a one-time code
    /// ([`Node::code_only_leg`], [`Node::password_and_code_leg`]) settles it.
    pub(super) async fn first_leg(&self, login: &Login<'_>, password: &[u8]) -> Decision {
        let (name, policy) = (login.name, login.policy);
        let cached = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, Mode::Unknown, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        let first = match policy.first_factor {
            FirstFactor::Local | FirstFactor::Radius | FirstFactor::Ldap => First::Pap,
            FirstFactor::None => First::Otp,
        };
        let first_mode = Mode::first(first);
        let Some(cached) = cached else {
            // local_first_leg pads this to the cost of a wrong password.
            return Decision::reject(name, first_mode, Reason::UnknownUser, MSG_WRONG_CREDENTIALS);
        };
        let user = &cached.user;
        if policy.first_factor == FirstFactor::Local && user.password_hash.is_none() {
            // Same cost as a wrong password; the audit log says why.
            self.verify_argon2(self.decoy_hash.clone(), password).await;
            return Decision::reject(name, first_mode, Reason::NoPassword, MSG_WRONG_CREDENTIALS);
        }
        // Members of the policy's bypass groups (or outside its MFA groups)
        // sign in with the password alone.
        let bypass = !policy.needs_mfa(&user.groups) && policy.first_factor == FirstFactor::Local;
        let token = cached.token.as_ref().filter(|_| !bypass);
        let login = login.with_first(first, OnAccept::default());
        let needs_otp = match user.method {
            _ if bypass => false,
            Method::Totp | Method::Hotp => true,
            Method::None => false,
            Method::Sms => return self.sms_first_leg(&login, user, token, password).await,
            Method::SmsTwoWay | Method::Call | Method::Push => {
                return self.out_of_band(&login, user, token, password).await
            }
        };
        let token = match (needs_otp, token) {
            (true, Some(t)) => Some(t),
            (true, None) if policy.unenrolled == Unenrolled::Accept => None,
            (true, None) => {
                // Check the password first so this answer does not tell a
                // stranger which accounts exist.
                if policy.first_factor == FirstFactor::Local
                    && !self.verify_password(user, password).await
                {
                    return Decision::reject(
                        name,
                        first_mode,
                        Reason::WrongPassword,
                        MSG_WRONG_CREDENTIALS,
                    );
                }
                // A disabled account is refused as disabled, enrolled or not
                // (the audit reason tells the admin why).
                if !user.enabled {
                    return disabled(name, user, first_mode);
                }
                return Decision::reject(
                    name,
                    first_mode,
                    Reason::NotEnrolled,
                    Key::AppNotEnrolled,
                );
            }
            (false, _) => None,
        };

        let Some(token) = token else {
            // No second factor for this user.
            if policy.first_factor == FirstFactor::None {
                return Decision::reject(name, first_mode, Reason::NoFactor, Key::NoMethod);
            }
            if !self.verify_password(user, password).await {
                return Decision::reject(
                    name,
                    first_mode,
                    Reason::WrongPassword,
                    MSG_WRONG_CREDENTIALS,
                );
            }
            if !user.enabled {
                return disabled(name, user, first_mode);
            }
            let reason = if bypass {
                Reason::MfaNotRequiredForGroup
            } else if needs_otp {
                Reason::NotEnrolledAllowed
            } else {
                Reason::Ok
            };
            return Decision::accept(user, first_mode, reason);
        };
        if policy.first_factor == FirstFactor::None {
            self.code_only_leg(&login, user, token, password)
        } else {
            self.password_and_code_leg(&login, user, token, password)
                .await
        }
    }

    /// First factor `none`: decides on the User-Password as the code alone
    /// (PIN first in PIN mode), or asks for it with an Access-Challenge.
    fn code_only_leg(
        &self,
        login: &Login<'_>,
        user: &User,
        token: &Token,
        password: &[u8],
    ) -> Decision {
        let (name, policy) = (login.name, login.policy);
        let kind = token_factor(token);
        let digits = usize::from(token.digits);
        let mode = Mode::with(None, kind, None);
        let pin = match self.pin_of(user, mode) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let pin = pin.as_ref().map(|p| p.expose());
        let pin_len = pin.map_or(0, <[u8]>::len);
        if password.len() == pin_len + digits && password.iter().all(u8::is_ascii_digit) {
            if !user.enabled {
                return disabled(name, user, mode);
            }
            let code = match pin {
                Some(pin) => match strip_pin(pin, password) {
                    Some(code) => code,
                    None => return Decision::reject(name, mode, Reason::WrongPin, MSG_WRONG_PIN),
                },
                None => password,
            };
            let code = std::str::from_utf8(code).unwrap_or_default();
            return self.check_code(user, token, code, mode);
        }
        if policy.otp_mode == OtpMode::Inline {
            return Decision::reject(name, mode, Reason::CodeMissing, Key::CodeAsPassword);
        }
        if !user.enabled {
            return disabled(name, user, mode);
        }
        let mode = Mode::with(None, kind, Some(Entry::Challenge));
        self.challenge(login, user, mode, Reason::CodeRequested)
    }

    /// First factor `local` with a code to follow: decides on the password
    /// with the code inline (password, PIN, code in one User-Password), or
    /// on the password alone followed by an Access-Challenge for the code,
    /// as the policy's `otp_mode` allows.
    async fn password_and_code_leg(
        &self,
        login: &Login<'_>,
        user: &User,
        token: &Token,
        password: &[u8],
    ) -> Decision {
        let (name, policy) = (login.name, login.policy);
        let kind = token_factor(token);
        let code_split = split_code(password, usize::from(token.digits));
        let pin = match self.pin_of(user, Mode::with(None, kind, None)) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let pin = pin.as_ref().map(|p| p.expose());
        // Inline: password immediately followed by the code (PIN mode: the
        // password, the PIN, then the code).
        if policy.otp_mode != OtpMode::Challenge {
            let split = code_split.and_then(|(pw_pin, code)| match pin {
                Some(pin) => split_pin_suffix(pin, pw_pin).map(|(pw, ok)| (pw, ok, code)),
                None => Some((pw_pin, true, code)),
            });
            if let Some((pw, pin_ok, code)) = split {
                if self.verify_password(user, pw).await {
                    let mode = Mode::with(Some(First::Pap), kind, Some(Entry::Inline));
                    if !user.enabled {
                        return disabled(name, user, mode);
                    }
                    if !pin_ok {
                        return Decision::reject(name, mode, Reason::WrongPin, MSG_WRONG_PIN);
                    }
                    return self.check_code(user, token, code, mode);
                }
            }
            if policy.otp_mode == OtpMode::Inline {
                let reason = if code_split.is_some() {
                    Reason::WrongPassword
                } else {
                    Reason::CodeMissing
                };
                let msg = if code_split.is_some() {
                    MSG_WRONG_CREDENTIALS
                } else {
                    Key::PasswordThenCode
                };
                let mode = Mode::with(Some(First::Pap), kind, Some(Entry::Inline));
                return Decision::reject(name, mode, reason, msg);
            }
        }
        // Challenge: the whole User-Password is the password.
        let mode = Mode::with(Some(First::Pap), kind, Some(Entry::Challenge));
        if !self.verify_password(user, password).await {
            return Decision::reject(name, mode, Reason::WrongPassword, MSG_WRONG_CREDENTIALS);
        }
        if !user.enabled {
            return disabled(name, user, mode);
        }
        self.challenge(login, user, mode, Reason::CodeRequested)
    }
}
