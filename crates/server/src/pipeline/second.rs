//! The second factor after an external first factor (directory or
//! upstream RADIUS) passed: which method the user's record asks for, or an
//! Accept when the policy does not require MFA for the user's groups.

use std::sync::Arc;

use radmfa_store::Method;

use super::codes::token_factor;
use super::decision::*;
use super::login::Login;
use super::node::Node;
use crate::config::Unenrolled;
use crate::i18n::Key;

impl Node {
    /// The second factor once an external first factor (upstream RADIUS,
    /// directory) has passed for `login` (its `first` and `on_accept` set):
    /// decides whether MFA applies to the user's groups, then runs the
    /// method the user's record names (`inline_code` when the policy split
    /// one off the password). `on_accept` goes into the Accept, whichever
    /// path leads there.
    pub(super) async fn second_factor_after(
        &self,
        login: &Login<'_>,
        cached: Option<Arc<crate::hot::CachedUser>>,
        inline_code: Option<&str>,
    ) -> Decision {
        let (name, policy, on_accept) = (login.name, login.policy, &login.on_accept);
        let first = login.first_mode();
        let stored: Vec<String> = cached
            .as_ref()
            .map(|c| c.user.groups.clone())
            .unwrap_or_default();
        let mut groups = on_accept.groups.clone();
        groups.extend(stored.iter().cloned());
        if !policy.needs_mfa(&groups) {
            return Decision::accept_name(name, first, Reason::MfaNotRequiredForGroup, stored)
                .with_on_accept(on_accept);
        }
        let Some(cached) = cached else {
            return Decision::reject(name, first, Reason::NotEnrolled, Key::NotSetUpForMfa);
        };
        let user = &cached.user;
        if !user.enabled {
            return disabled(name, user, first);
        }
        let token = cached.token.as_ref();
        let decision = match user.method {
            Method::None => Decision::accept(user, first, Reason::Ok),
            Method::Sms => return self.sms_first_leg(login, user, token, b"").await,
            Method::SmsTwoWay | Method::Call | Method::Push => {
                return self.out_of_band(login, user, token, b"").await
            }
            Method::Totp | Method::Hotp => {
                let Some(token) = token else {
                    if policy.unenrolled == Unenrolled::Accept {
                        return Decision::accept(user, first, Reason::NotEnrolledAllowed)
                            .with_on_accept(on_accept);
                    }
                    return Decision::reject(name, first, Reason::NotEnrolled, Key::AppNotEnrolled);
                };
                let kind = token_factor(token);
                match inline_code {
                    Some(code) if user.pin.is_none() => {
                        let mode = Mode::with(login.first, kind, Some(Entry::Inline));
                        self.check_code(user, token, code, mode)
                    }
                    _ => {
                        let mode = Mode::with(login.first, kind, Some(Entry::Challenge));
                        return self.challenge(login, user, mode, Reason::CodeRequested);
                    }
                }
            }
        };
        decision.with_on_accept(on_accept)
    }
}
