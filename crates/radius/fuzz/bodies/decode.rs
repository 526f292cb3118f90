//! Arbitrary datagrams: decoding and every raw-packet check must return a
//! value or an error, never panic. Run by the libFuzzer target
//! `fuzz_targets/decode.rs` and, on stable, by crates/radius/tests/fuzz.rs.

use radmfa_radius::{
    check_request_message_authenticator, unhide_password, verify_accounting_request,
    verify_response, AttrType, Packet,
};

const SECRET: &[u8] = b"fuzz-secret";

pub fn check(data: &[u8]) {
    let ma = check_request_message_authenticator(data, SECRET);
    let _ = verify_accounting_request(data, SECRET);
    let _ = verify_response(data, &[0; 16], SECRET, true);
    match Packet::decode(data) {
        Ok(p) => {
            // Whatever decodes is structurally valid for the raw checks too.
            assert!(ma.is_ok(), "decode accepted what the MA check refused");
            for a in &p.attributes {
                let _ = a.as_str();
                let _ = a.as_u32();
                let _ = a.vendor_parts();
                if a.typ == AttrType::USER_PASSWORD {
                    let _ = unhide_password(&a.value, SECRET, &p.authenticator);
                }
            }
            let _ = format!("{p:?}");
        }
        Err(e) => {
            assert!(ma.is_err(), "MA check accepted what decode refused: {e}");
        }
    }
}
