//! Push approval without a vendor app: a login whose method is `push`, for a
//! user who registered browsers in the portal, opens a verification in the
//! node's registry ([`crate::verifications`]), sends one Web Push message to
//! each registered browser ([`crate::push`]) and waits on the registry's
//! oneshot (no thread or task per waiting login) for the decision the user
//! makes on the portal's approval page (`/approve/{id}`): Approve, Deny or
//! "This was not me". A login retransmitted by the NAS never gets here twice
//! (duplicate cache), so one login is one message per device.
//!
//! Separate from `oob.rs` (the gateway's methods) because nothing here goes
//! through the gateway: the node talks to the browsers' push services itself.

use std::sync::Arc;
use std::time::Duration;

use radmfa_store::{PushDevice, User};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::decision::*;
use super::login::Login;
use super::node::Node;
use super::session::{ChallengeOrigin, PendingChallenge};
use crate::i18n::Key;
use crate::push::{Delivery, Pusher};
use crate::verifications::{NewVerification, OobMode, Outcome, View, Waiter};

/// What the user is told when the push limit refused a login.
const MSG_PUSH_LIMITED: Key = Key::PushLimited;

impl Node {
    /// Opens a push verification for `user` and sends it to every device:
    /// the open verification and its waiter, or the Reject to send (push
    /// limit, registry full, nothing delivered).
    pub(super) async fn push_open(
        &self,
        login: &Login<'_>,
        user: &User,
        mode: Mode,
        pin: Option<Zeroizing<String>>,
    ) -> Result<(View, Waiter), Box<Decision>> {
        let name = user.name.as_str();
        let reject = |reason, msg: Key| Box::new(Decision::reject(name, mode, reason, msg));
        let Some(pusher) = self.pusher.get().cloned() else {
            return Err(reject(Reason::GatewayNotConfigured, MSG_TRY_AGAIN));
        };
        if !self.limits().allow_push(name) {
            let cfg = self.cfg();
            let l = &cfg.limits;
            warn!(
                user = name,
                limit = l.push_per_user,
                window_secs = l.push_window_secs,
                "push approval not sent: the user is over [limits] push_per_user (push fatigue; someone may hold their password)"
            );
            return Err(reject(Reason::PushRateLimited, MSG_PUSH_LIMITED));
        }
        let lifetime = Duration::from_secs(self.cfg().verdict_timeout_secs);
        let opened = self.verifications.open(
            NewVerification {
                user: name.to_string(),
                mode: OobMode::Push,
                context: self.oob_context(login),
                phone: None,
                pin,
                lifetime,
                lang: self.language_of(login.policy, user),
            },
            self.clock.instant(),
        );
        let (view, waiter) = match opened {
            Ok(v) => v,
            Err(full) => {
                warn!(error = %full, "push approval not sent");
                return Err(reject(Reason::SessionsFull, MSG_TRY_AGAIN));
            }
        };
        let sent = self
            .push_to_devices(&pusher, user, &view, lifetime.as_secs())
            .await;
        if sent == 0 {
            return Err(reject(Reason::PushUndeliverable, Key::PushUndeliverable));
        }
        Ok((view, waiter))
    }

