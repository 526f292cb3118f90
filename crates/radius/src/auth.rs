//! Authentication: User-Password hiding, Request/Response Authenticators and
//! Message-Authenticator (RFC 2865 §3 and §5.2, RFC 2866 §3, RFC 3579 §3.2,
//! RFC 5176 §3.5).

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::attribute::Attribute;
use crate::error::Error;
use crate::packet::{
    encoded_len, frame, put_attribute, put_header, scan_message_authenticator, MaPosition,
    RawAttrs, HEADER_LEN,
};
use crate::types::{AttrType, Code};

type HmacMd5 = Hmac<Md5>;

/// Size of an encoded Message-Authenticator attribute (type, length, 16 bytes).
const MA_ATTR_LEN: usize = 18;
/// Offset of the Message-Authenticator value when it is the first attribute.
const FIRST_MA_VALUE: usize = HEADER_LEN + 2;
/// Longest User-Password, clear or hidden (RFC 2865 §5.2).
const MAX_PASSWORD_LEN: usize = 128;

/// Outcome of checking a request's Message-Authenticator (RFC 3579 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuthenticator {
    /// The request carries no Message-Authenticator.
    Absent,
    /// Exactly one Message-Authenticator, and it matches.
    Valid,
    /// It does not match, is not 16 bytes, or appears more than once.
    Invalid,
}

fn hmac_md5(secret: &[u8]) -> Result<HmacMd5, Error> {
    if secret.is_empty() {
        return Err(Error::EmptySecret);
    }
    // HMAC takes keys of any length; the error branch cannot happen.
    <HmacMd5 as Mac>::new_from_slice(secret).map_err(|_| Error::EmptySecret)
}

fn check_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.is_empty() {
        Err(Error::EmptySecret)
    } else {
        Ok(())
    }
}

/// The authenticator field of a framed packet.
fn authenticator_field(packet: &[u8]) -> Result<&[u8], Error> {
    packet.get(4..HEADER_LEN).ok_or(Error::TooShort)
}

fn code_of(packet: &[u8]) -> Code {
    Code(packet.first().copied().unwrap_or(0))
}

/// HMAC-MD5 over a framed packet whose authenticator field is replaced by
/// `auth` and whose Message-Authenticator value (16 bytes at `ma_at`) is
/// replaced by zeros, without copying the packet.
fn message_authenticator(
    packet: &[u8],
    auth: &[u8],
    ma_at: usize,
    secret: &[u8],
) -> Result<[u8; 16], Error> {
    let head = packet.get(..4).ok_or(Error::TooShort)?;
    let before = packet.get(HEADER_LEN..ma_at).ok_or(Error::TooShort)?;
    let after = packet.get(ma_at + 16..).ok_or(Error::TooShort)?;
    let mut mac = hmac_md5(secret)?;
    mac.update(head);
    mac.update(auth);
    mac.update(before);
    mac.update(&[0; 16]);
    mac.update(after);
    Ok(mac.finalize().into_bytes().into())
}

/// MD5(Code + Identifier + Length + `auth` + Attributes + Secret): the
/// Response Authenticator (with the Request Authenticator as `auth`) and the
/// Accounting Request Authenticator (with 16 zeros).
fn packet_digest(packet: &[u8], auth: &[u8], secret: &[u8]) -> Result<[u8; 16], Error> {
    let head = packet.get(..4).ok_or(Error::TooShort)?;
    let attrs = packet.get(HEADER_LEN..).ok_or(Error::TooShort)?;
    Ok(Md5::new()
        .chain_update(head)
        .chain_update(auth)
        .chain_update(attrs)
        .chain_update(secret)
        .finalize()
        .into())
}

fn patch(out: &mut [u8], at: usize, value: &[u8; 16]) -> Result<(), Error> {
    out.get_mut(at..at + 16)
        .ok_or(Error::TooShort)?
        .copy_from_slice(value);
    Ok(())
}

