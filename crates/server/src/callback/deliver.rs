//! Delivering a user's answer to the verification it belongs to, on this
//! node or on its owner over the peer link.
//!
//! A callback reaches whichever node the reverse proxy picked. The answer is
//! carried as it arrived ([`Answer`]: keys pressed, a call's end, an SMS
//! reply) and judged only on the node that owns the verification, which
//! holds its PIN and its waiting login; a node that does not own it sends it
//! there as a Verdict frame. Ids name their owner (`verifications::owner`);
//! an SMS reply names it through its reference (`reference_owner`). A reply
//! without a reference is matched by the sender's number on this node; when
//! none waits here the peers are asked one after another (not at once), and
//! the first that has exactly one verification for that number decides it,
//! so one reply never decides two logins.

use crate::i18n::Lang;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::push::{ApprovalView, PushAction};
use crate::pipeline::Node;
use crate::verifications::{owner, reference_owner, Decided, OobMode, Outcome};

/// How long a node waits for the owner's account of a forwarded answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// A user's answer as the provider reported it, not yet judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// Keys pressed in a call (`Digits` of the `<Gather action>`).
    Keys {
        /// The verification.
        id: String,
        /// The digits (in PIN mode the PIN: never logged).
        digits: String,
    },
    /// A call's final status (`CallStatus` of the `StatusCallback`).
    CallEnded {
        /// The verification.
        id: String,
        /// The status as Twilio sent it.
        status: String,
    },
    /// The push approval page: shown, or answered.
    Push {
        /// The verification.
        id: String,
        /// What the page asks.
        #[serde(flatten)]
        action: PushAction,
    },
    /// A two-way SMS reply.
    SmsReply {
        /// The sender's number (`From`).
        from: String,
        /// Yes or no.
        approve: bool,
        /// The reference typed, if any.
        reference: Option<String>,
    },
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Delivered {
    /// What the push approval page shows (nothing decided).
    Page {
        /// The verification as its owner knows it.
        view: ApprovalView,
    },
    /// It decided the verification with this outcome.
    Done {
        /// The outcome (stable name).
        outcome: Outcome,
        /// The user's language ("nl"), for what the callback answers them
        /// (absent from an older node: English).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lang: Option<String>,
    },
    /// Nothing to act on (a progress status of a call). Nothing changed.
    Ignored,
    /// No such verification (never opened, expired, finished, or the
    /// answer does not fit it). Nothing changed.
    Unknown,
    /// Decided before (a replay or a second callback). Nothing changed.
    AlreadyDecided,
    /// Several verifications wait for this number and the reply names none
    /// of them. Nothing changed.
    Ambiguous,
    /// The owner could not be reached over the peer link. Nothing changed.
    OwnerUnreachable,
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Outcome::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown outcome"))
    }
}

fn of(decided: Decided, outcome: Option<Outcome>, lang: Option<Lang>) -> Delivered {
    match (decided, outcome) {
        (Decided::Done, Some(outcome)) => Delivered::Done {
            outcome,
            lang: lang.map(|l| l.code().to_string()),
        },
        (Decided::AlreadyDecided, _) => Delivered::AlreadyDecided,
        _ => Delivered::Unknown,
    }
}

/// Delivers `answer`: decided here when this node owns it, else sent to
/// the owner.
pub async fn deliver(node: &Node, answer: Answer) -> Delivered {
    let me = node.config().node_id;
    let owner = match &answer {
        Answer::Keys { id, .. } | Answer::CallEnded { id, .. } | Answer::Push { id, .. } => {
            owner(id)
        }
        Answer::SmsReply {
            reference: Some(r), ..
        } => reference_owner(r),
        Answer::SmsReply {
            reference: None, ..
        } => return sms_without_reference(node, answer).await,
    };
    match owner {
        None => Delivered::Unknown,
        Some(o) if o == me => decide_here(node, &answer),
        Some(o) => forward(node, o, &answer).await,
    }
}

/// An SMS reply without a reference: this node first, then each peer.
async fn sms_without_reference(node: &Node, answer: Answer) -> Delivered {
    let here = decide_here(node, &answer);
    if here != Delivered::Unknown {
        return here;
    }
    let Some(peers) = node.peers() else {
        return here;
    };
    for peer in peers.peer_ids() {
        match forward(node, peer, &answer).await {
            Delivered::Unknown | Delivered::OwnerUnreachable => continue,
            other => return other,
        }
    }
    Delivered::Unknown
}

/// Sends `answer` to node `owner` and returns its account.
async fn forward(node: &Node, owner: u16, answer: &Answer) -> Delivered {
    let Some(peers) = node.peers().filter(|p| p.knows(owner)) else {
        debug!(
            owner,
            "answer for a verification of a node that is not a peer"
        );
        return Delivered::Unknown;
    };
    let Ok(body) = serde_json::to_vec(answer) else {
        return Delivered::Unknown;
    };
    match peers.verdict(owner, body, FORWARD_TIMEOUT).await {
        Ok(reply) => serde_json::from_slice(&reply).unwrap_or(Delivered::Unknown),
        Err(e) => {
            warn!(owner, error = %e, "cannot hand an out-of-band answer to the node that owns the verification; the sign-in will time out");
            Delivered::OwnerUnreachable
        }
    }
}

