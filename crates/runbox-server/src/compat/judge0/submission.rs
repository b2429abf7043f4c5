//! A Judge0 submission as a client sends it (`POST /submissions`, one entry of a batch), checked the way Judge0
//! checks it (errors are `{field: [message]}`), and its translation into runbox's [`ExecuteBody`]. Text fields
//! arrive base64-encoded when the query says `base64_encoded=true` (only `source_code`, `stdin` and
//! `expected_output`, as in Judge0 1.13.1); limits come in Judge0's units (seconds, KB), as numbers or numeric
//! strings.

use std::collections::BTreeMap;

use base64::Engine as _;
use runbox_engine::{Encoding, LimitCaps, LimitOverrides, SourceFile};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalogue;
use crate::api::ExecuteBody;

/// Judge0's validation errors: field → messages.
pub type Errors = BTreeMap<String, Vec<String>>;

/// The submission as stored beside its job (text decoded), echoed back in its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub source_code: Option<String>,
    pub language_id: Option<i64>,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub cpu_time_limit: Option<f64>,
    pub cpu_extra_time: Option<f64>,
    pub wall_time_limit: Option<f64>,
    pub memory_limit: Option<f64>,
    pub stack_limit: Option<f64>,
    pub max_processes_and_or_threads: Option<f64>,
    pub enable_per_process_and_thread_time_limit: Option<bool>,
    pub enable_per_process_and_thread_memory_limit: Option<bool>,
    pub max_file_size: Option<f64>,
    pub redirect_stderr_to_stdout: Option<bool>,
    pub enable_network: Option<bool>,
    pub number_of_runs: Option<f64>,
    pub callback_url: Option<String>,
    /// A base64 zip whose files are put next to the source file (always base64, as in Judge0).
    pub additional_files: Option<String>,
    /// The files of `additional_files`, unpacked (not stored: the runbox request carries them).
    #[serde(skip)]
    pub extracted: Vec<SourceFile>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub created_at: i64,
}

fn add(errors: &mut Errors, field: &str, message: impl Into<String>) {
    errors.entry(field.to_string()).or_default().push(message.into());
}

/// Decodes base64 as leniently as Ruby's `Base64.decode64` reads what clients send: line breaks and missing
/// padding are fine.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(cleaned).ok()
}

fn text(map: &Map<String, Value>, field: &str, base64: bool, errors: &mut Errors) -> Option<String> {
    let value = match map.get(field)? {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if !base64 {
        return Some(value);
    }
    let Some(bytes) = decode_base64(&value) else {
        add(errors, field, "is not valid base64");
        return None;
    };
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(_) => {
            add(errors, field, "must be UTF-8 text once decoded");
            None
        }
    }
}

fn number(map: &Map<String, Value>, field: &str, errors: &mut Errors) -> Option<f64> {
    let parsed = match map.get(field)? {
        Value::Null => return None,
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => return None,
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    };
    if parsed.is_none() {
        add(errors, field, "is not a number");
    }
    parsed
}

fn flag(map: &Map<String, Value>, field: &str, errors: &mut Errors) -> Option<bool> {
    match map.get(field)? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "1" => Some(true),
        Value::String(s) if s == "false" || s == "0" || s.is_empty() => Some(false),
        _ => {
            add(errors, field, "is not a boolean");
            None
        }
    }
}

/// Rails' numericality messages for an inclusive range.
fn range(errors: &mut Errors, field: &str, value: Option<f64>, min: f64, min_exclusive: bool, max: f64) {
    let Some(v) = value else { return };
    if min_exclusive && v <= min {
        add(errors, field, format!("must be greater than {min}"));
    } else if !min_exclusive && v < min {
        add(errors, field, format!("must be greater than or equal to {min}"));
    } else if v > max {
        add(errors, field, format!("must be less than or equal to {max}"));
    }
}

