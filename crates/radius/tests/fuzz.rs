//! The fuzz targets of `crates/radius/fuzz` on the stable toolchain: their
//! bodies (`fuzz/bodies/`) over the seed packets and mutations of them
//! (`fuzz/stable.rs`; `RADMFA_FUZZ_SECS` bounds the run, CI uses 60 s).

#[path = "../fuzz/stable.rs"]
mod stable;

#[path = "../fuzz/bodies/decode.rs"]
mod decode;
#[path = "../fuzz/bodies/roundtrip.rs"]
mod roundtrip;

/// The committed seeds (RFC 2865 examples, a Status-Server with a
/// Message-Authenticator and a vendor attribute).
fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("fuzz/seeds")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 4, "seeds missing in {}", dir.display());
    seeds
}

#[test]
fn fuzz_decode() {
    stable::run("radius decode", &seeds(), decode::check);
}

#[test]
fn fuzz_roundtrip() {
    stable::run("radius roundtrip", &seeds(), roundtrip::check);
}
