//! Fuzzing the replication wire codec (`repl::wire`) on the stable toolchain
//! with the shared driver (`crates/radius/fuzz/stable.rs`; `RADMFA_FUZZ_SECS`
//! bounds the run, CI uses 60 s): decoding any bytes returns a message or an
//! error, never panics, and whatever decodes re-encodes to the same bytes
//! (the codec rejects trailing bytes, so the encoding is canonical).

#[path = "../../radius/fuzz/stable.rs"]
mod stable;

use radmfa_store::repl::wire::{decode, encode};
use radmfa_store::repl::{Change, Cursor, Entry, Msg, Op, Snapshot};

fn check(data: &[u8]) {
    if let Ok(msg) = decode(data) {
        let mut out = Vec::new();
        encode(&msg, &mut out).expect("a decoded message always encodes");
        assert_eq!(out, data, "re-encoding differs");
        assert_eq!(decode(&out).as_ref(), Ok(&msg));
    }
}

/// One encoded message of every kind.
fn seeds() -> Vec<Vec<u8>> {
    let cursor = |tree, key: &[u8]| Cursor {
        tree,
        key: key.to_vec(),
    };
    let msgs = [
        Msg::Ping {
            epoch: 1,
            primary: None,
        },
        Msg::Pong {
            epoch: u64::MAX,
            primary: Some(3),
        },
        Msg::Pull {
            epoch: 3,
            last_seq: 9,
            last_epoch: 2,
        },
        Msg::Changes {
            epoch: 4,
            prev_seq: 1,
            prev_epoch: 1,
            changes: vec![
                Change {
                    seq: 2,
                    epoch: 4,
                    op: Op::Put {
                        tree: 1,
                        key: b"alice".to_vec(),
                        value: b"{\"name\":\"alice\"}".to_vec(),
                    },
                },
                Change {
                    seq: 3,
                    epoch: 4,
                    op: Op::Remove {
                        tree: 2,
                        key: b"bob".to_vec(),
                    },
                },
            ],
            primary_last: 3,
        },
        Msg::Snapshot {
            epoch: 5,
            for_seq: 0,
            for_epoch: 0,
            snapshot: Snapshot {
                seq: 2,
                epoch: 4,
                after: Some(cursor(1, b"a")),
                entries: vec![Entry {
                    tree: 1,
                    key: b"k1".to_vec(),
                    value: b"v1".to_vec(),
                }],
                next: Some(cursor(2, b"k1")),
            },
        },
        Msg::SnapshotPull {
            epoch: 5,
            seq: 2,
            snap_epoch: 4,
            after: cursor(1, b"k1"),
        },
    ];
    msgs.iter()
        .map(|m| {
            let mut out = Vec::new();
            encode(m, &mut out).expect("encode");
            out
        })
        .collect()
}

#[test]
fn fuzz_replication_wire_codec() {
    stable::run("replication wire codec", &seeds(), check);
}
