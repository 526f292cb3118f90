//! Web Push for sign-in approvals without a vendor app: the cluster's VAPID
//! key ([`vapid`]), the sender ([`send`]) and the numbers of number
//! matching ([`numbers`]). The portal registers browsers
//! (portal/devices.rs) and shows the approval page (portal/approve.rs); the
//! pipeline sends and waits (pipeline/push.rs). This module only declares
//! and re-exports.

pub mod numbers;
pub mod send;
pub mod vapid;

pub use numbers::MatchNumbers;
pub use send::{Delivery, Pusher};
pub use vapid::VapidKey;
