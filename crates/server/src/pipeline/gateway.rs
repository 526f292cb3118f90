//! What the gateway-backed methods (one-way SMS, two-way SMS, call, push)
//! share: the first factor and account checks before anything is sent, the
//! user fields the gateway gets, and the policy's `fail_mode` when the
//! gateway cannot be used.

use radmfa_store::{Token, User};

use super::decision::*;
use super::login::Login;
use super::node::Node;
use crate::config::{FailMode, FirstFactor, Policy};
use crate::i18n::Key;

impl Node {
    /// First factor and account state, checked before anything is sent
    /// through the gateway (no SMS or call for a wrong password).
    pub(super) async fn before_gateway(
        &self,
        user: &User,
        password: &[u8],
        policy: &Policy,
        mode: Mode,
    ) -> Option<Decision> {
        if policy.first_factor == FirstFactor::Local && !self.verify_password(user, password).await
        {
            return Some(Decision::reject(
                &user.name,
                mode,
                Reason::WrongPassword,
                MSG_WRONG_CREDENTIALS,
            ));
        }
        (!user.enabled).then(|| disabled(&user.name, user, mode))
    }

    pub(super) fn user_fields(&self, user: &User) -> radmfa_gateway::UserFields {
        let (first_name, last_name) = match user.display_name.split_once(' ') {
            Some((f, l)) => (Some(f.to_string()), Some(l.to_string())),
            None if !user.display_name.is_empty() => (Some(user.display_name.clone()), None),
            None => (None, None),
        };
        radmfa_gateway::UserFields {
            unique_id: user.name.clone(),
            first_name,
            last_name,
            email: Some(user.email.clone()).filter(|e| !e.is_empty()),
            phone: Some(user.phone.clone()).filter(|p| !p.is_empty()),
            device_token: Some(user.device_token.clone()).filter(|t| !t.is_empty()),
            extension: Some(user.extension.clone()).filter(|e| !e.is_empty()),
        }
    }

    pub(super) fn server_ip(&self) -> Option<std::net::IpAddr> {
        self.cfg()
            .server_ip
            .parse()
            .ok()
            .filter(|ip: &std::net::IpAddr| !ip.is_unspecified())
    }

    /// The gateway could not be used (`why`): the policy's `fail_mode`
    /// decides between an Accept, a TOTP challenge instead, and a Reject.
    /// `on_accept` goes into the Accept, now or after the TOTP fallback.
    pub(super) fn gateway_down(
        &self,
        login: &Login<'_>,
        user: &User,
        token: Option<&Token>,
        mode: Mode,
        why: GatewayTrouble,
    ) -> Decision {
        let name = user.name.as_str();
        let (policy, on_accept) = (login.policy, &login.on_accept);
        match (policy.fail_mode, token) {
            (FailMode::Open, _) => {
                Decision::accept(user, mode, why.fail_open()).with_on_accept(on_accept)
            }
            (FailMode::TotpOnly, Some(_)) => {
                self.challenge(login, user, mode.totp_fallback(), why.totp_fallback())
            }
            _ => Decision::reject(name, mode, why.reason(), Key::SmsNotSent),
        }
    }
}

pub(super) fn phone_missing(user: &User, mode: Mode) -> Option<Decision> {
    user.phone
        .is_empty()
        .then(|| Decision::reject(&user.name, mode, Reason::PhoneMissing, Key::PhoneMissing))
}

/// Lower-case hex of a gateway request id.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
