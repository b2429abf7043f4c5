//! Piston's wire format and its translation: a Piston request (JSON or `pistonapi`'s form) into runbox's
//! [`ExecuteBody`], runbox's result into Piston's stages (`output`, signal names, `RE|SG|TO|OL|EL|XX`), and
//! Piston's version matching.

use base64::Engine as _;
use runbox_engine::{Encoding, ExecutionResult, ExecutionStatus, LimitCaps, LimitOverrides, SourceFile};
use runbox_sandbox::{Outcome, RunRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::PistonError;
use crate::api::ExecuteBody;

/// A file of a Piston request; the first is the entry point.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct PistonFile {
    /// Defaults to the language's source file for the first file, `file{i}.code` for the others.
    pub name: Option<String>,
    pub content: String,
    /// `utf8` (default), `base64` or `hex`.
    pub encoding: Option<String>,
}

/// `POST /api/v2/execute`: JSON (also as `text/plain`) or a form with `files` as a string of code.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct PistonExecuteBody {
    /// A language name or alias.
    pub language: String,
    /// A version or range (`3.11.2`, `3.x`, `^3`), `*`, or absent.
    pub version: Option<String>,
    pub files: Vec<PistonFile>,
    pub stdin: Option<String>,
    pub args: Option<Vec<String>>,
    /// Milliseconds; -1 means the default. Compile limits are checked against the caps; the compile stage keeps
    /// its language's limits.
    pub compile_timeout: Option<i64>,
    pub run_timeout: Option<i64>,
    pub compile_cpu_time: Option<i64>,
    pub run_cpu_time: Option<i64>,
    /// Bytes; -1 means the default.
    pub compile_memory_limit: Option<i64>,
    pub run_memory_limit: Option<i64>,
}

/// One stage's outcome, Piston style.
#[derive(Debug, Serialize, ToSchema)]
pub struct PistonStage {
    pub stdout: String,
    pub stderr: String,
    /// stdout then stderr (runbox keeps the two streams apart, so they are not interleaved).
    pub output: String,
    pub code: Option<i32>,
    /// A signal name such as `SIGKILL`.
    pub signal: Option<String>,
    pub message: Option<String>,
    /// null, or `RE` (non-zero exit), `SG` (signal), `TO` (time), `OL`/`EL` (output limit), `XX` (internal).
    pub status: Option<String>,
    /// Bytes.
    pub memory: Option<u64>,
    /// Milliseconds.
    pub cpu_time: Option<u64>,
    pub wall_time: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PistonResult {
    pub language: String,
    pub version: String,
    pub run: PistonStage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile: Option<PistonStage>,
}

/// Name of a signal number (Linux x86-64/arm64 numbering).
pub fn signal_name(n: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("SIG{n}"), |s| s.to_string())
}

/// A stage in Piston's shape from its status and record. Output that is not UTF-8 is shown as runbox's text
/// fields show it (invalid sequences as U+FFFD): Piston answers text only.
fn stage(status: ExecutionStatus, record: &RunRecord) -> PistonStage {
    use ExecutionStatus as E;
    let (exit_code, signal) = (record.exit_code, record.signal);
    let (stdout, stderr) = (record.stdout.clone(), record.stderr.clone());
    let code_status = match status {
        E::Ok | E::CompileError if exit_code == Some(0) => None,
        E::Ok => None,
        E::Timeout | E::CpuLimit => Some("TO"),
        E::OutputLimit if record.stdout_truncated => Some("OL"),
        E::OutputLimit => Some("EL"),
        E::SandboxError => Some("XX"),
        _ if signal.is_some() => Some("SG"),
        _ => Some("RE"),
    };
    let signal = match code_status {
        Some("TO") | Some("OL") | Some("EL") => Some("SIGKILL".to_string()),
        _ => signal.map(signal_name),
    };
    let message = record.message.clone().or_else(|| match code_status {
        Some("RE") => Some(format!("Exited with error status {}", exit_code.unwrap_or(1))),
        Some("SG") => signal.as_ref().map(|s| format!("Caught fatal signal {s}")),
        _ => None,
    });
    PistonStage {
        output: format!("{stdout}{stderr}"),
        stdout,
        stderr,
        code: if code_status == Some("SG") || code_status == Some("TO") {
            None
        } else {
            exit_code
        },
        signal,
        message,
        status: code_status.map(str::to_string),
        memory: record.memory_peak_bytes,
        cpu_time: record.cpu_ms,
        wall_time: Some(record.wall_ms),
    }
}

