//! runbox as a Model Context Protocol server, built on the official Rust SDK (`rmcp`). The tools live in one place
//! ([`tools`]) over a [`Backend`]; `runbox mcp` serves them on stdio ([`serve_stdio`]) with the engine in-process
//! ([`local`]) or a runbox server over HTTP ([`remote`]), and `runbox serve` mounts them at `/mcp` (streamable HTTP)
//! with a backend over its own state.

pub mod backend;
pub mod local;
pub mod remote;
pub mod render;
pub mod tools;

pub use backend::{Backend, Outcome, RunRequest, ToolFailure};
pub use tools::RunboxMcp;
pub use {rmcp, tokio_util};

use std::sync::Arc;

use rmcp::ServiceExt;

/// Serves the tools on stdin/stdout until the client closes stdin.
pub async fn serve_stdio<B: Backend>(backend: Arc<B>) -> Result<(), String> {
    let server = RunboxMcp::new(backend)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP handshake on stdio: {e}"))?;
    server.waiting().await.map_err(|e| e.to_string())?;
    Ok(())
}