/// Writes header, a zeroed Message-Authenticator as the first attribute and
/// `attributes` (any Message-Authenticator among them is dropped: the one
/// written here is the only one).
fn write_with_ma_placeholder(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    auth: &[u8; 16],
    attributes: &[Attribute],
) -> Result<(), Error> {
    write_packet(out, code, identifier, auth, attributes, true)
}

/// Writes header, a zeroed Message-Authenticator first when `with_ma`, and
/// `attributes` without any Message-Authenticator among them.
fn write_packet(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    auth: &[u8; 16],
    attributes: &[Attribute],
    with_ma: bool,
) -> Result<(), Error> {
    out.clear();
    let others = || {
        attributes
            .iter()
            .filter(|a| a.typ != AttrType::MESSAGE_AUTHENTICATOR)
    };
    let len = encoded_len(others(), if with_ma { MA_ATTR_LEN } else { 0 })?;
    out.reserve(len);
    put_header(out, code, identifier, len, auth);
    if with_ma {
        put_attribute(out, AttrType::MESSAGE_AUTHENTICATOR, &[0; 16]);
    }
    for a in others() {
        put_attribute(out, a.typ, &a.value);
    }
    Ok(())
}

/// Checks the Message-Authenticator of a request as received (RFC 3579
/// §3.2): HMAC-MD5 keyed with the shared secret over the packet with the
/// Message-Authenticator value zeroed. For Accounting-, Disconnect- and
/// CoA-Requests the authenticator field is zeroed too (RFC 5176 §3.5), as
/// it is computed after the Message-Authenticator.
///
/// Works on the raw datagram without decoding it, but validates its whole
/// structure first: a malformed packet is an `Err`. More than one
/// Message-Authenticator, or one that is not 16 bytes, is `Invalid`.
pub fn check_request_message_authenticator(
    raw: &[u8],
    secret: &[u8],
) -> Result<MessageAuthenticator, Error> {
    check_secret(secret)?;
    let packet = frame(raw)?;
    let at = match scan_message_authenticator(packet)? {
        MaPosition::Absent => return Ok(MessageAuthenticator::Absent),
        MaPosition::Malformed => return Ok(MessageAuthenticator::Invalid),
        MaPosition::At(at) => at,
    };
    let auth = if code_of(packet).has_computed_request_authenticator() {
        &[0; 16]
    } else {
        authenticator_field(packet)?
    };
    let expected = message_authenticator(packet, auth, at, secret)?;
    let got = packet.get(at..at + 16).ok_or(Error::TooShort)?;
    Ok(if bool::from(expected.ct_eq(got)) {
        MessageAuthenticator::Valid
    } else {
        MessageAuthenticator::Invalid
    })
}

/// Checks the Request Authenticator of an Accounting-Request (RFC 2866 §3):
/// MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret),
/// compared in constant time. The same rule holds for Disconnect- and
/// CoA-Requests (RFC 5176 §2.3). The structure is validated first (`Err` if
/// malformed). A Message-Authenticator, if present, is checked separately
/// with [`check_request_message_authenticator`].
pub fn verify_accounting_request(raw: &[u8], secret: &[u8]) -> Result<bool, Error> {
    check_secret(secret)?;
    let packet = frame(raw)?;
    for a in RawAttrs::new(packet) {
        a?;
    }
    let expected = packet_digest(packet, &[0; 16], secret)?;
    Ok(bool::from(expected.ct_eq(authenticator_field(packet)?)))
}

