//! Out-of-band methods (two-way SMS, call, push): the request waits for the
//! user's answer instead of sending an Access-Challenge, since RD
//! Gateway/NPS cannot show one.
//!
//! Every such login opens an entry in the node's verification registry
//! (`verifications.rs`) and awaits its oneshot: Twilio's answers arrive at
//! the callback handlers (`callback/`), possibly through another node, which
//! decide the entry; the radmfa gateway is long-polled meanwhile. Nothing
//! runs per waiting login but the request's own task.

use std::time::Duration;

use radmfa_gateway::{PinMode, Verdict, VerificationMode, VerificationRequest};
use radmfa_radius::AttrType;
use radmfa_store::{Method, Token, User};
use tracing::warn;

use super::decision::*;
use super::gateway::phone_missing;
use super::login::Login;
use super::node::Node;
use crate::callback::texts::{call_callbacks, call_speech, two_way_sms_text};
use crate::i18n::Key;
use crate::verifications::{Context, NewVerification, OobMode, Outcome, View, Waiter};

/// What ended the wait.
enum Heard {
    /// The registry's outcome (callbacks, peers, the approval page); `None`
    /// when the deadline passed first.
    Answer(Option<Outcome>),
    /// The radmfa gateway's verdict.
    Gateway(Verdict),
}

impl Node {
    /// Two-way SMS, phone call or push: the request waits for the user's
    /// answer (no Access-Challenge: RD Gateway/NPS cannot show one). NAS
    /// retransmissions meanwhile are absorbed by the duplicate cache, so one
    /// login is one SMS, call or push. Decides by the answer (approved,
    /// denied, wrong PIN, fraud reported, the call busy or unanswered...)
    /// after the first factor and account checks.
    pub(super) async fn out_of_band(
        &self,
        login: &Login<'_>,
        user: &User,
        token: Option<&Token>,
        password: &[u8],
    ) -> Decision {
        let name = user.name.as_str();
        let (second, oob_mode) = match user.method {
            Method::Call => (SecondFactor::Call, OobMode::Call),
            Method::Push => (SecondFactor::Push, OobMode::Push),
            _ => (SecondFactor::SmsTwoWay, OobMode::TwoWaySms),
        };
        let mode = Mode::with(login.first, second, None);
        if let Some(refused) = self
            .before_gateway(user, password, login.policy, mode)
            .await
        {
            return refused;
        }
        if oob_mode == OobMode::Push && !user.push_devices.is_empty() {
            // Browsers registered in the portal: Web Push, no gateway.
            return self.push_login(login, user, mode).await;
        }
        if oob_mode == OobMode::Push {
            if user.device_token.is_empty() {
                return Decision::reject(name, mode, Reason::NoDevice, Key::NoDevice);
            }
        } else if let Some(refused) = phone_missing(user, mode) {
            return refused;
        }
        let pin = match self.pin_of(user, mode) {
            Ok(Some(pin)) => match std::str::from_utf8(pin.expose()) {
                Ok(p) => Some(zeroize::Zeroizing::new(p.to_string())),
                Err(_) => {
                    return Decision::reject(name, mode, Reason::PinUnreadable, MSG_TRY_AGAIN)
                }
            },
            Ok(None) => None,
            Err(d) => return *d,
        };
        let down = |why| self.gateway_down(login, user, token, mode, why);
        let Some(gateway) = self.gateway() else {
            return down(GatewayTrouble::NotConfigured);
        };
        let callbacks = gateway.reports_to_callbacks();
        let cfg = self.cfg();
        let base = cfg.oob.callback_url.as_deref();
        if callbacks && base.is_none() && oob_mode != OobMode::Push {
            // Said once at start-up (`warn_twilio_without_callbacks`).
            tracing::debug!("no Twilio callback address: fail_mode");
            return down(GatewayTrouble::NotConfigured);
        }
        let pin_mode_used = pin.is_some();
        let opened = self.verifications.open(
            NewVerification {
                user: name.to_string(),
                mode: oob_mode,
                context: self.oob_context(login),
                phone: Some(user.phone.clone()).filter(|p| !p.is_empty()),
                pin: if callbacks { pin.clone() } else { None },
                lifetime: Duration::from_secs(self.cfg().verdict_timeout_secs),
                lang: self.language_of(login.policy, user),
            },
            self.clock.instant(),
        );
        let Ok((view, waiter)) = opened else {
            warn!("too many out-of-band verifications waiting on this node; sign-in refused");
            return Decision::reject(name, mode, Reason::SessionsFull, MSG_TRY_AGAIN);
        };
        let request =
            self.verification_request(login, user, &view, pin, callbacks.then_some(base).flatten());
        let started = match gateway.start_verification(&request).await {
            Ok(v) => v,
            Err(e) => {
                self.warn_gateway_trouble("cannot start the verification", &e);
                return down(GatewayTrouble::Unreachable);
            }
        };
        let deadline = tokio::time::Instant::from_std(
            self.clock.instant() + Duration::from_secs(self.cfg().verdict_timeout_secs),
        );
        let heard = if callbacks {
            Heard::Answer(waiter.wait(deadline).await)
        } else {
            match self
                .poll_or_answer(&gateway, &started, waiter, deadline)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    self.warn_gateway_trouble("no verdict from the gateway", &e);
                    return down(GatewayTrouble::Unreachable);
                }
            }
        };
        oob_decision(user, mode, heard, pin_mode_used).with_on_accept(&login.on_accept)
    }

    /// The radmfa gateway's verdict (long poll), or the registry's answer if
    /// one comes first.
    async fn poll_or_answer(
        &self,
        gateway: &radmfa_gateway::Gateway,
        started: &radmfa_gateway::VerificationId,
        waiter: Waiter,
        deadline: tokio::time::Instant,
    ) -> Result<Heard, radmfa_gateway::GatewayError> {
        tokio::select! {
            v = gateway.wait_verdict(started, deadline) => v.map(Heard::Gateway),
            Some(o) = waiter.wait(deadline) => Ok(Heard::Answer(Some(o))),
        }
    }

    /// What an approval page or SMS shows about this login.
    pub(super) fn oob_context(&self, login: &Login<'_>) -> Context {
        let p = login.packet;
        let nas_ip = p
            .attr(AttrType::NAS_IP_ADDRESS)
            .and_then(|a| a.as_ipv4().ok())
            .map(std::net::IpAddr::V4)
            .or_else(|| {
                p.attr(AttrType::NAS_IPV6_ADDRESS)
                    .and_then(|a| a.as_ipv6().ok())
                    .map(std::net::IpAddr::V6)
            });
        Context {
            client: login.client.name.clone(),
            nas_ip,
            calling_station: p
                .attr(AttrType::CALLING_STATION_ID)
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned),
            at_unix: self.clock.now_unix(),
        }
    }

    /// The gateway request of verification `view`. With callbacks (Twilio,
    /// under `base`) the PIN stays here and the registry checks it; the
    /// radmfa gateway gets it, as its protocol says.
    fn verification_request(
        &self,
        login: &Login<'_>,
        user: &User,
        view: &View,
        pin: Option<zeroize::Zeroizing<String>>,
        base: Option<&str>,
    ) -> VerificationRequest {
        let mode = match view.mode {
            OobMode::Call => VerificationMode::Call,
            OobMode::Push => VerificationMode::Push,
            OobMode::TwoWaySms => VerificationMode::TwoWaySms,
        };
        let lang = self.language_of(login.policy, user);
        let pin_mode = pin.is_some();
        VerificationRequest {
            id: view.id.clone(),
            mode,
            user: self.user_fields(user),
            server_name: self.cfg().node_name.clone(),
            server_ip: self.server_ip(),
            client_ip: login.end_user,
            pin_mode: pin.map_or(PinMode::Standard, |p| {
                PinMode::Pin(radmfa_gateway::Secret::new(p.as_str()))
            }),
            callbacks: base.map(|b| call_callbacks(b, &view.id, lang)),
            message: base.map(|_| two_way_sms_text(&self.cfg().oob, &user.language, lang, view)),
            from_number: login.policy.from_number.clone(),
            fraud_key: self.cfg().oob.fraud_key,
            speech: (base.is_some() && mode == VerificationMode::Call).then(|| {
                call_speech(
                    lang,
                    &self.cfg().node_name,
                    pin_mode,
                    self.cfg().oob.fraud_key,
                )
            }),
        }
    }

    /// One WARN a minute at most (with the count since the last one and the
    /// remedy) when the gateway fails an out-of-band verification: under
    /// load every waiting login would otherwise log the same line.
    fn warn_gateway_trouble(&self, what: &str, e: &dyn std::fmt::Display) {
        if let Some(count) = self.gateway_trouble.due(self.clock.now_unix()) {
            warn!(
                error = %e,
                count,
                "{what} ({count} since the last warning; the policy's fail_mode decided those logins): \
                 check that the gateway URL is reachable from this node and that ca_file / the \
                 credentials in api_key_file are right (`radmfa check-config --connect`)"
            );
        }
    }
}

