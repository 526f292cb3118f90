//! The forced PIN change over RADIUS: a user whose PIN was set for them
//! (generated for the enrollment mail, or set by an admin) and who passes
//! every factor the policy asks for gets, instead of the Accept, an
//! Access-Challenge for a new PIN, then one for the same PIN again. The
//! entries are checked by the portal's PIN policy
//! ([`crate::portal::pin_policy::check_pin`]) and for equality; a refused
//! entry asks again with the reason (at most [`TRIES`] refusals, then a
//! Reject), and once the new PIN is stored (through the primary on a
//! replica, like any admin write) and `pin_change_required` cleared, the
//! Accept the factors earned is sent.
//!
//! Its sessions are a table of their own, apart from the code challenges:
//! they hold the Accept being withheld and the first entry, and a code
//! answer can never be taken for a PIN entry (or the reverse). Their State
//! is sealed like every other (owner node id and MAC), so an answer that
//! the balancer sends to another node is forwarded to this one.
//!
//! Not offered where the NAS cannot answer a challenge: after MS-CHAPv2,
//! or under a policy with `otp_mode = "inline"`; those users change the
//! PIN in the portal, which asks them as well.

use radmfa_otp::{StateToken, Take};
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::decision::*;
use super::login::Login;
use super::node::Node;
use super::pin_texts as texts;
use super::session::{ChallengeOrigin, HeldAccept, PendingPinChange};
use crate::config::OtpMode;
use crate::i18n::Text;
use crate::portal::pin_policy::{check_pin, pin_min_length};

/// Refused entries (policy or mismatch) before the change is given up.
pub(super) const TRIES: u8 = 3;

impl Node {
    /// The Accept `d`, unless its user must change their PIN first: then
    /// the first challenge for a new PIN, the Accept kept for later.
    pub(super) fn pin_change_gate(&self, login: &Login<'_>, d: Decision) -> Decision {
        let challenge_possible = login.policy.otp_mode != OtpMode::Inline
            && !matches!(
                d.mode,
                Mode::Login {
                    first: Some(First::MsChapV2),
                    ..
                }
            );
        // Only an Accept that checked a second factor (and with it the PIN).
        if d.answer != Answer::Accept
            || d.reason != Reason::Ok
            || d.mode.method().second.is_none()
            || !challenge_possible
        {
            return d;
        }
        let user = match self.hot.user(&self.store, &d.user) {
            Ok(Some(c)) => c,
            _ => return d,
        };
        let u = &user.user;
        if u.pin.is_none() || !u.pin_change_required {
            return d;
        }
        let who = if u.display_name.is_empty() {
            u.name.clone()
        } else {
            u.display_name.clone()
        };
        let pending = PendingPinChange {
            user: d.user.clone(),
            origin: ChallengeOrigin::of(login.client),
            first: None,
            tries_left: TRIES,
            accept: HeldAccept {
                mode: d.mode,
                who,
                attrs: d.attrs,
                groups: d.groups,
            },
        };
        let now = self.clock.now_unix();
        match self.pin_changes.insert(now, pending) {
            Ok(id) => Decision::challenge(
                &d.user,
                d.mode,
                Reason::PinChangeRequired,
                texts::must_change(),
                self.state_key.seal(self.cfg().node_id, &id).to_vec(),
                u32::try_from(self.cfg().challenge_lifetime_secs).ok(),
            ),
            Err(e) => {
                warn!(error = %e, "cannot open a PIN change session");
                Decision::reject(&d.user, d.mode, Reason::SessionsFull, MSG_TRY_AGAIN)
            }
        }
    }

