//! What `radmfa serve --debug` prints about each packet (the counterpart of
//! `radiusd -X`): the decoded attributes, one per line, with secrets masked.
//!
//! User-Password, CHAP-Password, Tunnel-Password and the MS-CHAP and MPPE
//! vendor attributes print as their length only; State, Proxy-State,
//! EAP-Message, Message-Authenticator and other opaque values print their
//! first bytes and their length. The shared secret is never part of a
//! packet and never printed. Formatting happens only when the line is
//! written (the types here implement `Display`), so the default level pays
//! nothing for it.

use std::fmt;
use std::net::SocketAddr;

use radmfa_radius::{AttrType, Attribute, Packet, VENDOR_MICROSOFT};

/// Bytes of an opaque value shown before it is cut.
const SHOWN_BYTES: usize = 8;

/// Attributes whose value is a 32-bit integer.
const INTEGER: &[u8] = &[
    5, 6, 7, 10, 12, 13, 15, 27, 28, 29, 40, 41, 42, 43, 45, 46, 49, 55, 61, 101,
];
/// Attributes whose value is an IPv4 address.
const IPV4: &[u8] = &[4, 8, 9, 14];
/// Attributes whose value is never shown.
const MASKED: &[u8] = &[2, 3, 69];
/// Microsoft vendor types never shown: MS-CHAP-Response (1), MS-CHAP-NT-Enc-PW (6),
/// MS-CHAP-Challenge (11), MPPE keys (12, 16, 17), MS-CHAP2-Response (25),
/// MS-CHAP2-Success (26), MS-CHAP2-CPW (27).
const MS_MASKED: &[u8] = &[1, 6, 11, 12, 16, 17, 25, 26, 27];

/// A packet's attributes, one per line, indented (masked as the module says).
pub struct Attrs<'a>(pub &'a [Attribute]);

impl fmt::Display for Attrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in self.0 {
            write!(f, "\n  {}", One(a))?;
        }
        Ok(())
    }
}

/// One attribute as `Name = value`, masked as the module says.
pub struct One<'a>(pub &'a Attribute);

impl fmt::Display for One<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{} = ", a.typ)?;
        let t = a.typ.0;
        if MASKED.contains(&t) {
            return write!(f, "<masked, {} octets>", a.value.len());
        }
        if a.typ == AttrType::VENDOR_SPECIFIC {
            return vendor(f, a);
        }
        if IPV4.contains(&t) {
            if let Ok(ip) = a.as_ipv4() {
                return write!(f, "{ip}");
            }
        }
        if a.typ == AttrType::NAS_IPV6_ADDRESS {
            if let Ok(ip) = a.as_ipv6() {
                return write!(f, "{ip}");
            }
        }
        if INTEGER.contains(&t) {
            if let Ok(n) = a.as_u32() {
                return write!(f, "{n}");
            }
        }
        let opaque = matches!(t, 24 | 25 | 33 | 79 | 80) || a.typ.name().is_none();
        match (opaque, std::str::from_utf8(&a.value)) {
            (false, Ok(s)) if !s.chars().any(char::is_control) => write!(f, "{s:?}"),
            _ => short_hex(f, &a.value),
        }
    }
}

fn vendor(f: &mut fmt::Formatter<'_>, a: &Attribute) -> fmt::Result {
    let Ok((id, parts)) = a.vendor_parts() else {
        return short_hex(f, &a.value);
    };
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "vendor {id} type {} ", p.vendor_type)?;
        if id == VENDOR_MICROSOFT && MS_MASKED.contains(&p.vendor_type) {
            write!(f, "<masked, {} octets>", p.value.len())?;
        } else {
            match std::str::from_utf8(&p.value) {
                Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => write!(f, "{s:?}")?,
                _ => short_hex(f, &p.value)?,
            }
        }
    }
    Ok(())
}

/// `0x` and the first bytes in hex; the length when cut.
fn short_hex(f: &mut fmt::Formatter<'_>, v: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in v.iter().take(SHOWN_BYTES) {
        write!(f, "{b:02x}")?;
    }
    if v.len() > SHOWN_BYTES {
        write!(f, "... ({} octets)", v.len())?;
    }
    Ok(())
}

