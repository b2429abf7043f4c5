//! The result of one execution: the sandbox's outcome record of the stage that decided it, plus the compile and
//! run stages separately when the language compiles, and per-case verdicts for judge requests.

use serde::{Deserialize, Serialize};

use runbox_sandbox::{Outcome, Status};

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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub status: ExecutionStatus,
    pub language: String,
    pub version: Option<String>,
    pub exit_code: Option<i32>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The compile stage, for languages that compile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::api_schema::OutcomeSchema>))]
    pub compile: Option<Outcome>,
    /// The compile stage was skipped: the same sources were compiled before and their artefacts reused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_cached: bool,
    /// The run stage, for languages that compile, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::api_schema::OutcomeSchema>))]
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
    /// A result whose top-level fields are those of `decisive`.
    pub fn from_stage(language: &str, version: Option<String>, status: ExecutionStatus, decisive: &Outcome) -> Self {
        ExecutionResult {
            status,
            language: language.to_string(),
            version,
            exit_code: decisive.exit_code,
            signal: decisive.signal,
            stdout: decisive.stdout.clone(),
            stdout_base64: decisive.stdout_base64.clone(),
            stderr: decisive.stderr.clone(),
            stderr_base64: decisive.stderr_base64.clone(),
            stdout_truncated: decisive.stdout_truncated,
            stderr_truncated: decisive.stderr_truncated,
            wall_ms: decisive.wall_ms,
            cpu_ms: decisive.cpu_ms,
            memory_peak_bytes: decisive.memory_peak_bytes,
            message: decisive.message.clone(),
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
                match (self.exit_code, self.signal) {
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

    #[test]
    fn judge_comparison_ignores_trailing_whitespace_only() {
        assert!(outputs_match("1 2 \n3\n\n", "1 2\n3"));
        assert!(outputs_match("a\r\nb", "a\nb"));
        assert!(!outputs_match("1 2\n3", "1  2\n3"));
        assert!(!outputs_match("", "x"));
    }
}
