//! Packet framing (RFC 2865 §3): header, length and the attribute list.

use crate::attribute::{Attribute, MAX_VALUE_LEN};
use crate::error::Error;
use crate::types::{AttrType, Code};

/// Largest RADIUS packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;

/// Size of the fixed header: Code, Identifier, Length, Authenticator.
pub const HEADER_LEN: usize = 20;

/// A decoded RADIUS packet.
///
/// Decoding and encoding are raw: the authenticator is carried as it is and
/// no password is revealed. Authentication lives in the free functions of
/// this crate (`encode_reply`, `verify_response`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Packet type.
    pub code: Code,
    /// Matches replies to requests.
    pub identifier: u8,
    /// Request or Response Authenticator as it is on the wire.
    pub authenticator: [u8; 16],
    /// Attributes in wire order.
    pub attributes: Vec<Attribute>,
}

/// An attribute seen in place inside a raw packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAttr<'a> {
    /// Offset of the attribute's Type byte from the start of the packet.
    pub offset: usize,
    pub typ: AttrType,
    pub value: &'a [u8],
}

/// Checks the header and returns the packet cut to its Length field (bytes
/// past Length are padding and ignored, RFC 2865 §3).
pub(crate) fn frame(buf: &[u8]) -> Result<&[u8], Error> {
    let (header, _) = buf
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(Error::TooShort)?;
    let length = u16::from_be_bytes([header[2], header[3]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) || len > buf.len() {
        return Err(Error::BadLength {
            length,
            received: buf.len(),
        });
    }
    buf.get(..len).ok_or(Error::BadLength {
        length,
        received: buf.len(),
    })
}

/// Iterates over the attributes of a framed packet (as returned by
/// [`frame`]), yielding an error (and then stopping) at the first malformed
/// one.
pub(crate) struct RawAttrs<'a> {
    packet: &'a [u8],
    pos: usize,
}

impl<'a> RawAttrs<'a> {
    pub(crate) fn new(packet: &'a [u8]) -> Self {
        RawAttrs {
            packet,
            pos: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = Result<RawAttr<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.pos;
        let rest = self.packet.get(offset..)?;
        if rest.is_empty() {
            return None;
        }
        // Stop after this item whatever happens; set back on success.
        self.pos = self.packet.len();
        let Some((&[typ, len], _)) = rest.split_first_chunk::<2>() else {
            return Some(Err(Error::AttributeOverrun {
                offset,
                length: 2,
                remaining: rest.len(),
            }));
        };
        if len < 2 {
            return Some(Err(Error::AttributeTooShort {
                offset,
                length: len,
            }));
        }
        let Some(value) = rest.get(2..usize::from(len)) else {
            return Some(Err(Error::AttributeOverrun {
                offset,
                length: usize::from(len),
                remaining: rest.len(),
            }));
        };
        self.pos = offset + usize::from(len);
        Some(Ok(RawAttr {
            offset,
            typ: AttrType(typ),
            value,
        }))
    }
}

/// Where the single Message-Authenticator of a packet is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaPosition {
    Absent,
    /// Offset of the 16-byte value inside the packet.
    At(usize),
    /// More than one, or a value that is not 16 bytes.
    Malformed,
}

/// Validates every attribute of a framed packet and locates its
/// Message-Authenticator.
pub(crate) fn scan_message_authenticator(packet: &[u8]) -> Result<MaPosition, Error> {
    let mut found = MaPosition::Absent;
    for a in RawAttrs::new(packet) {
        let a = a?;
        if a.typ == AttrType::MESSAGE_AUTHENTICATOR {
            found = match found {
                MaPosition::Absent if a.value.len() == 16 => MaPosition::At(a.offset + 2),
                _ => MaPosition::Malformed,
            };
        }
    }
    Ok(found)
}

/// Encoded size of a header plus `attributes`, checking every value length.
/// `extra` counts bytes the caller adds besides `attributes` (such as a
/// Message-Authenticator).
pub(crate) fn encoded_len<'a>(
    attributes: impl IntoIterator<Item = &'a Attribute>,
    extra: usize,
) -> Result<usize, Error> {
    let mut total = HEADER_LEN + extra;
    for a in attributes {
        if a.value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLong {
                typ: a.typ,
                len: a.value.len(),
            });
        }
        total += 2 + a.value.len();
    }
    if total > MAX_PACKET_LEN {
        return Err(Error::PacketTooLong);
    }
    Ok(total)
}

