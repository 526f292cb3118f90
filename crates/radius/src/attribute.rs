//! Attributes: a type and an opaque value, plus typed helpers.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::Error;
use crate::types::AttrType;

/// Largest value one attribute can carry (255 minus the type and length bytes).
pub const MAX_VALUE_LEN: usize = 253;

/// Largest value of one vendor sub-attribute in the RFC 2865 §5.26 layout:
/// 253 minus the vendor id (4) and the vendor type and length bytes (2).
pub const MAX_VENDOR_VALUE_LEN: usize = MAX_VALUE_LEN - 6;

/// One RADIUS attribute as it travels on the wire: a type and its raw value.
///
/// The value is kept as bytes; the typed accessors (`as_u32`, `as_str`,
/// `vendor_parts` ...) interpret it on demand. `Debug` never prints the value
/// of User-Password, CHAP-Password or Message-Authenticator.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute type.
    pub typ: AttrType,
    /// Raw value, at most 253 bytes for the packet to encode.
    pub value: Vec<u8>,
}

/// One sub-attribute of a Vendor-Specific attribute (RFC 2865 §5.26 layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorAttr {
    /// Vendor type, meaningful within the vendor's dictionary.
    pub vendor_type: u8,
    /// Raw value.
    pub value: Vec<u8>,
}

impl Attribute {
    /// An attribute with a raw value. The length is checked when encoding.
    pub fn new(typ: AttrType, value: impl Into<Vec<u8>>) -> Attribute {
        Attribute {
            typ,
            value: value.into(),
        }
    }

    /// A text attribute (UTF-8 bytes of `s`).
    pub fn string(typ: AttrType, s: &str) -> Attribute {
        Attribute::new(typ, s.as_bytes())
    }

    /// A 32-bit integer attribute, network byte order.
    pub fn u32(typ: AttrType, v: u32) -> Attribute {
        Attribute::new(typ, v.to_be_bytes())
    }

    /// An IPv4 address attribute.
    pub fn ipv4(typ: AttrType, a: Ipv4Addr) -> Attribute {
        Attribute::new(typ, a.octets())
    }

    /// An IPv6 address attribute (e.g. NAS-IPv6-Address, RFC 3162).
    pub fn ipv6(typ: AttrType, a: Ipv6Addr) -> Attribute {
        Attribute::new(typ, a.octets())
    }

