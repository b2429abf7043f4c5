//! Output and input bytes survive the trip exactly: invalid UTF-8, NUL bytes, unicode, several MiB of stdin.

use crate::common;
use common::*;

#[test]
fn invalid_utf8_output_round_trips_through_base64() {
    let out = run(
        "python",
        "import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stderr.buffer.write(b'\\xff\\xfe err')",
        &[],
    );
    assert_status(&out, Status::Ok);
    assert_eq!(out.record.stdout_bytes(), (0..=255u8).collect::<Vec<_>>());
    assert!(out.record.stdout_base64.is_some());
    assert_eq!(out.record.stderr_bytes(), b"\xff\xfe err");
}

#[test]
fn unicode_output_stays_text() {
    let out = run("python", "print('héllo wörld ✓ 你好 🎉')", &[]);
    assert_status(&out, Status::Ok);
    assert_eq!(out.record.stdout, "héllo wörld ✓ 你好 🎉\n");
    assert!(out.record.stdout_base64.is_none());
}

#[test]
fn several_mebibytes_of_stdin_arrive_intact() {
    let input: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let code =
        "import sys, hashlib\ndata = sys.stdin.buffer.read()\nprint(len(data), hashlib.sha256(data).hexdigest())";
    let out = run_with_stdin("python", code, &[], Some(&input));
    assert_status(&out, Status::Ok);
    let digest = {
        let mut cmd = std::process::Command::new("sha256sum");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let o = output_with_stdin(cmd, Some(&input));
        String::from_utf8(o.stdout)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(out.record.stdout, format!("{} {digest}\n", input.len()));
}

#[test]
fn stdout_and_stderr_are_kept_apart_and_exit_code_is_reported() {
    let out = run("bash", "echo out; echo err >&2; exit 3", &[]);
    assert_status(&out, Status::ExitedNonzero);
    assert_eq!(
        (
            out.record.stdout.as_str(),
            out.record.stderr.as_str(),
            out.record.exit_code
        ),
        ("out\n", "err\n", Some(3))
    );
}

#[test]
fn death_by_signal_is_reported() {
    let out = run("bash", "kill -SEGV $$", &[]);
    assert_status(&out, Status::Killed);
    assert_eq!(out.record.signal, Some(libc::SIGSEGV));
}