    /// Sends the approval to each of `user`'s devices at once; removes the
    /// devices whose subscription the push service says is gone. Returns
    /// how many messages were accepted.
    async fn push_to_devices(
        &self,
        pusher: &Arc<Pusher>,
        user: &User,
        view: &View,
        ttl_secs: u64,
    ) -> usize {
        // Only the id (the capability the page needs) and a short context.
        let payload = serde_json::json!({
            "id": view.id,
            "app": view.context.client,
            "at": view.context.at_unix,
        })
        .to_string();
        let mut tasks = tokio::task::JoinSet::new();
        for d in &user.push_devices {
            let (pusher, d, payload) = (pusher.clone(), d.clone(), payload.clone());
            tasks.spawn(async move {
                let r = pusher.send(&d, payload.as_bytes(), ttl_secs).await;
                (d, r)
            });
        }
        let mut sent = 0;
        let mut gone: Vec<PushDevice> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((_, Delivery::Sent)) => sent += 1,
                Ok((d, Delivery::Gone)) => gone.push(d),
                Ok((_, Delivery::Failed)) | Err(_) => {}
            }
        }
        for d in gone {
            self.remove_gone_device(&user.name, &d).await;
        }
        sent
    }

    /// A subscription the push service no longer knows (404/410): removed
    /// from the user (through the primary on a replica).
    async fn remove_gone_device(&self, user: &str, d: &PushDevice) {
        let req = crate::admin::AdminRequest::UserDeviceRemove {
            name: user.to_string(),
            id: d.id.clone(),
        };
        let admin = crate::admin::Admin::new(self.store.clone(), self.cfg(), &*self.clock, self);
        match admin.run(req).await {
            Ok(_) => info!(
                user,
                device = %d.id,
                push_service = d.endpoint_host(),
                "removed a push device whose subscription is gone (the browser unsubscribed or its data was cleared)"
            ),
            Err(e) => {
                warn!(user, device = %d.id, error = %e, "cannot remove a push device whose subscription is gone")
            }
        }
    }

    /// A push login for a user with registered browsers: the PIN (PIN
    /// mode: typed on the approval page), then number matching where the
    /// policy asks for it and the NAS can show a challenge (not after
    /// MS-CHAPv2), else plain approve/deny.
    pub(super) async fn push_login(&self, login: &Login<'_>, user: &User, mode: Mode) -> Decision {
        let pin = match self.pin_of(user, mode) {
            Ok(Some(pin)) => match std::str::from_utf8(pin.expose()) {
                Ok(p) => Some(Zeroizing::new(p.to_string())),
                Err(_) => {
                    return Decision::reject(&user.name, mode, Reason::PinUnreadable, MSG_TRY_AGAIN)
                }
            },
            Ok(None) => None,
            Err(d) => return *d,
        };
        let can_challenge = login.first != Some(First::MsChapV2);
        if login.policy.number_matching && can_challenge {
            return self.push_with_number(login, user, mode, pin).await;
        }
        self.web_push(login, user, mode, pin).await
    }

    /// The number the approval page of verification `id` shows, when the
    /// login uses number matching and is still pending.
    pub fn push_number(&self, id: &str) -> Option<u8> {
        self.push_numbers.number(id, self.clock.instant())
    }

    /// Number matching: sends the push, then answers at once with an
    /// Access-Challenge asking for the number the approval page shows. The
    /// login's waiter stays with the number until the answer comes
    /// ([`Node::push_number_answer`]).
    async fn push_with_number(
        &self,
        login: &Login<'_>,
        user: &User,
        mode: Mode,
        pin: Option<Zeroizing<String>>,
    ) -> Decision {
        let (view, waiter) = match self.push_open(login, user, mode, pin).await {
            Ok(v) => v,
            Err(d) => return *d,
        };
        let now = self.clock.now_unix();
        let pending = PendingChallenge {
            user: user.name.clone(),
            origin: ChallengeOrigin::of(login.client),
            mode,
            sms_code: None,
            attempts_left: 1,
            on_accept: login.on_accept.clone(),
            upstream_state: None,
            push_verification: Some(view.id.clone()),
        };
        let session = match self.sessions.insert(now, pending) {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "cannot open a challenge session");
                return Decision::reject(&user.name, mode, Reason::SessionsFull, MSG_TRY_AGAIN);
            }
        };
        let instant = self.clock.instant();
        let cfg = self.cfg();
        let lifetime = cfg.verdict_timeout_secs.max(cfg.challenge_lifetime_secs);
        self.push_numbers
            .issue(waiter, instant, instant + Duration::from_secs(lifetime));
        Decision::challenge(
            &user.name,
            mode,
            Reason::PushSent,
            Key::PromptPushNumber,
            self.state_key.seal(self.cfg().node_id, &session).to_vec(),
            u32::try_from(lifetime).ok(),
        )
    }

    /// The answer to a number-matching challenge: the typed number must be
    /// the one the approval page shows (a wrong number denies, and counts
    /// as a failed second factor), and the sign-in must be approved on the
    /// page as well (strict: typing the number alone proves the user saw
    /// the page, approving says it is theirs); it waits for that decision
    /// until the verification's deadline.
    pub(super) async fn push_number_answer(
        &self,
        name: &str,
        verification: &str,
        pending: &PendingChallenge,
        answer: &[u8],
    ) -> Decision {
        let mode = pending.mode;
        let instant = self.clock.instant();
        let Some((number, waiter)) = self.push_numbers.take(verification, instant) else {
            return Decision::reject(name, mode, Reason::ChallengeExpired, MSG_SESSION_GONE);
        };
        let want = format!("{number:02}");
        let given = answer.trim_ascii();
        let right = given.len() == want.len()
            && bool::from(subtle::ConstantTimeEq::ct_eq(given, want.as_bytes()));
        if !right {
            // Dropping the waiter ends the verification: the page says so.
            return Decision::reject(name, mode, Reason::PushNumberWrong, Key::PushNumberWrong);
        }
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
        let deadline = tokio::time::Instant::from_std(
            instant + Duration::from_secs(self.cfg().verdict_timeout_secs),
        );
        match waiter.wait(deadline).await {
            None => Decision::reject(name, mode, Reason::PushNotApproved, Key::PushNotApproved),
            outcome => push_decision(&user.user, mode, outcome, &pending.on_accept),
        }
    }

    /// A push login without number matching: send, wait for the decision on
    /// the approval page until `verdict_timeout_secs`.
    pub(super) async fn web_push(
        &self,
        login: &Login<'_>,
        user: &User,
        mode: Mode,
        pin: Option<Zeroizing<String>>,
    ) -> Decision {
        let (_, waiter) = match self.push_open(login, user, mode, pin).await {
            Ok(v) => v,
            Err(d) => return *d,
        };
        let deadline = tokio::time::Instant::from_std(
            self.clock.instant() + Duration::from_secs(self.cfg().verdict_timeout_secs),
        );
        let outcome = waiter.wait(deadline).await;
        push_decision(user, mode, outcome, &login.on_accept)
    }
}

/// The decision for what the user answered on the approval page.
pub(super) fn push_decision(
    user: &User,
    mode: Mode,
    outcome: Option<Outcome>,
    on_accept: &OnAccept,
) -> Decision {
    let name = user.name.as_str();
    match outcome {
        Some(Outcome::Approved) => {
            Decision::accept(user, mode, Reason::Ok).with_on_accept(on_accept)
        }
        Some(Outcome::Fraud) => {
            Decision::reject(name, mode, Reason::FraudReported, Key::FraudReported)
        }
        Some(Outcome::WrongPin) => Decision::reject(
            name,
            mode,
            Reason::DeniedOrWrongPin,
            Key::PushDeniedOrWrongPin,
        ),
        Some(Outcome::Denied) => {
            Decision::reject(name, mode, Reason::DeniedByUser, Key::PushDeniedOnDevice)
        }
        Some(_) | None => Decision::reject(name, mode, Reason::NoAnswer, Key::PushTimeout),
    }
}
