//! The MCP tools: their names, descriptions (written for a language model: short, exact, limits stated) and input
//! schemas, and [`RunboxMcp`], the `rmcp` server handler that runs them over any [`Backend`]. Every failure a
//! tool meets (bad arguments, an unknown session, a runbox error) comes back as a tool result with `isError` set
//! and a `code: message` text, so the model can read it and try again; only an unknown tool name is a protocol
//! error, as the protocol says.

use std::sync::Arc;

use base64::Engine as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::backend::{Backend, Outcome, RunRequest, ToolFailure};
use crate::render::{cell_content, execution_text, file_content, files_text, languages_text};

/// Largest file `read_file` returns.
pub const MAX_READ_BYTES: u64 = 1 << 20;
/// Largest file `upload_file` writes (after base64 decoding).
pub const MAX_UPLOAD_BYTES: usize = 8 << 20;
/// Characters of stdout, and of stderr, shown in a result; the rest is cut (the model's context is precious).
pub const MAX_SHOWN_CHARS: usize = 20_000;
/// Longest timeout a tool accepts, in seconds (the runbox server's own caps may be lower).
pub const MAX_TIMEOUT_S: f64 = 3600.0;

const SESSION_ID: &str = "Session id returned by create_session.";

/// Every tool runbox offers, in the order they are listed.
pub fn tools() -> Vec<Tool> {
    let timeout = |what: &str| {
        json!({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S,
            "description": format!("Wall-clock limit in seconds ({what}); the server may cap it lower.")})
    };
    let schema = |properties: Value, required: &[&str]| -> Arc<serde_json::Map<String, Value>> {
        let Value::Object(map) = json!({
            "type": "object", "properties": properties, "required": required, "additionalProperties": false
        }) else {
            unreachable!("a JSON object literal")
        };
        Arc::new(map)
    };
    let read_only = ToolAnnotations::new().read_only(true).open_world(false);
    vec![
        Tool::new(
            "execute_code",
            "Run a program once in a fresh, isolated sandbox (no network, nothing kept afterwards) and return its \
             status, exit code, stdout and stderr. Use list_languages for valid languages. For state that persists \
             between runs (variables, files, figures), use create_session and run_in_session instead. Each of \
             stdout and stderr is shown up to 20000 characters.",
            schema(
                json!({
                    "language": {"type": "string", "description": "Language id or alias, e.g. python, javascript, \
                        bash, c, cpp, go, rust, java."},
                    "code": {"type": "string", "description": "The program's source code."},
                    "stdin": {"type": "string", "description": "Text given to the program on standard input."},
                    "timeout": timeout("default: the language's, usually 10"),
                }),
                &["language", "code"],
            ),
        )
        .with_annotations(ToolAnnotations::new().open_world(false)),
        Tool::new(
            "list_languages",
            "List the languages runbox knows: id, name, version, whether this host can run it now, and whether it \
             supports sessions.",
            schema(json!({}), &[]),
        )
        .with_annotations(read_only.clone()),
        Tool::new(
            "create_session",
            "Start a stateful session: a persistent interpreter in its own sandbox with a writable /workspace. \
             Returns its session id. Variables, imports and files persist across run_in_session calls. The session \
             ends after 10 minutes without use (server default) or when closed with close_session. Only languages \
             whose list_languages entry says sessions: yes (python among them).",
            schema(
                json!({"language": {"type": "string", "description": "Language id; default python."}}),
                &[],
            ),
        ),
        Tool::new(
            "run_in_session",
            "Run code in a session, like a notebook cell: state from earlier cells is kept. Returns stdout, stderr, \
             the value of a trailing expression, errors with their traceback, and figures (e.g. matplotlib) as \
             images. Each of stdout and stderr is shown up to 20000 characters. A cell that times out is \
             interrupted; the session survives.",
            schema(
                json!({
                    "session_id": {"type": "string", "description": SESSION_ID},
                    "code": {"type": "string", "description": "Code to run."},
                    "timeout": timeout("default 30"),
                }),
                &["session_id", "code"],
            ),
        ),
        Tool::new(
            "close_session",
            "End a session and free its sandbox; its state and files are gone.",
            schema(
                json!({"session_id": {"type": "string", "description": SESSION_ID}}),
                &["session_id"],
            ),
        )
        .with_annotations(ToolAnnotations::new().destructive(true).idempotent(true)),
        Tool::new(
            "upload_file",
            "Write a file into a session's /workspace (parent directories are created, an existing file is \
             replaced). At most 8 MiB after decoding.",
            schema(
                json!({
                    "session_id": {"type": "string", "description": SESSION_ID},
                    "path": {"type": "string", "description": "Path relative to /workspace, e.g. data/input.csv. \
                        No .. or absolute paths."},
                    "content": {"type": "string", "description": "The file's content."},
                    "encoding": {"type": "string", "enum": ["utf8", "base64"],
                        "description": "How content is encoded: utf8 text (default) or base64 bytes."},
                }),
                &["session_id", "path", "content"],
            ),
        )
        .with_annotations(ToolAnnotations::new().idempotent(true)),
        Tool::new(
            "read_file",
            "Read a file from a session's /workspace. Text comes back as text, PNG/JPEG/GIF/WebP images as images, \
             other binary files as base64. At most 1 MiB.",
            schema(
                json!({
                    "session_id": {"type": "string", "description": SESSION_ID},
                    "path": {"type": "string", "description": "Path relative to /workspace."},
                }),
                &["session_id", "path"],
            ),
        )
        .with_annotations(read_only.clone()),
        Tool::new(
            "list_files",
            "List a directory of a session's /workspace: name, size in bytes, and whether it is a directory.",
            schema(
                json!({
                    "session_id": {"type": "string", "description": SESSION_ID},
                    "path": {"type": "string", "description": "Directory relative to /workspace; default the \
                        workspace itself."},
                }),
                &["session_id"],
            ),
        )
        .with_annotations(read_only),
    ]
}