fn outcome_stage(o: &Outcome) -> PistonStage {
    stage(o.status.into(), &o.record)
}

/// runbox's result in Piston's shape: `compile` for compiled languages, and `run` mirroring `compile` when the
/// run stage did not start (as Piston does).
pub fn to_piston(r: &ExecutionResult, version: &str) -> PistonResult {
    let top = || stage(r.status, &r.record);
    let compile = r.compile.as_ref().map(outcome_stage);
    let run = match (&r.run, &r.compile) {
        (Some(run), _) => outcome_stage(run),
        (None, Some(c)) if r.status == ExecutionStatus::CompileError => outcome_stage(c),
        _ => top(),
    };
    PistonResult {
        language: r.language.clone(),
        version: version.to_string(),
        run,
        compile,
    }
}

/// Whether an installed version satisfies what the client asked: absent, `*`, `x`, an exact version, a prefix
/// (`3`, `3.11`), x-ranges (`3.x`), caret (`^3.10`, same major) and tilde (`~3.11`, same major.minor).
pub fn version_matches(installed: &str, asked: Option<&str>) -> bool {
    let asked = asked.map(str::trim).unwrap_or("");
    if asked.is_empty() || asked == "*" || asked.eq_ignore_ascii_case("x") || asked == installed {
        return true;
    }
    let parts = |v: &str| -> Vec<String> {
        v.trim_start_matches(['=', 'v'])
            .split('.')
            .map(str::to_string)
            .collect()
    };
    let have = parts(installed);
    let (want, significant) = if let Some(rest) = asked.strip_prefix('^') {
        (parts(rest), 1)
    } else if let Some(rest) = asked.strip_prefix('~') {
        (parts(rest), 2)
    } else {
        let p = parts(asked);
        let n = p.len();
        (p, n)
    };
    let num = |s: &str| s.parse::<u64>().ok();
    let wildcard = |s: &str| matches!(s, "x" | "X" | "*");
    // Not a range at all (`^x.y`, `3.a`): nothing satisfies it, as with semver.
    if want.iter().any(|w| num(w).is_none() && !wildcard(w)) {
        return false;
    }
    for (i, w) in want.iter().enumerate() {
        if wildcard(w) {
            return true;
        }
        let h = have.get(i).map(String::as_str).unwrap_or("0");
        if i < significant {
            if h != w {
                return false;
            }
        } else {
            // Beyond the fixed components, the installed version must be at least the one asked.
            match (num(h), num(w)) {
                (Some(h), Some(w)) if h > w => return true,
                (Some(h), Some(w)) if h < w => return false,
                _ if h != w => return false,
                _ => {}
            }
        }
    }
    true
}

