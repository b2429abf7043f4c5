//! `runbox run`: one program, one fresh sandbox, output streamed to the terminal (or the whole outcome as JSON).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context};
use clap::Args;
use runbox_sandbox::{probe, CgroupPreference, Degradation, HostPolicy, Jail, Limits, OutputStream, SandboxSpec, Status, Workspace};

/// Flags that choose the host policy; shared by `run` and `doctor`.
#[derive(Args, Clone, Default)]
pub struct PolicyFlags {
    /// Protections the operator accepts running without (comma-separated: no-cgroups, no-seccomp, no-landlock).
    #[arg(long, env = "RUNBOX_ALLOW_DEGRADED", value_delimiter = ',')]
    pub allow_degraded: Vec<String>,
    /// Cgroup version: auto (v2 when its controllers are available, else v1), v1 or v2.
    #[arg(long, env = "RUNBOX_CGROUP", default_value = "auto")]
    pub cgroup: String,
}

pub fn policy_from_flags(flags: &PolicyFlags) -> anyhow::Result<HostPolicy> {
    let mut policy = HostPolicy::default();
    for name in flags.allow_degraded.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let d = Degradation::parse(name).with_context(|| {
            format!("unknown degradation {name:?} (known: no-cgroups, no-seccomp, no-landlock)")
        })?;
        policy.degraded.insert(d);
    }
    policy.cgroup = match flags.cgroup.as_str() {
        "auto" => CgroupPreference::Auto,
        "v1" => CgroupPreference::V1,
        "v2" => CgroupPreference::V2,
        other => bail!("unknown cgroup version {other:?} (auto, v1 or v2)"),
    };
    Ok(policy)
}

#[derive(Args)]
#[command(after_help = "Exit status: the program's own; 124 on timeout or CPU limit, 137 on memory limit, \
141 on output limit, 125 when the sandbox itself failed.")]
pub struct RunArgs {
    /// Language (python, bash); inferred from the file extension when omitted.
    #[arg(short, long)]
    lang: Option<String>,
    /// Code to run, instead of a file.
    #[arg(short = 'c', long = "code")]
    code: Option<String>,
    /// Source file to run (`-` reads the code from stdin).
    file: Option<PathBuf>,
    /// Arguments passed to the program.
    #[arg(last = true)]
    args: Vec<String>,
    /// Print the whole outcome record as JSON instead of the program's output.
    #[arg(long)]
    json: bool,
    /// File given to the program as its stdin.
    #[arg(long)]
    stdin: Option<PathBuf>,
    #[arg(long, default_value_t = Limits::default().wall_ms)]
    timeout_ms: u64,
    /// CPU time limit (all processes together); defaults to the wall time limit.
    #[arg(long)]
    cpu_ms: Option<u64>,
    #[arg(long, default_value_t = Limits::default().memory_bytes >> 20)]
    memory_mb: u64,
    #[arg(long, default_value_t = Limits::default().processes)]
    processes: u32,
    /// Bytes of stdout (and, separately, of stderr) kept before the run is stopped.
    #[arg(long, default_value_t = Limits::default().output_bytes)]
    output_bytes: u64,
    #[arg(long, default_value_t = Limits::default().tmp_bytes >> 20)]
    tmp_mb: u64,
    /// Size of the writable /workspace (a tmpfs when running as root).
    #[arg(long, default_value_t = 64)]
    workspace_mb: u64,
    #[arg(long, default_value_t = Limits::default().file_size_bytes >> 20)]
    file_size_mb: u64,
    #[command(flatten)]
    policy: PolicyFlags,
}

/// Where runbox keeps its data: `RUNBOX_DATA_DIR`, else /var/lib/runbox for root, else the user's data directory.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNBOX_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if probe::is_root() {
        return PathBuf::from("/var/lib/runbox");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runbox")
}

pub fn runs_dir() -> PathBuf {
    data_dir().join("runs")
}

pub fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("run-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A language as the CLI knew it before languages became data: how to run an entry file.
fn command_for(lang: &str, entry: &str) -> anyhow::Result<Vec<String>> {
    let argv: &[&str] = match lang {
        "python" | "py" | "python3" => &["/usr/bin/python3", "-u"],
        "bash" | "sh" => &["/bin/bash"],
        other => bail!("unknown language {other:?}"),
    };
    Ok(argv.iter().map(|s| s.to_string()).chain([entry.to_string()]).collect())
}

fn language_from_extension(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "py" => Some("python"),
        "sh" | "bash" => Some("bash"),
        _ => None,
    }
}

pub fn main(args: RunArgs) -> anyhow::Result<i32> {
    let policy = policy_from_flags(&args.policy)?;
    let (code, lang) = match (&args.code, &args.file) {
        (Some(_), Some(_)) => bail!("give either --code or a file, not both"),
        (Some(code), None) => (code.clone().into_bytes(), args.lang.clone()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut code = Vec::new();
            std::io::stdin().read_to_end(&mut code).context("read code from stdin")?;
            (code, args.lang.clone())
        }
        (None, Some(path)) => {
            let code = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            (code, args.lang.clone().or_else(|| language_from_extension(path).map(String::from)))
        }
        (None, None) => bail!("nothing to run: give a file, `-` for stdin, or --code"),
    };
    let lang = lang.context("cannot tell the language: pass --lang")?;
    let entry = "main";
    let mut argv = command_for(&lang, entry)?;
    argv.extend(args.args.iter().cloned());

    let id = new_run_id();
    let owner = probe::is_root().then_some(policy.host_uid);
    let ws = Workspace::create(&runs_dir(), &id, Some(args.workspace_mb << 20), owner)?;
    ws.write_file(Path::new(entry), &code)?;

    let limits = Limits {
        wall_ms: args.timeout_ms,
        cpu_ms: args.cpu_ms.unwrap_or(args.timeout_ms),
        memory_bytes: args.memory_mb << 20,
        processes: args.processes,
        output_bytes: args.output_bytes,
        tmp_bytes: args.tmp_mb << 20,
        file_size_bytes: args.file_size_mb << 20,
        ..Limits::default()
    };
    let spec = SandboxSpec {
        id,
        argv,
        env: Default::default(),
        workspace: ws.path().to_path_buf(),
        extra_paths: vec![],
        limits,
        policy,
    };
    spec.validate().map_err(|e| anyhow::anyhow!(e))?;

    let stdin: Option<Box<dyn Read + Send>> = match &args.stdin {
        Some(path) => Some(Box::new(std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?)),
        // Code read from stdin already consumed it; an interactive terminal is not forwarded.
        None if args.file.as_deref() == Some(Path::new("-")) || std::io::stdin().is_terminal() => None,
        None => Some(Box::new(std::io::stdin())),
    };
    let jail = Jail::current_exe().context("find the runbox binary")?;
    let json = args.json;
    let outcome = jail.run(&spec, stdin, &mut |stream, data| {
        if json {
            return;
        }
        let _ = match stream {
            OutputStream::Stdout => std::io::stdout().write_all(data).and_then(|_| std::io::stdout().flush()),
            OutputStream::Stderr => std::io::stderr().write_all(data),
        };
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else if !matches!(outcome.status, Status::Ok | Status::ExitedNonzero) {
        eprintln!("runbox: {}: {}", outcome.status.as_str(), outcome.message.as_deref().unwrap_or(""));
    }
    Ok(match outcome.status {
        Status::Ok | Status::ExitedNonzero | Status::Killed => outcome.shell_exit_code(),
        Status::Timeout | Status::CpuLimit => 124,
        Status::MemoryLimit => 137,
        Status::OutputLimit => 141,
        Status::SandboxError => 125,
    })
}
