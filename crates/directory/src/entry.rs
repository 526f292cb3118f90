//! Panic-free views of what the server sent: search entries, the paged-results
//! response control, and DN comparison.

use std::collections::HashMap;

use ldap3::asn1::{parse_tag, StructureTag, PL};

/// One search result entry. Attribute names are lower-cased; values are raw octets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) dn: String,
    pub(crate) attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// All UTF-8 values of `name` (also `name;options`, e.g. AD's `member;range=0-1499`).
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        let mut out = Vec::new();
        for (attr, vals) in &self.attrs {
            let matches = attr == &name
                || attr
                    .strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with(';'));
            if matches {
                out.extend(
                    vals.iter()
                        .filter_map(|v| std::str::from_utf8(v).ok())
                        .map(str::to_owned),
                );
            }
        }
        out
    }

    /// The first non-empty UTF-8 value of `name`.
    pub(crate) fn first(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().find(|v| !v.trim().is_empty())
    }

    /// Whether the entry carries `name` at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        !self.values(name).is_empty()
    }
}

fn primitive(tag: &StructureTag) -> Option<&[u8]> {
    match &tag.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
}

fn constructed(tag: &StructureTag) -> Option<&[StructureTag]> {
    match &tag.payload {
        PL::C(items) => Some(items),
        PL::P(_) => None,
    }
}

/// Parses a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`).
/// Anything malformed is `None`, never a panic.
pub(crate) fn parse_entry(tag: &StructureTag) -> Option<Entry> {
    if tag.id != 4 {
        return None;
    }
    let items = constructed(tag)?;
    let dn = String::from_utf8(primitive(items.first()?)?.to_vec()).ok()?;
    let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    if let Some(list) = items.get(1) {
        for attr in constructed(list)? {
            let parts = constructed(attr)?;
            let name = std::str::from_utf8(primitive(parts.first()?)?).ok()?;
            let vals = match parts.get(1) {
                Some(set) => constructed(set)?
                    .iter()
                    .filter_map(|v| primitive(v).map(<[u8]>::to_vec))
                    .collect(),
                None => Vec::new(),
            };
            attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(vals);
        }
    }
    Some(Entry { dn, attrs })
}

/// The cookie of an RFC 2696 paged-results response control value
/// (`SEQUENCE { size INTEGER, cookie OCTET STRING }`). `None` if malformed.
pub(crate) fn parse_paged_cookie(value: &[u8]) -> Option<Vec<u8>> {
    let (_, tag) = parse_tag(value).ok()?;
    let items = constructed(&tag)?;
    items.first()?;
    primitive(items.get(1)?).map(<[u8]>::to_vec)
}

