//! `runbox serve` (the HTTP API) and `runbox config` (the effective configuration, secrets masked).

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

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    let state = runbox_server::build_state(config, jail).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime
        .block_on(runbox_server::serve(state))
        .map_err(anyhow::Error::msg)?;
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
