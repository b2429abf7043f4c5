//! A submission's record as Judge0 shows it: the status decided from runbox's outcome the way Judge0 decides it,
//! outputs as text or base64, times in seconds (decimal strings, as Judge0's JSON has them), memory in KB, and
//! only the requested `fields`.

use base64::Engine as _;
use runbox_engine::{ExecutionResult, ExecutionStatus};
use runbox_sandbox::Outcome;
use serde_json::{json, Map, Value};

use super::catalogue;
use super::submission::Submission;
use crate::jobs::JobView;

/// Every field of a record, in Judge0's order (`fields=*`).
pub const ALL_FIELDS: &[&str] = &[
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// Fields shown when the request names none.
pub const DEFAULT_FIELDS: &[&str] = &[
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// The fields a `fields=` query asks for, or the names Judge0 refuses (`invalid fields: [...]`).
pub fn requested_fields(query: Option<&str>) -> Result<Vec<&'static str>, Vec<String>> {
    let asked: Vec<&str> = query.unwrap_or("").split(',').filter(|f| !f.is_empty()).collect();
    let invalid: Vec<String> = asked
        .iter()
        .filter(|f| **f != "*" && !ALL_FIELDS.contains(f))
        .map(|f| f.to_string())
        .collect();
    if !invalid.is_empty() {
        return Err(invalid);
    }
    if asked.contains(&"*") {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut chosen: Vec<&'static str> = Vec::new();
    for f in asked {
        if let Some(known) = ALL_FIELDS.iter().find(|k| **k == f) {
            if !chosen.contains(known) {
                chosen.push(known);
            }
        }
    }
    Ok(if chosen.is_empty() {
        DEFAULT_FIELDS.to_vec()
    } else {
        chosen
    })
}

/// Judge0's comparison: each line right-trimmed, then the whole right-trimmed (Ruby's `rstrip` removes ASCII
/// whitespace and NUL). An empty stdout is no output at all, which never equals an expected output.
pub fn judge0_strip(text: &str) -> String {
    let strip = |s: &str| {
        s.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\0')
            .to_string()
    };
    let lines: Vec<String> = text.split('\n').map(strip).collect();
    strip(&lines.join("\n"))
}

/// Judge0's status for a finished run: time limit → 5, compile error → 6, a signal → 7/8/9/10/12, a non-zero
/// exit → 11, an internal failure → 13, otherwise 3 or 4 by comparing `expected_output`.
pub fn decide(result: &ExecutionResult, stdout: Option<&str>, expected: Option<&str>) -> u8 {
    match result.status {
        ExecutionStatus::CompileError => 6,
        ExecutionStatus::Timeout | ExecutionStatus::CpuLimit => 5,
        ExecutionStatus::SandboxError => 13,
        ExecutionStatus::Ok => match expected {
            None => 3,
            Some(e) if stdout.is_some_and(|s| judge0_strip(e) == judge0_strip(s)) => 3,
            Some(_) => 4,
        },
        _ => match result.record.signal {
            Some(11) => 7,
            Some(25) => 8,
            Some(8) => 9,
            Some(6) => 10,
            Some(_) => 12,
            None if result.status == ExecutionStatus::ExitedNonzero => 11,
            None => 12,
        },
    }
}

/// Judge0's words for an abnormal end (isolate's messages).
fn message(result: &ExecutionResult, status: u8) -> Option<String> {
    match status {
        3 | 4 | 6 => None,
        5 => Some("Time limit exceeded".into()),
        7..=10 | 12 if result.record.signal.is_some() => {
            Some(format!("Caught fatal signal {}", result.record.signal.unwrap_or(0)))
        }
        11 => Some(format!(
            "Exited with error status {}",
            result.record.exit_code.unwrap_or(1)
        )),
        _ => result.record.message.clone(),
    }
}

fn compile_output(stage: &Outcome) -> Option<Vec<u8>> {
    let mut out = stage.record.stdout_bytes();
    out.extend(stage.record.stderr_bytes());
    (!out.is_empty()).then_some(out)
}

/// Output that is not UTF-8, asked for without `base64_encoded=true`.
#[derive(Debug)]
pub struct NotUtf8;

fn text_value(data: Option<Vec<u8>>, base64: bool) -> Result<Value, NotUtf8> {
    match data {
        None => Ok(Value::Null),
        Some(d) if base64 => Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(d))),
        Some(d) => String::from_utf8(d).map(Value::String).map_err(|_| NotUtf8),
    }
}

