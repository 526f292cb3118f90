//! Fuzzing the peer-link frame decoder on the stable toolchain with the
//! shared driver (`crates/radius/fuzz/stable.rs`; `RADMFA_FUZZ_SECS` bounds
//! the run, CI uses 60 s). Here, not in tests/, because frames are
//! crate-private. Any bytes decode to a frame or an error, never a panic; a
//! decoded frame re-encodes and decodes to itself; the snapshot-piece
//! assembler takes any sequence of pieces without panicking.

#[path = "../../../radius/fuzz/stable.rs"]
mod stable;

use super::frame::{Frame, ReplAssembler};

fn check(data: &[u8]) {
    if let Ok(f) = Frame::decode(data) {
        let bytes = f.encode().expect("a decoded frame always encodes");
        assert_eq!(Frame::decode(&bytes), Ok(f));
    }
    // The same bytes as replication pieces: the first byte of each chunk
    // says "more" (odd) and how long the chunk is.
    let mut asm = ReplAssembler::default();
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let n = usize::from(head >> 1).min(tail.len());
        let (piece, after) = tail.split_at(n);
        let _ = asm.push(head & 1 == 1, piece);
        rest = after;
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        Frame::Hello {
            node_id: 2,
            version: 1,
        },
        Frame::Forward {
            id: 7,
            src: "10.0.0.5:40000".parse().expect("addr"),
            packet: vec![1, 2, 0, 20, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9],
        },
        Frame::Forward {
            id: 8,
            src: "[2001:db8::1]:1812".parse().expect("addr"),
            packet: vec![1; 24],
        },
        Frame::Reply {
            id: 7,
            reply: Some(vec![2, 2, 0, 20]),
        },
        Frame::Reply { id: 9, reply: None },
        Frame::Repl {
            more: true,
            data: b"piece".to_vec(),
        },
        Frame::Admin {
            id: 3,
            body: br#"{"user_add":{"name":"alice"}}"#.to_vec(),
        },
        Frame::AdminReply {
            id: 3,
            body: br#"{"ok":true}"#.to_vec(),
        },
    ]
    .iter()
    .map(|f| f.encode().expect("encode"))
    .collect()
}

#[test]
fn fuzz_peer_frame_decoder() {
    stable::run("peer-link frame decoder", &seeds(), check);
}
