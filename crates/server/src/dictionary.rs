//! Reply attributes written in the configuration as `Name=value`
//! (group-mapped attributes): the standard attributes a VPN uses and the
//! vendor attributes of the common concentrators, or any attribute by number
//! (`26:VENDOR:TYPE=value`, `N=value`; a `0x` value is raw hex).

use std::net::Ipv4Addr;

use radmfa_radius::{AttrType, Attribute};

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Ipv4,
}

/// Standard attributes: name, type, encoding.
const STANDARD: &[(&str, u8, Kind)] = &[
    ("Service-Type", 6, Kind::Int),
    ("Framed-Protocol", 7, Kind::Int),
    ("Framed-IP-Address", 8, Kind::Ipv4),
    ("Framed-IP-Netmask", 9, Kind::Ipv4),
    ("Filter-Id", 11, Kind::Text),
    ("Framed-MTU", 12, Kind::Int),
    ("Reply-Message", 18, Kind::Text),
    ("Framed-Route", 22, Kind::Text),
    ("Class", 25, Kind::Text),
    ("Session-Timeout", 27, Kind::Int),
    ("Idle-Timeout", 28, Kind::Int),
    ("Acct-Interim-Interval", 85, Kind::Int),
    ("Framed-Pool", 88, Kind::Text),
];

/// Vendor attributes: name, vendor id, vendor type, encoding.
const VENDOR: &[(&str, u32, u8, Kind)] = &[
    ("Cisco-AVPair", 9, 1, Kind::Text),
    ("Cisco-Account-Info", 9, 250, Kind::Text),
    ("ASA-Group-Policy", 3076, 25, Kind::Text),
    ("Fortinet-Group-Name", 12356, 1, Kind::Text),
    ("Fortinet-Access-Profile", 12356, 6, Kind::Text),
    ("PaloAlto-Admin-Role", 25461, 1, Kind::Text),
    ("PaloAlto-User-Group", 25461, 5, Kind::Text),
    ("Juniper-Local-User-Name", 2636, 1, Kind::Text),
    ("MS-RAS-Vendor", 311, 9, Kind::Int),
];

fn value(kind: Kind, v: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = v.strip_prefix("0x") {
        if hex.len() % 2 != 0 || hex.is_empty() {
            return Err(format!("{v:?} is not hex"));
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{v:?} is not hex"))
            })
            .collect();
    }
    match kind {
        Kind::Text => {
            if v.is_empty() || v.len() > 247 {
                return Err("the value must be 1 to 247 bytes".into());
            }
            Ok(v.as_bytes().to_vec())
        }
        Kind::Int => v
            .parse::<u32>()
            .map(|n| n.to_be_bytes().to_vec())
            .map_err(|_| format!("{v:?} is not a number")),
        Kind::Ipv4 => v
            .parse::<Ipv4Addr>()
            .map(|a| a.octets().to_vec())
            .map_err(|_| format!("{v:?} is not an IPv4 address")),
    }
}

/// Parses `Name=value` into an attribute; the error says why in words.
pub fn parse_attribute(spec: &str) -> Result<Attribute, String> {
    let (name, v) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: expected Name=value"))?;
    let (name, v) = (name.trim(), v.trim());
    if let Some(&(_, t, kind)) = STANDARD.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name)) {
        return Ok(Attribute::new(AttrType(t), value(kind, v)?));
    }
    if let Some(&(_, vendor, t, kind)) = VENDOR.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name))
    {
        return Attribute::vendor(vendor, t, &value(kind, v)?).map_err(|e| e.to_string());
    }
    let nums: Vec<&str> = name.split(':').collect();
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("unknown attribute {name:?}"))
    };
    match nums.as_slice() {
        [t] => {
            let t = u8::try_from(num(t)?)
                .ok()
                .filter(|t| *t != 0 && *t != 26 && *t != 80 && *t != 24)
                .ok_or_else(|| format!("attribute number {t} cannot be configured"))?;
            Ok(Attribute::new(AttrType(t), value(Kind::Text, v)?))
        }
        ["26", vendor, t] => {
            let t = u8::try_from(num(t)?).map_err(|_| format!("vendor type {t} is not 0..255"))?;
            Attribute::vendor(num(vendor)?, t, &value(Kind::Text, v)?).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "unknown attribute {name:?} (use a known name, N=value or 26:VENDOR:TYPE=value)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_vendor_and_numeric_forms() {
        assert_eq!(
            parse_attribute("Filter-Id=vpn-acl").unwrap(),
            Attribute::string(AttrType::FILTER_ID, "vpn-acl")
        );
        assert_eq!(
            parse_attribute("Framed-IP-Netmask = 255.255.255.0").unwrap(),
            Attribute::new(AttrType::FRAMED_IP_NETMASK, vec![255, 255, 255, 0])
        );
        assert_eq!(
            parse_attribute("Session-Timeout=3600")
                .unwrap()
                .as_u32()
                .unwrap(),
            3600
        );
        let cisco = parse_attribute("Cisco-AVPair=shell:priv-lvl=15").unwrap();
        let (vendor, parts) = cisco.vendor_parts().unwrap();
        assert_eq!(vendor, 9);
        assert_eq!(parts[0].value, b"shell:priv-lvl=15");
        let forti = parse_attribute("Fortinet-Group-Name=vpn").unwrap();
        assert_eq!(forti.vendor_parts().unwrap().0, 12356);
        assert_eq!(
            parse_attribute("25=0x0102").unwrap(),
            Attribute::new(AttrType::CLASS, vec![1, 2])
        );
        let raw = parse_attribute("26:25461:5=staff").unwrap();
        assert_eq!(raw, parse_attribute("PaloAlto-User-Group=staff").unwrap());
    }

    #[test]
    fn errors_say_why() {
        for (spec, needle) in [
            ("Filter-Id", "Name=value"),
            ("Nope-Attr=1", "unknown attribute"),
            ("Session-Timeout=soon", "not a number"),
            ("Framed-IP-Address=10.0.0", "IPv4"),
            ("80=x", "cannot be configured"),
            ("Class=0xabc", "not hex"),
        ] {
            let err = parse_attribute(spec).unwrap_err();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
