//! What a challenge session holds between the Access-Challenge and its
//! answer, and where it may be answered from. Types only: the sessions
//! themselves live in the node, their logic in `challenge.rs`.

use radmfa_radius::Attribute;
use zeroize::Zeroizing;

use super::decision::{Mode, OnAccept, Reason};
use crate::clients::ClientEntry;

/// An Access-Challenge in progress, kept on this node until answered.
#[derive(Debug, Clone)]
pub struct PendingChallenge {
    /// The user who passed the first factor.
    pub user: String,
    /// Where the challenge was issued; only an answer from there counts.
    pub origin: ChallengeOrigin,
    /// How the first leg was authenticated (audit "mode").
    pub mode: Mode,
    /// For one-way SMS: the code that was sent.
    pub sms_code: Option<Zeroizing<String>>,
    /// For one-way SMS: wrong answers still allowed.
    pub attempts_left: u8,
    /// What the final Accept carries (the upstream RADIUS server's
    /// attributes, the user's live directory groups), kept until the code is
    /// checked.
    pub on_accept: OnAccept,
    /// A chained challenge: the upstream server's State to send back with
    /// the user's answer.
    pub upstream_state: Option<Vec<u8>>,
    /// Push with number matching: the verification whose number the answer
    /// must be (its number and waiter are in the node's `push_numbers`).
    pub push_verification: Option<String>,
}

/// A forced PIN change in progress (`pinchange.rs`), kept on this node
/// between its challenges.
#[derive(Debug)]
pub struct PendingPinChange {
    /// The user who passed every factor.
    pub user: String,
    /// Where the login came from; only answers from there count.
    pub origin: ChallengeOrigin,
    /// The first entry of the new PIN, once given.
    pub first: Option<Zeroizing<String>>,
    /// Refused entries still allowed.
    pub tries_left: u8,
    /// The Accept withheld until the PIN is stored.
    pub accept: HeldAccept,
}

/// What the withheld Accept carries.
#[derive(Debug)]
pub struct HeldAccept {
    /// Its audit mode.
    pub mode: Mode,
    /// Whom it welcomes.
    pub who: String,
    /// Its attributes (the upstream server's).
    pub attrs: Vec<Attribute>,
    /// Groups whose configured attributes it carries.
    pub groups: Vec<String>,
}

/// The client and policy a challenge was issued under. The answer must come
/// through the same configured client entry (by name; for RadSec also the
/// same certificate) under the same policy, else it is `bad_state`: a
/// challenge started where the first factor is `none` cannot be finished
/// where a password is required. A forwarded answer is checked by the owner
/// against the client its own table maps the NAS address (carried in the
/// Forward frame) to, and against that datagram's Message-Authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeOrigin {
    client: String,
    cert_sha256: Option<[u8; 32]>,
    policy: String,
}

impl ChallengeOrigin {
    /// The origin of a request from `client`.
    pub fn of(client: &ClientEntry) -> ChallengeOrigin {
        ChallengeOrigin {
            client: client.name.clone(),
            cert_sha256: client.cert_sha256,
            policy: client.policy.clone(),
        }
    }

    /// Why an answer from `name` here (`self`) may not take a session of
    /// `owner` issued at `issued`, if so: another user's session
    /// ([`Reason::StateUserMismatch`]), or another client or policy
    /// ([`Reason::BadState`]).
    pub fn refuses(&self, name: &str, owner: &str, issued: &ChallengeOrigin) -> Option<Reason> {
        if owner != name {
            Some(Reason::StateUserMismatch)
        } else if issued != self {
            Some(Reason::BadState)
        } else {
            None
        }
    }
}