    /// A Vendor-Specific attribute holding one sub-attribute in the RFC 2865
    /// §5.26 recommended layout: Vendor-Id (4 bytes, high byte 0), then
    /// Vendor-Type, Vendor-Length, value.
    ///
    /// Fails with [`Error::BadVendorSpecific`] when the vendor id does not fit
    /// in 24 bits or the value exceeds 247 bytes.
    pub fn vendor(vendor_id: u32, vendor_type: u8, value: &[u8]) -> Result<Attribute, Error> {
        if vendor_id > 0x00ff_ffff || value.len() > MAX_VENDOR_VALUE_LEN {
            return Err(Error::BadVendorSpecific);
        }
        let sub_len = u8::try_from(value.len() + 2).map_err(|_| Error::BadVendorSpecific)?;
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor_id.to_be_bytes());
        v.push(vendor_type);
        v.push(sub_len);
        v.extend_from_slice(value);
        Ok(Attribute::new(AttrType::VENDOR_SPECIFIC, v))
    }

    /// The value as a 32-bit big-endian integer; it must be exactly 4 bytes.
    pub fn as_u32(&self) -> Result<u32, Error> {
        let b: [u8; 4] = self
            .value
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadIntegerLength)?;
        Ok(u32::from_be_bytes(b))
    }

    /// The value as UTF-8 text.
    pub fn as_str(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.value).map_err(|_| Error::NotUtf8)
    }

    /// The value as an IPv4 address; it must be exactly 4 bytes.
    pub fn as_ipv4(&self) -> Result<Ipv4Addr, Error> {
        let b: [u8; 4] = self
            .value
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadAddressLength)?;
        Ok(Ipv4Addr::from(b))
    }

    /// The value as an IPv6 address; it must be exactly 16 bytes.
    pub fn as_ipv6(&self) -> Result<Ipv6Addr, Error> {
        let b: [u8; 16] = self
            .value
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadAddressLength)?;
        Ok(Ipv6Addr::from(b))
    }

    /// Splits a Vendor-Specific attribute into its vendor id and
    /// sub-attributes, in the RFC 2865 §5.26 recommended layout.
    ///
    /// Fails with [`Error::BadVendorSpecific`] when the attribute is not
    /// Vendor-Specific, is shorter than a vendor id plus one sub-attribute, or
    /// its sub-attributes do not exactly fill it (vendors with another layout,
    /// such as 2-byte sub-attribute lengths, read `value` themselves).
    pub fn vendor_parts(&self) -> Result<(u32, Vec<VendorAttr>), Error> {
        if self.typ != AttrType::VENDOR_SPECIFIC {
            return Err(Error::BadVendorSpecific);
        }
        let (id, mut rest) = self
            .value
            .split_first_chunk::<4>()
            .ok_or(Error::BadVendorSpecific)?;
        if rest.is_empty() {
            return Err(Error::BadVendorSpecific);
        }
        let mut parts = Vec::new();
        while let Some((&[vendor_type, len], after)) = rest.split_first_chunk::<2>() {
            let value_len = usize::from(len)
                .checked_sub(2)
                .ok_or(Error::BadVendorSpecific)?;
            let (value, next) = after
                .split_at_checked(value_len)
                .ok_or(Error::BadVendorSpecific)?;
            parts.push(VendorAttr {
                vendor_type,
                value: value.to_vec(),
            });
            rest = next;
        }
        if !rest.is_empty() {
            // A single trailing byte: not a whole sub-attribute header.
            return Err(Error::BadVendorSpecific);
        }
        Ok((u32::from_be_bytes(*id), parts))
    }
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Value<'a>(&'a Attribute);
        impl fmt::Debug for Value<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let a = self.0;
                if a.typ.is_sensitive() {
                    return f.write_str("***");
                }
                match std::str::from_utf8(&a.value) {
                    Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => {
                        fmt::Debug::fmt(s, f)
                    }
                    _ => {
                        f.write_str("0x")?;
                        for b in &a.value {
                            write!(f, "{b:02x}")?;
                        }
                        Ok(())
                    }
                }
            }
        }
        f.debug_struct("Attribute")
            .field("typ", &self.typ)
            .field("value", &Value(self))
            .finish()
    }
}

