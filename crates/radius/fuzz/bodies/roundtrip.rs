//! decode -> encode -> decode gives the same packet, and encode reproduces
//! the bytes covered by the Length field. Run by the libFuzzer target
//! `fuzz_targets/roundtrip.rs` and, on stable, by crates/radius/tests/fuzz.rs.

use radmfa_radius::Packet;

pub fn check(data: &[u8]) {
    if let Ok(p) = Packet::decode(data) {
        let bytes = p.encode().expect("a decoded packet always encodes");
        assert_eq!(data.get(..bytes.len()), Some(&bytes[..]));
        let again = Packet::decode(&bytes).expect("an encoded packet always decodes");
        assert_eq!(again, p);
    }
}
