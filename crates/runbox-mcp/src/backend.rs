//! What the MCP tools need from runbox, as one trait with three implementations: the engine in-process
//! ([`crate::local`], for `runbox mcp`), a runbox server over HTTP ([`crate::remote`], for `runbox mcp --url`), and
//! the server's own state (in `runbox-server`, for `/mcp`). The tools themselves ([`crate::tools`]) know nothing of
//! which one they talk to.

use std::future::Future;

use rmcp::model::Extensions;
use runbox_engine::files::FileEntry;
use runbox_engine::sessions::{CellResult, SessionInfo};
use runbox_engine::{CatalogueEntry, ExecutionResult};

/// Why a tool call failed: runbox's stable error `code` and a message for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure {
    pub code: String,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ToolFailure {
        ToolFailure {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

pub type Outcome<T> = Result<T, ToolFailure>;

/// One program to run once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub language: String,
    pub code: String,
    pub stdin: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// Where the tools' work is done. `Caller` is who a request acts for (sessions belong to it); backends that
/// serve one user use `()`.
pub trait Backend: Send + Sync + 'static {
    type Caller: Send + Sync + 'static;

    /// Who the request whose extensions these are acts for (over HTTP, `http::request::Parts` are among them).
    fn caller(&self, extensions: &Extensions) -> Outcome<Self::Caller>;

    fn execute(&self, who: &Self::Caller, req: RunRequest) -> impl Future<Output = Outcome<ExecutionResult>> + Send;

    fn languages(&self, who: &Self::Caller) -> impl Future<Output = Outcome<Vec<CatalogueEntry>>> + Send;

    fn create_session(&self, who: &Self::Caller, language: String)
        -> impl Future<Output = Outcome<SessionInfo>> + Send;

    fn run_cell(
        &self,
        who: &Self::Caller,
        session: String,
        code: String,
        timeout_ms: Option<u64>,
    ) -> impl Future<Output = Outcome<CellResult>> + Send;

    fn close_session(&self, who: &Self::Caller, session: String) -> impl Future<Output = Outcome<()>> + Send;

    fn upload(
        &self,
        who: &Self::Caller,
        session: String,
        path: String,
        content: Vec<u8>,
    ) -> impl Future<Output = Outcome<()>> + Send;

    /// At most `max_bytes`; a larger file is an error.
    fn download(
        &self,
        who: &Self::Caller,
        session: String,
        path: String,
        max_bytes: u64,
    ) -> impl Future<Output = Outcome<Vec<u8>>> + Send;

    fn list_files(
        &self,
        who: &Self::Caller,
        session: String,
        path: String,
    ) -> impl Future<Output = Outcome<Vec<FileEntry>>> + Send;
}
