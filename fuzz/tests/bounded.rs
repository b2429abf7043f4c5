//! The bounded fuzz run CI does on stable: for each target, the seed corpus (`corpus/<target>/`, shared with
//! libFuzzer) and then inputs made from it by random mutations — bit flips, byte edits, cut and repeated ranges,
//! tokens from a dictionary of what these parsers care about, splices of two seeds — for a fixed time each.
//! It is property-based random fuzzing with a fixed seed (reproducible), NOT coverage-guided: for that, run the
//! same targets under libFuzzer (`bash run.sh`, nightly). A failing input is saved to `artifacts/<target>/` and
//! printed, so it can be replayed with `RUNBOX_FUZZ_REPLAY=FILE cargo test`.
//!
//! `RUNBOX_FUZZ_SECONDS` (default 15) is each target's time; `RUNBOX_FUZZ_SEED` changes the seed.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Byte strings these parsers give meaning to.
const DICTIONARY: &[&[u8]] = &[
    b"..",
    b"/",
    b"./",
    b"../",
    b"\0",
    b"\\",
    b"%2e%2e",
    b".runbox",
    b"//",
    b"\n",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"18446744073709551615",
    b"9223372036854775808",
    b"1e309",
    b"\"language\"",
    b"\"code\"",
    b"\"files\"",
    b"\"path\"",
    b"\"content\"",
    b"\"encoding\"",
    b"\"base64\"",
    b"\"limits\"",
    b"\"timeout_ms\"",
    b"\"memory_mb\"",
    b"\"tests\"",
    b"\"stdin\"",
    b"\"env\"",
    b"\"args\"",
    b"\"collect\"",
    b"\"entry\"",
    b"\"wall_ms\"",
    b"\"cpu_ms\"",
    b"\"event\"",
    b"\"dropped\"",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x10\x00",
    b"\x01",
    b"\x02",
    b"\x04",
    b"\x06",
    b"\x07",
    b"\xc3\x28",
    b"\xf0\x9f\x92\xa9",
    b"out/",
    b"sub/up/",
    b"secret",
    b"secret-link",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..=rng.below(8) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let piece = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            5 | 6 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => input.truncate(rng.below(len)),
            _ => {}
        }
    }
    input.truncate(1 << 16);
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(fuzz_dir().join("corpus").join(target))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    seeds.sort();
    seeds.push(Vec::new());
    seeds
}

/// Runs `f` on `input`; on a panic, saves the input and fails with where it is.
fn check(target: &str, f: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = fuzz_dir().join("artifacts").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("crash-{:016x}", fnv(input)));
        std::fs::write(&file, input).unwrap();
        panic!(
            "{target} failed on an input saved as {} ({} bytes): {:?}",
            file.display(),
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(200)])
        );
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn every_target_holds_for_its_corpus_and_seeded_mutations() {
    let secs: u64 = std::env::var("RUNBOX_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let seed: u64 = std::env::var("RUNBOX_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    if let Ok(file) = std::env::var("RUNBOX_FUZZ_REPLAY") {
        let input = std::fs::read(&file).expect("the input to replay");
        for &(name, f) in runbox_fuzz::TARGETS {
            if file.contains(name) {
                check(name, f, &input);
            }
        }
        return;
    }
    for &(name, f) in runbox_fuzz::TARGETS {
        let seeds = seeds(name);
        for s in &seeds {
            check(name, f, s);
        }
        let mut rng = Rng(seed ^ fnv(name.as_bytes()) | 1);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut runs = seeds.len() as u64;
        while Instant::now() < deadline {
            for _ in 0..64 {
                let mut input = seeds[rng.below(seeds.len())].clone();
                mutate(&mut rng, &mut input, &seeds);
                check(name, f, &input);
                runs += 1;
            }
        }
        println!(
            "{name}: {runs} inputs in {secs} s ({} seeds), seed {seed:#x}: all held",
            seeds.len()
        );
    }
}
