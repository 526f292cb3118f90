//! Step 5, reply: a decision counted, logged on the request's span,
//! written to the audit log, and encoded (group attributes, Proxy-State,
//! Message-Authenticator first).

use std::net::SocketAddr;
use std::sync::Arc;

use radmfa_radius::{encode_reply, reply_messages, AttrType, Attribute, Code, Packet};
use radmfa_store::AuditRecord;
use tracing::{info, warn, Span};

use super::decision::*;
use super::node::Node;
use crate::clients::ClientEntry;
use crate::counters::bump;
use crate::i18n::{choose, Lang};

impl Node {
    /// Encodes the reply to `packet` (Proxy-State copied, signed for `client`).
    pub(super) fn encode(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        code: Code,
        mut attrs: Vec<Attribute>,
    ) -> Option<Arc<[u8]>> {
        // RFC 2865 §5.33: Proxy-State is copied unmodified, in order.
        attrs.extend(packet.attrs(AttrType::PROXY_STATE).cloned());
        match encode_reply(
            code,
            packet.identifier,
            &packet.authenticator,
            &attrs,
            client.secret.expose(),
        ) {
            Ok(bytes) => Some(Arc::from(bytes)),
            Err(e) => {
                warn!(client = %client.name, error = %e, "cannot encode the reply; request dropped");
                None
            }
        }
    }

    /// Turns a decision into the reply's code and attributes (Reply-Message,
    /// State, Session-Timeout, carried attributes, group attributes on an
    /// Accept), after counting it, logging the request's one INFO line and
    /// writing its audit record.
    pub(super) fn finish(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        source: SocketAddr,
        d: &Decision,
        span: &Span,
    ) -> (Code, Vec<Attribute>) {
        bump(match d.answer {
            Answer::Accept => &self.counters.access_accepts,
            Answer::Challenge => &self.counters.access_challenges,
            Answer::Reject => &self.counters.access_rejects,
        });
        let result = d.answer.as_str();
        self.counters
            .replies
            .record_outcome(d.mode.method(), d.answer);
        let reason = d.audit_reason();
        span.record("user", d.user.as_str());
        span.record("outcome", result);
        span.in_scope(|| info!(mode = %d.mode, reason = %reason, "{result}"));
        let calling_station = packet
            .attr(AttrType::CALLING_STATION_ID)
            .and_then(|a| a.as_str().ok())
            .unwrap_or("")
            .to_string();
        self.audit.record(AuditRecord {
            time_ms: self.clock.now_unix_ms(),
            user: d.user.clone(),
            mode: d.mode.to_string(),
            result: result.to_string(),
            reason: reason.into_owned(),
            server_name: self.cfg().node_name.clone(),
            server_ip: self.cfg().server_ip.clone(),
            client_name: client.name.clone(),
            client_ip: source.ip().to_string(),
            calling_station,
            ..AuditRecord::default()
        });
        let mut attrs = if d.message.is_empty() {
            Vec::new()
        } else {
            reply_messages(&d.message.render(self.reader_language(client, &d.user)))
        };
        if let Some(state) = &d.state {
            attrs.push(Attribute::new(AttrType::STATE, state.clone()));
        }
        if let Some(t) = d.session_timeout {
            attrs.push(Attribute::u32(AttrType::SESSION_TIMEOUT, t));
        }
        attrs.extend(d.attrs.iter().cloned());
        if d.answer == Answer::Accept {
            let cfg = self.cfg();
            for (group, extra) in &cfg.group_attributes {
                if d.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                    attrs.extend(extra.iter().cloned());
                }
            }
        }
        (d.code(), attrs)
    }

    /// The language `user` (under `policy`) reads an SMS or a call in.
    pub(super) fn language_of(
        &self,
        policy: &crate::config::Policy,
        user: &radmfa_store::User,
    ) -> Lang {
        choose(
            Some(&user.language),
            policy.language,
            self.cfg().i18n.default_language,
        )
    }

    /// The language `user` reads replies in: their own `language`, else
    /// their client's policy's, else `[i18n] default_language`. The record
    /// comes from the user cache the decision just read it into; an
    /// unknown user reads the policy's language.
    pub(super) fn reader_language(&self, client: &ClientEntry, user: &str) -> Lang {
        let cfg = self.cfg();
        let cached = if user.is_empty() {
            None
        } else {
            self.hot.user(&self.store, user).ok().flatten()
        };
        choose(
            cached.as_ref().map(|c| c.user.language.as_str()),
            cfg.policy(&client.policy).language,
            cfg.i18n.default_language,
        )
    }
}
