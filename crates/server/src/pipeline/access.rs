//! Step 2, access: answers Status-Server and Accounting-Request (once
//! `accounting.rs` stored or forwarded it), and
//! decides an Access-Request: reads its user name and password, applies the
//! lock and per-user rate limit, dispatches it to its first factor (or to
//! the challenge it answers), then lets lockout bookkeeping have the last
//! word before the reply is built.

use std::net::SocketAddr;
use std::sync::Arc;

use radmfa_radius::{reply_messages, AttrType, Code, Packet};
use tracing::{debug, Instrument};
use zeroize::Zeroizing;

use super::decision::*;
use super::ingress::{access_span, Via};
use super::login::Login;
use super::node::Node;
use crate::clients::ClientEntry;
use crate::config::FirstFactor;
use crate::counters::bump;
use crate::i18n::Key;

impl Node {
    /// An authentic, new request: answers Status-Server and
    /// Accounting-Request itself; for an Access-Request, takes
    /// [`Node::access_request`]'s decision, lets lockout bookkeeping turn it
    /// into a Reject (a lock it starts, or a user locked meanwhile), and
    /// builds the reply. Records the reply's latency.
    pub(super) async fn process(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        source: SocketAddr,
        via: Via,
    ) -> Option<Arc<[u8]>> {
        let started = self.clock.instant();
        let (code, attrs) = match packet.code {
            Code::STATUS_SERVER => {
                bump(&self.counters.status_server_replies);
                let msg = format!("radmfa {} is up", self.cfg().node_name);
                (Code::ACCESS_ACCEPT, reply_messages(&msg))
            }
            Code::ACCOUNTING_REQUEST => {
                // Answered only once stored or forwarded (RFC 2866 §2).
                if !self.accounting_request(client, packet, source).await {
                    return None;
                }
                bump(&self.counters.accounting_responses);
                (Code::ACCOUNTING_RESPONSE, Vec::new())
            }
            _ => {
                // The span is attached with .instrument: a guard held across
                // .await would leave it entered on the worker thread while
                // the request waits, and every other request's lines would
                // nest inside it.
                let span = access_span(client, packet, source, via);
                let mut decision = self
                    .access_request(client, packet)
                    .instrument(span.clone())
                    .await;
                span.in_scope(|| {
                    debug!(
                        code = %decision.code(),
                        mode = %decision.mode,
                        reason = %decision.reason,
                        "  -> decision"
                    )
                });
                // Lockout bookkeeping (limits.rs); may turn the decision into a Reject.
                if let Some(o) = self.lockout_after(&decision).instrument(span.clone()).await {
                    span.in_scope(|| {
                        debug!(reason = %o.audit_reason(), "  -> lockout turns it into a Reject")
                    });
                    decision = o.reject(&decision.user, decision.mode);
                }
                self.finish(client, packet, source, &decision, &span)
            }
        };
        let reply = self.encode(client, packet, code, attrs);
        let elapsed = self.clock.instant().saturating_duration_since(started);
        (self.counters.replies).record(&client.name, code.0, elapsed);
        reply
    }

    /// Decides an Access-Request: refuses a missing or unsafe user name, a
    /// locked or rate-limited user, a missing or malformed password (CHAP
    /// and EAP are not supported); otherwise the challenge it answers
    /// (State present) or the policy's first factor decides.
    pub(super) async fn access_request(&self, client: &ClientEntry, packet: &Packet) -> Decision {
        let name = match packet.attr(AttrType::USER_NAME).map(|a| a.as_str()) {
            Some(Ok(n)) if !n.is_empty() => n.to_string(),
            _ => {
                return Decision::reject(
                    "",
                    Mode::Unknown,
                    Reason::MissingUserName,
                    Key::NoUserName,
                )
            }
        };
        if name.chars().any(radmfa_store::is_unsafe_char) {
            // No user can have such a name (the store refuses it); what is
            // logged and recorded is the escaped form (text.rs).
            return Decision::reject(
                &crate::text::escape(&name),
                Mode::Unknown,
                Reason::InvalidUserName,
                Key::ControlCharacters,
            );
        }
        // Lock and per-user rate limit (limits.rs), before any factor is checked.
        let now = self.clock.now_unix();
        if let Some(r) = self.limits().gate(&self.store, &self.hot, &name, now) {
            return Decision::reject(&name, Mode::Unknown, r.reason, r.message);
        }
        // One configuration for the whole request, whatever a reload does.
        let cfg = self.cfg();
        let login = Login {
            name: &name,
            client,
            policy: cfg.policy(&client.policy),
            packet,
            end_user: packet
                .attr(AttrType::CALLING_STATION_ID)
                .and_then(|a| a.as_str().ok())
                .and_then(|s| s.parse().ok()),
            first: None,
            on_accept: OnAccept::default(),
        };
        if login.policy.first_factor == FirstFactor::Radius
            && packet.attr(AttrType::USER_PASSWORD).is_none()
            && packet.attr(AttrType::STATE).is_none()
            && is_mschap(packet)
        {
            // MS-CHAPv2 (NPS / RD Gateway): only the upstream can verify it;
            // the second factor must then be out of band.
            return self.radius_first_leg(&login, None, None).await;
        }
        let Some(hidden) = packet.attr(AttrType::USER_PASSWORD) else {
            let (reason, msg) = if packet.attr(AttrType::CHAP_PASSWORD).is_some() {
                (Reason::ChapUnsupported, Key::ChapUnsupported)
            } else if packet.attr(AttrType::EAP_MESSAGE).is_some() {
                (Reason::EapUnsupported, Key::EapUnsupported)
            } else {
                (Reason::MissingPassword, Key::NoPassword)
            };
            return Decision::reject(&name, Mode::Unknown, reason, msg);
        };
        let password = match radmfa_radius::unhide_password(
            &hidden.value,
            client.secret.expose(),
            &packet.authenticator,
        ) {
            Ok(p) => Zeroizing::new(p),
            Err(_) => {
                return Decision::reject(
                    &name,
                    Mode::Unknown,
                    Reason::MalformedPassword,
                    Key::MalformedPassword,
                )
            }
        };
        let decision = match packet.attr(AttrType::STATE) {
            Some(state) => self.challenge_answer(&login, &state.value, &password).await,
            None => match login.policy.first_factor {
                FirstFactor::Radius => self.radius_first_leg(&login, Some(&password), None).await,
                FirstFactor::Ldap => self.ldap_first_leg(&login, &password).await,
                FirstFactor::Local | FirstFactor::None => {
                    self.local_first_leg(&login, &password).await
                }
            },
        };
        // A user who must change their PIN chooses one before the Accept.
        self.pin_change_gate(&login, decision)
    }
}

/// An MS-CHAP or MS-CHAPv2 authentication (Microsoft vendor attributes
/// MS-CHAP-Response 1 or MS-CHAP2-Response 25).
pub(super) fn is_mschap(packet: &Packet) -> bool {
    packet.attrs(AttrType::VENDOR_SPECIFIC).any(|a| {
        a.vendor_parts().is_ok_and(|(vendor, parts)| {
            vendor == radmfa_radius::VENDOR_MICROSOFT
                && parts
                    .iter()
                    .any(|p| p.vendor_type == 1 || p.vendor_type == 25)
        })
    })
}
