//! `runbox run`: one program (one or more files, any catalogue language), compiled and run in fresh sandboxes,
//! output streamed to the terminal, or the whole execution result as JSON.

use std::io::{IsTerminal, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use runbox_engine::host::{Background, Host, HostConfig};
use runbox_engine::{
    CancelToken, EngineConfig, ExecEvent, ExecuteRequest, Jail, LimitCaps, LimitOverrides, OutputStream, SourceFile,
    Stage,
};
use runbox_sandbox::{CgroupPreference, Degradation, HostPolicy};

/// Flags that choose the host policy; shared by every subcommand that runs sandboxes.
#[derive(Args, Clone, Default)]
pub struct PolicyFlags {
    /// Protections the operator accepts running without (comma-separated: no-cgroups, no-cpu-cap, no-seccomp,
    /// no-landlock).
    #[arg(long, env = "RUNBOX_ALLOW_DEGRADED", value_delimiter = ',', value_parser = named::<Degradation>)]
    pub allow_degraded: Vec<Option<Degradation>>,
    /// Cgroup version: auto (v2 when its controllers are available, else v1), v1 or v2.
    #[arg(long, env = "RUNBOX_CGROUP", default_value = "auto", value_parser = name_of::<CgroupPreference>)]
    pub cgroup: CgroupPreference,
}

/// A setting named as in the configuration file (`no-cgroups`, `v2`): the enum's own serde names, so the command
/// line and the server's configuration accept the same words. Empty (a trailing comma) is nothing.
fn named<T: serde::de::DeserializeOwned>(raw: &str) -> Result<Option<T>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    T::deserialize(serde::de::IntoDeserializer::<serde::de::value::Error>::into_deserializer(raw))
        .map(Some)
        .map_err(|e| e.to_string())
}

fn name_of<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, String> {
    named(raw)?.ok_or_else(|| "give a value".to_string())
}

pub fn policy_from_flags(flags: &PolicyFlags) -> anyhow::Result<HostPolicy> {
    Ok(HostPolicy {
        degraded: flags.allow_degraded.iter().flatten().copied().collect(),
        cgroup: flags.cgroup,
        ..HostPolicy::default()
    })
}

/// Where the language files come from.
#[derive(Args, Clone, Default)]
pub struct CatalogueFlags {
    /// Directory of language TOML files that override or add to the embedded ones.
    #[arg(long, env = "RUNBOX_LANGUAGES_DIR")]
    pub languages_dir: Option<PathBuf>,
}

/// The engine's host for one CLI invocation (no warm pools, no caps on all sandboxes together), started: the
/// protections decided and what a killed predecessor left in the data directory swept. End it with
/// [`Host::shutdown`].
pub fn host(policy: HostPolicy, catalogue: &CatalogueFlags, background: Background) -> anyhow::Result<Host> {
    let config = HostConfig {
        engine: EngineConfig {
            languages_dir: catalogue.languages_dir.clone(),
            data_dir: data_dir(),
            policy,
            caps: LimitCaps::default(),
            jail: Jail::current_exe().context("find the runbox binary")?,
            compile_cache_bytes: 256 << 20,
            pools: runbox_engine::pools::PoolConfig {
                enabled: false,
                ..Default::default()
            },
        },
        sessions: Default::default(),
        aggregate: None,
        key_caps: None,
        background,
    };
    Host::start(config).map_err(anyhow::Error::msg)
}

#[derive(Args)]
#[command(
    after_help = "Exit status: the program's own; 1 on a compile error; 124 on timeout or CPU limit, \
137 on memory limit, 141 on output limit, 125 when the sandbox itself failed."
)]
pub struct RunArgs {
    /// Language id or alias (see `runbox languages`); inferred from the entry file's extension when omitted.
    #[arg(short, long)]
    lang: Option<String>,
    /// Code of the entry file, instead of a FILE (extra FILEs are still sent along).
    #[arg(short = 'c', long = "code")]
    code: Option<String>,
    /// Source files; the first is the entry point. `-` reads the entry's code from stdin.
    files: Vec<PathBuf>,
    /// Arguments passed to the program.
    #[arg(last = true)]
    args: Vec<String>,
    /// Print the whole execution result as JSON instead of the program's output.
    #[arg(long)]
    json: bool,
    /// File given to the program as its stdin (by default a piped stdin is passed through).
    #[arg(long)]
    stdin: Option<PathBuf>,
    /// Wall time limit (defaults to the language's).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// CPU time limit of all processes together (defaults to the wall time limit).
    #[arg(long)]
    cpu_ms: Option<u64>,
    /// CPU bandwidth in thousandths of a core (default 1000: one core's worth however many threads run).
    #[arg(long)]
    cpu_millicores: Option<u32>,
    #[arg(long)]
    memory_mb: Option<u64>,
    #[arg(long)]
    processes: Option<u32>,
    /// Bytes of stdout (and, separately, of stderr) kept before the run is stopped.
    #[arg(long)]
    output_bytes: Option<u64>,
    #[arg(long)]
    tmp_mb: Option<u64>,
    /// Size of the writable /workspace (a tmpfs when running as root).
    #[arg(long)]
    workspace_mb: Option<u64>,
    #[arg(long)]
    file_size_mb: Option<u64>,
    #[command(flatten)]
    policy: PolicyFlags,
    #[command(flatten)]
    catalogue: CatalogueFlags,
}

