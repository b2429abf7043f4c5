//! The API's description of the sandbox's own records: [`runbox_sandbox::Outcome`] (a stage's record, the
//! `compile` and `run` of an execution result) and its [`runbox_sandbox::Status`], serialised as they are. The
//! sandbox crate knows nothing of the HTTP API and carries no schema derives, so their schemas are stated here,
//! above it (Rust allows no schema impl for another crate's type); a test checks that each names exactly the
//! fields and values the sandbox's types serialise.
//!
//! [`ExecutionResult`]'s schema is stated here too: it holds the deciding stage's [`runbox_sandbox::RunRecord`]
//! flattened, which a derived schema would render as an `allOf` of a second component, while the document has
//! always described (and clients are generated from) one flat object. Tests check that the stated schema names
//! exactly what an execution result serialises and requires what it always has.

#![cfg(feature = "openapi")]

use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::collect::CollectedFile;
use crate::{ExecutionResult, ExecutionStatus, TestCaseResult, TestSummary};

/// How a run ended. Exactly one applies; when several causes meet, the first one that stopped the program wins.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Status)]
#[serde(rename_all = "snake_case")]
pub enum StatusSchema {
    Ok,
    ExitedNonzero,
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    Killed,
    SandboxError,
}

/// The full record of one run.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Outcome)]
pub struct OutcomeSchema {
    pub status: StatusSchema,
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

// An execution result as the API documents it: its own fields and the deciding stage's record side by side,
// described as it serialises. (No doc comment: the document has never given this object a description.)
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ExecutionResult)]
pub struct ExecutionResultSchema {
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
    pub compile: Option<OutcomeSchema>,
    /// The compile stage was skipped: the same sources were compiled before and their artefacts reused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compile_cached: bool,
    /// The run stage, for languages that compile, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<OutcomeSchema>,
    /// Per-case results of a judge request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<TestCaseResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<TestSummary>,
    /// Files matching the request's `collect` patterns, after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<CollectedFile>>,
    /// Time the engine spent on the whole request, stages and workspace included.
    pub duration_ms: u64,
}

impl utoipa::PartialSchema for ExecutionResult {
    fn schema() -> RefOr<Schema> {
        <ExecutionResultSchema as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for ExecutionResult {
    fn name() -> Cow<'static, str> {
        <ExecutionResultSchema as utoipa::ToSchema>::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ExecutionResultSchema as utoipa::ToSchema>::schemas(schemas)
    }
}

#[cfg(test)]
mod tests {
    use runbox_sandbox::{Outcome, RunRecord, Status};
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    use utoipa::PartialSchema;

    use crate::{ExecutionResult, ExecutionStatus, TestSummary};

    /// Sorted names of the properties a schema describes.
    fn properties(schema: RefOr<Schema>) -> Vec<String> {
        let RefOr::T(Schema::Object(o)) = schema else {
            panic!("not an object");
        };
        let mut names: Vec<String> = o.properties.keys().cloned().collect();
        names.sort();
        names
    }

    /// Sorted names of the fields `value` serialises.
    fn keys(value: &impl serde::Serialize) -> Vec<String> {
        let serde_json::Value::Object(fields) = serde_json::to_value(value).unwrap() else {
            panic!("not an object");
        };
        let mut names: Vec<String> = fields.keys().cloned().collect();
        names.sort();
        names
    }

    /// A record with every optional field present.
    fn full_record() -> RunRecord {
        RunRecord {
            exit_code: Some(0),
            signal: None,
            stdout: String::new(),
            stdout_base64: Some(String::new()),
            stderr: String::new(),
            stderr_base64: Some(String::new()),
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 1,
            cpu_ms: None,
            memory_peak_bytes: None,
            message: Some(String::new()),
        }
    }

    #[test]
    fn the_outcome_schema_names_every_field_the_sandbox_serialises() {
        let outcome = Outcome {
            status: Status::Ok,
            record: full_record(),
        };
        assert_eq!(keys(&outcome), properties(super::OutcomeSchema::schema()));
    }

    #[test]
    fn the_execution_result_schema_names_every_field_a_full_result_serialises() {
        let stage = Outcome {
            status: Status::Ok,
            record: full_record(),
        };
        let mut full = ExecutionResult::from_stage("c", Some("1".into()), ExecutionStatus::Ok, full_record());
        full.compile = Some(stage.clone());
        full.compile_cached = true;
        full.run = Some(stage);
        full.tests = Some(vec![]);
        full.summary = Some(TestSummary {
            total: 0,
            passed: 0,
            failed: 0,
            verdict: "passed".into(),
        });
        full.files = Some(vec![]);
        assert_eq!(keys(&full), properties(ExecutionResult::schema()));
    }

    #[test]
    fn every_field_the_execution_result_schema_requires_is_in_the_least_result() {
        let record = RunRecord {
            stdout_base64: None,
            stderr_base64: None,
            message: None,
            ..full_record()
        };
        let least = ExecutionResult::from_stage("c", None, ExecutionStatus::Ok, record);
        let present = keys(&least);
        let RefOr::T(Schema::Object(schema)) = ExecutionResult::schema() else {
            panic!("not an object");
        };
        assert!(!schema.required.is_empty());
        for field in &schema.required {
            assert!(present.contains(field), "{field} is required but not serialised");
        }
    }

    #[test]
    fn the_execution_result_is_documented_as_one_flat_component() {
        let mut referenced = Vec::new();
        <ExecutionResult as utoipa::ToSchema>::schemas(&mut referenced);
        let names: Vec<&str> = referenced.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"RunRecord"), "{names:?}");
        assert_eq!(<ExecutionResult as utoipa::ToSchema>::name(), "ExecutionResult");
        let RefOr::T(Schema::Object(_)) = ExecutionResult::schema() else {
            panic!("an execution result is documented as one object, not a composition");
        };
    }

    #[test]
    fn the_status_schema_lists_every_status_the_sandbox_serialises() {
        let all = [
            Status::Ok,
            Status::ExitedNonzero,
            Status::Timeout,
            Status::CpuLimit,
            Status::MemoryLimit,
            Status::OutputLimit,
            Status::Killed,
            Status::SandboxError,
        ];
        let serialised: Vec<serde_json::Value> = all.iter().map(|s| serde_json::to_value(s).unwrap()).collect();
        let schema = serde_json::to_value(super::StatusSchema::schema()).unwrap();
        assert_eq!(schema["enum"], serde_json::Value::Array(serialised));
    }
}