/// Appends one attribute; its length was checked by [`encoded_len`].
pub(crate) fn put_attribute(out: &mut Vec<u8>, typ: AttrType, value: &[u8]) {
    out.push(typ.0);
    // Lengths are at most 255: checked by `encoded_len` before any write.
    out.push((value.len() + 2) as u8);
    out.extend_from_slice(value);
}

/// Appends a header; `len` was checked by [`encoded_len`].
pub(crate) fn put_header(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    len: usize,
    auth: &[u8; 16],
) {
    out.push(code.0);
    out.push(identifier);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(auth);
}

impl Packet {
    /// Decodes a datagram (RFC 2865 §3).
    ///
    /// The Length field must be within 20..=4096 and not exceed the datagram;
    /// bytes past Length are padding and ignored. Every attribute must have a
    /// length of at least 2 and fit inside the packet. Never panics.
    pub fn decode(buf: &[u8]) -> Result<Packet, Error> {
        let packet = frame(buf)?;
        let (header, _) = packet
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Error::TooShort)?;
        let (fixed, auth) = header.split_at(4);
        let authenticator: [u8; 16] = auth.try_into().map_err(|_| Error::TooShort)?;
        // A packet of n bytes holds at most (n - 20) / 2 attributes.
        let mut attributes = Vec::with_capacity((packet.len() - HEADER_LEN) / 8);
        for a in RawAttrs::new(packet) {
            let a = a?;
            attributes.push(Attribute::new(a.typ, a.value));
        }
        Ok(Packet {
            code: Code(fixed[0]),
            identifier: fixed[1],
            authenticator,
            attributes,
        })
    }

    /// Encodes the packet as it is: the authenticator field is written
    /// unchanged (nothing is computed). Fails when a value exceeds 253 bytes
    /// or the packet exceeds 4096 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let len = encoded_len(&self.attributes, 0)?;
        let mut out = Vec::with_capacity(len);
        put_header(
            &mut out,
            self.code,
            self.identifier,
            len,
            &self.authenticator,
        );
        for a in &self.attributes {
            put_attribute(&mut out, a.typ, &a.value);
        }
        Ok(out)
    }

    /// The first attribute of type `t`.
    pub fn attr(&self, t: AttrType) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.typ == t)
    }

    /// Every attribute of type `t`, in wire order.
    pub fn attrs(&self, t: AttrType) -> impl Iterator<Item = &Attribute> + '_ {
        self.attributes.iter().filter(move |a| a.typ == t)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses whitespace-separated hex.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// RFC 2865 §7.1: Access-Request from nemo, password "arctangent",
    /// secret "xyzzy5461".
    pub(crate) const RFC_ACCESS_REQUEST: &str = "01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee
        04 06 c0 a8 01 10 05 06 00 00 00 03";
    /// RFC 2865 §7.1: the Access-Accept answering it.
    pub(crate) const RFC_ACCESS_ACCEPT: &str = "02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03";
    /// RFC 2865 §7.2: CHAP Access-Request from flopsy.
    pub(crate) const RFC_CHAP_REQUEST: &str = "01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
        0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9 75 57 c3 16 18 58 95 f2 93 ff 63 44
        07 72 75 04 06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00 02 07 06 00 00 00 01";

    #[test]
    fn rfc2865_access_request_decodes_and_reencodes() {
        let bytes = hex(RFC_ACCESS_REQUEST);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.code, Code::ACCESS_REQUEST);
        assert_eq!(p.identifier, 0);
        assert_eq!(p.authenticator[..2], [0x0f, 0x40]);
        assert_eq!(p.attributes.len(), 4);
        assert_eq!(p.attr(AttrType::USER_NAME).unwrap().as_str(), Ok("nemo"));
        assert_eq!(p.attr(AttrType::USER_PASSWORD).unwrap().value.len(), 16);
        assert_eq!(
            p.attr(AttrType::NAS_IP_ADDRESS).unwrap().as_ipv4(),
            Ok(std::net::Ipv4Addr::new(192, 168, 1, 16))
        );
        assert_eq!(p.attr(AttrType::NAS_PORT).unwrap().as_u32(), Ok(3));
        assert_eq!(p.encode().unwrap(), bytes);
    }

    #[test]
    fn rfc2865_access_accept_decodes_and_reencodes() {
        let bytes = hex(RFC_ACCESS_ACCEPT);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.code, Code::ACCESS_ACCEPT);
        assert_eq!(p.attr(AttrType::SERVICE_TYPE).unwrap().as_u32(), Ok(1));
        assert_eq!(p.attr(AttrType::LOGIN_SERVICE).unwrap().as_u32(), Ok(0));
        assert_eq!(
            p.attr(AttrType::LOGIN_IP_HOST).unwrap().as_ipv4(),
            Ok(std::net::Ipv4Addr::new(192, 168, 1, 3))
        );
        assert_eq!(p.encode().unwrap(), bytes);
    }

    #[test]
    fn rfc2865_chap_request_decodes_and_reencodes() {
        let bytes = hex(RFC_CHAP_REQUEST);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.identifier, 1);
        assert_eq!(p.attr(AttrType::USER_NAME).unwrap().as_str(), Ok("flopsy"));
        let chap = p.attr(AttrType::CHAP_PASSWORD).unwrap();
        assert_eq!((chap.value.len(), chap.value[0]), (17, 22));
        assert_eq!(p.attr(AttrType::FRAMED_PROTOCOL).unwrap().as_u32(), Ok(1));
        assert_eq!(p.encode().unwrap(), bytes);
    }

    #[test]
    fn attrs_iterates_in_order_and_unknown_types_survive() {
        let p = Packet {
            code: Code(250),
            identifier: 9,
            authenticator: [7; 16],
            attributes: vec![
                Attribute::new(AttrType::PROXY_STATE, vec![1]),
                Attribute::new(AttrType(241), vec![0xaa; 253]),
                Attribute::new(AttrType::PROXY_STATE, vec![2]),
                Attribute::new(AttrType::CLASS, vec![]),
            ],
        };
        let bytes = p.encode().unwrap();
        let back = Packet::decode(&bytes).unwrap();
        assert_eq!(back, p);
        let ps: Vec<_> = back
            .attrs(AttrType::PROXY_STATE)
            .map(|a| a.value.clone())
            .collect();
        assert_eq!(ps, vec![vec![1], vec![2]]);
        assert_eq!(back.attr(AttrType::PROXY_STATE).unwrap().value, [1]);
        assert!(back.attr(AttrType::STATE).is_none());
        assert_eq!(back.attrs(AttrType::STATE).count(), 0);
    }

    #[test]
    fn padding_past_length_is_ignored() {
        let mut bytes = hex(RFC_ACCESS_REQUEST);
        let want = Packet::decode(&bytes).unwrap();
        bytes.extend_from_slice(&[0xff; 5000]);
        assert_eq!(Packet::decode(&bytes).unwrap(), want);
    }

    #[test]
    fn header_errors() {
        assert_eq!(Packet::decode(&[]), Err(Error::TooShort));
        assert_eq!(Packet::decode(&[1, 0, 0, 20]), Err(Error::TooShort));
        assert_eq!(Packet::decode(&[0; 19]), Err(Error::TooShort));
        let mut b = vec![1, 0, 0, 20];
        b.extend_from_slice(&[0; 16]);
        assert!(Packet::decode(&b).is_ok());
        for (length, received) in [(19u16, 20), (0, 20), (21, 20), (4097, 20)] {
            b[2..4].copy_from_slice(&length.to_be_bytes());
            assert_eq!(
                Packet::decode(&b),
                Err(Error::BadLength { length, received }),
                "{length}"
            );
        }
        // Length above 4096 is refused even when that many bytes arrived.
        let mut big = b.clone();
        big.resize(5000, 0);
        big[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(
            Packet::decode(&big),
            Err(Error::BadLength {
                length: 4097,
                received: 5000
            })
        );
        // A length field larger than the datagram.
        let mut req = hex(RFC_ACCESS_REQUEST);
        req.pop();
        assert_eq!(
            Packet::decode(&req),
            Err(Error::BadLength {
                length: 0x38,
                received: 0x37
            })
        );
    }

    fn with_attrs(attrs: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + attrs.len()) as u16;
        let mut b = vec![1, 0];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(attrs);
        b
    }

    #[test]
    fn attribute_errors() {
        assert_eq!(
            Packet::decode(&with_attrs(&[1, 0])),
            Err(Error::AttributeTooShort {
                offset: 20,
                length: 0
            })
        );
        assert_eq!(
            Packet::decode(&with_attrs(&[1, 3, b'a', 1, 1])),
            Err(Error::AttributeTooShort {
                offset: 23,
                length: 1
            })
        );
        assert_eq!(
            Packet::decode(&with_attrs(&[1, 5, b'a'])),
            Err(Error::AttributeOverrun {
                offset: 20,
                length: 5,
                remaining: 3
            })
        );
        // A lone type byte at the end.
        assert_eq!(
            Packet::decode(&with_attrs(&[1, 2, 7])),
            Err(Error::AttributeOverrun {
                offset: 22,
                length: 2,
                remaining: 1
            })
        );
        // The attribute fits the datagram but not the Length field: padding
        // is not attribute space.
        let mut b = with_attrs(&[1, 4, b'a']);
        b.push(b'b');
        assert!(matches!(
            Packet::decode(&b),
            Err(Error::AttributeOverrun { offset: 20, .. })
        ));
        // An empty attribute (length 2) is structurally fine.
        let p = Packet::decode(&with_attrs(&[25, 2])).unwrap();
        assert_eq!(p.attributes, vec![Attribute::new(AttrType::CLASS, vec![])]);
    }

    #[test]
    fn encode_limits() {
        let mut p = Packet {
            code: Code::ACCESS_ACCEPT,
            identifier: 1,
            authenticator: [0; 16],
            attributes: vec![Attribute::new(AttrType::CLASS, vec![0; 254])],
        };
        assert_eq!(
            p.encode(),
            Err(Error::ValueTooLong {
                typ: AttrType::CLASS,
                len: 254
            })
        );
        // 16 attributes of 255 bytes: 20 + 4080 = 4100 > 4096.
        p.attributes = vec![Attribute::new(AttrType::CLASS, vec![0; 253]); 16];
        assert_eq!(p.encode(), Err(Error::PacketTooLong));
        // Exactly 4096: 15 * 255 + 20 = 3845, plus one of 251.
        p.attributes.truncate(15);
        p.attributes
            .push(Attribute::new(AttrType::CLASS, vec![0; 249]));
        let bytes = p.encode().unwrap();
        assert_eq!(bytes.len(), MAX_PACKET_LEN);
        assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }

    /// Every prefix and every single-byte mutation of valid packets decodes
    /// to a value or an error, never a panic; whatever decodes re-encodes to
    /// the bytes covered by its Length field.
    #[test]
    fn prefixes_and_mutations_never_panic() {
        let samples = [
            hex(RFC_ACCESS_REQUEST),
            hex(RFC_ACCESS_ACCEPT),
            hex(RFC_CHAP_REQUEST),
            {
                let mut p = Packet::decode(&hex(RFC_ACCESS_REQUEST)).unwrap();
                p.attributes
                    .push(Attribute::vendor(9, 1, b"shell:priv-lvl=15").unwrap());
                p.encode().unwrap()
            },
        ];
        let check = |b: &[u8]| {
            if let Ok(p) = Packet::decode(b) {
                let again = p.encode().unwrap();
                assert_eq!(Packet::decode(&again).unwrap(), p);
                assert_eq!(again[..], b[..again.len()]);
                for a in &p.attributes {
                    let _ = a.vendor_parts();
                    let _ = a.as_str();
                    let _ = a.as_u32();
                }
            }
            let _ = crate::check_request_message_authenticator(b, b"s");
            let _ = crate::verify_accounting_request(b, b"s");
            let _ = crate::verify_response(b, &[0; 16], b"s", false);
        };
        for s in &samples {
            for n in 0..=s.len() {
                let r = Packet::decode(&s[..n]);
                assert_eq!(r.is_ok(), n == s.len(), "prefix {n}");
                check(&s[..n]);
            }
            for i in 0..s.len() {
                for v in 0..=255u8 {
                    let mut m = s.clone();
                    m[i] = v;
                    check(&m);
                }
            }
        }
    }
}