/// Splits `s` at unescaped occurrences of `sep` (a backslash escapes the next char).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// A comparison key for a DN: RDNs split at unescaped commas, blanks around `,`
/// and `=` removed, everything lower-cased. (Naming attributes compare case-insensitively
/// in AD and for `cn`/`uid`/`ou`/`dc` in LDAP.)
pub(crate) fn norm_dn(dn: &str) -> String {
    split_unescaped(dn.trim(), ',')
        .into_iter()
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.split_once('=') {
                Some((a, v)) => format!("{}={}", a.trim(), v.trim()),
                None => rdn.to_owned(),
            }
            .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The (unescaped) value of the first RDN: `cn=vpn-users,ou=groups,...` -> `vpn-users`.
pub(crate) fn first_rdn_value(dn: &str) -> Option<String> {
    let first = split_unescaped(dn.trim(), ',').into_iter().next()?;
    let first = split_unescaped(first, '+').into_iter().next()?;
    let (_, value) = first.split_once('=')?;
    let value = value.trim();
    let mut bytes: Vec<u8> = Vec::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(n) = chars.next() else { break };
        let hi = n.to_digit(16);
        let lo = chars.peek().and_then(|d| d.to_digit(16));
        match (hi, lo) {
            (Some(hi), Some(lo)) => {
                chars.next();
                bytes.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            }
            _ => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    let out = String::from_utf8_lossy(&bytes).into_owned();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{ASNTag, OctetString, Sequence, Set, Tag};

    fn octets(s: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: s.to_vec(),
            ..Default::default()
        })
    }

    fn entry_tag(dn: &str, attrs: &[(&str, &[&str])]) -> StructureTag {
        let list = attrs
            .iter()
            .map(|(n, vals)| {
                Tag::Sequence(Sequence {
                    inner: vec![
                        octets(n.as_bytes()),
                        Tag::Set(Set {
                            inner: vals.iter().map(|v| octets(v.as_bytes())).collect(),
                            ..Default::default()
                        }),
                    ],
                    ..Default::default()
                })
            })
            .collect();
        Tag::Sequence(Sequence {
            id: 4,
            class: ldap3::asn1::TagClass::Application,
            inner: vec![
                octets(dn.as_bytes()),
                Tag::Sequence(Sequence {
                    inner: list,
                    ..Default::default()
                }),
            ],
        })
        .into_structure()
    }

    #[test]
    fn parses_entries() {
        let t = entry_tag(
            "uid=alice,ou=people,dc=example,dc=org",
            &[
                ("uid", &["alice"]),
                ("memberOf", &["cn=a,dc=x", "cn=b,dc=x"]),
                ("member;range=0-1", &["x"]),
            ],
        );
        let e = parse_entry(&t).expect("entry");
        assert_eq!(e.dn, "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(e.first("UID").as_deref(), Some("alice"));
        assert_eq!(e.values("memberof").len(), 2);
        assert_eq!(e.values("member"), vec!["x"]);
        assert!(e.values("memberx").is_empty());
        assert!(e.has("uid"));
        assert!(!e.has("mail"));
    }

    #[test]
    fn malformed_entries_are_none() {
        // Wrong application tag.
        let mut t = entry_tag("dc=x", &[]);
        t.id = 5;
        assert!(parse_entry(&t).is_none());
        // Primitive where a sequence belongs.
        let t = StructureTag {
            class: ldap3::asn1::TagClass::Application,
            id: 4,
            payload: PL::P(vec![1, 2]),
        };
        assert!(parse_entry(&t).is_none());
        // Empty sequence.
        let t = StructureTag {
            class: ldap3::asn1::TagClass::Application,
            id: 4,
            payload: PL::C(vec![]),
        };
        assert!(parse_entry(&t).is_none());
        // Non-UTF-8 DN.
        let t = entry_tag("dc=x", &[]);
        let mut bad = t.clone();
        if let PL::C(items) = &mut bad.payload {
            if let Some(first) = items.first_mut() {
                first.payload = PL::P(vec![0xff, 0xfe]);
            }
        }
        assert!(parse_entry(&bad).is_none());
    }

    #[test]
    fn paged_cookie() {
        // SEQUENCE { INTEGER 7, OCTET STRING "ck" }
        let mut buf = vec![0x30, 0x07, 0x02, 0x01, 0x07, 0x04, 0x02, b'c', b'k'];
        assert_eq!(parse_paged_cookie(&buf), Some(b"ck".to_vec()));
        // Empty cookie: the last page.
        assert_eq!(
            parse_paged_cookie(&[0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]),
            Some(Vec::new())
        );
        buf.truncate(3);
        assert_eq!(parse_paged_cookie(&buf), None);
        assert_eq!(parse_paged_cookie(&[]), None);
        assert_eq!(parse_paged_cookie(&[0x30, 0x80, 0xff]), None);
        assert_eq!(parse_paged_cookie(&[0x30, 0x03, 0x02, 0x01, 0x07]), None);
    }

    #[test]
    fn dn_normalisation() {
        assert_eq!(
            norm_dn("CN=VPN Users, OU=Groups ,DC=Example,DC=org"),
            "cn=vpn users,ou=groups,dc=example,dc=org"
        );
        assert_eq!(norm_dn("cn=a\\,b,dc=x"), "cn=a\\,b,dc=x");
        assert_eq!(norm_dn("cn=a\\,b,dc=x"), norm_dn("CN = A\\,B , DC=X"));
        assert_ne!(norm_dn("cn=a\\,b,dc=x"), norm_dn("cn=a,b,dc=x"));
    }

    #[test]
    fn first_rdn() {
        assert_eq!(
            first_rdn_value("cn=vpn-users,ou=groups,dc=x").as_deref(),
            Some("vpn-users")
        );
        assert_eq!(
            first_rdn_value("CN=Smith\\, John,OU=x").as_deref(),
            Some("Smith, John")
        );
        assert_eq!(first_rdn_value("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_rdn_value("cn=a+uid=b,dc=x").as_deref(), Some("a"));
        assert_eq!(first_rdn_value("cn=,dc=x"), None);
        assert_eq!(first_rdn_value("garbage"), None);
        assert_eq!(
            first_rdn_value("cn=trailing\\").as_deref(),
            Some("trailing")
        );
        assert_eq!(first_rdn_value("cn=\\c3\\bc").as_deref(), Some("ü"));
        assert_eq!(first_rdn_value("cn=\\ff").as_deref(), Some("\u{fffd}"));
    }
}
