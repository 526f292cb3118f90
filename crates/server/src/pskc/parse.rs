//! The walk over a PSKC document (RFC 6030 sections 4 to 6): the
//! container's encryption key and MAC key first, then each KeyPackage's
//! device, key, algorithm parameters and data. Elements are matched by
//! local name, whatever prefix a vendor gives the namespace; DTDs are
//! refused by roxmltree (no entity expansion).

use base64::Engine;
use roxmltree::{Document, Node};
use zeroize::Zeroizing;

use radmfa_store::{PoolToken, Secret, Token, TokenAlgorithm, TokenKind};

use super::crypto::{Cipher, MacAlg, Pbkdf2Params, PskcKey};
use super::types::{PskcError, PskcFile, PskcToken};

/// The keys that open a container's values.
struct Keys {
    /// The value encryption key, if the container is encrypted.
    enc: Option<Zeroizing<Vec<u8>>>,
    /// The MAC algorithm and (decrypted) MAC key, if any.
    mac: Option<(MacAlg, Zeroizing<Vec<u8>>)>,
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i: 'a>(n: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn text(n: Node<'_, '_>) -> String {
    n.text().unwrap_or("").trim().to_string()
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, PskcError> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| PskcError::Invalid(format!("{what} is not base64")))
}

/// Parses a container; encrypted values are opened with `key`.
pub fn parse(xml: &str, key: &PskcKey) -> Result<PskcFile, PskcError> {
    let doc = Document::parse(xml).map_err(|e| PskcError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "KeyContainer" {
        return Err(PskcError::Xml(format!(
            "the root element is {}, not KeyContainer",
            root.tag_name().name()
        )));
    }
    if let Some(v) = root.attribute("Version").filter(|v| *v != "1.0") {
        return Err(PskcError::Unsupported(format!("PSKC version {v}")));
    }
    let keys = container_keys(root, key)?;
    let packages: Vec<_> = children(root, "KeyPackage").collect();
    // A serial that several KeyPackages share (one device, several keys,
    // RFC 6030 figure 10) gets the key's Id appended.
    let mut serial_count = std::collections::HashMap::new();
    for p in &packages {
        if let Some(s) = child(*p, "DeviceInfo").and_then(|d| child(d, "SerialNo")) {
            *serial_count.entry(text(s)).or_insert(0u32) += 1;
        }
    }
    let mut out = PskcFile::default();
    for (i, p) in packages.iter().enumerate() {
        let Some(k) = child(*p, "Key") else {
            out.skipped.push(format!("KeyPackage {}: no Key", i + 1));
            continue;
        };
        let id = k.attribute("Id").unwrap_or("").to_string();
        let device = child(*p, "DeviceInfo");
        let dev = |name| device.and_then(|d| child(d, name)).map(text);
        let serial = match dev("SerialNo").filter(|s| !s.is_empty()) {
            Some(s) if serial_count.get(&s).copied().unwrap_or(0) > 1 && !id.is_empty() => {
                format!("{s}/{id}")
            }
            Some(s) => s,
            None if !id.is_empty() => id.clone(),
            None => {
                return Err(PskcError::Invalid(format!(
                    "KeyPackage {}: neither a SerialNo nor a key Id",
                    i + 1
                )))
            }
        };
        let what = format!("key {serial}");
        let uri = k.attribute("Algorithm").unwrap_or("");
        let Some(kind) = otp_kind(uri) else {
            out.skipped
                .push(format!("{what}: algorithm {uri:?} is not HOTP or TOTP"));
            continue;
        };
        let data = child(k, "Data");
        let Some(secret) = data.and_then(|d| child(d, "Secret")) else {
            out.skipped.push(format!(
                "{what}: no Secret (a key derived on the device cannot be imported)"
            ));
            continue;
        };
        let secret = value(&what, "Secret", secret, &keys)?;
        let int = |name: &str| -> Result<Option<i64>, PskcError> {
            match data.and_then(|d| child(d, name)) {
                Some(n) => int_value(&what, name, n, &keys).map(Some),
                None => Ok(None),
            }
        };
        let counter = int("Counter")?.unwrap_or(0);
        let counter = u64::try_from(counter)
            .map_err(|_| PskcError::Invalid(format!("{what}: Counter {counter} is negative")))?;
        if let Some(t) = int("Time")?.filter(|t| *t != 0) {
            return Err(PskcError::Unsupported(format!(
                "{what}: Time {t} (a TOTP time origin other than 0)"
            )));
        }
        let period = int("TimeInterval")?.unwrap_or(30);
        let period = u64::try_from(period)
            .ok()
            .filter(|p| (1..=3600).contains(p))
            .ok_or_else(|| {
                PskcError::Invalid(format!("{what}: TimeInterval {period} is not 1 to 3600"))
            })?;
        let time_drift = int("TimeDrift")?.unwrap_or(0);
        let (digits, algorithm) = parameters(&what, k)?;
        if secret.is_empty() || secret.len() > 1024 {
            return Err(PskcError::Invalid(format!(
                "{what}: the secret is {} bytes",
                secret.len()
            )));
        }
        let user_id = child(k, "UserId")
            .map(text)
            .or_else(|| dev("UserId"))
            .filter(|u| !u.is_empty());
        out.tokens.push(PskcToken {
            pool: PoolToken {
                serial,
                manufacturer: dev("Manufacturer").unwrap_or_default(),
                counter,
                token: Token {
                    kind,
                    algorithm,
                    digits,
                    period,
                    secret: Secret::new(secret.to_vec()),
                    created: 0,
                },
            },
            time_drift,
            user_id,
        });
    }
    Ok(out)
}

/// HOTP or TOTP from an `Algorithm` URI: RFC 6030's
/// `urn:ietf:params:xml:ns:keyprov:pskc:hotp`, the `#totp` / `:totp`
/// spellings vendors use, and the older `http://www.ietf.org/keyprov/pskc#...`.
fn otp_kind(uri: &str) -> Option<TokenKind> {
    let last = uri
        .rsplit([':', '#', '/'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match last.as_str() {
        "hotp" => Some(TokenKind::Hotp),
        "totp" => Some(TokenKind::Totp),
        _ => None,
    }
}

/// `ResponseFormat` (digits, DECIMAL only) and `Suite` (the hash).
fn parameters(what: &str, k: Node<'_, '_>) -> Result<(u8, TokenAlgorithm), PskcError> {
    let params = child(k, "AlgorithmParameters");
    let mut digits = 6u8;
    if let Some(rf) = params.and_then(|p| child(p, "ResponseFormat")) {
        if let Some(enc) = rf.attribute("Encoding").filter(|e| *e != "DECIMAL") {
            return Err(PskcError::Unsupported(format!(
                "{what}: ResponseFormat Encoding {enc} (only DECIMAL codes)"
            )));
        }
        let len = rf.attribute("Length").unwrap_or("6");
        digits = len
            .parse::<u8>()
            .ok()
            .filter(|d| (6..=8).contains(d))
            .ok_or_else(|| {
                PskcError::Invalid(format!(
                    "{what}: ResponseFormat Length {len} is not 6, 7 or 8"
                ))
            })?;
    }
    let suite = params
        .and_then(|p| child(p, "Suite"))
        .map(text)
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "");
    let algorithm = if suite.contains("SHA512") {
        TokenAlgorithm::Sha512
    } else if suite.contains("SHA256") {
        TokenAlgorithm::Sha256
    } else if suite.is_empty() || suite.contains("SHA1") {
        TokenAlgorithm::Sha1
    } else {
        return Err(PskcError::Unsupported(format!("{what}: Suite {suite}")));
    };
    Ok((digits, algorithm))
}

/// The container's `EncryptionKey` and `MACMethod`, opened with `key`.
fn container_keys(root: Node<'_, '_>, key: &PskcKey) -> Result<Keys, PskcError> {
    let enc = match child(root, "EncryptionKey") {
        None => None,
        Some(ek) => Some(encryption_key(ek, key)?),
    };
    let mac = match child(root, "MACMethod") {
        None => None,
        Some(m) => {
            let alg = MacAlg::from_uri(m.attribute("Algorithm").unwrap_or(""))?;
            let mk = child(m, "MACKey").ok_or_else(|| {
                PskcError::Unsupported("a MACMethod without MACKey (RFC 6030 requires one)".into())
            })?;
            let enc = enc.as_ref().ok_or_else(|| {
                PskcError::Invalid("an encrypted MACKey but no EncryptionKey".into())
            })?;
            Some((alg, encrypted(enc, "MACKey", mk)?))
        }
    };
    Ok(Keys { enc, mac })
}

/// The value encryption key: the pre-shared key (`ds:KeyName`) or one
/// derived from the password (`DerivedKey`, PBKDF2).
fn encryption_key(ek: Node<'_, '_>, key: &PskcKey) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    if let Some(dk) = child(ek, "DerivedKey") {
        let method = child(dk, "KeyDerivationMethod")
            .ok_or_else(|| PskcError::Invalid("DerivedKey without KeyDerivationMethod".into()))?;
        let uri = method.attribute("Algorithm").unwrap_or("");
        if !uri.ends_with("#pbkdf2") {
            return Err(PskcError::Unsupported(format!("key derivation {uri}")));
        }
        let p = child(method, "PBKDF2-params")
            .ok_or_else(|| PskcError::Invalid("PBKDF2 without PBKDF2-params".into()))?;
        let salt = child(p, "Salt")
            .and_then(|s| child(s, "Specified"))
            .ok_or_else(|| PskcError::Invalid("PBKDF2 without Salt/Specified".into()))?;
        let num = |name: &str| -> Result<u64, PskcError> {
            child(p, name)
                .map(text)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| PskcError::Invalid(format!("PBKDF2 {name} missing or not a number")))
        };
        let prf = match child(p, "PRF").and_then(|n| n.attribute("Algorithm")) {
            None => MacAlg::Sha1,
            Some(u) => MacAlg::from_uri(u)?,
        };
        let params = Pbkdf2Params {
            salt: b64("PBKDF2 Salt", &text(salt))?,
            iterations: u32::try_from(num("IterationCount")?).unwrap_or(u32::MAX),
            key_len: usize::try_from(num("KeyLength")?).unwrap_or(usize::MAX),
            prf,
        };
        return match key {
            PskcKey::Password(pw) => params.derive(pw),
            _ => Err(PskcError::NeedKey("the password (--password-stdin)")),
        };
    }
    if child(ek, "X509Data").is_some() {
        return Err(PskcError::Unsupported(
            "asymmetric encryption (X509Data); ask the vendor for a pre-shared key or password"
                .into(),
        ));
    }
    match key {
        PskcKey::PreShared(k) => Ok(k.clone()),
        _ => Err(PskcError::NeedKey("the pre-shared key (--psk-file)")),
    }
}

