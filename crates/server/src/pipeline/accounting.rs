//! Accounting-Request (RFC 2866): what the client's policy says
//! (`accounting = "store" | "forward:NAME" | "both:NAME" | "discard"`) is
//! done before the Accounting-Response goes out (RFC 2866 §2: a server
//! answers only once it has recorded the request). Stored records go to
//! the audit journal as [`AuditRecord`]s carrying an [`AccountingInfo`]
//! (reports leave them out; `radmfa report --accounting` reads them). A
//! forward that fails, or a journal that cannot be written, gets no
//! answer: the NAS sends the request again. Its own file because it is the
//! one request kind that is kept rather than decided.

use std::net::SocketAddr;

use radmfa_radius::{AttrType, Packet};
use radmfa_store::{AccountingInfo, AuditRecord};
use tracing::{debug, warn};

use super::node::Node;
use crate::clients::ClientEntry;

/// `mode` of an accounting record in the audit journal.
pub const ACCOUNTING_MODE: &str = "accounting";

impl Node {
    /// Does with an authentic Accounting-Request what the client's policy
    /// says; true when it is done and the request may be answered.
    pub(super) async fn accounting_request(
        &self,
        client: &ClientEntry,
        packet: &Packet,
        source: SocketAddr,
    ) -> bool {
        let cfg = self.cfg();
        let how = &cfg.policy(&client.policy).accounting;
        if let Some(name) = how.forward_to() {
            let upstreams = self.upstreams();
            let Some(upstream) = upstreams.get(name) else {
                // Validated at start-up: every forward names a group.
                warn!(
                    upstream = name,
                    "accounting upstream missing; request not answered"
                );
                return false;
            };
            if let Err(e) = upstream.account(packet).await {
                // Upstream::account logs it at WARN, rate limited.
                debug!(error = %e, client = %client.name, "Accounting-Request not forwarded; not answered");
                return false;
            }
        }
        if !how.stores() {
            return true;
        }
        let rec = accounting_record(self, client, packet, source);
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.append_audit(&rec)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(error = %e, client = %client.name, "cannot write an accounting record to the audit journal: the request is not answered (the NAS sends it again); check the disk of the data directory");
                false
            }
            Err(e) => {
                warn!(error = %e, "accounting writer task failed");
                false
            }
        }
    }
}

/// The journal record of `packet` from `client`.
fn accounting_record(
    node: &Node,
    client: &ClientEntry,
    packet: &Packet,
    source: SocketAddr,
) -> AuditRecord {
    let text = |t: AttrType| text_attr(packet, t);
    let info = accounting_info(packet);
    AuditRecord {
        time_ms: node.clock.now_unix_ms(),
        user: text(AttrType::USER_NAME),
        mode: ACCOUNTING_MODE.to_string(),
        result: info.status.clone(),
        reason: String::new(),
        server_name: node.cfg().node_name.clone(),
        server_ip: node.cfg().server_ip.clone(),
        client_name: client.name.clone(),
        client_ip: source.ip().to_string(),
        calling_station: text(AttrType::CALLING_STATION_ID),
        accounting: Some(info),
        ..AuditRecord::default()
    }
}

