//! The result of one execution: the sandbox's outcome record of the stage that decided it, plus the compile and
//! run stages separately when the language compiles, and per-case verdicts for judge requests.

use serde::{Deserialize, Serialize};

use runbox_sandbox::{Outcome, RunRecord, Status};

// The deciding stage's sandbox `Status` converts to this with `From`, under the same name. A sandbox runs one
// program and knows no stages, so its status has no `compile_error`: that value is why the API's status is a type
// of its own.
/// How an execution ended: a sandbox [`Status`] of the run stage, or `compile_error`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Ok,
    ExitedNonzero,
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    Killed,
    SandboxError,
    /// The compile stage failed (whatever the reason); the run stage did not start.
    CompileError,
}

impl From<Status> for ExecutionStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Ok => ExecutionStatus::Ok,
            Status::ExitedNonzero => ExecutionStatus::ExitedNonzero,
            Status::Timeout => ExecutionStatus::Timeout,
            Status::CpuLimit => ExecutionStatus::CpuLimit,
            Status::MemoryLimit => ExecutionStatus::MemoryLimit,
            Status::OutputLimit => ExecutionStatus::OutputLimit,
            Status::Killed => ExecutionStatus::Killed,
            Status::SandboxError => ExecutionStatus::SandboxError,
        }
    }
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::CompileError => "compile_error",
            ExecutionStatus::Ok => "ok",
            ExecutionStatus::ExitedNonzero => "exited_nonzero",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::CpuLimit => "cpu_limit",
            ExecutionStatus::MemoryLimit => "memory_limit",
            ExecutionStatus::OutputLimit => "output_limit",
            ExecutionStatus::Killed => "killed",
            ExecutionStatus::SandboxError => "sandbox_error",
        }
    }
}

/// A judge's verdict for one test case.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    WrongOutput,
    /// The case ran without an expected output to compare against.
    Ran,
    /// The program failed: see the case's `status`.
    Failed,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCaseResult {
    pub index: usize,
    pub verdict: Verdict,
    pub status: ExecutionStatus,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSummary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// `passed` when every case passed (or ran), else the verdict of the first case that did not.
    pub verdict: String,
}

/// The result of one execution. Its top-level fields are those of the stage that decided it: `status` (the API's
/// own, which adds `compile_error`) and that stage's [`RunRecord`], flattened so that the JSON names its fields
/// beside `language` and `version` exactly as an [`Outcome`] does. The API schema is stated in
/// [`crate::api_schema`], where a test checks that it names what this serialises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub status: ExecutionStatus,
    pub language: String,
    pub version: Option<String>,
    /// The deciding stage's record: exit, output, usage, message.
    #[serde(flatten)]
    pub record: RunRecord,
    /// The compile stage, for languages that compile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<Outcome>,
    /// The compile stage was skipped: the same sources were compiled before and their artefacts reused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_cached: bool,
    /// The run stage, for languages that compile, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Outcome>,
    /// Per-case results of a judge request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<TestCaseResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<TestSummary>,
    /// Files matching the request's `collect` patterns, after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<crate::collect::CollectedFile>>,
    /// Time the engine spent on the whole request, stages and workspace included.
    pub duration_ms: u64,
}

impl ExecutionResult {
    /// A result whose top-level fields are the deciding stage's `record`, under the `status` the route chose (the
    /// stage's own converted with `From`, or `compile_error`).
    pub fn from_stage(language: &str, version: Option<String>, status: ExecutionStatus, decisive: RunRecord) -> Self {
        ExecutionResult {
            status,
            language: language.to_string(),
            version,
            record: decisive,
            compile: None,
            compile_cached: false,
            run: None,
            tests: None,
            summary: None,
            files: None,
            duration_ms: 0,
        }
    }

    /// The exit code a CLI should exit with to mirror this execution.
    pub fn shell_exit_code(&self) -> i32 {
        match self.status {
            ExecutionStatus::Ok | ExecutionStatus::ExitedNonzero | ExecutionStatus::Killed => {
                match (self.record.exit_code, self.record.signal) {
                    (Some(c), _) => c,
                    (None, Some(s)) => 128 + s,
                    _ => 0,
                }
            }
            ExecutionStatus::CompileError => 1,
            ExecutionStatus::Timeout | ExecutionStatus::CpuLimit => 124,
            ExecutionStatus::MemoryLimit => 137,
            ExecutionStatus::OutputLimit => 141,
            ExecutionStatus::SandboxError => 125,
        }
    }
}

