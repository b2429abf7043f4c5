//! The backend of `runbox mcp` without `--url`: the engine in this process, as `runbox run` uses it, with the
//! sessions of its host (owned by the one local user; the host's reaper ends idle ones, its shutdown the rest).
//! Engine calls block, so each runs on tokio's blocking pool.

use std::sync::Arc;

use rmcp::model::Extensions;
use runbox_engine::files::{self, FileEntry, FileError};
use runbox_engine::sessions::{CellResult, CreateSession, SessionError, SessionInfo, Sessions};
use runbox_engine::{CancelToken, CatalogueEntry, Engine, ExecuteRequest, ExecutionResult, LimitOverrides};

use crate::backend::{Backend, Outcome, RunRequest, ToolFailure};

/// Whom sessions belong to in a one-user process.
const OWNER: &str = "local";

pub struct LocalBackend {
    engine: Arc<Engine>,
    sessions: Arc<Sessions>,
    /// The catalogue, discovered at the first `list_languages` (probing every runtime takes a moment).
    languages: tokio::sync::OnceCell<Vec<CatalogueEntry>>,
}

fn file_failure(e: FileError) -> ToolFailure {
    match e {
        FileError::Invalid(m) => ToolFailure::new("invalid_path", m),
        FileError::NotFound(m) => ToolFailure::new("not_found", format!("{m} not found")),
        FileError::Conflict(m) => ToolFailure::new("file_conflict", m),
        FileError::Io(m) => ToolFailure::new("internal", m),
    }
}

fn session_failure(e: SessionError) -> ToolFailure {
    let message = match &e {
        SessionError::NotFound => "no such session (it may have ended: sessions end when idle)".to_string(),
        other => other.to_string(),
    };
    ToolFailure::new(e.code(), message)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Outcome<T> + Send + 'static) -> Outcome<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ToolFailure::new("internal", format!("the call failed: {e}"))))
}

impl LocalBackend {
    /// A backend over `engine` and its `sessions` (a `runbox_engine::host::Host`'s: the host reaps and ends them).
    pub fn new(engine: Arc<Engine>, sessions: Arc<Sessions>) -> LocalBackend {
        LocalBackend {
            engine,
            sessions,
            languages: Default::default(),
        }
    }

    fn workspace(&self, id: &str) -> Outcome<(std::path::PathBuf, Option<u32>)> {
        self.sessions.workspace(OWNER, id).map_err(session_failure)
    }
}

impl Backend for LocalBackend {
    type Caller = ();

    fn caller(&self, _extensions: &Extensions) -> Outcome<()> {
        Ok(())
    }

    async fn execute(&self, _who: &(), req: RunRequest) -> Outcome<ExecutionResult> {
        let engine = self.engine.clone();
        let request = ExecuteRequest {
            language: req.language,
            code: Some(req.code),
            stdin: req.stdin.unwrap_or_default().into_bytes(),
            limits: LimitOverrides {
                timeout_ms: req.timeout_ms,
                ..Default::default()
            },
            ..Default::default()
        };
        blocking(move || {
            engine
                .execute(&request, None, &CancelToken::new(), &mut |_| {})
                .map_err(|e| ToolFailure::new(e.code(), e.to_string()))
        })
        .await
    }

    async fn languages(&self, _who: &()) -> Outcome<Vec<CatalogueEntry>> {
        let found = self
            .languages
            .get_or_try_init(|| {
                let engine = self.engine.clone();
                blocking(move || Ok(engine.languages()))
            })
            .await?;
        Ok(found.clone())
    }

    async fn create_session(&self, _who: &(), language: String) -> Outcome<SessionInfo> {
        let sessions = self.sessions.clone();
        let req = CreateSession {
            language,
            ..Default::default()
        };
        blocking(move || sessions.create(OWNER, &req).map_err(session_failure)).await
    }

    async fn run_cell(&self, _who: &(), session: String, code: String, timeout_ms: Option<u64>) -> Outcome<CellResult> {
        let sessions = self.sessions.clone();
        blocking(move || {
            sessions
                .execute(OWNER, &session, &code, timeout_ms, &mut |_| {})
                .map_err(session_failure)
        })
        .await
    }

    async fn close_session(&self, _who: &(), session: String) -> Outcome<()> {
        let sessions = self.sessions.clone();
        blocking(move || sessions.delete(OWNER, &session).map_err(session_failure)).await
    }

    async fn upload(&self, _who: &(), session: String, path: String, content: Vec<u8>) -> Outcome<()> {
        // Through the sessions, as the server's uploads go: charged to the session's quota.
        let sessions = self.sessions.clone();
        blocking(move || {
            sessions
                .upload(OWNER, &session, &path, &content)
                .map_err(session_failure)
        })
        .await
    }

    async fn download(&self, _who: &(), session: String, path: String, max_bytes: u64) -> Outcome<Vec<u8>> {
        let (root, _) = self.workspace(&session)?;
        blocking(move || files::read(&root, &path, max_bytes).map_err(file_failure)).await
    }

    async fn list_files(&self, _who: &(), session: String, path: String) -> Outcome<Vec<FileEntry>> {
        let (root, _) = self.workspace(&session)?;
        blocking(move || files::list(&root, &path).map_err(file_failure)).await
    }
}
