//! Every catalogue language behaves like itself in the sandbox: hello world, stdin, arguments, exit codes, runtime
//! errors, compile errors, unicode, programs of two files, and the time and memory limits.
//!
//! Each language is a table of snippets ([`Lang`]); `language_tests!` turns every (language, case) pair into its
//! own test, named `<language>::<case>` (e.g. `go::memory_bomb_is_memory_limit`), so `cargo test go::` runs one
//! language and `cargo test memory_bomb` one case for all of them.
//!
//! A language whose runtime is not installed is skipped with a message, except under `CI` (or with
//! `RUNBOX_REQUIRE_RUNTIMES=1`), where it fails.

use crate::common;
use common::*;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use runbox_lang::{discovery, Availability, Catalogue};

use super::snippets::*;

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let overrides = std::env::var_os(runbox_lang::LANGUAGES_DIR_ENV).map(std::path::PathBuf::from);
        Catalogue::load(overrides.as_deref()).expect("load the language catalogue")
    })
}

/// Whether `lang`'s runtime is installed. When it is not: under `CI` (or `RUNBOX_REQUIRE_RUNTIMES=1`) the test
/// fails, elsewhere it is skipped with a message.
fn available(lang: &Lang) -> bool {
    static FOUND: OnceLock<BTreeMap<String, Availability>> = OnceLock::new();
    let found = FOUND.get_or_init(|| discovery::discover(catalogue()));
    let availability = found
        .get(lang.id)
        .unwrap_or_else(|| panic!("{} is not in the language catalogue", lang.id));
    if availability.available {
        return true;
    }
    let why = availability.reason.as_deref().unwrap_or("no reason given");
    // CI sets `CI`; scripts/test.sh sets RUNBOX_REQUIRE_RUNTIMES=1 (as the runbox-lang discovery test reads it).
    if std::env::var_os("CI").is_some() || std::env::var("RUNBOX_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!(
            "the {} runtime is missing on this CI host ({why}); install it with scripts/install-runtimes.sh",
            lang.id
        );
    }
    eprintln!("SKIPPED: the {} runtime is not installed ({why})", lang.id);
    false
}

fn is_compiled(lang: &Lang) -> bool {
    catalogue()
        .get(lang.id)
        .unwrap_or_else(|| panic!("{} is not in the catalogue", lang.id))
        .is_compiled()
}

/// Runs `code` as the entry file of `lang` (by id) with extra flags, stdin and arguments.
fn run_code(lang: &Lang, code: &str, flags: &[&str], stdin: Option<&str>, args: &[&str]) -> Execution {
    Submission {
        lang: Some(lang.id),
        code: Some(code),
        flags,
        stdin: stdin.map(str::as_bytes),
        args,
        ..Default::default()
    }
    .execute()
}

/// Checks what every execution of `lang` must be: its language, and a compile stage exactly for compiled
/// languages, whose run stage (when it ran) is what the top level shows.
#[track_caller]
fn assert_shape(lang: &Lang, out: &Execution) {
    assert_eq!(out.language, lang.id, "{out:#?}");
    if !is_compiled(lang) {
        assert!(
            out.compile.is_none() && out.run.is_none(),
            "an interpreted language has no stages: {out:#?}"
        );
        return;
    }
    let compile = out
        .compile
        .as_ref()
        .unwrap_or_else(|| panic!("no compile stage: {out:#?}"));
    if out.status == ExecStatus::CompileError {
        assert!(out.run.is_none(), "the run stage ran after a compile error: {out:#?}");
        assert!(!matches!(compile.status, Status::Ok), "{out:#?}");
        assert_eq!(
            (&out.stdout, &out.stderr),
            (&compile.record.stdout, &compile.record.stderr),
            "{out:#?}"
        );
        return;
    }
    assert_eq!(compile.status, Status::Ok, "compile stage failed: {out:#?}");
    let run = out.run.as_ref().unwrap_or_else(|| panic!("no run stage: {out:#?}"));
    assert!(
        out.status.is(run.status),
        "top-level status is not the run stage's: {out:#?}"
    );
    assert_eq!(
        (&out.stdout, &out.stderr, out.exit_code),
        (&run.record.stdout, &run.record.stderr, run.record.exit_code),
        "{out:#?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The cases, one function each; `language_tests!` calls them for every language.

fn hello_world_prints_exactly(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.hello, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, HELLO_OUT, "{out:#?}");
    assert_eq!(out.exit_code, Some(0));
    assert!(
        out.version.as_deref().is_some_and(|v| !v.is_empty()),
        "no version: {out:#?}"
    );
}

fn reads_stdin(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = Submission {
        lang: Some(lang.alias),
        code: Some(lang.stdin),
        stdin: Some(STDIN_IN.as_bytes()),
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, STDIN_OUT, "{out:#?}");
}

fn receives_command_line_args(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.args, &[], None, ARGS);
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, ARGS_OUT, "{out:#?}");
}