/// Judge comparison: trailing whitespace of each line and trailing blank lines do not matter.
pub fn outputs_match(actual: &str, expected: &str) -> bool {
    fn norm(s: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
        while lines.last() == Some(&"") {
            lines.pop();
        }
        lines
    }
    norm(actual) == norm(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbox_sandbox::JailReport;

    fn stage(status: Status, exit_code: Option<i32>, stdout: &[u8], message: Option<&str>) -> Outcome {
        let report = JailReport {
            status,
            exit_code,
            signal: None,
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 5,
            cpu_ms: Some(3),
            memory_peak_bytes: Some(1024),
            message: message.map(str::to_string),
        };
        Outcome::from_report(report, stdout, b"")
    }

    fn result_of(status: ExecutionStatus, decisive: &Outcome) -> ExecutionResult {
        let mut r = ExecutionResult::from_stage("c", Some("12".into()), status, decisive.record.clone());
        r.duration_ms = 9;
        r
    }

    /// `result` serialises exactly as `wire` (names, order, presence) and `wire` reads back as `result`.
    fn assert_wire(result: &ExecutionResult, wire: &str) {
        assert_eq!(serde_json::to_string(result).unwrap(), wire);
        assert_eq!(&serde_json::from_str::<ExecutionResult>(wire).unwrap(), result);
    }

    // The expected strings below are what the result serialised as when it copied the stage's fields one by one.
    const OK_RECORD: &str = r#""exit_code":0,"signal":null,"stdout":"hi\n","stderr":"","stdout_truncated":false,"stderr_truncated":false,"wall_ms":5,"cpu_ms":3,"memory_peak_bytes":1024"#;

    #[test]
    fn an_ok_run_serialises_the_stage_record_as_top_level_fields() {
        let run = stage(Status::Ok, Some(0), b"hi\n", None);
        let wire = format!(r#"{{"status":"ok","language":"c","version":"12",{OK_RECORD},"duration_ms":9}}"#);
        assert_wire(&result_of(run.status.into(), &run), &wire);
    }

    #[test]
    fn a_binary_output_run_keeps_the_base64_field_beside_the_text() {
        let run = stage(Status::ExitedNonzero, Some(1), b"\xffok", Some("exited"));
        let wire = r#"{"status":"exited_nonzero","language":"c","version":"12","exit_code":1,"signal":null,"#
            .to_string()
            + "\"stdout\":\"\u{fffd}ok\",\"stdout_base64\":\"/29r\","
            + r#""stderr":"","stdout_truncated":false,"stderr_truncated":false,"wall_ms":5,"cpu_ms":3,"#
            + r#""memory_peak_bytes":1024,"message":"exited","duration_ms":9}"#;
        assert_wire(&result_of(run.status.into(), &run), &wire);
    }

    #[test]
    fn a_compiled_run_lists_both_stages_beside_the_deciding_one() {
        let compile = stage(Status::Ok, Some(0), b"", None);
        let run = stage(Status::Ok, Some(0), b"hi\n", None);
        let mut result = result_of(run.status.into(), &run);
        result.compile = Some(compile);
        result.run = Some(run);
        let compile_wire = OK_RECORD.replace(r#""hi\n""#, r#""""#);
        let wire = format!(
            r#"{{"status":"ok","language":"c","version":"12",{OK_RECORD},"compile":{{"status":"ok",{compile_wire}}},"#
        ) + &format!(r#""run":{{"status":"ok",{OK_RECORD}}},"duration_ms":9}}"#);
        assert_wire(&result, &wire);
    }

    #[test]
    fn a_failed_compile_decides_as_compile_error_with_the_compile_record_on_top() {
        let compile = stage(Status::ExitedNonzero, Some(1), b"", Some("compilation failed"));
        let mut result = result_of(ExecutionStatus::CompileError, &compile);
        result.compile = Some(compile);
        result.compile_cached = false;
        let record = r#""exit_code":1,"signal":null,"stdout":"","stderr":"","stdout_truncated":false,"stderr_truncated":false,"wall_ms":5,"cpu_ms":3,"memory_peak_bytes":1024,"message":"compilation failed""#;
        let wire = format!(
            r#"{{"status":"compile_error","language":"c","version":"12",{record},"compile":{{"status":"exited_nonzero",{record}}},"duration_ms":9}}"#
        );
        assert_wire(&result, &wire);
    }

    #[test]
    fn a_result_stored_by_an_earlier_version_still_deserialises() {
        // As an async job's row holds it: flat, keys in any order, a field this version does not know, and the
        // optional fields an older writer left out.
        let stored = r#"{
            "duration_ms": 40, "language": "python", "version": null, "status": "timeout",
            "stdout": "tick\n", "stderr": "", "stdout_base64": null, "exit_code": null, "signal": 9,
            "stdout_truncated": true, "stderr_truncated": false, "wall_ms": 2000, "cpu_ms": 1990,
            "message": "wall-clock limit", "some_future_field": [1, 2]
        }"#;
        let r: ExecutionResult = serde_json::from_str(stored).unwrap();
        assert_eq!(r.status, ExecutionStatus::Timeout);
        assert_eq!((r.language.as_str(), r.version.as_deref()), ("python", None));
        assert_eq!((r.record.exit_code, r.record.signal), (None, Some(9)));
        assert_eq!(r.record.stdout, "tick\n");
        assert_eq!(
            (r.record.stdout_base64.as_deref(), r.record.stderr_base64.as_deref()),
            (None, None)
        );
        assert!(r.record.stdout_truncated && !r.record.stderr_truncated);
        assert_eq!(
            (r.record.wall_ms, r.record.cpu_ms, r.record.memory_peak_bytes),
            (2000, Some(1990), None)
        );
        assert_eq!(r.record.message.as_deref(), Some("wall-clock limit"));
        assert_eq!(
            (r.compile, r.compile_cached, r.run, r.duration_ms),
            (None, false, None, 40)
        );
    }

    #[test]
    fn every_sandbox_status_keeps_its_name_as_an_execution_status() {
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
            let api = ExecutionStatus::from(s);
            assert_eq!(api.as_str(), s.as_str());
            assert_eq!(serde_json::to_value(api).unwrap(), serde_json::to_value(s).unwrap());
        }
    }

    #[test]
    fn judge_comparison_ignores_trailing_whitespace_only() {
        assert!(outputs_match("1 2 \n3\n\n", "1 2\n3"));
        assert!(outputs_match("a\r\nb", "a\nb"));
        assert!(!outputs_match("1 2\n3", "1  2\n3"));
        assert!(!outputs_match("", "x"));
    }
}
