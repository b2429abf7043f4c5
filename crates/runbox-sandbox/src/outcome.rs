//! The outcome record: what happened to one run, in a stable, serialisable form that later becomes the API's
//! response.
//!
//! Output is kept lossless: `stdout`/`stderr` hold the text when the bytes are valid UTF-8. When they are not,
//! the text fields hold a lossy rendering (invalid sequences become U+FFFD) and `stdout_base64`/`stderr_base64`
//! hold the exact bytes, standard base64 with padding. Consumers that need exact bytes read the base64 field
//! when it is present.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// How a run ended. Exactly one applies; when several causes meet, the first one that stopped the program wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Exited with code 0.
    Ok,
    /// Exited with a non-zero code.
    ExitedNonzero,
    /// Ran past its wall-clock limit.
    Timeout,
    /// Used more CPU time than allowed.
    CpuLimit,
    /// Was killed by the kernel for using more memory than allowed.
    MemoryLimit,
    /// Wrote more than the allowed bytes of stdout or stderr.
    OutputLimit,
    /// Died from a signal (the `signal` field says which) or was cancelled by the caller.
    Killed,
    /// The sandbox itself failed; `message` says what failed. The program may not have started.
    SandboxError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ExitedNonzero => "exited_nonzero",
            Status::Timeout => "timeout",
            Status::CpuLimit => "cpu_limit",
            Status::MemoryLimit => "memory_limit",
            Status::OutputLimit => "output_limit",
            Status::Killed => "killed",
            Status::SandboxError => "sandbox_error",
        }
    }
}

/// What the jail reports at the end of a run, without the output bytes (those arrive as stream frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailReport {
    pub status: Status,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub message: Option<String>,
}

impl JailReport {
    pub fn sandbox_error(message: impl Into<String>) -> JailReport {
        JailReport {
            status: Status::SandboxError,
            exit_code: None,
            signal: None,
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 0,
            cpu_ms: None,
            memory_peak_bytes: None,
            message: Some(message.into()),
        }
    }
}

/// The full record of one run: how it ended and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// Everything but the status, serialised as fields of the outcome itself. The engine's execution result
    /// holds the record of its deciding stage the same way, beside a status of its own.
    #[serde(flatten)]
    pub record: RunRecord,
}

/// What one run did, apart from how its end is classed: exit, output, usage. It serialises as plain fields of the
/// record that holds it (`#[serde(flatten)]`), so an outcome's and an execution result's JSON name them alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub exit_code: Option<i32>,
    /// Number of the signal that ended the program, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    /// For `sandbox_error` (and other abnormal ends): what happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Text of `bytes` plus, when they are not valid UTF-8, their exact base64 form.
pub fn encode_output(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

impl Outcome {
    pub fn from_report(report: JailReport, stdout: &[u8], stderr: &[u8]) -> Outcome {
        let (stdout, stdout_base64) = encode_output(stdout);
        let (stderr, stderr_base64) = encode_output(stderr);
        Outcome {
            status: report.status,
            record: RunRecord {
                exit_code: report.exit_code,
                signal: report.signal,
                stdout,
                stdout_base64,
                stderr,
                stderr_base64,
                stdout_truncated: report.stdout_truncated,
                stderr_truncated: report.stderr_truncated,
                wall_ms: report.wall_ms,
                cpu_ms: report.cpu_ms,
                memory_peak_bytes: report.memory_peak_bytes,
                message: report.message,
            },
        }
    }
}

impl RunRecord {
    /// The exact stdout bytes, whichever field holds them.
    pub fn stdout_bytes(&self) -> Vec<u8> {
        decode_output(&self.stdout, self.stdout_base64.as_deref())
    }

    /// The exact stderr bytes, whichever field holds them.
    pub fn stderr_bytes(&self) -> Vec<u8> {
        decode_output(&self.stderr, self.stderr_base64.as_deref())
    }
}

fn decode_output(text: &str, b64: Option<&str>) -> Vec<u8> {
    match b64.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()) {
        Some(bytes) => bytes,
        None => text.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_has_no_base64_form() {
        let (text, b64) = encode_output("héllo ✓".as_bytes());
        assert_eq!(text, "héllo ✓");
        assert!(b64.is_none());
    }

    #[test]
    fn invalid_utf8_round_trips_through_base64() {
        let bytes = [b'a', 0xff, 0xfe, b'b', 0];
        let (text, b64) = encode_output(&bytes);
        assert_eq!(text, "a\u{fffd}\u{fffd}b\0");
        assert_eq!(decode_output(&text, b64.as_deref()), bytes);
    }

    fn report(status: Status, exit_code: Option<i32>, message: Option<&str>) -> JailReport {
        JailReport {
            status,
            exit_code,
            signal: None,
            stdout_truncated: false,
            stderr_truncated: true,
            wall_ms: 5,
            cpu_ms: Some(3),
            memory_peak_bytes: None,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn an_outcome_serialises_its_record_as_fields_of_its_own_in_the_same_order() {
        let ok = Outcome::from_report(report(Status::Ok, Some(0), None), b"hi\n", b"");
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"status":"ok","exit_code":0,"signal":null,"stdout":"hi\n","stderr":"","stdout_truncated":false,"#
                .to_string()
                + r#""stderr_truncated":true,"wall_ms":5,"cpu_ms":3,"memory_peak_bytes":null}"#
        );
        let binary = Outcome::from_report(report(Status::SandboxError, None, Some("gone")), b"\xff", b"\xfe");
        assert_eq!(
            serde_json::to_string(&binary).unwrap(),
            r#"{"status":"sandbox_error","exit_code":null,"signal":null,"stdout":"�","stdout_base64":"/w==","#
                .to_string()
                + r#""stderr":"�","stderr_base64":"/g==","stdout_truncated":false,"stderr_truncated":true,"#
                + r#""wall_ms":5,"cpu_ms":3,"memory_peak_bytes":null,"message":"gone"}"#
        );
    }

    #[test]
    fn a_flat_outcome_as_stored_before_still_deserialises() {
        let stored = r#"{"status":"exited_nonzero","exit_code":3,"signal":null,"stdout":"a","stderr":"b",
            "stdout_truncated":false,"stderr_truncated":false,"wall_ms":7,"cpu_ms":null,"memory_peak_bytes":9}"#;
        let o: Outcome = serde_json::from_str(stored).unwrap();
        assert_eq!(o.status, Status::ExitedNonzero);
        assert_eq!(o.record.exit_code, Some(3));
        assert_eq!((o.record.stdout.as_str(), o.record.stderr.as_str()), ("a", "b"));
        assert_eq!((o.record.stdout_base64, o.record.message), (None, None));
        assert_eq!((o.record.wall_ms, o.record.memory_peak_bytes), (7, Some(9)));
    }

    #[test]
    fn status_names_match_serde() {
        for s in [
            Status::Ok,
            Status::ExitedNonzero,
            Status::Timeout,
            Status::CpuLimit,
            Status::MemoryLimit,
            Status::OutputLimit,
            Status::Killed,
            Status::SandboxError,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }
}