/// Hides a User-Password (RFC 2865 §5.2): the password (1..=128 bytes) is
/// padded with NULs to a multiple of 16 and XORed with the chain
/// MD5(secret + authenticator), MD5(secret + c1), ...
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, Error> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(Error::BadPasswordLength);
    }
    check_secret(secret)?;
    let keyed = Md5::new_with_prefix(secret);
    let mut out = Vec::with_capacity(password.len().div_ceil(16) * 16);
    let mut block = *authenticator;
    for chunk in password.chunks(16) {
        let pad = keyed.clone().chain_update(block).finalize();
        let clear = chunk.iter().copied().chain(std::iter::repeat(0));
        for ((c, k), p) in block.iter_mut().zip(pad).zip(clear) {
            *c = p ^ k;
        }
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Reveals a hidden User-Password (RFC 2865 §5.2). The hidden value must be
/// a multiple of 16 bytes within 16..=128; trailing NULs (the padding) are
/// stripped. The result is the clear password: wrap it in a zeroizing type.
pub fn unhide_password(
    hidden: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, Error> {
    if hidden.is_empty() || hidden.len() > MAX_PASSWORD_LEN || hidden.len() % 16 != 0 {
        return Err(Error::BadPasswordLength);
    }
    check_secret(secret)?;
    let keyed = Md5::new_with_prefix(secret);
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = authenticator;
    for chunk in hidden.chunks_exact(16) {
        let pad = keyed.clone().chain_update(prev).finalize();
        out.extend(chunk.iter().zip(pad).map(|(c, k)| c ^ k));
        prev = chunk;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Builds a server reply into `out` (cleared first): header, a
/// Message-Authenticator as the first attribute, then `attributes` (any
/// Message-Authenticator among them is dropped). The Message-Authenticator
/// is computed over the reply with the Request Authenticator in the header
/// (RFC 3579 §3.2), then the Response Authenticator
/// MD5(Code + ID + Length + Request Authenticator + Attributes + Secret)
/// (RFC 2865 §3) is written over the header's authenticator field.
///
/// An Accounting-Response carries no Message-Authenticator: RFC 3579
/// defines it for Access-* packets only, and implementations disagree on
/// what an Accounting-Response's would cover (FreeRADIUS and pyrad: 16 zero
/// octets; radsecproxy: the Request Authenticator), so one of them would
/// always discard it. Its Response Authenticator (RFC 2866 §3) still
/// authenticates it, and every client accepts it.
///
/// Allocates nothing once `out` has grown to the reply's size.
pub fn encode_reply_into(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<(), Error> {
    out.clear();
    check_secret(secret)?;
    if code == Code::ACCOUNTING_RESPONSE {
        write_packet(
            out,
            code,
            identifier,
            request_authenticator,
            attributes,
            false,
        )?;
    } else {
        write_with_ma_placeholder(out, code, identifier, request_authenticator, attributes)?;
        let mut mac = hmac_md5(secret)?;
        mac.update(out);
        patch(out, FIRST_MA_VALUE, &mac.finalize().into_bytes().into())?;
    }
    // The Response Authenticator is computed over the Request Authenticator
    // (already in the header).
    let response = Md5::new()
        .chain_update(&*out)
        .chain_update(secret)
        .finalize();
    patch(out, 4, &response.into())
}

/// The authenticator field a received reply's Message-Authenticator is
/// computed over: the Request Authenticator (RFC 3579 §3.2), except for an
/// Accounting-Response, where FreeRADIUS and pyrad put one over 16 zero
/// octets, as for the Accounting-Request itself (we send none).
fn reply_ma_vector(code: Code, request_authenticator: &[u8; 16]) -> &[u8; 16] {
    const ZERO: [u8; 16] = [0; 16];
    if code == Code::ACCOUNTING_RESPONSE {
        &ZERO
    } else {
        request_authenticator
    }
}

/// [`encode_reply_into`] into a new buffer.
pub fn encode_reply(
    code: Code,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_reply_into(
        &mut out,
        code,
        identifier,
        request_authenticator,
        attributes,
        secret,
    )?;
    Ok(out)
}

/// Builds a client request into `out` (cleared first), with a
/// Message-Authenticator as the first attribute (any among `attributes` is
/// dropped).
///
/// - Access-Request and Status-Server: the header carries `authenticator`
///   (which must be random and unpredictable, RFC 2865 §3); the
///   Message-Authenticator is computed over that packet.
/// - Accounting-Request, Disconnect-Request and CoA-Request: `authenticator`
///   is ignored; the Message-Authenticator is computed with a zeroed
///   authenticator field, then the Request Authenticator
///   MD5(Code + ID + Length + 16 zeros + Attributes + Secret) is written
///   (RFC 2866 §3, RFC 5176 §2.3 and §3.5).
///
/// Any other code is [`Error::NotARequest`]. A User-Password among
/// `attributes` must already be hidden with [`hide_password`] under
/// `authenticator`.
pub fn encode_request_into(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<(), Error> {
    out.clear();
    let computed = code.has_computed_request_authenticator();
    if !computed && code != Code::ACCESS_REQUEST && code != Code::STATUS_SERVER {
        return Err(Error::NotARequest(code));
    }
    check_secret(secret)?;
    let header_auth = if computed { &[0; 16] } else { authenticator };
    write_with_ma_placeholder(out, code, identifier, header_auth, attributes)?;
    let mut mac = hmac_md5(secret)?;
    mac.update(out);
    patch(out, FIRST_MA_VALUE, &mac.finalize().into_bytes().into())?;
    if computed {
        let request = Md5::new()
            .chain_update(&*out)
            .chain_update(secret)
            .finalize();
        patch(out, 4, &request.into())?;
    }
    Ok(())
}

/// [`encode_request_into`] into a new buffer.
pub fn encode_request(
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_request_into(
        &mut out,
        code,
        identifier,
        authenticator,
        attributes,
        secret,
    )?;
    Ok(out)
}

/// Client side: verifies a response to a request whose authenticator was
/// `request_authenticator`. Checks the structure, the Response
/// Authenticator ([`Error::BadAuthenticator`]) and, if present, the
/// Message-Authenticator computed with the Request Authenticator in the
/// header ([`Error::BadMessageAuthenticator`], also for a duplicate or one
/// that is not 16 bytes). With `require_ma`, absence is
/// [`Error::MissingMessageAuthenticator`]. Compares in constant time.
///
/// It does not check that the response's Identifier matches the request's:
/// the caller matches them.
pub fn verify_response(
    raw: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_ma: bool,
) -> Result<(), Error> {
    check_secret(secret)?;
    let packet = frame(raw)?;
    let ma = scan_message_authenticator(packet)?;
    let expected = packet_digest(packet, request_authenticator, secret)?;
    if !bool::from(expected.ct_eq(authenticator_field(packet)?)) {
        return Err(Error::BadAuthenticator);
    }
    match ma {
        MaPosition::Absent if require_ma => Err(Error::MissingMessageAuthenticator),
        MaPosition::Absent => Ok(()),
        MaPosition::Malformed => Err(Error::BadMessageAuthenticator),
        MaPosition::At(at) => {
            let code = Code(packet.first().copied().unwrap_or_default());
            let vector = reply_ma_vector(code, request_authenticator);
            let expected = message_authenticator(packet, vector, at, secret)?;
            let got = packet.get(at..at + 16).ok_or(Error::TooShort)?;
            if bool::from(expected.ct_eq(got)) {
                Ok(())
            } else {
                Err(Error::BadMessageAuthenticator)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{hex, RFC_ACCESS_ACCEPT, RFC_ACCESS_REQUEST};
    use crate::packet::Packet;
    use crate::reply_messages;

    const RFC_SECRET: &[u8] = b"xyzzy5461";
    const SECRET: &[u8] = b"s3cr3t-shared";
    const AUTH: [u8; 16] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
        0x01,
    ];

    fn request_attrs(password: &[u8]) -> Vec<Attribute> {
        vec![
            Attribute::string(AttrType::USER_NAME, "alice"),
            Attribute::new(
                AttrType::USER_PASSWORD,
                hide_password(password, SECRET, &AUTH).unwrap(),
            ),
            Attribute::ipv4(AttrType::NAS_IP_ADDRESS, [10, 0, 0, 1].into()),
        ]
    }

    #[test]
    fn rfc2865_example_password_and_response_authenticator() {
        let req = Packet::decode(&hex(RFC_ACCESS_REQUEST)).unwrap();
        let hidden = &req.attr(AttrType::USER_PASSWORD).unwrap().value;
        let clear = unhide_password(hidden, RFC_SECRET, &req.authenticator).unwrap();
        assert_eq!(clear, b"arctangent");
        // Hiding it again gives the RFC's bytes.
        assert_eq!(
            &hide_password(b"arctangent", RFC_SECRET, &req.authenticator).unwrap(),
            hidden
        );
        assert_eq!(
            check_request_message_authenticator(&hex(RFC_ACCESS_REQUEST), RFC_SECRET),
            Ok(MessageAuthenticator::Absent)
        );

        let accept = hex(RFC_ACCESS_ACCEPT);
        assert_eq!(
            verify_response(&accept, &req.authenticator, RFC_SECRET, false),
            Ok(())
        );
        assert_eq!(
            verify_response(&accept, &req.authenticator, RFC_SECRET, true),
            Err(Error::MissingMessageAuthenticator)
        );
        assert_eq!(
            verify_response(&accept, &req.authenticator, b"xyzzy5462", false),
            Err(Error::BadAuthenticator)
        );
        let mut other_request = req.authenticator;
        other_request[15] ^= 1;
        assert_eq!(
            verify_response(&accept, &other_request, RFC_SECRET, false),
            Err(Error::BadAuthenticator)
        );
    }

    /// A Status-Server whose Message-Authenticator was computed with
    /// Python's `hmac` module (secret "fuzz-secret"), an independent
    /// HMAC-MD5; also a fuzz seed (fuzz/seeds/status-server-ma-vsa).
    #[test]
    fn message_authenticator_matches_an_independent_hmac() {
        let raw = hex("0c 07 00 43 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
            50 12 d3 4f 39 2b 34 f6 27 8c ac 2c 74 82 9e 98 f4 1a 1a 19 00 00 00 09 01 13
            73 68 65 6c 6c 3a 70 72 69 76 2d 6c 76 6c 3d 31 35 21 04 01 02");
        assert_eq!(
            check_request_message_authenticator(&raw, b"fuzz-secret"),
            Ok(MessageAuthenticator::Valid)
        );
        let p = Packet::decode(&raw).unwrap();
        let rebuilt = encode_request(
            Code::STATUS_SERVER,
            7,
            &p.authenticator,
            &p.attributes[1..],
            b"fuzz-secret",
        )
        .unwrap();
        assert_eq!(rebuilt, raw);
    }

    #[test]
    fn password_hiding_round_trips_long_passwords() {
        for len in [1usize, 10, 15, 16, 17, 31, 32, 33, 100, 127, 128] {
            let pw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = hide_password(&pw, SECRET, &AUTH).unwrap();
            assert_eq!(hidden.len(), len.div_ceil(16) * 16, "{len}");
            assert_ne!(&hidden[..len.min(16)], &pw[..len.min(16)]);
            assert_eq!(unhide_password(&hidden, SECRET, &AUTH).unwrap(), pw);
            // Another authenticator or secret gives something else.
            let mut other = AUTH;
            other[0] ^= 0x80;
            assert_ne!(unhide_password(&hidden, SECRET, &other).unwrap(), pw);
            assert_ne!(unhide_password(&hidden, b"other", &AUTH).unwrap(), pw);
        }
        // Chaining: the second block depends on the first ciphertext block,
        // so equal clear blocks hide differently.
        let hidden = hide_password(&[b'x'; 32], SECRET, &AUTH).unwrap();
        assert_ne!(hidden[..16], hidden[16..]);
    }

    #[test]
    fn password_bad_lengths_rejected() {
        assert_eq!(
            hide_password(b"", SECRET, &AUTH),
            Err(Error::BadPasswordLength)
        );
        assert_eq!(
            hide_password(&[b'a'; 129], SECRET, &AUTH),
            Err(Error::BadPasswordLength)
        );
        assert_eq!(hide_password(b"pw", b"", &AUTH), Err(Error::EmptySecret));
        for len in [0, 1, 15, 17, 31, 127, 129, 144] {
            assert_eq!(
                unhide_password(&vec![7; len], SECRET, &AUTH),
                Err(Error::BadPasswordLength),
                "{len}"
            );
        }
        assert_eq!(
            unhide_password(&[0; 16], b"", &AUTH),
            Err(Error::EmptySecret)
        );
    }

    #[test]
    fn request_message_authenticator_valid_and_every_flip_detected() {
        let raw = encode_request(
            Code::ACCESS_REQUEST,
            42,
            &AUTH,
            &request_attrs(b"correct horse"),
            SECRET,
        )
        .unwrap();
        let p = Packet::decode(&raw).unwrap();
        assert_eq!(p.attributes[0].typ, AttrType::MESSAGE_AUTHENTICATOR);
        assert_eq!(p.authenticator, AUTH);
        assert_eq!(p.identifier, 42);
        assert_eq!(
            check_request_message_authenticator(&raw, SECRET),
            Ok(MessageAuthenticator::Valid)
        );
        assert_eq!(
            check_request_message_authenticator(&raw, b"wrong"),
            Ok(MessageAuthenticator::Invalid)
        );
        // Attribute boundaries: type and length bytes are structural.
        let mut structural = vec![2, 3];
        let mut off = HEADER_LEN;
        while off < raw.len() {
            structural.extend([off, off + 1]);
            off += usize::from(raw[off + 1]);
        }
        for i in 0..raw.len() {
            let mut m = raw.clone();
            m[i] ^= 0x01;
            let r = check_request_message_authenticator(&m, SECRET);
            assert_ne!(r, Ok(MessageAuthenticator::Valid), "byte {i}");
            if !structural.contains(&i) {
                assert_eq!(r, Ok(MessageAuthenticator::Invalid), "byte {i}");
            }
        }
        // Padding after Length is not covered and does not matter.
        let mut padded = raw.clone();
        padded.extend_from_slice(&[0xee; 10]);
        assert_eq!(
            check_request_message_authenticator(&padded, SECRET),
            Ok(MessageAuthenticator::Valid)
        );
    }

    #[test]
    fn request_message_authenticator_absent_duplicate_or_short() {
        let absent = Packet {
            code: Code::ACCESS_REQUEST,
            identifier: 1,
            authenticator: AUTH,
            attributes: request_attrs(b"pw"),
        }
        .encode()
        .unwrap();
        assert_eq!(
            check_request_message_authenticator(&absent, SECRET),
            Ok(MessageAuthenticator::Absent)
        );

        // A valid request with a second Message-Authenticator appended.
        let raw = encode_request(
            Code::ACCESS_REQUEST,
            1,
            &AUTH,
            &request_attrs(b"pw"),
            SECRET,
        )
        .unwrap();
        let mut p = Packet::decode(&raw).unwrap();
        let ma = p.attributes[0].clone();
        p.attributes.push(ma);
        let twice = p.encode().unwrap();
        assert_eq!(
            check_request_message_authenticator(&twice, SECRET),
            Ok(MessageAuthenticator::Invalid)
        );

        // A Message-Authenticator that is not 16 bytes.
        let mut p = Packet::decode(&raw).unwrap();
        p.attributes[0].value.truncate(15);
        assert_eq!(
            check_request_message_authenticator(&p.encode().unwrap(), SECRET),
            Ok(MessageAuthenticator::Invalid)
        );

        // Malformed packets are errors, not verdicts.
        assert_eq!(
            check_request_message_authenticator(&raw[..19], SECRET),
            Err(Error::TooShort)
        );
        assert_eq!(
            check_request_message_authenticator(&raw, b""),
            Err(Error::EmptySecret)
        );
    }

    #[test]
    fn encode_request_drops_caller_message_authenticator() {
        let mut attrs = request_attrs(b"pw");
        attrs.push(Attribute::new(AttrType::MESSAGE_AUTHENTICATOR, vec![9; 16]));
        let raw = encode_request(Code::STATUS_SERVER, 3, &AUTH, &attrs, SECRET).unwrap();
        let p = Packet::decode(&raw).unwrap();
        assert_eq!(p.attrs(AttrType::MESSAGE_AUTHENTICATOR).count(), 1);
        assert_eq!(p.attributes.len(), 4);
        assert_eq!(
            check_request_message_authenticator(&raw, SECRET),
            Ok(MessageAuthenticator::Valid)
        );
        assert_eq!(
            encode_request(Code::ACCESS_ACCEPT, 3, &AUTH, &attrs, SECRET),
            Err(Error::NotARequest(Code::ACCESS_ACCEPT))
        );
    }

    #[test]
    fn accounting_request_authenticator() {
        let attrs = [
            Attribute::u32(AttrType::ACCT_STATUS_TYPE, 1),
            Attribute::string(AttrType::ACCT_SESSION_ID, "0001"),
            Attribute::string(AttrType::USER_NAME, "alice"),
        ];
        for code in [
            Code::ACCOUNTING_REQUEST,
            Code::DISCONNECT_REQUEST,
            Code::COA_REQUEST,
        ] {
            let raw = encode_request(code, 5, &AUTH, &attrs, SECRET).unwrap();
            let p = Packet::decode(&raw).unwrap();
            assert_ne!(p.authenticator, AUTH, "computed, not taken from the caller");
            assert_eq!(verify_accounting_request(&raw, SECRET), Ok(true));
            assert_eq!(verify_accounting_request(&raw, b"nope"), Ok(false));
            assert_eq!(
                check_request_message_authenticator(&raw, SECRET),
                Ok(MessageAuthenticator::Valid)
            );
            for i in 0..raw.len() {
                let mut m = raw.clone();
                m[i] ^= 0x40;
                assert_ne!(verify_accounting_request(&m, SECRET), Ok(true), "byte {i}");
            }
        }
        assert_eq!(
            verify_accounting_request(&[4, 0, 0, 30], SECRET),
            Err(Error::TooShort)
        );
    }

    #[test]
    fn reply_has_message_authenticator_first_and_verifies() {
        let mut attrs = reply_messages("Welcome");
        attrs.push(Attribute::new(AttrType::PROXY_STATE, vec![1, 2, 3]));
        attrs.push(Attribute::vendor(9, 1, b"shell:priv-lvl=15").unwrap());
        for code in [
            Code::ACCESS_ACCEPT,
            Code::ACCESS_REJECT,
            Code::ACCESS_CHALLENGE,
        ] {
            let raw = encode_reply(code, 77, &AUTH, &attrs, SECRET).unwrap();
            let p = Packet::decode(&raw).unwrap();
            assert_eq!(p.code, code);
            assert_eq!(p.identifier, 77);
            assert_eq!(p.attributes[0].typ, AttrType::MESSAGE_AUTHENTICATOR);
            assert_eq!(p.attributes[1..], attrs[..]);
            assert_eq!(verify_response(&raw, &AUTH, SECRET, true), Ok(()));
            assert_eq!(
                verify_response(&raw, &AUTH, b"wrong", true),
                Err(Error::BadAuthenticator)
            );
            let mut other = AUTH;
            other[3] ^= 4;
            assert_eq!(
                verify_response(&raw, &other, SECRET, false),
                Err(Error::BadAuthenticator)
            );
            for i in 0..raw.len() {
                let mut m = raw.clone();
                m[i] ^= 0x08;
                assert!(
                    verify_response(&m, &AUTH, SECRET, false).is_err(),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn reply_message_authenticator_is_checked_even_with_a_good_response_authenticator() {
        // Forge a reply whose MA is wrong but whose Response Authenticator is
        // recomputed, as a BlastRADIUS-style attacker cannot but a buggy peer
        // might: verify_response must still refuse it.
        let raw = encode_reply(Code::ACCESS_ACCEPT, 1, &AUTH, &[], SECRET).unwrap();
        let mut bad = raw.clone();
        bad[FIRST_MA_VALUE] ^= 1;
        let resp = packet_digest(&bad, &AUTH, SECRET).unwrap();
        bad[4..20].copy_from_slice(&resp);
        assert_eq!(
            verify_response(&bad, &AUTH, SECRET, false),
            Err(Error::BadMessageAuthenticator)
        );
        // Two MAs with a correct Response Authenticator.
        let mut p = Packet::decode(&raw).unwrap();
        p.attributes.push(p.attributes[0].clone());
        let mut twice = p.encode().unwrap();
        let resp = packet_digest(&twice, &AUTH, SECRET).unwrap();
        twice[4..20].copy_from_slice(&resp);
        assert_eq!(
            verify_response(&twice, &AUTH, SECRET, false),
            Err(Error::BadMessageAuthenticator)
        );
    }

    #[test]
    fn accounting_response_has_no_message_authenticator() {
        let attrs = [
            Attribute::new(AttrType::PROXY_STATE, vec![1, 2, 3]),
            Attribute::new(AttrType::MESSAGE_AUTHENTICATOR, vec![0; 16]),
        ];
        let reply = encode_reply(Code::ACCOUNTING_RESPONSE, 5, &AUTH, &attrs, SECRET).unwrap();
        let p = Packet::decode(&reply).unwrap();
        assert_eq!(p.attributes, attrs[..1]);
        assert_eq!(verify_response(&reply, &AUTH, SECRET, false), Ok(()));
        // Independently: MD5(Code + ID + Length + Request Authenticator +
        // Attributes + Secret), RFC 2866 section 3.
        let mut copy = reply.clone();
        copy[4..20].copy_from_slice(&AUTH);
        let expected: [u8; 16] = Md5::new()
            .chain_update(&copy)
            .chain_update(SECRET)
            .finalize()
            .into();
        assert_eq!(&reply[4..20], &expected);
        let mut other = AUTH;
        other[0] ^= 1;
        assert_eq!(
            verify_response(&reply, &other, SECRET, false),
            Err(Error::BadAuthenticator)
        );
    }

    #[test]
    fn encode_reply_into_reuses_the_buffer() {
        let attrs = [Attribute::string(AttrType::REPLY_MESSAGE, "ok")];
        let mut out = Vec::with_capacity(64);
        let ptr = out.as_ptr();
        encode_reply_into(&mut out, Code::ACCESS_ACCEPT, 1, &AUTH, &attrs, SECRET).unwrap();
        let first = out.clone();
        encode_reply_into(&mut out, Code::ACCESS_ACCEPT, 1, &AUTH, &attrs, SECRET).unwrap();
        assert_eq!(out, first);
        assert_eq!(out.as_ptr(), ptr, "no reallocation");
        assert_eq!(
            first,
            encode_reply(Code::ACCESS_ACCEPT, 1, &AUTH, &attrs, SECRET).unwrap()
        );
        // Errors leave `out` empty rather than half-written.
        let too_long = [Attribute::new(AttrType::CLASS, vec![0; 254])];
        assert!(
            encode_reply_into(&mut out, Code::ACCESS_ACCEPT, 1, &AUTH, &too_long, SECRET).is_err()
        );
        assert!(out.is_empty());
        // 4096 minus header minus MA leaves room for 4058 attribute bytes.
        let mut fill = vec![Attribute::new(AttrType::CLASS, vec![0; 253]); 15];
        fill.push(Attribute::new(
            AttrType::CLASS,
            vec![0; 4058 - 15 * 255 - 2],
        ));
        let full = encode_reply(Code::ACCESS_ACCEPT, 1, &AUTH, &fill, SECRET).unwrap();
        assert_eq!(full.len(), crate::MAX_PACKET_LEN);
        fill.last_mut().unwrap().value.push(0);
        assert_eq!(
            encode_reply(Code::ACCESS_ACCEPT, 1, &AUTH, &fill, SECRET),
            Err(Error::PacketTooLong)
        );
        assert_eq!(
            encode_reply(Code::ACCESS_ACCEPT, 1, &AUTH, &attrs, b""),
            Err(Error::EmptySecret)
        );
    }
}