    /// An answer to a PIN change challenge (`None`: the State names no PIN
    /// change session here). The session is taken only by its user through
    /// the client and policy that started it.
    pub(super) async fn pin_change_answer(
        &self,
        login: &Login<'_>,
        token: &StateToken,
        state: &[u8],
        password: &[u8],
    ) -> Option<Decision> {
        let name = login.name;
        let now = self.clock.now_unix();
        let origin = ChallengeOrigin::of(login.client);
        let mut refusal = None;
        let taken = self.pin_changes.take_entry_if(&token.session_id, now, |p| {
            let why = origin.refuses(name, &p.user, &p.origin);
            refusal = why.map(|why| (why, p.accept.mode));
            why.is_none()
        });
        let (mut pending, deadline) = match taken {
            Take::Taken(p, deadline) => (p, deadline),
            Take::Refused => {
                let (why, mode) = refusal.unwrap_or((Reason::BadState, Mode::Challenge));
                return Some(Decision::reject(name, mode, why, MSG_SESSION_GONE));
            }
            Take::Missing => return None,
        };
        let mode = pending.accept.mode;
        let user = match self.hot.user(&self.store, name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Some(Decision::reject(
                    name,
                    mode,
                    Reason::UserGone,
                    MSG_WRONG_CREDENTIALS,
                ))
            }
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Some(Decision::reject(
                    name,
                    mode,
                    Reason::StoreError,
                    MSG_TRY_AGAIN,
                ));
            }
        };
        let u = &user.user;
        if !u.enabled {
            return Some(disabled(name, u, mode));
        }
        let current = match self.pin_of(u, mode) {
            Ok(p) => p,
            Err(d) => return Some(*d),
        };
        let entry = Zeroizing::new(String::from_utf8_lossy(password.trim_ascii()).into_owned());
        let min_len = pin_min_length(&self.cfg());
        let current = current.as_ref().map(|c| c.expose());
        let checked = match &pending.first {
            // The first entry: the policy alone (the entry against itself).
            None => check_pin(&entry, &entry, min_len, &u.phone, current),
            Some(first) => check_pin(first, &entry, min_len, &u.phone, current),
        };
        let reask = |pending: PendingPinChange, reason: Reason, message: Text| {
            let left = u32::try_from(deadline.saturating_sub(now)).ok();
            match self
                .pin_changes
                .put_back(token.session_id, deadline, pending)
            {
                Ok(()) => Decision::challenge(name, mode, reason, message, state.to_vec(), left),
                Err(e) => {
                    warn!(error = %e, "cannot keep the PIN change session");
                    Decision::reject(name, mode, Reason::SessionsFull, MSG_TRY_AGAIN)
                }
            }
        };
        if let Err(problem) = checked {
            pending.tries_left = pending.tries_left.saturating_sub(1);
            pending.first = None;
            if pending.tries_left == 0 {
                return Some(Decision::reject(
                    name,
                    mode,
                    Reason::PinChangeFailed,
                    texts::too_many_tries(),
                ));
            }
            let message = texts::refused(problem, min_len);
            return Some(reask(pending, Reason::PinChangeRetry, message));
        }
        if pending.first.is_none() {
            pending.first = Some(entry);
            let message = texts::enter_again();
            return Some(reask(pending, Reason::PinChangeConfirm, message));
        }
        Some(self.pin_change_store(pending, entry).await)
    }

    /// Stores the new PIN (clearing `pin_change_required`) through the
    /// admin service, which forwards it to the primary from a replica;
    /// then the withheld Accept.
    async fn pin_change_store(
        &self,
        pending: PendingPinChange,
        pin: Zeroizing<String>,
    ) -> Decision {
        let name = pending.user.clone();
        let held = pending.accept;
        let req = crate::admin::AdminRequest::UserPinChange {
            name: name.clone(),
            pin: pin.as_str().to_owned(),
        };
        drop(pin);
        let admin = crate::admin::Admin::new(self.store.clone(), self.cfg(), &*self.clock, self);
        if let Err(e) = admin.run(req).await {
            warn!(user = %crate::text::Escaped(&name), error = %e, "cannot store the PIN a user chose at sign-in");
            return Decision::reject(
                &name,
                held.mode,
                Reason::PinChangeNotSaved,
                texts::not_saved(),
            );
        }
        info!(user = %crate::text::Escaped(&name), "PIN changed at sign-in");
        let mut d = Decision::accept_name(&name, held.mode, Reason::PinChanged, held.groups);
        d.message = texts::changed(&held.who);
        d.attrs = held.attrs;
        d
    }
}
