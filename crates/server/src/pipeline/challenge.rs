//! Access-Challenge sessions: opening one for the user's code (answerable
//! only through the client and policy that started it), and taking the
//! answer back: the session is single-use, checked against its user and
//! origin, and leads to the code check, the one-way SMS answer or the
//! upstream server's chained challenge.

use radmfa_otp::{Sessions, Take};
use radmfa_store::User;
use tracing::{debug, warn};

use super::codes::strip_pin;
use super::decision::*;
use super::login::Login;
use super::node::Node;
use super::session::{ChallengeOrigin, PendingChallenge};
use crate::i18n::{Key, Text};

impl Node {
    /// An Access-Challenge for the user's one-time code, answerable only
    /// through `login`'s client and policy; `login.on_accept` goes into the
    /// final Accept. `reason` says why a code is asked for (the audit
    /// reason of the challenge).
    pub(super) fn challenge(
        &self,
        login: &Login<'_>,
        user: &User,
        mode: Mode,
        reason: Reason,
    ) -> Decision {
        let policy = login.policy;
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: user.name.clone(),
            origin: ChallengeOrigin::of(login.client),
            mode,
            sms_code: None,
            attempts_left: 1,
            on_accept: login.on_accept.clone(),
            upstream_state: None,
            push_verification: None,
        };
        match self.sessions.insert(now, pending) {
            Ok(id) => Decision::challenge(
                &user.name,
                mode,
                reason,
                totp_prompt(policy.challenge_prompt.as_deref(), user.pin.is_some()),
                self.state_key.seal(self.cfg().node_id, &id).to_vec(),
                u32::try_from(self.cfg().challenge_lifetime_secs).ok(),
            ),
            Err(e) => {
                warn!(error = %e, "cannot open a challenge session");
                Decision::reject(&user.name, mode, Reason::SessionsFull, MSG_TRY_AGAIN)
            }
        }
    }

    /// An Access-Request carrying a State: decides whether the State names
    /// a live session of this node that this user may answer through this
    /// client, then checks the answer as the session says (TOTP/HOTP code,
    /// one-way SMS code, or the upstream server's chained challenge). A
    /// session is taken once: any answer, right or wrong, ends it (one-way
    /// SMS excepted, see [`Node::sms_answer`]).
    pub(super) async fn challenge_answer(
        &self,
        login: &Login<'_>,
        state: &[u8],
        password: &[u8],
    ) -> Decision {
        let name = login.name;
        let token = match self.state_key.open(state) {
            Ok(t) => t,
            Err(e) => {
                debug!(error = %e, "State does not verify");
                return Decision::reject(name, Mode::Challenge, Reason::BadState, MSG_SESSION_GONE);
            }
        };
        if token.node_id != self.cfg().node_id {
            return Decision::reject(
                name,
                Mode::Challenge,
                Reason::ForeignState,
                Key::OwnerUnreachable,
            );
        }
        if let Some(d) = self.pin_change_answer(login, &token, state, password).await {
            return d;
        }
        let now = self.clock.now_unix();
        // Taken only by its own user through the client and policy that
        // started it; any other answer leaves it in place for its owner.
        let origin = ChallengeOrigin::of(login.client);
        let mut refusal = None;
        let mut take = |sessions: &Sessions<PendingChallenge>| {
            let taken = sessions.take_entry_if(&token.session_id, now, |p| {
                let why = origin.refuses(name, &p.user, &p.origin);
                refusal = why.map(|why| (why, p.mode));
                why.is_none()
            });
            match taken {
                Take::Taken(pending, deadline) => Some((pending, deadline)),
                Take::Refused | Take::Missing => None,
            }
        };
        let found = take(&self.sessions).or_else(|| take(&self.sms_sessions));
        let Some((pending, deadline)) = found else {
            return match refusal {
                Some((why, mode)) => {
                    debug!(
                        reason = %why,
                        "challenge answer refused; the session stays for its owner"
                    );
                    Decision::reject(name, mode, why, MSG_SESSION_GONE)
                }
                None => Decision::reject(
                    name,
                    Mode::Challenge,
                    Reason::ChallengeExpired,
                    MSG_SESSION_GONE,
                ),
            };
        };
        if let Some(upstream_state) = &pending.upstream_state {
            return self
                .radius_first_leg(login, Some(password), Some(upstream_state))
                .await;
        }
        if let Some(verification) = &pending.push_verification {
            return self
                .push_number_answer(name, verification, &pending, password)
                .await;
        }
        if pending.sms_code.is_some() {
            return self
                .sms_answer(name, state, token.session_id, deadline, pending, password)
                .await;
        }
        let cached = match self.hot.user(&self.store, name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Decision::reject(
                    name,
                    pending.mode,
                    Reason::UserGone,
                    MSG_WRONG_CREDENTIALS,
                )
            }
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, pending.mode, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        let user = &cached.user;
        let Some(token) = cached.token.as_ref() else {
            return Decision::reject(name, pending.mode, Reason::UserGone, MSG_WRONG_CREDENTIALS);
        };
        if !user.enabled {
            return disabled(name, user, pending.mode);
        }
        let pin = match self.pin_of(user, pending.mode) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let given = password.trim_ascii();
        let code = match &pin {
            Some(pin) => match strip_pin(pin.expose(), given) {
                Some(code) => code,
                None => {
                    return Decision::reject(name, pending.mode, Reason::WrongPin, MSG_WRONG_PIN)
                }
            },
            None => given,
        };
        let Ok(code) = std::str::from_utf8(code) else {
            return Decision::reject(name, pending.mode, Reason::OtpMalformed, MSG_WRONG_CODE);
        };
        self.check_code(user, token, code, pending.mode)
            .with_on_accept(&pending.on_accept)
    }
}

/// The TOTP/HOTP challenge's prompt: the translated one, or the policy's
/// `challenge_prompt` when an admin set one (their words, in every
/// language); with a PIN, asking for the PIN first.
fn totp_prompt(configured: Option<&str>, pin: bool) -> Text {
    match (configured, pin) {
        (None, false) => Key::PromptTotp.into(),
        (None, true) => Key::PromptTotpPin.into(),
        (Some(p), false) => Text::verbatim(p),
        (Some(p), true) => Text::with(
            Key::PromptPinFirst,
            &[("prompt", p.trim_end_matches(['.', ' ']))],
        ),
    }
}
