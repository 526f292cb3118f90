//! decode -> encode -> decode gives the same packet, and encode reproduces
//! the bytes covered by the Length field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radmfa_radius::Packet;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        let bytes = p.encode().expect("a decoded packet always encodes");
        assert_eq!(data.get(..bytes.len()), Some(&bytes[..]));
        let again = Packet::decode(&bytes).expect("an encoded packet always decodes");
        assert_eq!(again, p);
    }
});
