//! Judge0 CE 1.13.1's fixed tables as runbox serves them: language ids (the ones the Judge0 SDK resolves), the
//! status ids and descriptions, `/about` and `/config_info` (every key: the SDK refuses a partial one).

use runbox_engine::{CatalogueEntry, LimitCaps};
use serde_json::{json, Value};

/// The Judge0 version runbox answers as: one of the SDK's known tables, so that `judge0.PYTHON` resolves.
pub const VERSION: &str = "1.13.1";

/// Most submissions in one batch request (Judge0's default).
pub const MAX_BATCH: usize = 20;

/// (Judge0 CE 1.13.1 id, Judge0's language name without version, runbox language id).
pub const LANGUAGES: &[(i64, &str, &str)] = &[
    (46, "Bash", "bash"),
    (50, "C (GCC", "c"),
    (52, "C++ (GCC", "cpp"),
    (54, "C++ (GCC", "cpp"),
    (60, "Go", "go"),
    (62, "Java (OpenJDK", "java"),
    (63, "JavaScript (Node.js", "javascript"),
    (64, "Lua", "lua"),
    (68, "PHP", "php"),
    (71, "Python", "python"),
    (72, "Ruby", "ruby"),
    (73, "Rust", "rust"),
    (74, "TypeScript", "typescript"),
    (80, "R", "r"),
    (82, "SQL (SQLite", "sql"),
    (85, "Perl", "perl"),
];

/// The runbox language behind a Judge0 language id.
pub fn runbox_language(id: i64) -> Option<&'static str> {
    LANGUAGES.iter().find(|(i, _, _)| *i == id).map(|(_, _, l)| *l)
}

/// Judge0's display name with the installed version: `Python (3.11.2)`, `C (GCC 12.2.0)`.
pub fn display_name(id: i64, entry: &CatalogueEntry) -> String {
    let base = LANGUAGES.iter().find(|(i, _, _)| *i == id).map_or("", |(_, b, _)| *b);
    let version = entry.version.as_deref().unwrap_or("unknown");
    match base.split_once(" (") {
        Some((name, tool)) => format!("{name} ({tool} {version})"),
        None => format!("{base} ({version})"),
    }
}

/// The Judge0 languages this host can run, as (id, name, runbox entry), by id.
pub fn available(entries: &[CatalogueEntry]) -> Vec<(i64, String, CatalogueEntry)> {
    LANGUAGES
        .iter()
        .filter_map(|(id, _, lang)| {
            let entry = entries.iter().find(|e| e.id == *lang && e.available)?;
            Some((*id, display_name(*id, entry), entry.clone()))
        })
        .collect()
}

/// Status ids 1-14 with Judge0's descriptions.
pub const STATUSES: &[(u8, &str)] = &[
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

/// `{id, description}` of a status id.
pub fn status(id: u8) -> Value {
    let description = STATUSES.iter().find(|(i, _)| *i == id).map_or("", |(_, d)| *d);
    json!({ "id": id, "description": description })
}

pub fn about() -> Value {
    json!({
        "version": VERSION,
        "homepage": "https://github.com/runbox",
        "source_code": "runbox: Judge0 CE compatibility routes",
        "maintainer": "runbox",
    })
}

/// Every key Judge0 CE 1.13.1 returns. Defaults are Judge0's; maxima are the server's own caps in Judge0's units
/// (seconds, KB). What runbox does not offer is off: compiler options, network, per-process limits.
pub fn config_info(caps: &LimitCaps, max_queue: usize) -> Value {
    let max_seconds = |ms: u64| ms as f64 / 1000.0;
    json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": false,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": true,
        "enable_callbacks": true,
        "callbacks_max_tries": 3,
        "callbacks_timeout": 5.0,
        "enable_additional_files": true,
        "max_queue_size": max_queue,
        "cpu_time_limit": 5.0_f64.min(max_seconds(caps.cpu_ms)),
        "max_cpu_time_limit": max_seconds(caps.cpu_ms),
        "cpu_extra_time": 1.0,
        "max_cpu_extra_time": 5.0,
        "wall_time_limit": 10.0_f64.min(max_seconds(caps.timeout_ms)),
        "max_wall_time_limit": max_seconds(caps.timeout_ms),
        "memory_limit": 128_000.min(caps.memory_mb * 1024),
        "max_memory_limit": caps.memory_mb * 1024,
        "stack_limit": 64_000,
        "max_stack_limit": 128_000,
        "max_processes_and_or_threads": 60.min(caps.processes),
        "max_max_processes_and_or_threads": caps.processes,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": 1024.min(caps.file_size_mb * 1024),
        "max_max_file_size": caps.file_size_mb * 1024,
        "number_of_runs": 1,
        "max_number_of_runs": 20,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": super::submission::MAX_EXTRACT_BYTES / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 1.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_the_issue_names_has_judge0s_id() {
        for (id, lang) in [
            (71, "python"),
            (50, "c"),
            (52, "cpp"),
            (54, "cpp"),
            (62, "java"),
            (63, "javascript"),
            (74, "typescript"),
            (46, "bash"),
            (60, "go"),
            (73, "rust"),
            (72, "ruby"),
            (68, "php"),
            (80, "r"),
            (85, "perl"),
            (64, "lua"),
            (82, "sql"),
        ] {
            assert_eq!(runbox_language(id), Some(lang), "{id}");
        }
        assert_eq!(runbox_language(1), None);
    }

    #[test]
    fn config_info_has_every_key_the_sdk_requires() {
        // The Judge0 SDK's `Config` model: every field is required.
        let sdk = "allow_enable_network allow_enable_per_process_and_thread_memory_limit \
            allow_enable_per_process_and_thread_time_limit allowed_languages_for_compile_options callbacks_max_tries \
            callbacks_timeout cpu_extra_time cpu_time_limit enable_additional_files enable_batched_submissions \
            enable_callbacks enable_command_line_arguments enable_compiler_options enable_network \
            enable_per_process_and_thread_memory_limit enable_per_process_and_thread_time_limit \
            enable_submission_delete enable_wait_result maintenance_mode max_cpu_extra_time max_cpu_time_limit \
            max_extract_size max_file_size max_max_file_size max_max_processes_and_or_threads max_memory_limit \
            max_number_of_runs max_processes_and_or_threads max_queue_size max_stack_limit \
            max_submission_batch_size max_wall_time_limit memory_limit number_of_runs redirect_stderr_to_stdout \
            stack_limit submission_cache_duration use_docs_as_homepage wall_time_limit";
        let info = config_info(&LimitCaps::default(), 100);
        let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
        let mut wanted: Vec<&str> = sdk.split_whitespace().collect();
        wanted.sort();
        assert_eq!(keys, wanted, "Judge0 CE 1.13.1 answers exactly these 39 keys");
        assert_eq!(info["max_submission_batch_size"], 20);
    }

    #[test]
    fn statuses_run_from_1_to_14() {
        let ids: Vec<u8> = STATUSES.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, (1..=14).collect::<Vec<u8>>());
        assert_eq!(status(11)["description"], "Runtime Error (NZEC)");
    }
}