/// The MCP server: runbox's tools over a backend.
pub struct RunboxMcp<B> {
    backend: Arc<B>,
}

impl<B> Clone for RunboxMcp<B> {
    fn clone(&self) -> Self {
        RunboxMcp {
            backend: self.backend.clone(),
        }
    }
}

impl<B: Backend> RunboxMcp<B> {
    pub fn new(backend: Arc<B>) -> RunboxMcp<B> {
        RunboxMcp { backend }
    }

    /// Runs one tool; `None` when no tool has that name.
    pub async fn call(&self, name: &str, args: Value, who: &B::Caller) -> Option<Outcome<Vec<ContentBlock>>> {
        let b = &*self.backend;
        Some(match name {
            "execute_code" => self.execute_code(who, args).await,
            "list_languages" => match parse::<NoArgs>(args) {
                Ok(_) => b
                    .languages(who)
                    .await
                    .map(|l| vec![ContentBlock::text(languages_text(&l))]),
                Err(e) => Err(e),
            },
            "create_session" => match parse::<CreateArgs>(args) {
                Ok(a) => b
                    .create_session(who, a.language.unwrap_or_else(|| "python".into()))
                    .await
                    .map(|s| {
                        vec![ContentBlock::text(format!(
                            "session_id: {}\nlanguage: {}\nidle timeout: {} s",
                            s.id, s.language, s.idle_timeout_s
                        ))]
                    }),
                Err(e) => Err(e),
            },
            "run_in_session" => match parse::<CellArgs>(args) {
                Ok(a) => match timeout_ms(a.timeout) {
                    Ok(t) => b.run_cell(who, a.session_id, a.code, t).await.map(|r| cell_content(&r)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            "close_session" => match parse::<SessionArgs>(args) {
                Ok(a) => b
                    .close_session(who, a.session_id.clone())
                    .await
                    .map(|()| vec![ContentBlock::text(format!("session {} closed", a.session_id))]),
                Err(e) => Err(e),
            },
            "upload_file" => self.upload_file(who, args).await,
            "read_file" => match parse::<PathArgs>(args) {
                Ok(a) => b
                    .download(who, a.session_id, a.path.clone(), MAX_READ_BYTES)
                    .await
                    .map(|bytes| file_content(&a.path, bytes)),
                Err(e) => Err(e),
            },
            "list_files" => match parse::<ListArgs>(args) {
                Ok(a) => b
                    .list_files(who, a.session_id, a.path.unwrap_or_default())
                    .await
                    .map(|entries| vec![ContentBlock::text(files_text(&entries))]),
                Err(e) => Err(e),
            },
            _ => return None,
        })
    }

    async fn execute_code(&self, who: &B::Caller, args: Value) -> Outcome<Vec<ContentBlock>> {
        let a = parse::<ExecuteArgs>(args)?;
        let req = RunRequest {
            language: a.language,
            code: a.code,
            stdin: a.stdin,
            timeout_ms: timeout_ms(a.timeout)?,
        };
        let r = self.backend.execute(who, req).await?;
        Ok(vec![ContentBlock::text(execution_text(&r))])
    }

    async fn upload_file(&self, who: &B::Caller, args: Value) -> Outcome<Vec<ContentBlock>> {
        let a = parse::<UploadArgs>(args)?;
        let bytes = match a.encoding.as_deref().unwrap_or("utf8") {
            "utf8" | "utf-8" | "text" => a.content.into_bytes(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(a.content.trim())
                .map_err(|e| ToolFailure::new("invalid_field", format!("content: not valid base64: {e}")))?,
            other => {
                return Err(ToolFailure::new(
                    "invalid_field",
                    format!("encoding: {other:?} is neither utf8 nor base64"),
                ))
            }
        };
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(ToolFailure::new(
                "payload_too_large",
                format!("the file is {} bytes; at most {MAX_UPLOAD_BYTES}", bytes.len()),
            ));
        }
        let size = bytes.len();
        self.backend.upload(who, a.session_id, a.path.clone(), bytes).await?;
        Ok(vec![ContentBlock::text(format!("wrote {} ({size} bytes)", a.path))])
    }
}

impl<B: Backend> ServerHandler for RunboxMcp<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("runbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "runbox runs code in isolated sandboxes. execute_code runs a program once; sessions \
                 (create_session, run_in_session) keep interpreter state and a /workspace between calls; \
                 upload_file, read_file and list_files reach a session's /workspace.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let outcome = match self.backend.caller(&context.extensions) {
            Ok(who) => match self.call(&request.name, args, &who).await {
                Some(outcome) => outcome,
                None => {
                    return Err(ErrorData::invalid_params(
                        format!("no tool named {:?}", request.name),
                        None,
                    ))
                }
            },
            Err(e) => Err(e),
        };
        let result = match outcome {
            Ok(content) => CallToolResult::success(content),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("error {e}"))]),
        };
        Ok(CallToolResponse::Complete(result))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteArgs {
    language: String,
    code: String,
    stdin: Option<String>,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    language: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CellArgs {
    session_id: String,
    code: String,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionArgs {
    session_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadArgs {
    session_id: String,
    path: String,
    content: String,
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    session_id: String,
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    session_id: String,
    path: Option<String>,
}

fn parse<T: DeserializeOwned>(args: Value) -> Outcome<T> {
    serde_json::from_value(args).map_err(|e| ToolFailure::new("invalid_arguments", e.to_string()))
}

/// Seconds (as the tools take them) to milliseconds, refusing what no limit could mean.
fn timeout_ms(seconds: Option<f64>) -> Outcome<Option<u64>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_S => Ok(Some(((s * 1000.0).ceil() as u64).max(1))),
        Some(s) => Err(ToolFailure::new(
            "invalid_field",
            format!("timeout: must be more than 0 and at most {MAX_TIMEOUT_S} seconds, got {s}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_seconds_and_nonsense_is_refused() {
        assert_eq!(timeout_ms(None), Ok(None));
        assert_eq!(timeout_ms(Some(2.5)), Ok(Some(2500)));
        assert_eq!(timeout_ms(Some(0.0001)), Ok(Some(1)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_TIMEOUT_S + 1.0] {
            assert_eq!(timeout_ms(Some(bad)).unwrap_err().code, "invalid_field", "{bad}");
        }
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let names: Vec<_> = tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "execute_code",
                "list_languages",
                "create_session",
                "run_in_session",
                "close_session",
                "upload_file",
                "read_file",
                "list_files"
            ]
        );
        for t in tools() {
            assert_eq!(t.input_schema.get("type"), Some(&json!("object")), "{}", t.name);
            assert!(t.description.is_some_and(|d| d.len() > 20), "{}", t.name);
        }
    }

    #[test]
    fn unknown_arguments_are_a_tool_error_naming_them() {
        let e = parse::<SessionArgs>(json!({"session_id": "s", "sesion": 1}))
            .err()
            .unwrap();
        assert_eq!(e.code, "invalid_arguments");
        assert!(e.message.contains("sesion"), "{}", e.message);
    }
}