/// Where runbox keeps its data: `RUNBOX_DATA_DIR`, else the engine's default (/var/lib/runbox for root, else the
/// user's data directory), as for the server.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("RUNBOX_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => runbox_engine::data_dir::default_dir(),
    }
}

/// The workspace path of a file named on the command line: its relative path when it stays inside the current
/// directory, else its base name.
fn workspace_path(path: &Path) -> anyhow::Result<String> {
    let inside = path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let name = if inside {
        path.to_path_buf()
    } else {
        PathBuf::from(path.file_name().context("a file has no name")?)
    };
    Ok(name.to_string_lossy().into_owned())
}

pub fn main(args: RunArgs) -> anyhow::Result<i32> {
    let policy = policy_from_flags(&args.policy)?;
    let host = host(policy, &args.catalogue, Background::NONE)?;
    let engine = host.engine();
    let mut req = ExecuteRequest::default();
    let mut files = args.files.iter();
    let mut entry_name: Option<String> = None;
    match &args.code {
        Some(code) => req.code = Some(code.clone()),
        None => match files.next() {
            None => bail!("nothing to run: give a file, `-` for stdin, or --code"),
            Some(path) if path.as_os_str() == "-" => {
                let mut code = String::new();
                std::io::stdin()
                    .read_to_string(&mut code)
                    .context("read code from stdin")?;
                req.code = Some(code);
            }
            Some(path) => {
                let name = workspace_path(path)?;
                let content = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
                req.files.push(SourceFile {
                    path: name.clone(),
                    content,
                    encoding: Default::default(),
                });
                entry_name = Some(name);
            }
        },
    }
    for path in files {
        let content = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let (content, encoding) = match String::from_utf8(content) {
            Ok(text) => (text, runbox_engine::Encoding::Utf8),
            Err(e) => {
                use base64::Engine as _;
                (
                    base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                    runbox_engine::Encoding::Base64,
                )
            }
        };
        req.files.push(SourceFile {
            path: workspace_path(path)?,
            content,
            encoding,
        });
    }
    req.language = match (&args.lang, &entry_name) {
        (Some(lang), _) => lang.clone(),
        (None, Some(name)) => engine
            .catalogue()
            .by_file_name(name)
            .map(|l| l.id().to_string())
            .with_context(|| format!("cannot tell the language of {name}: pass --lang"))?,
        (None, None) => bail!("cannot tell the language: pass --lang"),
    };
    req.entry = entry_name;
    req.args = args.args.clone();
    req.limits = LimitOverrides {
        timeout_ms: args.timeout_ms,
        cpu_ms: args.cpu_ms,
        cpu_millicores: args.cpu_millicores,
        memory_mb: args.memory_mb,
        processes: args.processes,
        output_bytes: args.output_bytes,
        file_size_mb: args.file_size_mb,
        tmp_mb: args.tmp_mb,
        workspace_mb: args.workspace_mb,
        open_files: None,
    };

    let stdin: Option<Box<dyn Read + Send>> = match &args.stdin {
        Some(path) => Some(Box::new(
            std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
        )),
        // Code read from stdin already consumed it; an interactive terminal is not forwarded.
        None if args.files.first().is_some_and(|f| f.as_os_str() == "-") || std::io::stdin().is_terminal() => None,
        None => Some(Box::new(std::io::stdin())),
    };
    let json = args.json;
    let result = engine.execute(&req, stdin, &CancelToken::new(), &mut |event| {
        if json {
            return;
        }
        if let ExecEvent::Output { stage, stream, data } = event {
            let _ = match (stage, stream) {
                (Stage::Run, OutputStream::Stdout) => std::io::stdout()
                    .write_all(data)
                    .and_then(|_| std::io::stdout().flush()),
                _ => std::io::stderr().write_all(data),
            };
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else if !matches!(
        result.status,
        runbox_engine::ExecutionStatus::Ok | runbox_engine::ExecutionStatus::ExitedNonzero
    ) {
        eprintln!(
            "runbox: {}: {}",
            result.status.as_str(),
            result.record.message.as_deref().unwrap_or("")
        );
    }
    // Workspaces are removed in the background: the host's end waits for that before the process exits.
    host.shutdown();
    Ok(result.shell_exit_code())
}