/// An `EncryptionMethod` + `CipherData/CipherValue` pair under `n`,
/// decrypted with `key` (no MAC: the MAC key itself).
fn encrypted(key: &[u8], what: &str, n: Node<'_, '_>) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    let (cipher, data) = cipher_value(what, n)?;
    cipher.decrypt(key, &data)
}

fn cipher_value(what: &str, n: Node<'_, '_>) -> Result<(Cipher, Vec<u8>), PskcError> {
    let method = child(n, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or_else(|| PskcError::Invalid(format!("{what}: no EncryptionMethod")))?;
    let cv = child(n, "CipherData")
        .and_then(|c| child(c, "CipherValue"))
        .ok_or_else(|| PskcError::Invalid(format!("{what}: no CipherData/CipherValue")))?;
    Ok((Cipher::from_uri(method)?, b64(what, &text(cv))?))
}

/// A data element's value (`PlainValue`, or `EncryptedValue` with its
/// `ValueMAC` checked before decrypting).
fn value(
    what: &str,
    name: &str,
    n: Node<'_, '_>,
    keys: &Keys,
) -> Result<Zeroizing<Vec<u8>>, PskcError> {
    if let Some(p) = child(n, "PlainValue") {
        return Ok(Zeroizing::new(b64(&format!("{what}: {name}"), &text(p))?));
    }
    let ev = child(n, "EncryptedValue").ok_or_else(|| {
        PskcError::Invalid(format!(
            "{what}: {name} has no PlainValue or EncryptedValue"
        ))
    })?;
    let enc = keys.enc.as_ref().ok_or_else(|| {
        PskcError::Invalid(format!(
            "{what}: {name} is encrypted but the container has no EncryptionKey"
        ))
    })?;
    let (cipher, data) = cipher_value(&format!("{what}: {name}"), ev)?;
    match (child(n, "ValueMAC"), &keys.mac) {
        (Some(m), Some((alg, mk))) => {
            alg.verify(mk, &data, &b64(&format!("{what}: ValueMAC"), &text(m))?)?
        }
        (Some(_), None) => {
            return Err(PskcError::Invalid(format!("{what}: a ValueMAC but no MACMethod")))
        }
        (None, _) if matches!(cipher, Cipher::AesCbc(_)) => {
            return Err(PskcError::Invalid(format!(
                "{what}: {name} is CBC-encrypted without a ValueMAC (refused: it could have been altered)"
            )))
        }
        (None, _) => {}
    }
    cipher.decrypt(enc, &data)
}

/// An integer data element: a `PlainValue` in decimal, or an encrypted
/// big-endian integer.
fn int_value(what: &str, name: &str, n: Node<'_, '_>, keys: &Keys) -> Result<i64, PskcError> {
    if let Some(p) = child(n, "PlainValue") {
        let t = text(p);
        return t
            .parse()
            .map_err(|_| PskcError::Invalid(format!("{what}: {name} {t:?} is not an integer")));
    }
    let bytes = value(what, name, n, keys)?;
    if bytes.len() > 8 {
        return Err(PskcError::Invalid(format!(
            "{what}: {name} is longer than 8 bytes"
        )));
    }
    Ok(bytes.iter().fold(0i64, |acc, b| (acc << 8) | i64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(n: u32) -> String {
        let path = format!(
            "{}/../../tests/data/pskc/rfc6030-figure{n}.pskcxml",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn psk() -> PskcKey {
        PskcKey::PreShared(Zeroizing::new(
            data_encoding::HEXLOWER
                .decode(b"12345678901234567890123456789012")
                .unwrap(),
        ))
    }

    #[test]
    fn rfc_6030_plaintext_figures() {
        let f = parse(&figure(2), &PskcKey::None).unwrap();
        assert_eq!(f.tokens.len(), 1);
        assert_eq!(f.tokens[0].pool.serial, "12345678");
        assert_eq!(f.tokens[0].pool.token.secret.expose(), b"1234");
        let f = parse(&figure(3), &PskcKey::None).unwrap();
        let t = &f.tokens[0];
        let p = &t.pool;
        assert_eq!(
            (p.serial.as_str(), p.token.kind, p.token.digits, p.counter),
            ("987654321", TokenKind::Hotp, 8, 0)
        );
        assert_eq!(p.token.secret.expose(), RFC_SECRET);
        assert_eq!(p.manufacturer, "Manufacturer");
        assert_eq!(
            t.user_id.as_deref(),
            Some("UID=jsmith,DC=example-bank,DC=net")
        );
        let f = parse(&figure(4), &PskcKey::None).unwrap();
        assert!(
            f.tokens.is_empty() && f.skipped.len() == 1,
            "{:?}",
            f.skipped
        );
        let f = parse(&figure(5), &PskcKey::None).unwrap();
        assert_eq!(f.tokens.len(), 1);
        assert!(f.skipped[0].contains("pskc:pin"), "{:?}", f.skipped);
        let f = parse(&figure(10), &PskcKey::None).unwrap();
        let serials: Vec<_> = f.tokens.iter().map(|t| t.pool.serial.as_str()).collect();
        assert_eq!(serials, ["654321", "123456", "9999999/3", "9999999/4"]);
        assert!(matches!(
            parse(&figure(8), &PskcKey::None),
            Err(PskcError::Unsupported(_))
        ));
    }

    #[test]
    fn rfc_6030_figure_6_pre_shared_key() {
        let f = parse(&figure(6), &psk()).unwrap();
        assert_eq!(f.tokens[0].pool.token.secret.expose(), RFC_SECRET);
        assert!(matches!(
            parse(&figure(6), &PskcKey::None),
            Err(PskcError::NeedKey(_))
        ));
        // Another key: the MAC key decrypts to garbage (or not at all) and
        // the MAC fails; nothing comes out.
        let mut wrong = data_encoding::HEXLOWER
            .decode(b"12345678901234567890123456789012")
            .unwrap();
        wrong[0] ^= 1;
        let err = parse(&figure(6), &PskcKey::PreShared(Zeroizing::new(wrong))).unwrap_err();
        assert!(
            matches!(err, PskcError::Mac | PskcError::Decrypt(_)),
            "{err}"
        );
        // A flipped bit in the ValueMAC: refused before decrypting.
        let tampered = figure(6).replace(
            "Su+NvtQfmvfJzF6bmQiJqoLRExc=",
            "Tu+NvtQfmvfJzF6bmQiJqoLRExc=",
        );
        assert!(matches!(parse(&tampered, &psk()), Err(PskcError::Mac)));
    }

    #[test]
    fn rfc_6030_figure_7_pbkdf2() {
        let pw = |p: &[u8]| PskcKey::Password(Zeroizing::new(p.to_vec()));
        let f = parse(&figure(7), &pw(b"qwerty")).unwrap();
        assert_eq!(f.tokens[0].pool.token.secret.expose(), RFC_SECRET);
        assert_eq!(f.tokens[0].pool.manufacturer, "TokenVendorAcme");
        let err = parse(&figure(7), &pw(b"qwertz")).unwrap_err();
        assert!(
            matches!(err, PskcError::Mac | PskcError::Decrypt(_)),
            "{err}"
        );
    }

    #[test]
    fn totp_uris_and_parameters() {
        for uri in [
            "urn:ietf:params:xml:ns:keyprov:pskc#totp",
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "http://www.ietf.org/keyprov/pskc#totp",
        ] {
            assert_eq!(otp_kind(uri), Some(TokenKind::Totp), "{uri}");
        }
        assert_eq!(otp_kind("urn:ietf:params:xml:ns:keyprov:pskc:pin"), None);
        let xml = r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
          <KeyPackage><DeviceInfo><SerialNo>T1</SerialNo></DeviceInfo>
          <Key Id="k" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc#totp">
            <AlgorithmParameters><Suite>HMAC-SHA256</Suite><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
            <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>
              <Time><PlainValue>0</PlainValue></Time><TimeInterval><PlainValue>60</PlainValue></TimeInterval>
              <TimeDrift><PlainValue>-2</PlainValue></TimeDrift></Data>
          </Key></KeyPackage></KeyContainer>"#;
        let t = &parse(xml, &PskcKey::None).unwrap().tokens[0];
        assert_eq!(
            (
                t.pool.token.kind,
                t.pool.token.algorithm,
                t.pool.token.digits,
                t.pool.token.period,
                t.time_drift
            ),
            (TokenKind::Totp, TokenAlgorithm::Sha256, 8, 60, -2)
        );
        let bad = xml.replace("Length=\"8\"", "Length=\"9\"");
        let err = parse(&bad, &PskcKey::None).unwrap_err().to_string();
        assert!(err.contains("Length 9 is not 6, 7 or 8"), "{err}");
        assert!(matches!(
            parse("<KeyContainer", &PskcKey::None),
            Err(PskcError::Xml(_))
        ));
    }
}
