//! Out-of-band methods (two-way SMS, call, push): the request waits for the
//! gateway's verdict instead of sending an Access-Challenge, since RD
//! Gateway/NPS cannot show one.

use std::time::Duration;

use radmfa_store::{Method, Token, User};
use tracing::warn;

use super::decision::*;
use super::gateway::{hex, phone_missing};
use super::login::Login;
use super::node::Node;

impl Node {
    /// Two-way SMS, phone call or push: the request waits for the user's
    /// answer through the gateway (no Access-Challenge: RD Gateway/NPS cannot
    /// show one). NAS retransmissions meanwhile are absorbed by the duplicate
    /// cache, so one login is one SMS, call or push. Decides by the
    /// gateway's verdict (approved, denied, no answer, fraud reported) after
    /// the first factor and account checks.
    pub(super) async fn out_of_band(
        &self,
        login: &Login<'_>,
        user: &User,
        token: Option<&Token>,
        password: &[u8],
    ) -> Decision {
        use radmfa_gateway::{Verdict, VerificationMode};
        let name = user.name.as_str();
        let (policy, on_accept) = (login.policy, &login.on_accept);
        let (second, gw_mode) = match user.method {
            Method::Call => (SecondFactor::Call, VerificationMode::Call),
            Method::Push => (SecondFactor::Push, VerificationMode::Push),
            _ => (SecondFactor::SmsTwoWay, VerificationMode::TwoWaySms),
        };
        let mode = Mode::with(login.first, second, None);
        if let Some(refused) = self.before_gateway(user, password, policy, mode).await {
            return refused;
        }
        if gw_mode == VerificationMode::Push && !user.push_devices.is_empty() {
            // Browsers registered in the portal: Web Push, no gateway.
            return self.push_login(login, user, mode).await;
        }
        if gw_mode == VerificationMode::Push {
            if user.device_token.is_empty() {
                return Decision::reject(
                    name,
                    mode,
                    Reason::NoDevice,
                    "No mobile app is registered for your account. Contact your administrator.",
                );
            }
        } else if let Some(refused) = phone_missing(user, mode) {
            return refused;
        }
        let pin_mode = match self.pin_of(user, mode) {
            Ok(Some(pin)) => match std::str::from_utf8(pin.expose()) {
                Ok(p) => radmfa_gateway::PinMode::Pin(radmfa_gateway::Secret::new(p.to_string())),
                Err(_) => {
                    return Decision::reject(name, mode, Reason::PinUnreadable, MSG_TRY_AGAIN)
                }
            },
            Ok(None) => radmfa_gateway::PinMode::Standard,
            Err(d) => return *d,
        };
        let down = |why| self.gateway_down(login, user, token, mode, why);
        let Some(gateway) = &self.gateway else {
            return down(GatewayTrouble::NotConfigured);
        };
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let request = radmfa_gateway::VerificationRequest {
            id: hex(&id),
            mode: gw_mode,
            user: self.user_fields(user),
            server_name: self.cfg.node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: login.end_user,
            pin_mode,
        };
        let pin_mode_used = matches!(request.pin_mode, radmfa_gateway::PinMode::Pin(_));
        let started = match gateway.start_verification(&request).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot start the verification");
                return down(GatewayTrouble::Unreachable);
            }
        };
        let deadline = tokio::time::Instant::from_std(
            self.clock.instant() + Duration::from_secs(self.cfg.verdict_timeout_secs),
        );
        match gateway.wait_verdict(&started, deadline).await {
            Ok(Verdict::Approved) => {
                Decision::accept(user, mode, Reason::Ok).with_on_accept(on_accept)
            }
            Ok(Verdict::Denied) if pin_mode_used => Decision::reject(
                name,
                mode,
                Reason::DeniedOrWrongPin,
                "The sign-in was denied on your phone, or the PIN entered was not correct.",
            ),
            Ok(Verdict::Denied) => Decision::reject(
                name,
                mode,
                Reason::DeniedByUser,
                "The sign-in was denied on your phone.",
            ),
            Ok(Verdict::TimedOut) => Decision::reject(
                name,
                mode,
                Reason::NoAnswer,
                "We did not get an answer from your phone in time. Please sign in again.",
            ),
            Ok(Verdict::FraudReported) => Decision::reject(
                name,
                mode,
                Reason::FraudReported,
                "You reported this sign-in as not yours. Contact your administrator.",
            ),
            Err(e) => {
                warn!(error = %e, "no verdict from the gateway");
                down(GatewayTrouble::Unreachable)
            }
        }
    }
}
