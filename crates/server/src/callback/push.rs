//! The push approval page's answers as the delivery sees them: showing the
//! page (what the owner knows about the verification) and the user's
//! decision, judged on the node that owns the verification. The page may be
//! served by any node of a cluster (the notification opens whichever the
//! balancer picks); `deliver.rs` carries these to the owner over the peer
//! link as it carries Twilio's callbacks. Types and judging only: no I/O.

use serde::{Deserialize, Serialize};

use crate::pipeline::Node;
use crate::verifications::{Decided, OobMode, Outcome};

/// What the approval page asks of a push verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PushAction {
    /// What the page shows.
    View,
    /// Approve (with the PIN typed on the page, in PIN mode).
    Approve {
        /// The PIN as typed (empty outside PIN mode; never logged).
        pin: String,
    },
    /// Deny.
    Deny,
    /// "This was not me": a fraud report.
    NotMe,
}

/// What the approval page shows about a pending push verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// The user signing in.
    pub user: String,
    /// The RADIUS client (NAS) by its configured name.
    pub client: String,
    /// The NAS's address.
    pub nas_ip: Option<String>,
    /// Calling-Station-Id.
    pub calling_station: Option<String>,
    /// When the login arrived (unix seconds).
    pub at_unix: u64,
    /// PIN mode: the page asks for the PIN.
    pub pin_mode: bool,
    /// Number matching: the number to type at the prompt.
    pub number: Option<u8>,
}

/// The page of push verification `id` on this node, while it can be
/// answered.
pub fn view_here(node: &Node, id: &str) -> Option<ApprovalView> {
    let v = node.verifications().view(id, node.clock().instant())?;
    if v.mode != OobMode::Push || v.decided {
        return None;
    }
    let c = v.context;
    Some(ApprovalView {
        user: v.user,
        client: c.client,
        nas_ip: c.nas_ip.map(|ip| ip.to_string()),
        calling_station: c.calling_station,
        at_unix: c.at_unix,
        pin_mode: v.pin_mode,
        number: node.push_number(id),
    })
}

/// Decides push verification `id` on this node with `action` (not
/// [`PushAction::View`]); an Approve with a wrong PIN is
/// [`Outcome::WrongPin`].
pub fn decide_here(node: &Node, id: &str, action: &PushAction) -> (Decided, Option<Outcome>) {
    let mut outcome = None;
    let decided = node
        .verifications()
        .decide_with(id, node.clock().instant(), |j| {
            if j.view.mode != OobMode::Push {
                return None;
            }
            let o = match action {
                PushAction::View => return None,
                PushAction::Approve { pin } => match j.pin_matches(pin) {
                    Some(false) => Outcome::WrongPin,
                    _ => Outcome::Approved,
                },
                PushAction::Deny => Outcome::Denied,
                PushAction::NotMe => Outcome::Fraud,
            };
            outcome = Some(o);
            Some(o)
        });
    (decided, outcome)
}
