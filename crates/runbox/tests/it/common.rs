//! Helpers shared by the integration tests: run the real `runbox` binary and parse its outcome record.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub use runbox_sandbox::{Outcome, Status};

pub fn runbox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runbox"))
}

/// Runs `code` in `lang` with extra CLI flags and returns the parsed outcome record.
pub fn run(lang: &str, code: &str, flags: &[&str]) -> Outcome {
    run_with_stdin(lang, code, flags, None)
}

pub fn run_with_stdin(lang: &str, code: &str, flags: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let mut cmd = runbox();
    cmd.args(["run", "--json", "--lang", lang, "--code", code]).args(flags);
    let output = output_with_stdin(cmd, stdin);
    parse(&output)
}

pub fn output_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start runbox");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    child.wait_with_output().expect("wait for runbox")
}

pub fn parse(output: &Output) -> Outcome {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "runbox printed no outcome record ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Asserts the run ended with `status`, showing the whole record when it did not.
#[track_caller]
pub fn assert_status(outcome: &Outcome, status: Status) {
    assert_eq!(outcome.status, status, "unexpected outcome: {outcome:#?}");
}

/// Host processes whose command line contains `marker` (excluding this test's own helpers).
pub fn host_processes_matching(marker: &str) -> Vec<String> {
    runbox_testkit::procs::named(marker)
        .into_iter()
        .map(|pid| (pid, runbox_testkit::procs::cmdline(pid)))
        .filter(|(_, cmdline)| !cmdline.contains("--code"))
        .map(|(pid, cmdline)| format!("{pid}: {cmdline}"))
        .collect()
}

/// How an execution (compile stage, then run stage) ended: a stage status, or `compile_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    Ok,
    ExitedNonzero,
    Timeout,
    CpuLimit,
    MemoryLimit,
    OutputLimit,
    Killed,
    SandboxError,
    CompileError,
}

impl ExecStatus {
    /// Whether this is the same status as a stage's.
    pub fn is(self, stage: Status) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(stage).ok()
    }
}

/// The execution result `runbox run --json` prints: the run stage's outcome at the top level (the compile stage's
/// on `compile_error`), plus each stage's own outcome for compiled languages.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Execution {
    pub status: ExecStatus,
    pub language: String,
    pub version: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_ms: u64,
    pub cpu_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub compile: Option<Outcome>,
    #[serde(default)]
    pub run: Option<Outcome>,
    pub duration_ms: u64,
}

/// Asserts the execution ended with `status`, showing the whole record when it did not.
#[track_caller]
pub fn assert_exec_status(execution: &Execution, status: ExecStatus) {
    assert_eq!(execution.status, status, "unexpected execution result: {execution:#?}");
}

/// One `runbox run --json` invocation: code or files (the first file is the entry point), arguments, stdin, flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submission<'a> {
    /// `--lang`; inferred from the entry file when `None`.
    pub lang: Option<&'a str>,
    /// `--code`: the entry's code, written to the language's `source_file`.
    pub code: Option<&'a str>,
    /// Files as (relative path, content), written to a fresh directory that is the current directory of runbox
    /// and named on its command line by those relative paths.
    pub files: &'a [(&'a str, &'a str)],
    /// Program arguments, after `--`.
    pub args: &'a [&'a str],
    /// Given to the program through `--stdin FILE`; no stdin at all when `None`.
    pub stdin: Option<&'a [u8]>,
    /// Other flags (`--timeout-ms`, `--memory-mb`, ...).
    pub flags: &'a [&'a str],
}

impl Submission<'_> {
    /// Runs `runbox run --json` and parses the execution result it prints.
    pub fn execute(&self) -> Execution {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let sources = dir.path().join("src");
        std::fs::create_dir(&sources).unwrap();
        let mut cmd = runbox();
        cmd.current_dir(&sources).args(["run", "--json"]);
        if let Some(lang) = self.lang {
            cmd.args(["--lang", lang]);
        }
        if let Some(code) = self.code {
            cmd.args(["--code", code]);
        }
        for (path, content) in self.files {
            let full = sources.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            cmd.arg(path);
        }
        if let Some(stdin) = self.stdin {
            // Outside the source directory, so that it is not mistaken for a source file.
            let path = dir.path().join("stdin");
            std::fs::write(&path, stdin).unwrap();
            cmd.arg("--stdin").arg(path);
        }
        cmd.args(self.flags);
        if !self.args.is_empty() {
            cmd.arg("--").args(self.args);
        }
        parse_execution(&output_with_stdin(cmd, None))
    }
}

pub fn parse_execution(output: &Output) -> Execution {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "runbox printed no execution result ({e}); exit {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// An engine on `dir` with warm pools of these minimum sizes, refilling in the background (no compile cache).
pub fn pooled_engine(dir: &std::path::Path, min: &[(&str, usize)]) -> runbox_engine::Engine {
    let engine = runbox_engine::Engine::new(runbox_engine::EngineConfig {
        languages_dir: None,
        data_dir: dir.to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: runbox_engine::Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 0,
        pools: runbox_engine::pools::PoolConfig {
            min: min.iter().map(|&(lang, n)| (lang.to_string(), n)).collect(),
            ..Default::default()
        },
    })
    .unwrap();
    engine.start_pools();
    engine
}

/// The cgroups of these workspaces' runs still under the default parent (`runbox`), in every hierarchy the host
/// has: what a killed jail leaves until a sweep removes it (a run's groups are named after its workspace).
pub fn run_cgroups_left(workspaces: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let host = runbox_sandbox::cgroup::detect();
    let mut found = Vec::new();
    for root in host.hierarchies() {
        for ws in workspaces {
            let name = ws.file_name().unwrap().to_string_lossy().into_owned();
            found.extend(
                std::fs::read_dir(root.join("runbox"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|g| g.file_name().to_string_lossy().starts_with(&name))
                    .map(|g| g.path()),
            );
        }
    }
    found
}
