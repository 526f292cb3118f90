//! First factor `radius`: the request relayed to the policy's upstream
//! server (NPS, FreeRADIUS); its Reject passes through, its challenge is
//! relayed under our State, its Accept leads to our second factor.

use radmfa_radius::{AttrType, Attribute};
use radmfa_store::Method;
use tracing::{debug, warn};

use super::codes::split_code;
use super::decision::*;
use super::login::Login;
use super::node::Node;
use super::session::{ChallengeOrigin, PendingChallenge};
use crate::config::OtpMode;
use crate::i18n::{Key, Text};
use crate::upstream::UpstreamAnswer;

impl Node {
    /// First factor `radius`: decides by the policy's upstream server's
    /// answer. Its Reject passes through, its Access-Challenge is relayed
    /// under our State, its Accept leads to our second factor, and its
    /// attributes go into our final Accept. `password` is `None` for
    /// MS-CHAPv2 (only out-of-band methods can follow); `upstream_state`
    /// answers an upstream challenge.
    pub(super) async fn radius_first_leg(
        &self,
        login: &Login<'_>,
        password: Option<&[u8]>,
        upstream_state: Option<&[u8]>,
    ) -> Decision {
        let (name, policy, packet) = (login.name, login.policy, login.packet);
        let mode = Mode::first(First::Radius);
        let upstreams = self.upstreams();
        let Some(upstream) = policy.upstream.as_ref().and_then(|u| upstreams.get(u)) else {
            return Decision::reject(name, mode, Reason::NoUpstream, MSG_TRY_AGAIN);
        };
        let cached = match self.hot.user(&self.store, name) {
            Ok(u) => u,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Decision::reject(name, mode, Reason::StoreError, MSG_TRY_AGAIN);
            }
        };
        // Inline (password + code in one User-Password) only when the policy
        // says so: the upstream sees exactly one password per request.
        let inline = match (&cached, policy.otp_mode, upstream_state, password) {
            (Some(c), OtpMode::Inline, None, Some(password)) => c
                .token
                .as_ref()
                .and_then(|t| split_code(password, usize::from(t.digits))),
            _ => None,
        };
        let first_password = inline.map(|(pw, _)| pw).or(password);
        let answer = match upstream
            .forward(
                packet,
                first_password,
                upstream_state,
                Some((login.client.secret.expose(), &packet.authenticator)),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // upstream.rs says why at WARN, once a minute per group.
                debug!(error = %e, "upstream RADIUS unreachable");
                return Decision::reject(
                    name,
                    mode,
                    Reason::UpstreamUnreachable,
                    Key::PasswordUnchecked,
                );
            }
        };
        match answer {
            UpstreamAnswer::Reject(attrs) => {
                // The upstream's own words when it gave some (not ours to
                // translate), else ours.
                let msg = upstream_message(&attrs);
                let msg = if msg.is_empty() {
                    MSG_WRONG_CREDENTIALS.into()
                } else {
                    Text::verbatim(msg)
                };
                Decision::reject(name, mode, Reason::UpstreamReject, msg)
            }
            UpstreamAnswer::Challenge(attrs) => self.upstream_challenge(login, &attrs),
            UpstreamAnswer::Accept(attrs) => {
                let first = if password.is_none() {
                    First::MsChapV2
                } else {
                    First::Radius
                };
                if password.is_none() {
                    // MS-CHAPv2: no code can be asked for; only out-of-band methods.
                    let needs_code = cached.as_ref().is_some_and(|c| {
                        matches!(c.user.method, Method::Totp | Method::Hotp | Method::Sms)
                    });
                    let groups: Vec<String> = cached
                        .as_ref()
                        .map(|c| c.user.groups.clone())
                        .unwrap_or_default();
                    if needs_code && policy.needs_mfa(&groups) {
                        return Decision::reject(
                            name,
                            Mode::first(first),
                            Reason::MethodNeedsCode,
                            Key::MethodNeedsCode,
                        );
                    }
                }
                // Our own reply carries its own Reply-Message, State and
                // Session-Timeout; the rest of the upstream's Accept is kept.
                let carry: Vec<Attribute> = attrs
                    .into_iter()
                    .filter(|a| {
                        a.typ != AttrType::REPLY_MESSAGE
                            && a.typ != AttrType::STATE
                            && a.typ != AttrType::SESSION_TIMEOUT
                    })
                    .collect();
                let on_accept = OnAccept {
                    attrs: carry,
                    groups: Vec::new(),
                };
                let login = login.with_first(first, on_accept);
                self.second_factor_after(&login, cached, inline.map(|(_, c)| c))
                    .await
            }
        }
    }

    /// The upstream server asked a question of its own: relayed to the NAS
    /// under our State, its State kept in a session for the answer.
    fn upstream_challenge(&self, login: &Login<'_>, attrs: &[Attribute]) -> Decision {
        let name = login.name;
        let Some(state) = attrs.iter().find(|a| a.typ == AttrType::STATE) else {
            return Decision::reject(
                name,
                Mode::first(First::Radius),
                Reason::UpstreamChallengeWithoutState,
                MSG_TRY_AGAIN,
            );
        };
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: name.to_string(),
            origin: ChallengeOrigin::of(login.client),
            mode: Mode::upstream_challenge(),
            sms_code: None,
            attempts_left: 1,
            on_accept: OnAccept::default(),
            upstream_state: Some(state.value.clone()),
            push_verification: None,
        };
        match self.sessions.insert(now, pending) {
            Ok(id) => Decision::challenge(
                name,
                Mode::upstream_challenge(),
                Reason::UpstreamChallenge,
                Text::verbatim(upstream_message(attrs)),
                self.state_key.seal(self.cfg().node_id, &id).to_vec(),
                attrs
                    .iter()
                    .find(|a| a.typ == AttrType::SESSION_TIMEOUT)
                    .and_then(|a| a.as_u32().ok())
                    .or(u32::try_from(self.cfg().challenge_lifetime_secs).ok()),
            ),
            Err(e) => {
                warn!(error = %e, "cannot open a challenge session");
                Decision::reject(
                    name,
                    Mode::first(First::Radius),
                    Reason::SessionsFull,
                    MSG_TRY_AGAIN,
                )
            }
        }
    }
}

/// The upstream server's Reply-Messages, joined.
fn upstream_message(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.typ == AttrType::REPLY_MESSAGE)
        .filter_map(|a| a.as_str().ok())
        .collect::<Vec<_>>()
        .join("")
}
