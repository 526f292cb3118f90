//! One-way SMS: a random code sent through the gateway with an
//! Access-Challenge, and the code typed back (limited attempts).

use radmfa_store::{Token, User};
use tracing::warn;
use zeroize::Zeroizing;

use super::codes::strip_pin;
use super::decision::*;
use super::gateway::{hex, phone_missing};
use super::login::Login;
use super::node::Node;
use super::session::{ChallengeOrigin, PendingChallenge};
use crate::i18n::{Key, Text};

impl Node {
    /// One-way SMS, first leg: first factor, then a random code sent through
    /// the gateway and an Access-Challenge whose State names this node.
    /// Decides nothing yet unless something is missing: the first factor
    /// and account state are checked, the code is sent, and the answer
    /// comes in a later request ([`Node::sms_answer`]).
    pub(super) async fn sms_first_leg(
        &self,
        login: &Login<'_>,
        user: &User,
        token: Option<&Token>,
        password: &[u8],
    ) -> Decision {
        let name = user.name.as_str();
        let policy = login.policy;
        let mode = Mode::with(login.first, SecondFactor::Sms, None);
        if let Some(refused) = self.before_gateway(user, password, policy, mode).await {
            return refused;
        }
        if let Some(refused) = phone_missing(user, mode) {
            return refused;
        }
        let Some(gateway) = self.gateway() else {
            return self.gateway_down(login, user, token, mode, GatewayTrouble::NotConfigured);
        };
        let cfg = self.cfg();
        let sms = &cfg.sms;
        let code = Zeroizing::new(radmfa_otp::random_code(sms.code_length, &sms.alphabet));
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: name.to_string(),
            origin: ChallengeOrigin::of(login.client),
            mode,
            sms_code: Some(code.clone()),
            attempts_left: sms.max_attempts,
            on_accept: login.on_accept.clone(),
            upstream_state: None,
            push_verification: None,
        };
        let id = match self.sms_sessions.insert(now, pending) {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "cannot open an SMS session");
                return Decision::reject(name, mode, Reason::SessionsFull, MSG_TRY_AGAIN);
            }
        };
        let request = radmfa_gateway::SmsRequest {
            id: hex(&id),
            user: self.user_fields(user),
            body: sms.text(self.language_of(login.policy, user), &code),
            server_name: self.cfg().node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: login.end_user,
            from_number: login.policy.from_number.clone(),
        };
        match gateway.send_sms(&request).await {
            Ok(_) => {
                let tail: String = user
                    .phone
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let prompt = if user.pin.is_some() {
                    Key::PromptSmsPin
                } else {
                    Key::PromptSms
                };
                Decision::challenge(
                    name,
                    mode,
                    Reason::SmsSent,
                    Text::with(prompt, &[("tail", &tail)]),
                    self.state_key.seal(self.cfg().node_id, &id).to_vec(),
                    u32::try_from(sms.lifetime_secs).ok(),
                )
            }
            Err(e) => {
                self.sms_sessions.take(&id, now);
                warn!(error = %e, "cannot send the SMS code");
                self.gateway_down(login, user, token, mode, GatewayTrouble::Unreachable)
            }
        }
    }

    /// One-way SMS, second leg: decides on the code typed back (limited attempts; a
    /// wrong code re-prompts with the same State while attempts remain).
    pub(super) async fn sms_answer(
        &self,
        name: &str,
        state: &[u8],
        id: [u8; 16],
        deadline: u64,
        mut pending: PendingChallenge,
        password: &[u8],
    ) -> Decision {
        let mode = pending.mode;
        let user = match self.hot.user(&self.store, name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Decision::reject(name, mode, Reason::UserGone, MSG_WRONG_CREDENTIALS)
            }
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, mode, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        if !user.user.enabled {
            return disabled(name, &user.user, mode);
        }
        let pin = match self.pin_of(&user.user, mode) {
            Ok(p) => p,
            Err(d) => return *d,
        };
        let given = password.trim_ascii();
        let (pin_ok, code) = match &pin {
            Some(pin) => match strip_pin(pin.expose(), given) {
                Some(code) => (true, code),
                None => (false, &b""[..]),
            },
            None => (true, given),
        };
        let code = std::str::from_utf8(code).unwrap_or("");
        let expected = pending.sms_code.clone().unwrap_or_default();
        // Both checks always run: the answer does not tell which part was wrong.
        let code_ok = radmfa_otp::codes_match(&expected, code);
        if pin_ok && code_ok {
            return Decision::accept(&user.user, mode, Reason::Ok)
                .with_on_accept(&pending.on_accept);
        }
        pending.attempts_left = pending.attempts_left.saturating_sub(1);
        if pending.attempts_left > 0 && self.sms_sessions.put_back(id, deadline, pending).is_ok() {
            return Decision::challenge(
                name,
                mode,
                Reason::SmsCodeWrongRetry,
                Key::SmsRetry,
                state.to_vec(),
                u32::try_from(deadline.saturating_sub(self.clock.now_unix())).ok(),
            );
        }
        if pin_ok {
            Decision::reject(name, mode, Reason::SmsCodeWrong, MSG_WRONG_CODE)
        } else {
            Decision::reject(name, mode, Reason::WrongPin, MSG_WRONG_PIN)
        }
    }
}