/// A received datagram: decoded when it decodes, otherwise its length and
/// the decoder's error.
pub struct Received<'a> {
    /// The raw packet.
    pub buf: &'a [u8],
    /// Where it came from.
    pub source: SocketAddr,
    /// How it arrived ("UDP", "RadSec", "peer node 2").
    pub via: &'a dyn fmt::Display,
}

impl fmt::Display for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Packet::decode(self.buf) {
            Ok(p) => write!(
                f,
                "received {} id {} from {} via {}, {} octets{}",
                p.code,
                p.identifier,
                self.source,
                self.via,
                self.buf.len(),
                Attrs(&p.attributes)
            ),
            Err(e) => write!(
                f,
                "received {} octets from {} via {} that do not decode: {e}",
                self.buf.len(),
                self.source,
                self.via
            ),
        }
    }
}

/// A reply about to be sent (the encoded bytes, so Message-Authenticator and
/// Proxy-State show as they go out).
pub struct Sending<'a> {
    /// The encoded reply.
    pub buf: &'a [u8],
    /// Where it goes.
    pub to: SocketAddr,
}

impl fmt::Display for Sending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Packet::decode(self.buf) {
            Ok(p) => write!(
                f,
                "sending {} id {} to {}, {} octets{}",
                p.code,
                p.identifier,
                self.to,
                self.buf.len(),
                Attrs(&p.attributes)
            ),
            Err(e) => write!(
                f,
                "sending {} octets to {} (undecodable: {e})",
                self.buf.len(),
                self.to
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radmfa_radius::Code;

    #[test]
    fn secrets_are_masked_and_values_readable() {
        let state = (0u8..32).collect::<Vec<u8>>();
        let p = Packet {
            code: Code::ACCESS_REQUEST,
            identifier: 7,
            authenticator: [1; 16],
            attributes: vec![
                Attribute::string(AttrType::USER_NAME, "alice"),
                Attribute::new(AttrType::USER_PASSWORD, b"hunter2-secret!!".to_vec()),
                Attribute::ipv4(AttrType::NAS_IP_ADDRESS, [10, 0, 0, 5].into()),
                Attribute::u32(AttrType::NAS_PORT, 12),
                Attribute::new(AttrType::STATE, state),
                Attribute::vendor(VENDOR_MICROSOFT, 25, b"nt-response-bytes").unwrap(),
                Attribute::vendor(9, 1, b"shell:priv-lvl=15").unwrap(),
                Attribute::new(AttrType(69), b"tunnelpw".to_vec()),
            ],
        };
        let buf = p.encode().unwrap();
        let via: &dyn fmt::Display = &"UDP";
        let text = Received {
            buf: &buf,
            source: "127.0.0.1:5000".parse().unwrap(),
            via,
        }
        .to_string();
        let expected = [
            "received Access-Request id 7 from 127.0.0.1:5000 via UDP, ",
            "\n  User-Name = \"alice\"",
            "\n  User-Password = <masked, 16 octets>",
            "\n  NAS-IP-Address = 10.0.0.5",
            "\n  NAS-Port = 12",
            "\n  State = 0x0001020304050607... (32 octets)",
            "\n  Vendor-Specific = vendor 311 type 25 <masked, 17 octets>",
            "\n  Vendor-Specific = vendor 9 type 1 \"shell:priv-lvl=15\"",
            "\n  Attr(69) = <masked, 8 octets>",
        ];
        for e in expected {
            assert!(text.contains(e), "missing {e:?} in:\n{text}");
        }
        for secret in ["hunter2", "nt-response", "tunnelpw", "08090a0b"] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
    }

    #[test]
    fn undecodable_packets_say_why() {
        let via: &dyn fmt::Display = &"RadSec";
        let text = Received {
            buf: &[1, 2, 0, 50],
            source: "127.0.0.1:5000".parse().unwrap(),
            via,
        }
        .to_string();
        assert!(
            text.starts_with(
                "received 4 octets from 127.0.0.1:5000 via RadSec that do not decode: "
            ),
            "{text}"
        );
    }
}