fn nonzero_exit_code_is_reported(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(lang, lang.exit, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::ExitedNonzero);
    assert_shape(lang, &out);
    assert_eq!(
        (out.stdout.as_str(), out.exit_code, out.signal),
        (EXIT_OUT, Some(3), None),
        "{out:#?}"
    );
}

fn runtime_error_is_reported_on_stderr(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let e = &lang.runtime_error;
    let out = run_code(lang, e.code, &[], None, &[]);
    assert_exec_status(&out, e.status);
    assert_shape(lang, &out);
    assert_eq!((out.exit_code, out.signal), (e.exit_code, e.signal), "{out:#?}");
    assert_eq!(out.stdout, e.stdout, "{out:#?}");
    assert!(
        out.stderr.contains(e.stderr_contains),
        "stderr lacks {:?}: {out:#?}",
        e.stderr_contains
    );
}

fn compile_error_is_reported_without_run_stage(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let (code, message) = lang
        .compile_error
        .expect("a compiled language has a compile-error snippet");
    let out = run_code(lang, code, &[], None, &[]);
    assert_exec_status(&out, ExecStatus::CompileError);
    assert_shape(lang, &out);
    let compile = out.compile.as_ref().unwrap();
    assert_eq!(compile.status, Status::ExitedNonzero, "{out:#?}");
    assert!(
        out.stderr.contains(message) || out.stdout.contains(message),
        "the compiler's message {message:?} is in neither stderr nor stdout: {out:#?}"
    );
}

fn prints_unicode(lang: &Lang) {
    if !available(lang) {
        return;
    }
    // No --lang: the entry file's extension says the language.
    let out = Submission {
        files: &[lang.unicode],
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, UNICODE_OUT, "{out:#?}");
}

fn two_file_program_runs(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = Submission {
        lang: Some(lang.id),
        files: lang.two_files,
        ..Default::default()
    }
    .execute();
    assert_exec_status(&out, ExecStatus::Ok);
    assert_shape(lang, &out);
    assert_eq!(out.stdout, TWO_FILES_OUT, "{out:#?}");
}

fn infinite_loop_is_stopped_by_the_time_limit(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let started = std::time::Instant::now();
    let out = run_code(lang, lang.cpu_loop, &["--timeout-ms", LOOP_TIMEOUT_MS], None, &[]);
    assert!(
        matches!(out.status, ExecStatus::Timeout | ExecStatus::CpuLimit),
        "not stopped by a time limit: {out:#?}"
    );
    assert_shape(lang, &out);
    assert!(out.wall_ms < 5_000, "{out:#?}");
    assert!(started.elapsed().as_secs() < 60);
}

fn memory_bomb_is_memory_limit(lang: &Lang) {
    if !available(lang) {
        return;
    }
    let out = run_code(
        lang,
        lang.memory_bomb,
        &["--memory-mb", BOMB_MEMORY_MB, "--timeout-ms", "20000"],
        None,
        &[],
    );
    assert_exec_status(&out, ExecStatus::MemoryLimit);
    assert_shape(lang, &out);
    // The cgroup's recorded peak may pass its limit by a few pages (charges are batched).
    let limit: u64 = (BOMB_MEMORY_MB.parse::<u64>().unwrap() + 2) << 20;
    assert!(out.memory_peak_bytes.is_some_and(|peak| peak <= limit), "{out:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// The tests.

/// `mod <language> { #[test] fn <case>() }` for each listed case.
macro_rules! language_tests {
    ($module:ident, $lang:ident, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    super::$case(&super::$lang);
                }
            )*
        }
    };
    // The cases every language has except SQL, which takes no arguments.
    (interpreted $module:ident, $lang:ident) => {
        language_tests!($module, $lang, [
            hello_world_prints_exactly,
            reads_stdin,
            receives_command_line_args,
            nonzero_exit_code_is_reported,
            runtime_error_is_reported_on_stderr,
            prints_unicode,
            two_file_program_runs,
            infinite_loop_is_stopped_by_the_time_limit,
            memory_bomb_is_memory_limit,
        ]);
    };
    (compiled $module:ident, $lang:ident) => {
        language_tests!($module, $lang, [
            hello_world_prints_exactly,
            reads_stdin,
            receives_command_line_args,
            nonzero_exit_code_is_reported,
            runtime_error_is_reported_on_stderr,
            compile_error_is_reported_without_run_stage,
            prints_unicode,
            two_file_program_runs,
            infinite_loop_is_stopped_by_the_time_limit,
            memory_bomb_is_memory_limit,
        ]);
    };
}

