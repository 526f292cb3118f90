//! Fuzzing RadSec framing and the config parser on the stable toolchain
//! with the shared driver (`crates/radius/fuzz/stable.rs`;
//! `RADMFA_FUZZ_SECS` bounds the run, CI uses 60 s). The peer-link frame
//! decoder is crate-private: its target is `src/peer/fuzz.rs`.

#[path = "../../radius/fuzz/stable.rs"]
mod stable;

use std::path::Path;

use radmfa_server::radsec::{complete_packet, FrameReader};
use radmfa_server::RuntimeConfig;

/// RadSec (RFC 6614) framing of an arbitrary TCP byte stream: the packets
/// the reader cuts are the stream's bytes in order, each as long as its
/// header says (20..=4096); the stream ends cleanly, or with an error at a
/// bad length or a truncated packet. Never a panic.
fn radsec(rt: &tokio::runtime::Runtime, data: &[u8]) {
    match complete_packet(data) {
        Ok(Some(len)) => {
            assert!((20..=4096).contains(&len) && len <= data.len(), "{len}");
            assert_eq!(usize::from(u16::from_be_bytes([data[2], data[3]])), len);
        }
        Ok(None) => assert!(
            data.len() < 4 || usize::from(u16::from_be_bytes([data[2], data[3]])) > data.len()
        ),
        Err(_) => {}
    }
    rt.block_on(async {
        let mut reader = FrameReader::new();
        let mut stream = data;
        let mut offset = 0;
        while let Ok(Some(p)) = reader.next_packet(&mut stream).await {
            assert!((20..=4096).contains(&p.len()), "{}", p.len());
            assert_eq!(&data[offset..offset + p.len()], &p[..]);
            offset += p.len();
        }
    });
}

fn radsec_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../radius/fuzz/seeds");
    let packets: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("crates/radius/fuzz/seeds")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
    // One packet, two back to back, and one cut short.
    let mut seeds = packets.clone();
    seeds.push(packets.concat());
    seeds.push(packets[0][..packets[0].len() / 2].to_vec());
    seeds.sort();
    seeds
}

#[test]
fn fuzz_radsec_framing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    stable::run("radsec framing", &radsec_seeds(), |d| radsec(&rt, d));
}

/// Any text is a configuration or an error naming a line inside the text;
/// never a panic.
fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = RuntimeConfig::parse(&text, "fuzz.toml") {
        let lines = text.lines().count() + 1;
        assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
    }
}

#[test]
fn fuzz_config_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seeds = vec![std::fs::read(root.join("config/radmfa.toml")).expect("config")];
    for n in ["node1", "node2", "standalone"] {
        let p = root.join(format!("docker/config/{n}.toml"));
        seeds.push(std::fs::read(&p).expect("docker config"));
    }
    stable::run("config parser", &seeds, config);
}
