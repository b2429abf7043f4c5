//! `runbox mcp`: runbox's tools for AI assistants, as a Model Context Protocol server on stdin/stdout. It runs code
//! with the engine in this process (like `runbox run`), or, given `--url` (or `RUNBOX_URL`), through a runbox server
//! with the key in `RUNBOX_API_KEY`. Logs go to stderr: stdout carries only the protocol.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use runbox_engine::host::Background;
use runbox_mcp::local::LocalBackend;
use runbox_mcp::remote::RemoteBackend;

use crate::run::{host, policy_from_flags, CatalogueFlags, PolicyFlags};

#[derive(Args)]
pub struct McpArgs {
    /// A runbox server to run code on (e.g. http://127.0.0.1:8080); without it, code runs in this process.
    #[arg(long, env = "RUNBOX_URL")]
    url: Option<String>,
    /// The server's API key (only with --url).
    #[arg(long, env = "RUNBOX_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[command(flatten)]
    policy: PolicyFlags,
    #[command(flatten)]
    catalogue: CatalogueFlags,
}

pub fn main(args: McpArgs) -> anyhow::Result<i32> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => {
            let backend = Arc::new(RemoteBackend::new(url, args.api_key.clone()).map_err(anyhow::Error::msg)?);
            runtime
                .block_on(runbox_mcp::serve_stdio(backend))
                .map_err(anyhow::Error::msg)?;
        }
        None => {
            let policy = policy_from_flags(&args.policy)?;
            // Sessions of its own, reaped when idle; no warm pools or warm sessions, no trial sandboxes.
            let background = Background {
                reaper: true,
                ..Background::NONE
            };
            let host = Arc::new(host(policy, &args.catalogue, background).context("start the engine")?);
            host.start_background();
            let backend = Arc::new(LocalBackend::new(host.engine().clone(), host.sessions().clone()));
            let served = runtime.block_on(runbox_mcp::serve_stdio(backend));
            // Every session ends, and the jails' teardowns are waited for, before the process exits.
            host.shutdown();
            served.map_err(anyhow::Error::msg)?;
        }
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(0)
}