/// An answer a peer forwarded (JSON): decided here only, never forwarded
/// again. Returns the account (JSON).
pub fn answer_forwarded(node: &Node, body: &[u8]) -> Vec<u8> {
    let delivered = match serde_json::from_slice::<Answer>(body) {
        Ok(answer) => decide_here(node, &answer),
        Err(e) => {
            debug!(error = %e, "malformed forwarded answer");
            Delivered::Unknown
        }
    };
    serde_json::to_vec(&delivered).unwrap_or_default()
}

/// Judges and decides `answer` against this node's registry.
pub fn decide_here(node: &Node, answer: &Answer) -> Delivered {
    let now = node.clock().instant();
    let registry = node.verifications();
    let fraud_key = node.config().oob.fraud_key;
    let mut outcome = None;
    let mut lang = None;
    let decided = match answer {
        Answer::Keys { id, digits } => registry.decide_with(id, now, |j| {
            (j.view.mode == OobMode::Call).then(|| {
                use radmfa_gateway::Keys;
                let o = match radmfa_gateway::read_keys(digits, j.view.pin_mode, fraud_key) {
                    Keys::Approve => Outcome::Approved,
                    Keys::Fraud => Outcome::Fraud,
                    Keys::Nothing => Outcome::NoInput,
                    Keys::Other => Outcome::Denied,
                    Keys::Pin(p) if j.pin_matches(p) == Some(true) => Outcome::Approved,
                    Keys::Pin(_) => Outcome::WrongPin,
                };
                outcome = Some(o);
                o
            })
        }),
        Answer::CallEnded { id, status } => {
            use radmfa_gateway::CallEnd;
            let o = match radmfa_gateway::call_end(status) {
                None => return Delivered::Ignored,
                // Answered and ended before any key reached the Gather.
                Some(CallEnd::Completed) => Outcome::NoInput,
                Some(CallEnd::Busy) => Outcome::CallBusy,
                Some(CallEnd::NoAnswer) => Outcome::CallNoAnswer,
                Some(CallEnd::Failed) => Outcome::CallFailed,
                Some(CallEnd::Canceled) => Outcome::CallCanceled,
            };
            registry.decide_with(id, now, |j| {
                (j.view.mode == OobMode::Call).then(|| {
                    outcome = Some(o);
                    o
                })
            })
        }
        Answer::Push {
            id,
            action: PushAction::View,
        } => {
            return super::push::view_here(node, id)
                .map_or(Delivered::Unknown, |view| Delivered::Page { view })
        }
        Answer::Push { id, action } => {
            let (d, o) = super::push::decide_here(node, id, action);
            outcome = o;
            d
        }
        Answer::SmsReply {
            from,
            approve,
            reference,
        } => {
            let mut waiting = registry.find_by_phone(from, now);
            waiting.retain(|v| v.mode == OobMode::TwoWaySms);
            if let Some(r) = reference {
                waiting.retain(|v| v.reference.as_deref() == Some(r.as_str()));
            }
            let [only] = waiting.as_slice() else {
                return if waiting.is_empty() {
                    Delivered::Unknown
                } else {
                    Delivered::Ambiguous
                };
            };
            let o = if *approve {
                Outcome::Approved
            } else {
                Outcome::Denied
            };
            outcome = Some(o);
            lang = Some(only.lang);
            registry.decide(&only.id, o, now)
        }
    };
    of(decided, outcome, lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of the Verdict frames is a wire format between nodes of
    /// possibly different versions: pinned here.
    #[test]
    fn wire_form_is_stable() {
        let keys = Answer::Keys {
            id: "n1-00".into(),
            digits: "#".into(),
        };
        assert_eq!(
            serde_json::to_string(&keys).unwrap(),
            r##"{"kind":"keys","id":"n1-00","digits":"#"}"##
        );
        let reply: Answer = serde_json::from_str(
            r#"{"kind":"sms_reply","from":"+15550000001","approve":false,"reference":null}"#,
        )
        .unwrap();
        assert_eq!(
            reply,
            Answer::SmsReply {
                from: "+15550000001".into(),
                approve: false,
                reference: None
            }
        );
        let done = Delivered::Done {
            outcome: Outcome::CallNoAnswer,
            lang: None,
        };
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"result":"done","outcome":"call_no_answer"}"#
        );
        for o in Outcome::ALL {
            let d = Delivered::Done {
                outcome: *o,
                lang: Some("nl".into()),
            };
            let back: Delivered = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
            assert_eq!(back, d);
        }
        assert!(
            serde_json::from_str::<Delivered>(r#"{"result":"done","outcome":"maybe"}"#).is_err()
        );
    }
}