/// The accounting attributes of `packet` (absent ones empty or 0).
pub fn accounting_info(packet: &Packet) -> AccountingInfo {
    let int = |t: AttrType| packet.attr(t).and_then(|a| a.as_u32().ok());
    let text = |t: AttrType| text_attr(packet, t);
    let octets = |low: AttrType, giga: AttrType| {
        (u64::from(int(giga).unwrap_or(0)) << 32) | u64::from(int(low).unwrap_or(0))
    };
    let nas_ip = match packet.attr(AttrType::NAS_IP_ADDRESS).map(|a| a.as_ipv4()) {
        Some(Ok(ip)) => ip.to_string(),
        _ => packet
            .attr(AttrType::NAS_IPV6_ADDRESS)
            .and_then(|a| a.as_ipv6().ok())
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
    };
    AccountingInfo {
        status: int(AttrType::ACCT_STATUS_TYPE)
            .map(|v| status_name(v).map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default(),
        session_id: text(AttrType::ACCT_SESSION_ID),
        nas_ip,
        nas_identifier: text(AttrType::NAS_IDENTIFIER),
        framed_ip: packet
            .attr(AttrType::FRAMED_IP_ADDRESS)
            .and_then(|a| a.as_ipv4().ok())
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        input_octets: octets(AttrType::ACCT_INPUT_OCTETS, AttrType::ACCT_INPUT_GIGAWORDS),
        output_octets: octets(
            AttrType::ACCT_OUTPUT_OCTETS,
            AttrType::ACCT_OUTPUT_GIGAWORDS,
        ),
        session_time: int(AttrType::ACCT_SESSION_TIME).map_or(0, u64::from),
        terminate_cause: int(AttrType::ACCT_TERMINATE_CAUSE)
            .map(|v| terminate_cause_name(v).map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default(),
    }
}

/// A text attribute of `packet`, control characters escaped (text.rs);
/// empty when absent or not UTF-8.
fn text_attr(packet: &Packet, t: AttrType) -> String {
    packet
        .attr(t)
        .and_then(|a| a.as_str().ok())
        .map(|s| crate::text::escape(s).into_owned())
        .unwrap_or_default()
}

/// Acct-Status-Type values (RFC 2866 §5.1).
fn status_name(v: u32) -> Option<&'static str> {
    Some(match v {
        1 => "start",
        2 => "stop",
        3 => "interim-update",
        7 => "accounting-on",
        8 => "accounting-off",
        _ => return None,
    })
}

/// Acct-Terminate-Cause values (RFC 2866 §5.10).
fn terminate_cause_name(v: u32) -> Option<&'static str> {
    const NAMES: [&str; 18] = [
        "User-Request",
        "Lost-Carrier",
        "Lost-Service",
        "Idle-Timeout",
        "Session-Timeout",
        "Admin-Reset",
        "Admin-Reboot",
        "Port-Error",
        "NAS-Error",
        "NAS-Request",
        "NAS-Reboot",
        "Port-Unneeded",
        "Port-Preempted",
        "Port-Suspended",
        "Service-Unavailable",
        "Callback",
        "User-Error",
        "Host-Request",
    ];
    let i = usize::try_from(v).ok()?.checked_sub(1)?;
    NAMES.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Accounting;
    use radmfa_radius::{Attribute, Code};

    fn packet(attrs: Vec<Attribute>) -> Packet {
        Packet {
            code: Code::ACCOUNTING_REQUEST,
            identifier: 1,
            authenticator: [0; 16],
            attributes: attrs,
        }
    }

    #[test]
    fn octets_add_their_gigawords_and_values_are_named() {
        let p = packet(vec![
            Attribute::string(AttrType::USER_NAME, "alice"),
            Attribute::u32(AttrType::ACCT_STATUS_TYPE, 2),
            Attribute::string(AttrType::ACCT_SESSION_ID, "S-1"),
            Attribute::ipv4(AttrType::NAS_IP_ADDRESS, [192, 0, 2, 1].into()),
            Attribute::string(AttrType::NAS_IDENTIFIER, "vpn-1"),
            Attribute::ipv4(AttrType::FRAMED_IP_ADDRESS, [10, 8, 0, 7].into()),
            Attribute::u32(AttrType::ACCT_INPUT_OCTETS, 5),
            Attribute::u32(AttrType::ACCT_INPUT_GIGAWORDS, 2),
            Attribute::u32(AttrType::ACCT_OUTPUT_OCTETS, 4_294_967_295),
            Attribute::u32(AttrType::ACCT_SESSION_TIME, 3600),
            Attribute::u32(AttrType::ACCT_TERMINATE_CAUSE, 18),
        ]);
        let i = accounting_info(&p);
        assert_eq!(i.status, "stop");
        // 2 x 2^32 + 5 (RFC 2869 §5.1).
        assert_eq!(i.input_octets, 8_589_934_597);
        assert_eq!(i.output_octets, 4_294_967_295);
        assert_eq!(i.session_time, 3600);
        assert_eq!(i.terminate_cause, "Host-Request");
        assert_eq!(
            (
                i.nas_ip.as_str(),
                i.nas_identifier.as_str(),
                i.framed_ip.as_str()
            ),
            ("192.0.2.1", "vpn-1", "10.8.0.7")
        );
        assert_eq!(i.session_id, "S-1");
        // Unknown values keep their number; absent ones are empty.
        let p = packet(vec![
            Attribute::u32(AttrType::ACCT_STATUS_TYPE, 15),
            Attribute::u32(AttrType::ACCT_TERMINATE_CAUSE, 99),
        ]);
        let i = accounting_info(&p);
        assert_eq!(
            (i.status.as_str(), i.terminate_cause.as_str()),
            ("15", "99")
        );
        assert_eq!(
            (i.input_octets, i.session_time, i.nas_ip.as_str()),
            (0, 0, "")
        );
        assert_eq!(
            accounting_info(&packet(vec![Attribute::u32(AttrType::ACCT_STATUS_TYPE, 7)])).status,
            "accounting-on"
        );
    }

    #[test]
    fn modes_say_what_they_keep() {
        assert!(Accounting::Store.stores() && Accounting::Store.forward_to().is_none());
        assert!(!Accounting::Discard.stores() && Accounting::Discard.forward_to().is_none());
        let both = Accounting::Both("acct".into());
        assert!(both.stores() && both.forward_to() == Some("acct"));
        let fwd = Accounting::Forward("acct".into());
        assert!(!fwd.stores() && fwd.forward_to() == Some("acct"));
    }
}
