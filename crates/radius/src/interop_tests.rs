//! Interoperability with radius-rs (crate `radius`), an independent
//! implementation used only as a test oracle.

use radius::core::code::Code as RsCode;
use radius::core::packet::Packet as RsPacket;
use radius::core::{rfc2865, rfc2866};

use crate::{
    encode_reply, encode_request, hide_password, unhide_password, verify_accounting_request,
    verify_response, AttrType, Attribute, Code, MessageAuthenticator, Packet,
};

const SECRET: &[u8] = b"interop-secret";
const AUTH: [u8; 16] = *b"0123456789abcdef";

#[test]
fn our_access_request_decodes_in_radius_rs() {
    for password in [&b"arctangent"[..], &[b'p'; 40][..], &[b'q'; 128][..]] {
        let attrs = [
            Attribute::string(AttrType::USER_NAME, "nemo"),
            Attribute::new(
                AttrType::USER_PASSWORD,
                hide_password(password, SECRET, &AUTH).unwrap(),
            ),
            Attribute::ipv4(AttrType::NAS_IP_ADDRESS, [192, 168, 1, 16].into()),
            Attribute::u32(AttrType::NAS_PORT, 3),
        ];
        let raw = encode_request(Code::ACCESS_REQUEST, 9, &AUTH, &attrs, SECRET).unwrap();
        let theirs = RsPacket::decode(&raw, SECRET).unwrap();
        assert_eq!(theirs.get_code(), RsCode::AccessRequest);
        assert_eq!(theirs.get_identifier(), 9);
        assert_eq!(theirs.get_authenticator().as_slice(), &AUTH);
        assert_eq!(rfc2865::lookup_user_name(&theirs).unwrap().unwrap(), "nemo");
        assert_eq!(
            rfc2865::lookup_user_password(&theirs).unwrap().unwrap(),
            password
        );
        assert_eq!(
            rfc2865::lookup_nas_ip_address(&theirs).unwrap().unwrap(),
            std::net::Ipv4Addr::new(192, 168, 1, 16)
        );
        assert_eq!(rfc2865::lookup_nas_port(&theirs).unwrap().unwrap(), 3);
    }
}

#[test]
fn radius_rs_access_request_decodes_with_ours() {
    let mut theirs = RsPacket::new_with_identifier(RsCode::AccessRequest, SECRET, 200);
    rfc2865::add_user_name(&mut theirs, "flopsy");
    rfc2865::add_user_password(&mut theirs, b"a password longer than 16").unwrap();
    rfc2865::add_nas_ip_address(&mut theirs, &[10, 1, 2, 3].into());
    rfc2865::add_vsa_attribute(
        &mut theirs,
        &radius::core::vsa::StringVSA::new(9, 1, "shell:priv-lvl=15"),
    );
    let raw = theirs.encode().unwrap();

    let ours = Packet::decode(&raw).unwrap();
    assert_eq!(ours.code, Code::ACCESS_REQUEST);
    assert_eq!(ours.identifier, 200);
    assert_eq!(
        &ours.authenticator[..],
        theirs.get_authenticator().as_slice()
    );
    assert_eq!(
        ours.attr(AttrType::USER_NAME).unwrap().as_str(),
        Ok("flopsy")
    );
    let hidden = &ours.attr(AttrType::USER_PASSWORD).unwrap().value;
    assert_eq!(
        unhide_password(hidden, SECRET, &ours.authenticator).unwrap(),
        b"a password longer than 16"
    );
    let (vendor, parts) = ours
        .attr(AttrType::VENDOR_SPECIFIC)
        .unwrap()
        .vendor_parts()
        .unwrap();
    assert_eq!(vendor, 9);
    assert_eq!(parts[0].vendor_type, 1);
    assert_eq!(parts[0].value, b"shell:priv-lvl=15");
    assert_eq!(ours.encode().unwrap(), raw);
    assert_eq!(
        crate::check_request_message_authenticator(&raw, SECRET),
        Ok(MessageAuthenticator::Absent)
    );
}

#[test]
fn replies_authenticate_both_ways() {
    // Our reply passes radius-rs's Response Authenticator check.
    let request = encode_request(
        Code::ACCESS_REQUEST,
        4,
        &AUTH,
        &[Attribute::string(AttrType::USER_NAME, "nemo")],
        SECRET,
    )
    .unwrap();
    let reply = encode_reply(
        Code::ACCESS_ACCEPT,
        4,
        &AUTH,
        &[Attribute::u32(AttrType::SERVICE_TYPE, 1)],
        SECRET,
    )
    .unwrap();
    assert!(RsPacket::is_authentic_response(&reply, &request, SECRET));
    assert!(!RsPacket::is_authentic_response(&reply, &request, b"other"));

    // radius-rs's reply passes ours.
    let rs_request = RsPacket::decode(&request, SECRET).unwrap();
    let mut rs_reply = rs_request.make_response_packet(RsCode::AccessReject);
    rfc2865::add_reply_message(&mut rs_reply, "denied");
    let raw = rs_reply.encode().unwrap();
    assert_eq!(verify_response(&raw, &AUTH, SECRET, false), Ok(()));
    assert_eq!(
        verify_response(&raw, &AUTH, SECRET, true),
        Err(crate::Error::MissingMessageAuthenticator)
    );
    assert_eq!(
        verify_response(&raw, &AUTH, b"other", false),
        Err(crate::Error::BadAuthenticator)
    );
}

#[test]
fn accounting_request_authenticator_both_ways() {
    let ours = encode_request(
        Code::ACCOUNTING_REQUEST,
        8,
        &AUTH,
        &[
            Attribute::u32(AttrType::ACCT_STATUS_TYPE, 1),
            Attribute::string(AttrType::ACCT_SESSION_ID, "abc"),
        ],
        SECRET,
    )
    .unwrap();
    assert!(RsPacket::is_authentic_request(&ours, SECRET));
    assert!(!RsPacket::is_authentic_request(&ours, b"other"));

    let mut theirs = RsPacket::new_with_identifier(RsCode::AccountingRequest, SECRET, 8);
    rfc2866::add_acct_status_type(&mut theirs, 2);
    rfc2866::add_acct_session_id(&mut theirs, "abc");
    let raw = theirs.encode().unwrap();
    assert_eq!(verify_accounting_request(&raw, SECRET), Ok(true));
    assert_eq!(verify_accounting_request(&raw, b"other"), Ok(false));
    let p = Packet::decode(&raw).unwrap();
    assert_eq!(p.attr(AttrType::ACCT_STATUS_TYPE).unwrap().as_u32(), Ok(2));
}