impl Submission {
    /// Reads and checks a submission. Unknown fields are ignored, as Judge0 does.
    pub fn parse(value: &Value, base64: bool, caps: &LimitCaps) -> Result<Submission, Errors> {
        let mut errors = Errors::new();
        let Some(map) = value.as_object() else {
            add(&mut errors, "submission", "must be a JSON object");
            return Err(errors);
        };
        let mut s = Submission {
            source_code: text(map, "source_code", base64, &mut errors),
            stdin: text(map, "stdin", base64, &mut errors),
            expected_output: text(map, "expected_output", base64, &mut errors),
            compiler_options: text(map, "compiler_options", false, &mut errors),
            command_line_arguments: text(map, "command_line_arguments", false, &mut errors),
            cpu_time_limit: number(map, "cpu_time_limit", &mut errors),
            cpu_extra_time: number(map, "cpu_extra_time", &mut errors),
            wall_time_limit: number(map, "wall_time_limit", &mut errors),
            memory_limit: number(map, "memory_limit", &mut errors),
            stack_limit: number(map, "stack_limit", &mut errors),
            max_processes_and_or_threads: number(map, "max_processes_and_or_threads", &mut errors),
            enable_per_process_and_thread_time_limit: flag(
                map,
                "enable_per_process_and_thread_time_limit",
                &mut errors,
            ),
            enable_per_process_and_thread_memory_limit: flag(
                map,
                "enable_per_process_and_thread_memory_limit",
                &mut errors,
            ),
            max_file_size: number(map, "max_file_size", &mut errors),
            redirect_stderr_to_stdout: flag(map, "redirect_stderr_to_stdout", &mut errors),
            enable_network: flag(map, "enable_network", &mut errors),
            number_of_runs: number(map, "number_of_runs", &mut errors),
            callback_url: text(map, "callback_url", false, &mut errors).filter(|u| !u.trim().is_empty()),
            additional_files: text(map, "additional_files", false, &mut errors).filter(|f| !f.trim().is_empty()),
            extracted: Vec::new(),
            language_id: None,
            created_at: crate::jobs::now_ms(),
        };
        match number(map, "language_id", &mut errors) {
            None if !errors.contains_key("language_id") => add(&mut errors, "language_id", "can't be blank"),
            None => {}
            Some(id) if id.fract() != 0.0 || catalogue::runbox_language(id as i64).is_none() => add(
                &mut errors,
                "language_id",
                format!("language with id {id} doesn't exist"),
            ),
            Some(id) => s.language_id = Some(id as i64),
        }
        if s.source_code.as_deref().is_none_or(|c| c.trim().is_empty()) && !errors.contains_key("source_code") {
            add(&mut errors, "source_code", "can't be blank");
        }
        let secs = |ms: u64| ms as f64 / 1000.0;
        range(&mut errors, "number_of_runs", s.number_of_runs, 0.0, true, 20.0);
        range(
            &mut errors,
            "cpu_time_limit",
            s.cpu_time_limit,
            0.0,
            false,
            secs(caps.cpu_ms),
        );
        range(&mut errors, "cpu_extra_time", s.cpu_extra_time, 0.0, false, 5.0);
        range(
            &mut errors,
            "wall_time_limit",
            s.wall_time_limit,
            1.0,
            false,
            secs(caps.timeout_ms),
        );
        range(
            &mut errors,
            "memory_limit",
            s.memory_limit,
            16.0 * 1024.0,
            false,
            (caps.memory_mb * 1024) as f64,
        );
        range(&mut errors, "stack_limit", s.stack_limit, 0.0, false, 128_000.0);
        let procs = f64::from(caps.processes);
        range(
            &mut errors,
            "max_processes_and_or_threads",
            s.max_processes_and_or_threads,
            0.0,
            true,
            procs,
        );
        range(
            &mut errors,
            "max_file_size",
            s.max_file_size,
            0.0,
            false,
            (caps.file_size_mb * 1024) as f64,
        );
        for (field, value) in [
            ("compiler_options", &s.compiler_options),
            ("command_line_arguments", &s.command_line_arguments),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 512) {
                add(&mut errors, field, "is too long (maximum is 512 characters)");
            }
        }
        if s.compiler_options.as_deref().is_some_and(|o| !o.trim().is_empty()) {
            add(
                &mut errors,
                "compiler_options",
                "setting compiler options is not allowed",
            );
        }
        if let Some(zip) = &s.additional_files {
            match unzip(zip, caps) {
                Ok(files) => s.extracted = files,
                Err(e) => add(&mut errors, "additional_files", e),
            }
        }
        if s.enable_network == Some(true) {
            add(&mut errors, "enable_network", "enabling network is not allowed");
        }
        for (field, value) in [
            (
                "enable_per_process_and_thread_time_limit",
                s.enable_per_process_and_thread_time_limit,
            ),
            (
                "enable_per_process_and_thread_memory_limit",
                s.enable_per_process_and_thread_memory_limit,
            ),
        ] {
            if value == Some(true) {
                add(&mut errors, field, "this option cannot be enabled");
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }

    /// The runbox request: the language behind the id, the code, stdin, arguments split as the shell would,
    /// and the limits converted to runbox's units (seconds → ms, KB → MB, rounded up).
    pub fn to_body(&self) -> ExecuteBody {
        let ms = |s: f64| ((s * 1000.0).ceil() as u64).max(1);
        let mb = |kb: f64| ((kb / 1024.0).ceil() as u64).max(1);
        ExecuteBody {
            language: self
                .language_id
                .and_then(catalogue::runbox_language)
                .unwrap_or("python")
                .to_string(),
            code: self.source_code.clone(),
            command: None,
            files: self.extracted.clone(),
            entry: None,
            stdin: self.stdin.clone(),
            args: self
                .command_line_arguments
                .as_deref()
                .map(split_arguments)
                .unwrap_or_default(),
            env: BTreeMap::new(),
            timeout_ms: None,
            limits: LimitOverrides {
                timeout_ms: self.wall_time_limit.map(ms),
                cpu_ms: self.cpu_time_limit.map(ms),
                memory_mb: self.memory_limit.map(mb),
                processes: self.max_processes_and_or_threads.map(|p| p.ceil() as u32),
                file_size_mb: self.max_file_size.map(mb),
                ..Default::default()
            },
            tests: Vec::new(),
            collect: Vec::new(),
            callback_url: None,
        }
    }
}

/// The Judge0 field a runbox field error is about.
pub fn judge0_field(runbox_field: &str) -> &str {
    match runbox_field {
        "limits.timeout_ms" | "timeout_ms" => "wall_time_limit",
        "limits.cpu_ms" => "cpu_time_limit",
        "limits.memory_mb" => "memory_limit",
        "limits.processes" => "max_processes_and_or_threads",
        "limits.file_size_mb" => "max_file_size",
        "args" => "command_line_arguments",
        "language" => "language_id",
        "code" => "source_code",
        f if f.starts_with("files") => "additional_files",
        other => other,
    }
}

/// Most bytes `additional_files` may unpack to (Judge0's `max_extract_size`, 10240 KB).
pub const MAX_EXTRACT_BYTES: usize = 10240 * 1024;

/// Unpacks Judge0's `additional_files` (a base64 zip) into files for the workspace, bounded in count (the server's
/// `max_files`) and unpacked size (the smaller of `max_extract_size` and `max_file_bytes`), so a zip bomb costs
/// at most that much memory. Directories are skipped; paths that would leave the workspace are refused.
pub fn unzip(b64: &str, caps: &LimitCaps) -> Result<Vec<SourceFile>, String> {
    use std::io::Read as _;
    let bytes = decode_base64(b64).ok_or("is not valid base64")?;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("is not a zip archive: {e}"))?;
    let budget = MAX_EXTRACT_BYTES.min(caps.max_file_bytes);
    let mut used = 0usize;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("cannot read entry {i}: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let Some(path) = entry.enclosed_name() else {
            return Err(format!("entry {:?} leaves the workspace", entry.name()));
        };
        let path = path.to_string_lossy().into_owned();
        if files.len() >= caps.max_files {
            return Err(format!("has more than {} files", caps.max_files));
        }
        let mut content = Vec::new();
        let room = (budget - used) as u64;
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot unpack {path:?}: {e}"))?;
        used += content.len();
        if used > budget {
            return Err(format!("unpacks to more than {budget} bytes"));
        }
        files.push(SourceFile {
            path,
            content: base64::engine::general_purpose::STANDARD.encode(content),
            encoding: Encoding::Base64,
        });
    }
    Ok(files)
}