language_tests!(interpreted python, PYTHON);
language_tests!(interpreted javascript, JAVASCRIPT);
language_tests!(compiled typescript, TYPESCRIPT);
language_tests!(interpreted bash, BASH);
language_tests!(compiled c, C);
language_tests!(compiled cpp, CPP);
language_tests!(compiled java, JAVA);
language_tests!(compiled go, GO);
language_tests!(compiled rust, RUST);
language_tests!(interpreted ruby, RUBY);
language_tests!(interpreted php, PHP);
language_tests!(interpreted r, R);
language_tests!(interpreted perl, PERL);
language_tests!(interpreted lua, LUA);
// No `receives_command_line_args`: sqlite3's run argv has no {args}, SQL has no use for them.
language_tests!(
    sql,
    SQL,
    [
        hello_world_prints_exactly,
        reads_stdin,
        nonzero_exit_code_is_reported,
        runtime_error_is_reported_on_stderr,
        prints_unicode,
        two_file_program_runs,
        infinite_loop_is_stopped_by_the_time_limit,
        memory_bomb_is_memory_limit,
    ]
);

#[test]
fn every_catalogue_language_is_covered_and_every_compiled_one_has_a_compile_error_case() {
    let mut ours: Vec<&str> = ALL.iter().map(|l| l.id).collect();
    let mut theirs: Vec<&str> = catalogue().iter().map(|l| l.id()).collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
    for lang in ALL {
        assert_eq!(is_compiled(lang), lang.compile_error.is_some(), "{}", lang.id);
        let alias = catalogue()
            .get(lang.alias)
            .unwrap_or_else(|| panic!("unknown alias {}", lang.alias));
        assert_eq!(alias.id(), lang.id);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Nothing leaks from one execution to the next through /tmp, in particular not Go's build cache (/tmp/gocache).

#[test]
fn tmp_starts_empty_in_every_run() {
    if !available(&BASH) {
        return;
    }
    let first = run_code(
        &BASH,
        "ls -A /tmp; echo left > /tmp/marker; mkdir /tmp/gocache",
        &[],
        None,
        &[],
    );
    assert_exec_status(&first, ExecStatus::Ok);
    assert_eq!(first.stdout, "", "{first:#?}");
    let second = run_code(&BASH, "ls -A /tmp", &[], None, &[]);
    assert_exec_status(&second, ExecStatus::Ok);
    assert_eq!(second.stdout, "", "{second:#?}");
}

#[test]
fn go_build_cache_does_not_leak_between_runs() {
    if !available(&GO) || !available(&BASH) {
        return;
    }
    // Each run reports whether the previous one's markers are visible, then leaves markers in /tmp and in the
    // build cache (which exists in the run stage only if the stages share /tmp: its own, which is fine).
    let code = "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\
                \tfor _, p := range []string{\"/tmp/go-marker\", \"/tmp/gocache/go-marker\"} {\n\
                \t\tif _, err := os.Stat(p); err == nil {\n\t\t\tfmt.Println(\"leaked:\", p)\n\t\t}\n\t}\n\
                \t_ = os.MkdirAll(\"/tmp/gocache\", 0o755)\n\
                \t_ = os.WriteFile(\"/tmp/go-marker\", []byte(\"x\"), 0o644)\n\
                \t_ = os.WriteFile(\"/tmp/gocache/go-marker\", []byte(\"x\"), 0o644)\n\tfmt.Println(\"done\")\n}\n";
    for _ in 0..2 {
        let out = run_code(&GO, code, &[], None, &[]);
        assert_exec_status(&out, ExecStatus::Ok);
        assert_shape(&GO, &out);
        assert_eq!(out.stdout, "done\n", "{out:#?}");
    }
    let after = run_code(&BASH, "ls -A /tmp", &[], None, &[]);
    assert_exec_status(&after, ExecStatus::Ok);
    assert_eq!(after.stdout, "", "a later run sees another run's /tmp: {after:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Regression: stdio reopened by path.

/// `cat /dev/stdin`, `fs.readFileSync('/dev/stdin')`, `echo x > /dev/stderr`: programs reopen their stdio by path
/// (/proc/self/fd/N), which works because the jail hands the pipes to the sandbox user.
#[test]
fn stdin_and_stdout_open_by_path() {
    if !available(&BASH) {
        return;
    }
    let out = run_code(
        &BASH,
        "cat /dev/stdin; echo out > /dev/stdout; echo err > /dev/stderr",
        &[],
        Some("in\n"),
        &[],
    );
    assert_exec_status(&out, ExecStatus::Ok);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("in\nout\n", "err\n"),
        "{out:#?}"
    );
}
