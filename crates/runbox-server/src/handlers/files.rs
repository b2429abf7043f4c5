//! A session's files: upload (raw body, parents created), download (with a content type), list, delete. Paths are
//! confined to the workspace: `..`, absolute paths and symlinks that point out are refused with 400.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use runbox_engine::files::{self, FileEntry};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Largest file a download returns.
const MAX_DOWNLOAD: u64 = 256 << 20;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Directory to list, relative to the workspace; the workspace itself when absent.
    #[serde(default)]
    pub path: String,
}

/// A file's bytes, sent as they are (`application/octet-stream`), never as JSON: what generated clients need to
/// upload a file unchanged.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(pub Vec<u8>);

async fn workspace(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(std::path::PathBuf, Option<u32>)> {
    Ok(state.sessions.workspace(&caller.owner, id)?)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, files::FileError> + Send + 'static) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)??)
}

/// Upload a file: the request body is its exact bytes (`application/octet-stream`; an empty or absent body makes an
/// empty file). Parent directories are created. Uploads are charged to the session (its workspace holds no more
/// than its memory limit), to its key and to the server (413 `workspace_quota_exceeded`).
#[utoipa::path(put, path = "/sessions/{id}/files/{path}", operation_id = "uploadFile", tag = "files",
    params(("id" = String, Path, description = "Session id"), ("path" = String, Path, description = "File path in the workspace: at most 1024 bytes, 255 per name, 16 levels")),
    request_body(content = FileBytes, content_type = "application/octet-stream"),
    responses((status = 201, description = "Written", body = FileEntry), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<FileEntry>)> {
    let size = body.len() as u64;
    let name = path.clone();
    let sessions = state.sessions.clone();
    let owner = caller.owner.clone();
    tokio::task::spawn_blocking(move || sessions.upload(&owner, &id, &path, &body))
        .await
        .map_err(ApiError::internal)??;
    let modified = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok((
        StatusCode::CREATED,
        Json(FileEntry {
            name,
            size,
            modified,
            is_dir: false,
        }),
    ))
}

/// Download a file.
#[utoipa::path(get, path = "/sessions/{id}/files/{path}", operation_id = "downloadFile", tag = "files",
    params(("id" = String, Path, description = "Session id"), ("path" = String, Path, description = "File path in the workspace: at most 1024 bytes, 255 per name, 16 levels")),
    responses((status = 200, description = "The file's bytes, with a content type from its extension \
        (`application/octet-stream` when it has none that is known)", content_type = "*/*"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let (root, _) = workspace(&state, &caller, &id).await?;
    let content_type = files::content_type(&path);
    let disposition = attachment(&path);
    let bytes = blocking(move || files::read(&root, &path, MAX_DOWNLOAD)).await?;
    // A program wrote this file: a browser must never run it as a page of the API's origin. It is an attachment,
    // its type is not sniffed, and were it shown anyway, the sandbox CSP gives it an origin of its own and no
    // scripts.
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
        ],
        bytes,
    ))
}

/// `Content-Disposition: attachment`, with the file's base name when it is plain ASCII that needs no escaping.
fn attachment(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("");
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b' '));
    if plain {
        format!("attachment; filename=\"{name}\"")
    } else {
        "attachment".to_string()
    }
}

/// Delete a file or a directory (with its contents).
#[utoipa::path(delete, path = "/sessions/{id}/files/{path}", operation_id = "deleteFile", tag = "files",
    params(("id" = String, Path, description = "Session id"), ("path" = String, Path, description = "File path in the workspace: at most 1024 bytes, 255 per name, 16 levels")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (root, _) = workspace(&state, &caller, &id).await?;
    blocking(move || files::delete(&root, &path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a directory of the workspace.
#[utoipa::path(get, path = "/sessions/{id}/files", operation_id = "listFiles", tag = "files",
    params(("id" = String, Path, description = "Session id"), ListQuery),
    responses((status = 200, body = Vec<FileEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<FileEntry>>> {
    let (root, _) = workspace(&state, &caller, &id).await?;
    Ok(Json(blocking(move || files::list(&root, &query.path)).await?))
}