/// `pistonapi`'s form: `files` is code (one file per value), `args` repeats, `timeout` is the run timeout.
pub fn form_to_json(bytes: &[u8]) -> Value {
    let mut out = Map::new();
    let mut files = Vec::new();
    let mut args = Vec::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        match k.as_ref() {
            "files" => files.push(json!({ "content": v })),
            "args" => args.push(Value::String(v.into_owned())),
            "timeout" => {
                out.insert("run_timeout".into(), Value::String(v.into_owned()));
            }
            _ => {
                out.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    out.insert("files".into(), Value::Array(files));
    out.insert("args".into(), Value::Array(args));
    Value::Object(out)
}

/// A limit: absent, 0 or -1 mean the default; a number or a numeric string; never negative, never over `cap`.
fn limit(body: &Value, name: &str, cap: u64) -> Result<Option<u64>, PistonError> {
    let v = match &body[name] {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
    .ok_or_else(|| PistonError::bad(format!("If specified, {name} must be a number")))?;
    if v == 0.0 || v == -1.0 {
        return Ok(None);
    }
    if v < 0.0 {
        return Err(PistonError::bad(format!("{name} must be non-negative")));
    }
    if v > cap as f64 {
        return Err(PistonError::bad(format!(
            "{name} cannot exceed the configured limit of {cap}"
        )));
    }
    Ok(Some(v.ceil() as u64))
}

pub(super) fn string(body: &Value, name: &str) -> Option<String> {
    match &body[name] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Piston's request as runbox's: the files (first is the entry), stdin, args and the run limits.
pub fn to_body(body: &Value, language: &str, caps: &LimitCaps) -> Result<ExecuteBody, PistonError> {
    let Some(files) = body["files"].as_array() else {
        return Err(PistonError::bad("files is required as an array"));
    };
    if files.is_empty() {
        return Err(PistonError::bad("files must include at least one utf8 encoded file"));
    }
    let mut code = None;
    let mut sources = Vec::new();
    let mut entry = None;
    for (i, f) in files.iter().enumerate() {
        let Some(content) = f["content"].as_str() else {
            return Err(PistonError::bad(format!("files[{i}].content is required as a string")));
        };
        let name = f["name"].as_str().filter(|n| !n.is_empty());
        let (content, encoding) = match f["encoding"].as_str().unwrap_or("utf8") {
            "utf8" | "utf-8" => (content.to_string(), Encoding::Utf8),
            "base64" => (content.to_string(), Encoding::Base64),
            "hex" => {
                let bytes = decode_hex(content)
                    .ok_or_else(|| PistonError::bad(format!("files[{i}].content is not valid hex")))?;
                (
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    Encoding::Base64,
                )
            }
            other => {
                return Err(PistonError::bad(format!(
                    "files[{i}].encoding {other:?} is not utf8, base64 or hex"
                )))
            }
        };
        match (i, name) {
            (0, None) => match encoding {
                Encoding::Utf8 => code = Some(content),
                Encoding::Base64 => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(content.trim())
                        .map_err(|_| PistonError::bad("files[0].content is not valid base64"))?;
                    code = Some(String::from_utf8(bytes).map_err(|_| PistonError::bad("files[0] must be UTF-8 text"))?);
                }
            },
            (_, name) => {
                let path = name.map_or_else(|| format!("file{i}.code"), str::to_string);
                if i == 0 {
                    entry = Some(path.clone());
                }
                sources.push(SourceFile {
                    path,
                    content,
                    encoding,
                });
            }
        }
    }
    let args = match &body["args"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(PistonError::bad("args must be an array of strings")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(PistonError::bad("args must be an array of strings")),
    };
    for (name, cap) in [
        ("compile_timeout", caps.timeout_ms),
        ("compile_cpu_time", caps.cpu_ms),
        ("compile_memory_limit", caps.memory_mb << 20),
    ] {
        limit(body, name, cap)?;
    }
    // runbox's smallest memory limit is 16 MiB: a smaller one is refused rather than silently raised.
    let memory = limit(body, "run_memory_limit", caps.memory_mb << 20)?;
    if memory.is_some_and(|b| b < 16 << 20) {
        return Err(PistonError::bad(format!(
            "run_memory_limit must be at least {}",
            16 << 20
        )));
    }
    let memory = memory.map(|b| b.div_ceil(1 << 20));
    Ok(ExecuteBody {
        language: language.to_string(),
        code,
        command: None,
        files: sources,
        entry,
        stdin: string(body, "stdin"),
        args,
        env: Default::default(),
        timeout_ms: None,
        limits: LimitOverrides {
            timeout_ms: limit(body, "run_timeout", caps.timeout_ms)?,
            cpu_ms: limit(body, "run_cpu_time", caps.cpu_ms)?,
            memory_mb: memory,
            ..Default::default()
        },
        tests: Vec::new(),
        collect: Vec::new(),
        callback_url: None,
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piston_clients_bodies_translate() {
        // piston-client's body (posted as text/plain): default args 1 2 3 and -1 limits.
        let body = json!({"language":"python","version":"3.11.2","files":[{"content":"print(6*7)"}],"stdin":"",
            "args":["1","2","3"],"compile_timeout":10000,"run_timeout":3000,"compile_memory_limit":-1,
            "run_memory_limit":-1});
        let b = to_body(&body, "python", &LimitCaps::default()).unwrap();
        assert_eq!(b.code.as_deref(), Some("print(6*7)"));
        assert_eq!(b.args, ["1", "2", "3"]);
        assert_eq!((b.limits.timeout_ms, b.limits.memory_mb), (Some(3000), None));
        // pistonapi's form: files is the code, timeout the run timeout.
        let form = form_to_json(b"language=python&version=3.11.2&files=print%286%2A7%29&stdin=&timeout=10000");
        let b = to_body(&form, "python", &LimitCaps::default()).unwrap();
        assert_eq!(
            (b.code.as_deref(), b.limits.timeout_ms),
            (Some("print(6*7)"), Some(10000))
        );
    }

    #[test]
    fn named_and_encoded_files_keep_their_names_and_bytes() {
        let body = json!({"language":"c","files":[{"name":"main.c","content":"int main(){}"},
            {"content":"6869","encoding":"hex"}, {"name":"d.bin","content":"/w==","encoding":"base64"}]});
        let b = to_body(&body, "c", &LimitCaps::default()).unwrap();
        assert_eq!(b.entry.as_deref(), Some("main.c"));
        assert_eq!(b.files[1].path, "file1.code");
        assert_eq!(
            (b.files[1].content.as_str(), b.files[1].encoding),
            ("aGk=", Encoding::Base64)
        );
        assert_eq!(b.files[2].content, "/w==");
    }

    #[test]
    fn bad_limits_are_refused_with_pistons_messages() {
        let caps = LimitCaps::default();
        let with = |k: &str, v: Value| {
            let mut body = json!({"language":"python","files":[{"content":"1"}]});
            body[k] = v;
            to_body(&body, "python", &caps).map(|_| ()).unwrap_err().message
        };
        assert_eq!(with("run_timeout", json!(-5)), "run_timeout must be non-negative");
        assert_eq!(
            with("run_timeout", json!("soon")),
            "If specified, run_timeout must be a number"
        );
        assert!(with("compile_timeout", json!(caps.timeout_ms + 1)).starts_with("compile_timeout cannot exceed"));
        assert_eq!(with("files", json!("x")), "files is required as an array");
        assert_eq!(
            with("run_memory_limit", json!(1_000_000)),
            "run_memory_limit must be at least 16777216"
        );
    }

    #[test]
    fn versions_match_as_semver_ranges_do() {
        for asked in [
            None,
            Some("*"),
            Some("3.11.2"),
            Some("3"),
            Some("3.11"),
            Some("3.x"),
            Some("^3.10.0"),
            Some("~3.11.0"),
        ] {
            assert!(version_matches("3.11.2", asked), "{asked:?}");
        }
        for asked in ["3.10.0", "2", "^4", "~3.10.0", "3.12.x", "3.11.3", "^x.y", "3.a"] {
            assert!(!version_matches("3.11.2", Some(asked)), "{asked}");
        }
    }

    fn record(exit_code: Option<i32>, signal: Option<i32>, stdout: &str, stderr: &str) -> RunRecord {
        RunRecord {
            exit_code,
            signal,
            stdout: stdout.into(),
            stdout_base64: None,
            stderr: stderr.into(),
            stderr_base64: None,
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 1,
            cpu_ms: None,
            memory_peak_bytes: None,
            message: None,
        }
    }

    #[test]
    fn stages_carry_pistons_status_and_signal_names() {
        let s = stage(ExecutionStatus::Killed, &record(None, Some(11), "a", "b"));
        assert_eq!(
            (s.status.as_deref(), s.signal.as_deref(), s.code),
            (Some("SG"), Some("SIGSEGV"), None)
        );
        assert_eq!(s.output, "ab");
        let s = stage(ExecutionStatus::Timeout, &record(None, Some(9), "", ""));
        assert_eq!(
            (s.status.as_deref(), s.signal.as_deref()),
            (Some("TO"), Some("SIGKILL"))
        );
        let s = stage(ExecutionStatus::ExitedNonzero, &record(Some(3), None, "", ""));
        assert_eq!((s.status.as_deref(), s.code), (Some("RE"), Some(3)));
        let s = stage(ExecutionStatus::Ok, &record(Some(0), None, "x", ""));
        assert_eq!((s.status, s.signal, s.code), (None, None, Some(0)));
    }
}
