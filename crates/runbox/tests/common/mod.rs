//! Helpers shared by the integration tests: run the real `runbox` binary and parse its outcome record.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub use runbox_sandbox::{Outcome, Status};

pub fn runbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runbox"))
}

/// Runs `code` in `lang` with extra CLI flags and returns the parsed outcome record.
pub fn run(lang: &str, code: &str, flags: &[&str]) -> Outcome {
    run_with_stdin(lang, code, flags, None)
}

pub fn run_with_stdin(lang: &str, code: &str, flags: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let mut cmd = runbox();
    cmd.args(["run", "--json", "--lang", lang, "--code", code]).args(flags);
    let output = output_with_stdin(cmd, stdin);
    parse(&output)
}

pub fn output_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start runbox");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("wait for runbox")
}

pub fn parse(output: &Output) -> Outcome {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "runbox printed no outcome record ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Asserts the run ended with `status`, showing the whole record when it did not.
#[track_caller]
pub fn assert_status(outcome: &Outcome, status: Status) {
    assert_eq!(outcome.status, status, "unexpected outcome: {outcome:#?}");
}

/// Host processes whose command line contains `marker` (excluding this test's own helpers).
pub fn host_processes_matching(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) && !cmdline.contains("--code") {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}
