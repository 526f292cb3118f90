//! The authentication pipeline (DESIGN.md §4): one datagram in, at most one
//! reply out. One file per request step, in the order a request meets them:
//!
//! 1. [`ingress`]: client lookup, Message-Authenticator, rate limits,
//!    duplicates, forwarding a challenge answer to the node that owns it.
//! 2. [`access`]: Status-Server and Accounting answered (an Accounting-Request
//!    stored or forwarded first, [`accounting`]); an Access-Request's
//!    user name, lock and password read, then dispatched to its first factor
//!    (or to the challenge it answers); lockout bookkeeping on the decision.
//! 3. First factor: [`local`] (`local` and `none`, at a fixed argon2 cost,
//!    with [`password`]), [`ldap`], [`radius`]; [`second`] picks the second
//!    factor after an external one.
//! 4. Second factor: [`codes`] (TOTP/HOTP and PINs), [`sms`] (one-way SMS),
//!    [`oob`] (two-way SMS, call, push), [`gateway`] (what they share,
//!    `fail_mode`), [`challenge`] (Access-Challenge sessions and answers).
//!    [`pinchange`]: an Accept withheld until a user who must change their
//!    PIN has chosen a new one (its prompts in [`pin_texts`]).
//! 5. [`reply`]: the decision counted, logged, audited and encoded.
//!
//! [`lockshare`] counts failed second factors on the primary (lockout
//! across nodes). [`node`] holds what every step shares; [`decision`] is the typed outcome
//! (a leaf: lockout reads it without the pipeline); [`portal`] is the
//! self-service portal's door into the same checks.

pub mod decision;

mod access;
mod accounting;
mod challenge;
mod codes;
mod gateway;
mod ingress;
mod ldap;
mod local;
mod lockshare;
mod login;
mod node;
mod oob;
mod password;
mod pin_texts;
mod pinchange;
mod portal;
mod push;
mod radius;
mod reload;
mod reply;
mod second;
mod session;
mod sms;

pub(crate) use decision::disabled_audit_reason;
pub use decision::OnAccept;
pub use node::{Node, NodeParts, SyncRestart};
pub(crate) use portal::PortalFirstFactor;
pub use reload::{ReloadError, Reloaded};
pub use session::{ChallengeOrigin, PendingChallenge, PendingPinChange};