/// `2026-11-30T15:31:31.123Z` from milliseconds since the epoch.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn seconds(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(format!("{:.3}", ms as f64 / 1000.0)))
}

fn decimal(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| Value::String(format!("{v:?}")))
}

fn integer(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| json!(v.round() as i64))
}

/// The whole record of a submission (every field); `language_name` is the display name of its language.
pub fn record(
    token: &str,
    s: &Submission,
    job: &JobView,
    language_name: &str,
    base64: bool,
) -> Result<Map<String, Value>, NotUtf8> {
    let result: Option<ExecutionResult> = job.result.clone().and_then(|r| serde_json::from_value(r).ok());
    let mut stdout = None;
    let mut stderr = None;
    let mut compile = None;
    let (mut time, mut wall_time, mut memory) = (Value::Null, Value::Null, Value::Null);
    let (mut exit_code, mut exit_signal, mut msg) = (Value::Null, Value::Null, None);
    let status = match (job.status.as_str(), &result) {
        ("queued", _) => 1,
        ("running", _) => 2,
        (_, Some(r)) => {
            let out = r.record.stdout_bytes();
            let err = r.record.stderr_bytes();
            compile = r.compile.as_ref().and_then(compile_output);
            let out_text = String::from_utf8_lossy(&out).into_owned();
            let status = if job.status == "cancelled" {
                13
            } else {
                decide(
                    r,
                    (!out.is_empty()).then_some(out_text.as_str()),
                    s.expected_output.as_deref(),
                )
            };
            if status == 6 {
                if r.compile
                    .as_ref()
                    .is_some_and(|c| c.status == runbox_sandbox::Status::Timeout)
                {
                    compile = Some(b"Compilation time limit exceeded.".to_vec());
                }
            } else {
                let (mut out, err) = (out, err);
                if s.redirect_stderr_to_stdout == Some(true) {
                    out.extend(err);
                    stderr = None;
                } else {
                    stderr = (!err.is_empty()).then_some(err);
                }
                stdout = (!out.is_empty()).then_some(out);
                let run = &r.record;
                time = seconds(run.cpu_ms.or(Some(run.wall_ms)));
                wall_time = seconds(Some(run.wall_ms));
                memory = run.memory_peak_bytes.map_or(Value::Null, |b| json!(b / 1024));
                exit_code = json!(run.exit_code.unwrap_or(0));
                exit_signal = run.signal.map_or(Value::Null, |s| json!(s));
                msg = if job.status == "cancelled" {
                    Some("cancelled".to_string())
                } else {
                    message(r, status)
                };
            }
            status
        }
        _ => {
            msg = Some(
                job.error
                    .as_ref()
                    .and_then(|e| e["message"].as_str())
                    .unwrap_or("the submission could not run")
                    .to_string(),
            );
            13
        }
    };
    let finished_at = job
        .finished_at
        .filter(|_| status > 2)
        .map_or(Value::Null, |t| json!(timestamp(t)));
    let text = |t: &Option<String>| text_value(t.as_ref().map(|t| t.clone().into_bytes()), base64);
    let mut m = Map::new();
    m.insert("source_code".into(), text(&s.source_code)?);
    m.insert("language_id".into(), json!(s.language_id));
    m.insert("stdin".into(), text(&s.stdin)?);
    m.insert("expected_output".into(), text(&s.expected_output)?);
    m.insert("stdout".into(), text_value(stdout, base64)?);
    m.insert("status_id".into(), json!(status));
    m.insert("created_at".into(), json!(timestamp(job.created_at)));
    m.insert("finished_at".into(), finished_at);
    m.insert("time".into(), time);
    m.insert("memory".into(), memory);
    m.insert("stderr".into(), text_value(stderr, base64)?);
    m.insert("token".into(), json!(token));
    m.insert("number_of_runs".into(), integer(s.number_of_runs));
    m.insert("cpu_time_limit".into(), decimal(s.cpu_time_limit));
    m.insert("cpu_extra_time".into(), decimal(s.cpu_extra_time));
    m.insert("wall_time_limit".into(), decimal(s.wall_time_limit));
    m.insert("memory_limit".into(), integer(s.memory_limit));
    m.insert("stack_limit".into(), integer(s.stack_limit));
    m.insert(
        "max_processes_and_or_threads".into(),
        integer(s.max_processes_and_or_threads),
    );
    m.insert(
        "enable_per_process_and_thread_time_limit".into(),
        json!(s.enable_per_process_and_thread_time_limit.unwrap_or(false)),
    );
    m.insert(
        "enable_per_process_and_thread_memory_limit".into(),
        json!(s.enable_per_process_and_thread_memory_limit.unwrap_or(false)),
    );
    m.insert("max_file_size".into(), integer(s.max_file_size));
    m.insert("compile_output".into(), text_value(compile, base64)?);
    m.insert("exit_code".into(), exit_code);
    m.insert("exit_signal".into(), exit_signal);
    m.insert("message".into(), text_value(msg.map(String::into_bytes), base64)?);
    m.insert("wall_time".into(), wall_time);
    m.insert("compiler_options".into(), json!(s.compiler_options));
    m.insert("command_line_arguments".into(), json!(s.command_line_arguments));
    m.insert(
        "redirect_stderr_to_stdout".into(),
        json!(s.redirect_stderr_to_stdout.unwrap_or(false)),
    );
    m.insert("callback_url".into(), json!(s.callback_url));
    // Always base64, as Judge0 serves it.
    m.insert("additional_files".into(), json!(s.additional_files));
    m.insert("enable_network".into(), json!(s.enable_network.unwrap_or(false)));
    m.insert("status".into(), catalogue::status(status));
    m.insert("language".into(), json!({"id": s.language_id, "name": language_name}));
    Ok(m)
}

