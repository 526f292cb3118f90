//! The second factor after an external first factor (directory or
//! upstream RADIUS) passed: which method the user's record asks for, or an
//! Accept when the policy does not require MFA for the user's groups.

use std::sync::Arc;

use radmfa_radius::Code;
use radmfa_store::{Method, TokenKind};

use super::decision::*;
use super::login::Login;
use super::node::Node;
use crate::config::Unenrolled;

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
        let (name, policy, first, on_accept) =
            (login.name, login.policy, login.first, &login.on_accept);
        let mut groups: Vec<String> = on_accept.groups.clone();
        if let Some(c) = &cached {
            groups.extend(c.user.groups.iter().cloned());
        }
        if !policy.needs_mfa(&groups) {
            let mut d = Decision::reject(name, first, "", "");
            d.code = Code::ACCESS_ACCEPT;
            d.message = "Welcome.".to_string();
            d.reason = "mfa_not_required_for_group".to_string();
            d.attrs = on_accept.attrs.clone();
            d.groups = groups;
            return d;
        }
        let Some(cached) = cached else {
            return Decision::reject(
                name,
                first,
                "not_enrolled",
                "Your account is not set up for multi-factor sign-in. Contact your administrator.",
            );
        };
        let user = &cached.user;
        if !user.enabled {
            return disabled(name, user, first);
        }
        let token = cached.token.as_ref();
        let decision = match user.method {
            Method::None => Decision::accept(user, first, "ok"),
            Method::Sms => return self.sms_first_leg(login, user, token, b"").await,
            Method::SmsTwoWay | Method::Call | Method::Push => {
                return self.out_of_band(login, user, token, b"").await
            }
            Method::Totp | Method::Hotp => {
                let Some(token) = token else {
                    if policy.unenrolled == Unenrolled::Accept {
                        return Decision::accept(user, first, "not_enrolled_allowed")
                            .with_on_accept(on_accept);
                    }
                    return Decision::reject(
                        name,
                        first,
                        "not_enrolled",
                        "You have not enrolled an authenticator app yet. Contact your administrator.",
                    );
                };
                let kind = match token.kind {
                    TokenKind::Totp => "totp",
                    TokenKind::Hotp => "hotp",
                };
                match inline_code {
                    Some(code) if user.pin.is_none() => {
                        self.check_code(user, token, code, &format!("{first}+{kind}-inline"))
                    }
                    _ => {
                        return self.challenge(
                            login,
                            user,
                            format!("{first}+{kind}-challenge"),
                            "code_requested",
                        )
                    }
                }
            }
        };
        decision.with_on_accept(on_accept)
    }
}