/// Reply-Message attributes for `text`, split into chunks of at most 253
/// bytes on UTF-8 character boundaries (a NAS concatenates them). Empty text
/// gives no attribute, since a Reply-Message cannot be empty.
pub fn reply_messages(text: &str) -> Vec<Attribute> {
    let mut out = Vec::with_capacity(text.len().div_ceil(MAX_VALUE_LEN));
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_VALUE_LEN);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, next) = rest.split_at(cut);
        out.push(Attribute::string(AttrType::REPLY_MESSAGE, chunk));
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_constructors_and_accessors() {
        let a = Attribute::u32(AttrType::SESSION_TIMEOUT, 3600);
        assert_eq!(a.value, [0, 0, 0x0e, 0x10]);
        assert_eq!(a.as_u32(), Ok(3600));
        assert_eq!(
            Attribute::new(AttrType::NAS_PORT, vec![1, 2, 3]).as_u32(),
            Err(Error::BadIntegerLength)
        );
        assert_eq!(
            Attribute::new(AttrType::NAS_PORT, vec![0; 5]).as_u32(),
            Err(Error::BadIntegerLength)
        );
        let s = Attribute::string(AttrType::USER_NAME, "héllo");
        assert_eq!(s.as_str(), Ok("héllo"));
        assert_eq!(
            Attribute::new(AttrType::USER_NAME, vec![0xff, 0xfe]).as_str(),
            Err(Error::NotUtf8)
        );
        let ip = Ipv4Addr::new(192, 168, 1, 16);
        let a = Attribute::ipv4(AttrType::NAS_IP_ADDRESS, ip);
        assert_eq!(a.value, [192, 168, 1, 16]);
        assert_eq!(a.as_ipv4(), Ok(ip));
        assert_eq!(
            Attribute::new(AttrType::NAS_IP_ADDRESS, vec![1]).as_ipv4(),
            Err(Error::BadAddressLength)
        );
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            Attribute::ipv6(AttrType::NAS_IPV6_ADDRESS, v6).as_ipv6(),
            Ok(v6)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        for t in [
            AttrType::USER_PASSWORD,
            AttrType::CHAP_PASSWORD,
            AttrType::MESSAGE_AUTHENTICATOR,
        ] {
            let d = format!("{:?}", Attribute::new(t, b"hunter2".to_vec()));
            assert!(d.contains("***"), "{d}");
            assert!(!d.contains("hunter2"), "{d}");
            assert!(!d.contains("68756e"), "{d}");
        }
        let d = format!("{:?}", Attribute::string(AttrType::USER_NAME, "nemo"));
        assert_eq!(d, r#"Attribute { typ: User-Name, value: "nemo" }"#);
        let d = format!("{:?}", Attribute::new(AttrType::STATE, vec![0, 0xab]));
        assert_eq!(d, "Attribute { typ: State, value: 0x00ab }");
    }

    #[test]
    fn vendor_specific_round_trip() {
        // Cisco-AVPair: vendor 9, type 1.
        let a = Attribute::vendor(9, 1, b"shell:priv-lvl=15").unwrap();
        assert_eq!(a.typ, AttrType::VENDOR_SPECIFIC);
        assert_eq!(&a.value[..6], &[0, 0, 0, 9, 1, 19]);
        let (vendor, parts) = a.vendor_parts().unwrap();
        assert_eq!(vendor, 9);
        assert_eq!(
            parts,
            vec![VendorAttr {
                vendor_type: 1,
                value: b"shell:priv-lvl=15".to_vec()
            }]
        );
        // Several sub-attributes in one VSA, one of them empty.
        let v = vec![0, 0, 0x01, 0x37, 5, 4, b'a', b'b', 6, 2];
        let (vendor, parts) = Attribute::new(AttrType::VENDOR_SPECIFIC, v)
            .vendor_parts()
            .unwrap();
        assert_eq!(vendor, 311);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].value, b"");
        // Largest value fits in one attribute exactly.
        let max = Attribute::vendor(9, 1, &[b'x'; MAX_VENDOR_VALUE_LEN]).unwrap();
        assert_eq!(max.value.len(), MAX_VALUE_LEN);
        assert_eq!(max.vendor_parts().unwrap().1[0].value.len(), 247);
    }

    #[test]
    fn bad_vendor_specific() {
        assert_eq!(
            Attribute::vendor(9, 1, &[0; MAX_VENDOR_VALUE_LEN + 1]),
            Err(Error::BadVendorSpecific)
        );
        assert_eq!(
            Attribute::vendor(0x0100_0000, 1, b"x"),
            Err(Error::BadVendorSpecific)
        );
        let bad: [&[u8]; 7] = [
            &[],
            &[0, 0, 0],
            &[0, 0, 0, 9],          // no sub-attribute
            &[0, 0, 0, 9, 1],       // lone vendor type
            &[0, 0, 0, 9, 1, 1],    // sub-length below 2
            &[0, 0, 0, 9, 1, 4, 0], // sub-attribute overruns
            &[0, 0, 0, 9, 1, 2, 7], // trailing byte
        ];
        for v in bad {
            assert_eq!(
                Attribute::new(AttrType::VENDOR_SPECIFIC, v).vendor_parts(),
                Err(Error::BadVendorSpecific),
                "{v:?}"
            );
        }
        assert_eq!(
            Attribute::new(AttrType::CLASS, vec![0, 0, 0, 9, 1, 2]).vendor_parts(),
            Err(Error::BadVendorSpecific)
        );
    }

    #[test]
    fn reply_messages_split_on_char_boundaries() {
        assert!(reply_messages("").is_empty());
        let one = reply_messages("Enter the code sent by SMS");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].typ, AttrType::REPLY_MESSAGE);
        let exact = "a".repeat(253);
        assert_eq!(reply_messages(&exact).len(), 1);
        // 3-byte characters: 253 is not a multiple of 3, so chunks are 252.
        let text = "€".repeat(200);
        let parts = reply_messages(&text);
        assert!(parts.iter().all(|a| a.value.len() <= MAX_VALUE_LEN));
        assert!(parts.iter().all(|a| a.as_str().is_ok()));
        assert_eq!(parts[0].value.len(), 252);
        let joined: String = parts.iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(joined, text);
        // Mixed widths never split a character.
        let mixed = "ab€😀".repeat(100);
        let joined: String = reply_messages(&mixed)
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(joined, mixed);
    }
}
