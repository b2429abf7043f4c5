//! The API's description of the sandbox's own records: [`runbox_sandbox::Outcome`] (a stage's record, the
//! `compile` and `run` of an execution result) and its [`runbox_sandbox::Status`], serialised as they are. The
//! sandbox crate knows nothing of the HTTP API and carries no schema derives, so their schemas are stated here,
//! above it (Rust allows no schema impl for another crate's type); a test checks that each names exactly the
//! fields and values the sandbox's types serialise.

#![cfg(feature = "openapi")]

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use runbox_sandbox::{Outcome, Status};
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    use utoipa::PartialSchema;

    fn properties(schema: RefOr<Schema>) -> Vec<String> {
        match schema {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn the_outcome_schema_names_every_field_the_sandbox_serialises() {
        let outcome = Outcome {
            status: Status::Ok,
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
        };
        let serde_json::Value::Object(fields) = serde_json::to_value(&outcome).unwrap() else {
            panic!("an outcome is an object");
        };
        let mut serialised: Vec<String> = fields.keys().cloned().collect();
        serialised.sort();
        let mut described = properties(super::OutcomeSchema::schema());
        described.sort();
        assert_eq!(serialised, described);
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