/// The decision for what was heard.
fn oob_decision(user: &User, mode: Mode, heard: Heard, pin_mode_used: bool) -> Decision {
    use Outcome as O;
    let name = user.name.as_str();
    let reject = |reason, message| Decision::reject(name, mode, reason, message);
    match heard {
        Heard::Answer(Some(O::Approved)) | Heard::Gateway(Verdict::Approved) => {
            Decision::accept(user, mode, Reason::Ok)
        }
        Heard::Gateway(Verdict::Denied) if pin_mode_used => {
            reject(Reason::DeniedOrWrongPin, Key::DeniedOrWrongPin)
        }
        Heard::Answer(Some(O::Denied)) | Heard::Gateway(Verdict::Denied) => {
            reject(Reason::DeniedByUser, Key::DeniedOnPhone)
        }
        Heard::Answer(Some(O::WrongPin)) => reject(Reason::WrongPin, Key::WrongPinOnPhone),
        Heard::Answer(Some(O::Fraud)) | Heard::Gateway(Verdict::FraudReported) => {
            reject(Reason::FraudReported, Key::FraudReported)
        }
        Heard::Answer(Some(O::NoInput)) => reject(Reason::CallNoKeyPressed, Key::CallNoKey),
        Heard::Answer(Some(O::CallBusy)) => reject(Reason::CallBusy, Key::CallBusy),
        Heard::Answer(Some(O::CallNoAnswer)) => reject(Reason::CallNoAnswer, Key::CallNoAnswer),
        Heard::Answer(Some(O::CallFailed)) => reject(Reason::CallFailed, Key::CallFailed),
        Heard::Answer(Some(O::CallCanceled)) => reject(Reason::CallCanceled, Key::CallCanceled),
        Heard::Answer(None) | Heard::Gateway(Verdict::TimedOut) => {
            reject(Reason::NoAnswer, Key::NoAnswer)
        }
    }
}
