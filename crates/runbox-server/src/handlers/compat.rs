//! Compatibility with clients written for other code interpreters: `POST /process/interpreter/execute` answers in
//! the shape of a Jupyter-style interpreter endpoint, running a fresh Python interpreter per call.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use runbox_engine::{ExecuteRequest, ExecutionResult, ExecutionStatus, LimitOverrides};

use crate::api::{InterpreterBody, InterpreterError, InterpreterResponse};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::running::{admit, run_admitted};
use crate::state::AppState;

/// `NameError: name 'x' is not defined` → (NameError, name 'x' is not defined), from the last line of a traceback.
fn python_error(stderr: &str) -> Option<InterpreterError> {
    if !stderr.contains("Traceback (most recent call last)") && !stderr.contains("SyntaxError") {
        return None;
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty())?;
    let (name, value) = match last.split_once(": ") {
        Some((n, v)) if !n.contains(' ') => (n.to_string(), v.to_string()),
        _ => (last.trim().to_string(), String::new()),
    };
    Some(InterpreterError {
        name,
        value,
        traceback: stderr.to_string(),
    })
}

pub fn to_interpreter_response(r: ExecutionResult) -> InterpreterResponse {
    let error = if r.status == ExecutionStatus::Ok {
        None
    } else {
        python_error(&r.record.stderr)
    };
    let status = match r.status {
        ExecutionStatus::Ok => "ok",
        ExecutionStatus::Timeout | ExecutionStatus::CpuLimit | ExecutionStatus::Killed => "interrupted",
        _ if error.is_some() => "error",
        ExecutionStatus::ExitedNonzero => "exit",
        _ => "error",
    };
    let error = error.or_else(|| {
        (status == "error").then(|| InterpreterError {
            name: r.status.as_str().to_string(),
            value: r.record.message.clone().unwrap_or_default(),
            traceback: String::new(),
        })
    });
    InterpreterResponse {
        status: status.into(),
        stdout: r.record.stdout,
        stderr: r.record.stderr,
        session_id: None,
        error,
        exit_code: r.record.exit_code,
    }
}

/// The engine names the environment `env`; this route calls it `envs`, and its errors say so.
fn env_is_envs(mut e: ApiError) -> ApiError {
    let field = e.details.as_ref().and_then(|d| d["field"].as_str()).map(String::from);
    if let Some(field) = field.filter(|f| f == "env" || f.starts_with("env.")) {
        let renamed = format!("envs{}", &field[3..]);
        e.message = e.message.replacen(&field, &renamed, 1);
        e.details = Some(serde_json::json!({ "field": renamed }));
    }
    e
}

/// `timeout` (seconds, more than 0) as milliseconds within `cap_ms`; errors name this route's own field.
fn timeout_ms(timeout: Option<f64>, cap_ms: u64) -> Result<Option<u64>, ApiError> {
    let Some(t) = timeout else { return Ok(None) };
    let cap_s = cap_ms as f64 / 1000.0;
    if !(t > 0.0 && t <= cap_s) {
        return Err(ApiError::invalid_field(
            "timeout",
            format!("must be more than 0 and at most {cap_s} seconds"),
        ));
    }
    Ok(Some(((t * 1000.0).ceil() as u64).clamp(1, cap_ms)))
}

/// Run Python in a fresh interpreter (compatibility route).
#[utoipa::path(post, path = "/process/interpreter/execute", operation_id = "interpreterExecute", tag = "compat",
    request_body(content = InterpreterBody, example = json!({"code": "print(6 * 7)", "timeout": 10})),
    responses((status = 200, body = InterpreterResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn interpreter_execute(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<InterpreterBody>,
) -> ApiResult<Json<InterpreterResponse>> {
    let timeout_ms = timeout_ms(body.timeout, state.config.limits.timeout_ms)?;
    let req = ExecuteRequest {
        language: "python".into(),
        code: Some(body.code),
        env: body.envs,
        limits: LimitOverrides {
            timeout_ms,
            ..Default::default()
        },
        ..Default::default()
    };
    let admitted = admit(&state, &caller, req).await.map_err(env_is_envs)?;
    let result = run_admitted(&state, admitted, None, |_| true).await?;
    Ok(Json(to_interpreter_response(result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_tracebacks_become_name_and_value() {
        let e = python_error(
            "Traceback (most recent call last):\n  File \"main.py\", line 1\nNameError: name 'x' is not defined\n",
        )
        .unwrap();
        assert_eq!(
            (e.name.as_str(), e.value.as_str()),
            ("NameError", "name 'x' is not defined")
        );
        assert!(python_error("plain text").is_none());
    }

    #[test]
    fn timeouts_are_checked_against_this_routes_own_field() {
        assert_eq!(timeout_ms(None, 60_000).unwrap(), None);
        assert_eq!(timeout_ms(Some(0.0001), 60_000).unwrap(), Some(1));
        assert_eq!(timeout_ms(Some(60.0), 60_000).unwrap(), Some(60_000));
        for bad in [0.0, -1.0, 60.001, f64::INFINITY, f64::NAN, 1e300] {
            let e = timeout_ms(Some(bad), 60_000).unwrap_err();
            assert_eq!(e.details.unwrap()["field"], "timeout", "{bad}");
        }
    }

    #[test]
    fn exit_results_keep_the_exit_code() {
        let r: ExecutionResult = serde_json::from_value(serde_json::json!({"status": "exited_nonzero",
            "language": "python", "version": null, "exit_code": 3, "signal": null, "stdout": "", "stderr": "",
            "stdout_truncated": false, "stderr_truncated": false, "wall_ms": 1, "cpu_ms": null,
            "memory_peak_bytes": null, "duration_ms": 1}))
        .unwrap();
        let out = to_interpreter_response(r);
        assert_eq!((out.status.as_str(), out.exit_code), ("exit", Some(3)));
    }
}