/// Splits a command line into arguments the way bash does for Judge0's `run_cmd ARGS` script: whitespace
/// separates, single and double quotes group, a backslash escapes. Judge0 first removes `$&;<>|` and backquotes,
/// so they never reach the program; runbox drops them too.
pub fn split_arguments(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars().filter(|c| !"$&;<>|`".contains(*c)).peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    current.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => current.extend(chars.next()),
                        _ => current.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, base64: bool) -> Result<Submission, Errors> {
        Submission::parse(&v, base64, &LimitCaps::default())
    }

    #[test]
    fn the_sdks_batch_body_translates_to_runbox_units() {
        // Recorded from the Judge0 Python SDK: base64 text, seconds as floats, memory in KB as a float.
        let s = parse(
            json!({"source_code": "cHJpbnQoNio3KQ==", "language_id": 71, "stdin": "Mw==",
                   "expected_output": "Ng==", "cpu_time_limit": 2.0, "memory_limit": 128000.0}),
            true,
        )
        .unwrap();
        assert_eq!(s.source_code.as_deref(), Some("print(6*7)"));
        assert_eq!(
            (s.stdin.as_deref(), s.expected_output.as_deref()),
            (Some("3"), Some("6"))
        );
        let body = s.to_body();
        assert_eq!(body.language, "python");
        assert_eq!((body.limits.cpu_ms, body.limits.memory_mb), (Some(2000), Some(125)));
        assert_eq!(
            body.limits.timeout_ms, None,
            "absent limits keep the language's defaults"
        );
    }

    #[test]
    fn numbers_may_be_strings_and_base64_may_have_line_breaks() {
        let s = parse(
            json!({"source_code": "cHJp\nbnQo\nMSk", "language_id": "71", "wall_time_limit": "2.5"}),
            true,
        )
        .unwrap();
        assert_eq!(s.source_code.as_deref(), Some("print(1)"));
        assert_eq!(s.to_body().limits.timeout_ms, Some(2500));
    }

    #[test]
    fn errors_are_judge0s_field_lists() {
        let e = parse(json!({}), false).unwrap_err();
        assert_eq!(e["source_code"], ["can't be blank"]);
        assert_eq!(e["language_id"], ["can't be blank"]);
        let e = parse(json!({"source_code": "x", "language_id": 9999}), false).unwrap_err();
        assert_eq!(e["language_id"], ["language with id 9999 doesn't exist"]);
        let e = parse(
            json!({"source_code": "x", "language_id": 71, "number_of_runs": 0, "enable_network": true,
                   "compiler_options": "-O3", "cpu_time_limit": 1e9}),
            false,
        )
        .unwrap_err();
        assert_eq!(e["number_of_runs"], ["must be greater than 0"]);
        assert_eq!(e["enable_network"], ["enabling network is not allowed"]);
        assert_eq!(e["compiler_options"], ["setting compiler options is not allowed"]);
        assert!(e["cpu_time_limit"][0].starts_with("must be less than or equal to"));
        let e = parse(
            json!({"source_code": "x", "language_id": 71, "additional_files": "bm90IGEgemlw"}),
            false,
        )
        .unwrap_err();
        assert!(e["additional_files"][0].starts_with("is not a zip archive"), "{e:?}");
        let e = parse(json!({"source_code": "%%%", "language_id": 71}), true).unwrap_err();
        assert_eq!(e["source_code"], ["is not valid base64"]);
        let e = parse(json!({"source_code": "/w==", "language_id": 71}), true).unwrap_err();
        assert_eq!(e["source_code"], ["must be UTF-8 text once decoded"]);
    }

    #[test]
    fn command_line_arguments_split_like_bash_without_its_metacharacters() {
        assert_eq!(
            split_arguments("a  'b c' \"d \\\"e\\\"\" f\\ g"),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(split_arguments("x; rm -rf / | y"), ["x", "rm", "-rf", "/", "y"]);
        assert!(split_arguments("   ").is_empty());
        assert_eq!(split_arguments("''"), [""]);
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> String {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
    }

    #[test]
    fn additional_files_unpack_next_to_the_source_within_bounds() {
        let zip = zip_of(&[("data/in.txt", b"hello"), ("bin", &[0xff, 0])]);
        let s = parse(
            json!({"source_code": "x", "language_id": 71, "additional_files": zip}),
            false,
        )
        .unwrap();
        let body = s.to_body();
        assert_eq!(body.files.len(), 2);
        assert_eq!(
            (body.files[0].path.as_str(), body.files[0].content.as_str()),
            ("data/in.txt", "aGVsbG8=")
        );
        assert_eq!(body.files[1].content, "/wA=");
        let caps = LimitCaps {
            max_file_bytes: 8,
            ..LimitCaps::default()
        };
        let big = zip_of(&[("a", &[7u8; 9])]);
        assert_eq!(unzip(&big, &caps).unwrap_err(), "unpacks to more than 8 bytes");
        let escape = zip_of(&[("../x", b"1")]);
        assert!(unzip(&escape, &LimitCaps::default())
            .unwrap_err()
            .contains("leaves the workspace"));
    }
}
