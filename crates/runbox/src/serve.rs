//! `runbox serve` (the HTTP API) and `runbox config` (the effective configuration, secrets masked). The only
//! module of this binary that uses `runbox-server`: its configuration type, and one call to run it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use runbox_server::ServerConfig;

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); every field can also be set by a RUNBOX_* environment variable.
    #[arg(long, env = "RUNBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [env: RUNBOX_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Where runbox keeps its data [env: RUNBOX_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Any setting as KEY=VALUE (e.g. `--set max_concurrent=4 --set limits.timeout_ms=5000`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

pub fn load_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut sets = Vec::new();
    if let Some(l) = &args.listen {
        sets.push(("listen".to_string(), format!("{l:?}")));
    }
    if let Some(d) = &args.data_dir {
        sets.push(("data_dir".to_string(), format!("{:?}", d.display().to_string())));
    }
    for s in &args.sets {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set {s}: expected KEY=VALUE"))?;
        sets.push((k.trim().to_string(), v.to_string()));
    }
    Ok(ServerConfig::load(
        args.config.as_deref(),
        &|k| std::env::var(k).ok(),
        &sets,
    )?)
}

/// Whether log lines get ANSI colours: only on a terminal, and never when `NO_COLOR` is set to anything
/// (<https://no-color.org>). A log file or a pipe gets plain text.
fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn main(args: ServeArgs) -> anyhow::Result<i32> {
    let config = load_config(&args)?;
    init_logging(&config.log_format);
    let jail = runbox_engine::Jail::current_exe().context("find the runbox binary")?;
    runbox_server::run(config, jail).map_err(anyhow::Error::msg)?;
    Ok(0)
}

#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    serve: ServeArgs,
}

/// Prints the effective configuration with secrets masked.
pub fn print_config(args: ConfigArgs) -> anyhow::Result<i32> {
    let config = load_config(&args.serve)?;
    print!("{}", config.to_masked_toml());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::log_colours;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some("".into())));
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None));
    }
}