/// Keeps the requested fields, in the order asked.
pub fn select(mut all: Map<String, Value>, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = all.remove(*f) {
            out.insert(f.to_string(), v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runbox_sandbox::Status;

    fn outcome(status: Status, exit_code: Option<i32>, signal: Option<i32>) -> Outcome {
        serde_json::from_value(json!({
            "status": status, "exit_code": exit_code, "signal": signal, "stdout": "", "stderr": "",
            "stdout_truncated": false, "stderr_truncated": false, "wall_ms": 5, "cpu_ms": 3,
            "memory_peak_bytes": 2048,
        }))
        .unwrap()
    }

    fn result(status: ExecutionStatus, exit_code: Option<i32>, signal: Option<i32>) -> ExecutionResult {
        ExecutionResult::from_stage("c", None, status, outcome(Status::Ok, exit_code, signal).record)
    }

    #[test]
    fn statuses_are_decided_in_judge0s_order() {
        use ExecutionStatus as E;
        let cases = [
            (result(E::CompileError, Some(1), None), 6),
            (result(E::Timeout, None, Some(9)), 5),
            (result(E::CpuLimit, None, Some(24)), 5),
            (result(E::Killed, None, Some(11)), 7),
            (result(E::Killed, None, Some(25)), 8),
            (result(E::Killed, None, Some(8)), 9),
            (result(E::Killed, None, Some(6)), 10),
            (result(E::Killed, None, Some(15)), 12),
            (result(E::MemoryLimit, None, Some(9)), 12),
            (result(E::OutputLimit, None, None), 12),
            (result(E::ExitedNonzero, Some(3), None), 11),
            (result(E::SandboxError, None, None), 13),
            (result(E::Ok, Some(0), None), 3),
        ];
        for (r, want) in cases {
            assert_eq!(decide(&r, None, None), want, "{:?} {:?}", r.status, r.record.signal);
        }
    }

    #[test]
    fn expected_output_is_compared_as_judge0_compares_it() {
        let ok = result(ExecutionStatus::Ok, Some(0), None);
        assert_eq!(decide(&ok, Some("1 2  \n3\n\n\n"), Some("1 2\n3")), 3);
        assert_eq!(decide(&ok, Some("a\r\nb\r\n"), Some("a\nb")), 3);
        assert_eq!(decide(&ok, Some("1  2\n3"), Some("1 2\n3")), 4);
        assert_eq!(decide(&ok, Some("\n42"), Some("42")), 4, "leading blank lines count");
        assert_eq!(
            decide(&ok, None, Some("")),
            4,
            "no output never equals an expected output"
        );
        assert_eq!(decide(&ok, Some("anything"), None), 3);
    }

    #[test]
    fn non_utf8_output_needs_base64() {
        let mut r = result(ExecutionStatus::Ok, Some(0), None);
        r.record.stdout = "\u{FFFD}".into();
        r.record.stdout_base64 = Some("/w==".into());
        let job = JobView {
            id: "t".into(),
            status: "done".into(),
            created_at: 0,
            started_at: Some(0),
            finished_at: Some(1),
            result: Some(serde_json::to_value(&r).unwrap()),
            error: None,
            result_truncated: false,
        };
        let s = Submission {
            source_code: Some("x".into()),
            language_id: Some(50),
            ..Default::default()
        };
        assert!(record("t", &s, &job, "C", false).is_err());
        let m = record("t", &s, &job, "C", true).unwrap();
        assert_eq!(m["stdout"], "/w==");
        assert_eq!(m["status"]["id"], 3);
        assert_eq!(m["finished_at"], "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn a_job_result_stored_by_an_earlier_version_is_read() {
        // A row's result as the server stored it when the execution result listed its stage's fields itself.
        let stored = json!({
            "status": "exited_nonzero", "language": "c", "version": "12", "exit_code": 3, "signal": null,
            "stdout": "partial", "stderr": "\u{FFFD}", "stderr_base64": "/w==", "stdout_truncated": false,
            "stderr_truncated": false, "wall_ms": 1500, "cpu_ms": 1250, "memory_peak_bytes": 4096,
            "duration_ms": 1600,
        });
        let job = JobView {
            id: "t".into(),
            status: "done".into(),
            created_at: 0,
            started_at: Some(0),
            finished_at: Some(1),
            result: Some(stored),
            error: None,
            result_truncated: false,
        };
        let s = Submission {
            source_code: Some("x".into()),
            language_id: Some(50),
            ..Default::default()
        };
        let m = record("t", &s, &job, "C", true).unwrap();
        assert_eq!(m["status"]["id"], 11);
        assert_eq!(m["exit_code"], 3);
        assert_eq!((&m["stdout"], &m["stderr"]), (&json!("cGFydGlhbA=="), &json!("/w==")));
        assert_eq!(
            (&m["time"], &m["wall_time"], &m["memory"]),
            (&json!("1.250"), &json!("1.500"), &json!(4))
        );
        assert_eq!(
            m["message"], "RXhpdGVkIHdpdGggZXJyb3Igc3RhdHVzIDM=",
            "Exited with error status 3, base64"
        );
    }

    #[test]
    fn fields_are_checked_and_chosen() {
        assert_eq!(requested_fields(None).unwrap(), DEFAULT_FIELDS);
        assert_eq!(requested_fields(Some("*")).unwrap().len(), ALL_FIELDS.len());
        assert_eq!(requested_fields(Some("stdout,token")).unwrap(), ["stdout", "token"]);
        assert_eq!(requested_fields(Some("stdout,nope")).unwrap_err(), ["nope"]);
    }

    #[test]
    fn timestamps_are_judge0s_format() {
        assert_eq!(timestamp(1_796_052_691_123), "2026-11-30T15:31:31.123Z");
    }
}
