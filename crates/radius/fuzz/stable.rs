//! A fuzz driver for the stable toolchain, shared by the workspace's fuzz
//! tests (`#[path]`-included from crates/radius/tests/fuzz.rs,
//! crates/store/tests/fuzz.rs, crates/server/tests/fuzz.rs and
//! crates/server/src/peer/fuzz.rs).
//!
//! libFuzzer's coverage guidance needs nightly flags; this runs each target's
//! body in `cargo test` on stable: first every seed as is, then mutations of
//! the seeds (bit flips, byte overwrites with boundary values, insertions,
//! deletions, truncation, splices of two seeds, big-endian length fields set
//! to boundary values) and random bytes, from a fixed, seeded PRNG
//! (SplitMix64), for a bounded time:
//!
//! - `RADMFA_FUZZ_SECS=n`: run each target for n seconds (CI: 60);
//!   unset: 3,000 inputs per target, so `cargo test` stays quick;
//! - `RADMFA_FUZZ_SEED=s`: the PRNG seed (default 1). A failure prints the
//!   target, the seed, the input's index and the input in hex.
//!
//! Std only: it is included into crates with different dependencies.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// SplitMix64 (Steele, Lea and Flood 2014): fixed here so a seed replays the
/// same inputs whatever the dependencies' versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n) (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn byte(&mut self) -> u8 {
        const BOUNDARY: [u8; 8] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x14];
        if self.below(2) == 0 {
            BOUNDARY[self.below(BOUNDARY.len())]
        } else {
            self.next_u64() as u8
        }
    }
}

/// One mutation of `seeds` (or fresh random bytes).
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(16) == 0 {
        let len = rng.below(512);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.byte();
            }
            2 => {
                let i = rng.below(len + 1);
                let b = rng.byte();
                data.insert(i, b);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                data.drain(i..i + n);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 if len >= 2 => {
                // A length field: 16 or 32 bits, big-endian, at a boundary.
                const LENGTHS: [u32; 8] = [0, 1, 19, 20, 4095, 4096, 65535, u32::MAX];
                let v = LENGTHS[rng.below(LENGTHS.len())];
                let i = rng.below(len - 1);
                if rng.below(2) == 0 || len < 4 || i + 4 > len {
                    data[i..i + 2].copy_from_slice(&(v as u16).to_be_bytes());
                } else {
                    data[i..i + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            _ => {
                let i = rng.below(len + 1);
                let n = rng.below(32);
                let tail: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                data.splice(i..i, tail);
            }
        }
    }
    data
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `body` on every seed, then on mutations for the configured budget.
/// Panics (failing the test) with the target name, PRNG seed, input index
/// and the input in hex on the first input that makes `body` panic.
pub fn run(target: &str, seeds: &[Vec<u8>], body: impl Fn(&[u8])) {
    let seed: u64 = std::env::var("RADMFA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let budget = std::env::var("RADMFA_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut rng = Rng::new(seed);
    let check = |i: usize, data: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
            panic!(
                "fuzz target {target} failed on input {i} (RADMFA_FUZZ_SEED={seed}): {}",
                hex(data)
            );
        }
    };
    for (i, s) in seeds.iter().enumerate() {
        check(i, s);
    }
    let start = Instant::now();
    let mut i = seeds.len();
    loop {
        let done = match budget {
            Some(b) => start.elapsed() >= b,
            None => i >= seeds.len() + 3_000,
        };
        if done {
            break;
        }
        let data = mutate(&mut rng, seeds);
        check(i, &data);
        i += 1;
    }
    println!(
        "fuzz target {target}: {i} inputs in {:?} (RADMFA_FUZZ_SEED={seed})",
        start.elapsed()
    );
}
