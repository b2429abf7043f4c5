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

/// The full record of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
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
        }
    }

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
