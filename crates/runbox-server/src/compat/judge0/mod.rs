//! Judge0 CE 1.13.1's API under `/judge0`: submissions (single, batch, `wait=true`), languages with Judge0's ids,
//! statuses, `/about`, `/config_info`, `/version`. A submission becomes a runbox async execution (the same store,
//! worker, caps and per-key scoping as `POST /executions`) whose id is the submission's UUID token; the Judge0
//! fields runbox needs to answer (expected output, echoed limits) are kept beside it. `X-Auth-Token` is accepted
//! as an API key. Errors are Judge0's: `{"error": "..."}`, or `{field: [messages]}` with 422.

pub mod catalogue;
pub mod record;
pub mod submission;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::executions::{insert_refusal, job_quota};
use crate::jobs::ExtraRecord;
use crate::running::{admit, precheck, run_admitted};
use crate::state::AppState;
use submission::{Errors, Submission};

/// An error in Judge0's shape.
#[derive(Debug)]
pub struct Judge0Error {
    status: StatusCode,
    body: Value,
    retry_after_s: Option<u64>,
}

impl Judge0Error {
    fn new(status: StatusCode, message: impl Into<String>) -> Judge0Error {
        Judge0Error {
            status,
            body: json!({ "error": message.into() }),
            retry_after_s: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Judge0Error {
        Judge0Error::new(StatusCode::BAD_REQUEST, message)
    }

    fn invalid(errors: Errors) -> Judge0Error {
        Judge0Error {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!(errors),
            retry_after_s: None,
        }
    }

    fn not_found() -> Judge0Error {
        Judge0Error::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

/// Judge0's own words for output that is not UTF-8 without `base64_encoded=true`.
const NOT_UTF8_ONE: &str =
    "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";
const NOT_UTF8_MANY: &str = "some attributes for one or more submissions cannot be converted to UTF-8, use \
                             base64_encoded=true query parameter";

/// runbox's own errors, told the Judge0 way: a field error becomes `{judge0_field: [message]}`.
impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Judge0Error {
        let field = e.details.as_ref().and_then(|d| d["field"].as_str()).map(str::to_string);
        let mut out = match field {
            Some(f) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
                let name = submission::judge0_field(&f).to_string();
                let message = e
                    .message
                    .strip_prefix(&format!("{f}: "))
                    .unwrap_or(&e.message)
                    .to_string();
                Judge0Error::invalid(Errors::from([(name, vec![message])]))
            }
            _ => Judge0Error::new(e.status, e.message),
        };
        out.retry_after_s = e.retry_after_s;
        out
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names a scheme that would work (X-Auth-Token works too).
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"runbox\""),
            );
        }
        if let Some(s) = self.retry_after_s {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

type Judge0Result<T> = Result<T, Judge0Error>;

/// The caller of a Judge0 route: runbox's keys, also presented as Judge0's `X-Auth-Token`.
pub struct Judge0Caller(pub Caller);

impl FromRequestParts<Arc<AppState>> for Judge0Caller {
    type Rejection = Judge0Error;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Judge0Error> {
        let tokens: Vec<HeaderValue> = parts.headers.get_all("x-auth-token").iter().cloned().collect();
        for t in tokens {
            parts.headers.append("x-api-key", t);
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(Judge0Caller)
            .map_err(|e| {
                let mut j = Judge0Error::from(e);
                if j.status == StatusCode::UNAUTHORIZED {
                    j.body = json!({"error": "a valid API key is required (X-Auth-Token, X-API-Key or Authorization: Bearer)"});
                }
                j
            })
    }
}

/// A JSON body whatever its content type (Rails reads JSON from any client that sends it).
pub struct AnyJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for AnyJson {
    type Rejection = Judge0Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Judge0Error> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Judge0Error::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large")
            } else {
                Judge0Error::bad_request(format!("cannot read the body: {r}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(AnyJson(json!({})));
        }
        serde_json::from_slice(&bytes)
            .map(AnyJson)
            .map_err(|e| Judge0Error::bad_request(format!("malformed JSON: {e}")))
    }
}

type Params = Query<HashMap<String, String>>;

/// A boolean query parameter: `true` or `false` (absent is false). Judge0 quietly takes anything else as false; a
/// typo there would silently change what comes back (plain text instead of base64, a token instead of a record),
/// so it is refused instead.
fn is_true(q: &HashMap<String, String>, name: &str) -> Judge0Result<bool> {
    match q.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(v) => Err(Judge0Error::bad_request(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}

fn fields(q: &HashMap<String, String>) -> Judge0Result<Vec<&'static str>> {
    record::requested_fields(q.get("fields").map(String::as_str))
        .map_err(|invalid| Judge0Error::bad_request(format!("invalid fields: [{}]", invalid.join(", "))))
}

/// A version-4 UUID from the kernel's randomness (the SDK types tokens as UUID4).
pub fn uuid4() -> String {
    let mut hex: Vec<u8> = crate::jobs::random_id("").into_bytes();
    hex[12] = b'4';
    let variant = u8::from_str_radix(std::str::from_utf8(&hex[16..17]).unwrap_or("8"), 16).unwrap_or(8);
    hex[16] = b"89ab"[usize::from(variant & 3)];
    let h = String::from_utf8(hex).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks one submission as Judge0 and then as runbox (caps, language installed) would.
fn prepare(
    state: &AppState,
    value: &Value,
    base64: bool,
) -> Result<(Submission, crate::api::ExecuteBody), Judge0Error> {
    let s = Submission::parse(value, base64, &state.config.limits).map_err(Judge0Error::invalid)?;
    if let Some(url) = &s.callback_url {
        // The same policy as runbox's own callbacks: http(s), and no private address unless the operator allows.
        crate::callbacks::check_callback_url(url, state.config.callback_allow_private)?;
    }
    let body = s.to_body();
    let req = body
        .clone()
        .into_request(&state.config.limits, state.engine.catalogue())?;
    precheck(state, &req)?;
    Ok((s, body))
}

fn stored(s: &Submission, body: &crate::api::ExecuteBody) -> Judge0Result<(String, String)> {
    let request = serde_json::to_string(body).map_err(ApiError::internal)?;
    let extra = serde_json::to_string(s).map_err(ApiError::internal)?;
    Ok((request, extra))
}

async fn refuse_when_busy(state: &AppState, adding: usize) -> Judge0Result<()> {
    if state.admission.is_draining() {
        return Err(Judge0Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ));
    }
    if state.jobs.count("queued").await + adding as i64 > state.config.max_async_queued as i64 {
        state.metrics.record_rejection("overloaded");
        return Err(Judge0Error::new(StatusCode::SERVICE_UNAVAILABLE, "queue is full"));
    }
    Ok(())
}

/// Queues a prepared submission; returns its token.
async fn queue(
    state: &AppState,
    caller: &Caller,
    s: &Submission,
    body: &crate::api::ExecuteBody,
) -> Judge0Result<String> {
    let (request, extra) = stored(s, body)?;
    let token = uuid4();
    state
        .jobs
        .insert_with_extra(
            &ExtraRecord {
                id: &token,
                owner: &caller.owner,
                request: &request,
                extra: &extra,
                callback_url: s.callback_url.as_deref(),
                finished: None,
            },
            &job_quota(state),
        )
        .await
        .map_err(|e| insert_refusal(state, e))?;
    Ok(token)
}

/// What Judge0 PUTs to a submission's `callback_url`: the default fields, base64-encoded. None for a job that is
/// not a Judge0 submission.
pub async fn callback_body(state: &Arc<AppState>, owner: &str, token: &str) -> Option<Value> {
    match load(state, owner, token, true).await {
        Ok(Some(Ok(all))) => Some(record::select(all, record::DEFAULT_FIELDS)),
        _ => None,
    }
}

/// The record of a stored submission of `owner`, or None when there is none.
async fn load(
    state: &Arc<AppState>,
    owner: &str,
    token: &str,
    base64: bool,
) -> Judge0Result<Option<Result<serde_json::Map<String, Value>, record::NotUtf8>>> {
    let Some(extra) = state.jobs.extra(token, owner).await.map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let Some(job) = state.jobs.get(token, owner).await.map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let s: Submission = serde_json::from_str(&extra).map_err(ApiError::internal)?;
    let name = language_name(state, s.language_id.unwrap_or(0)).await;
    Ok(Some(record::record(token, &s, &job, &name, base64)))
}

async fn language_name(state: &Arc<AppState>, id: i64) -> String {
    let entries = state.languages().await;
    catalogue::LANGUAGES
        .iter()
        .find(|(i, _, _)| *i == id)
        .and_then(|(_, _, lang)| entries.iter().find(|e| e.id == *lang))
        .map(|e| catalogue::display_name(id, e))
        .unwrap_or_default()
}

/// `{"token": "..."}`, or a whole record.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Judge0Record(Value);

/// `{"error": "..."}` (or, with 422, `{field: [messages]}`).
#[derive(Serialize, ToSchema)]
pub struct Judge0ErrorBody {
    pub error: String,
}

/// Judge0: create a submission (`wait=true` runs it at once and answers with its record).
#[utoipa::path(post, path = "/judge0/submissions", operation_id = "judge0CreateSubmission", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query, description = "text fields in base64"),
        ("wait" = Option<bool>, Query, description = "run now and answer with the record"),
        ("fields" = Option<String>, Query, description = "comma list or *")),
    request_body(content = Object, description = "A Judge0 submission",
        example = json!({"source_code": "print(6 * 7)", "language_id": 71})),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 201, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 413, body = Judge0ErrorBody),
        (status = 422, description = "{field: [messages]}", body = Object), (status = 429, body = Judge0ErrorBody),
        (status = 503, body = Judge0ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
    AnyJson(value): AnyJson,
) -> Judge0Result<(StatusCode, Json<Value>)> {
    let base64 = is_true(&q, "base64_encoded")?;
    let fields = fields(&q)?;
    let (s, body) = prepare(&state, &value, base64)?;
    if !is_true(&q, "wait")? {
        refuse_when_busy(&state, 1).await?;
        let token = queue(&state, &caller, &s, &body).await?;
        state.wake_job_runner();
        return Ok((StatusCode::CREATED, Json(json!({ "token": token }))));
    }
    let (request, extra) = stored(&s, &body)?;
    // The record is kept like a queued submission's: a key at its quota is refused before anything runs.
    state
        .jobs
        .check_quota(&caller.owner, request.len(), &job_quota(&state))
        .await
        .map_err(|e| insert_refusal(&state, e))?;
    let req = body
        .clone()
        .into_request(&state.config.limits, state.engine.catalogue())?;
    let admitted = admit(&state, &caller, req).await?;
    let result = run_admitted(&state, admitted, None, |_| true).await?;
    let token = uuid4();
    // Kept within what an async record may store, like every other result.
    let mut result_value = serde_json::to_value(&result).map_err(ApiError::internal)?;
    let cap = state.config.async_result_bytes as usize;
    let (result_json, _) = crate::jobs::shrink_result(&mut result_value, cap).ok_or_else(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "result_too_large",
            format!("the result does not fit in the {cap} bytes a submission stores"),
        )
    })?;
    state
        .jobs
        .insert_with_extra(
            &ExtraRecord {
                id: &token,
                owner: &caller.owner,
                request: &request,
                extra: &extra,
                callback_url: s.callback_url.as_deref(),
                finished: Some((Some(&result_json), None)),
            },
            &job_quota(&state),
        )
        .await
        .map_err(|e| insert_refusal(&state, e))?;
    if let Some(url) = s.callback_url.clone() {
        // Judge0 calls back after a `wait=true` run too.
        let (state, owner, token) = (state.clone(), caller.owner.clone(), token.clone());
        tokio::spawn(async move {
            if let Ok(Some(view)) = state.jobs.get(&token, &owner).await {
                crate::callbacks::deliver(&state, &url, &owner, &view).await;
            }
        });
    }
    match load(&state, &caller.owner, &token, base64).await? {
        Some(Ok(all)) => Ok((StatusCode::CREATED, Json(record::select(all, &fields)))),
        Some(Err(record::NotUtf8)) => Ok((
            StatusCode::CREATED,
            Json(json!({"error": NOT_UTF8_ONE, "token": token})),
        )),
        None => Err(Judge0Error::not_found()),
    }
}

/// Judge0: a submission's record.
#[utoipa::path(get, path = "/judge0/submissions/{token}", operation_id = "judge0GetSubmission", tag = "judge0",
    params(("token" = String, Path), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 404, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Path(token): Path<String>,
    Query(q): Params,
) -> Judge0Result<Json<Value>> {
    let fields = fields(&q)?;
    match load(&state, &caller.owner, &token, is_true(&q, "base64_encoded")?).await? {
        Some(Ok(all)) => Ok(Json(record::select(all, &fields))),
        Some(Err(record::NotUtf8)) => Err(Judge0Error::bad_request(NOT_UTF8_ONE)),
        None => Err(Judge0Error::not_found()),
    }
}

/// Judge0: delete a finished submission; answers with its record (always base64, as Judge0 does).
#[utoipa::path(delete, path = "/judge0/submissions/{token}", operation_id = "judge0DeleteSubmission",
    tag = "judge0", params(("token" = String, Path), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Record), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 404, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Path(token): Path<String>,
    Query(q): Params,
) -> Judge0Result<Json<Value>> {
    let fields = fields(&q)?;
    let Some(Ok(all)) = load(&state, &caller.owner, &token, true).await? else {
        return Err(Judge0Error::not_found());
    };
    let status = all["status"].clone();
    if matches!(status["id"].as_u64(), Some(1) | Some(2)) {
        return Err(Judge0Error::bad_request(format!(
            "submission cannot be deleted because its status is {} ({})",
            status["id"],
            status["description"].as_str().unwrap_or("")
        )));
    }
    state
        .jobs
        .delete(&token, &caller.owner)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(record::select(all, &fields)))
}

fn batch_size_ok(n: usize) -> Judge0Result<()> {
    if n > catalogue::MAX_BATCH {
        return Err(Judge0Error::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {}",
            catalogue::MAX_BATCH
        )));
    }
    if n == 0 {
        return Err(Judge0Error::bad_request(
            "there should be at least one submission in a batch",
        ));
    }
    Ok(())
}

/// Judge0: create several submissions; each entry is `{"token"}` or that entry's errors.
#[utoipa::path(post, path = "/judge0/submissions/batch", operation_id = "judge0CreateBatch", tag = "judge0",
    params(("base64_encoded" = Option<bool>, Query)),
    request_body(content = Object, description = "{\"submissions\": [submission, ...]}",
        example = json!({"submissions": [{"source_code": "print(1)", "language_id": 71},
            {"source_code": "print(2)", "language_id": 71}]})),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 201, body = Vec<Object>), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 413, body = Judge0ErrorBody),
        (status = 422, body = Vec<Object>), (status = 429, body = Judge0ErrorBody),
        (status = 503, body = Judge0ErrorBody)))]
pub async fn create_batch(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
    AnyJson(value): AnyJson,
) -> Judge0Result<(StatusCode, Json<Vec<Value>>)> {
    let base64 = is_true(&q, "base64_encoded")?;
    let entries = value["submissions"].as_array().cloned().unwrap_or_default();
    batch_size_ok(entries.len())?;
    refuse_when_busy(&state, entries.len()).await?;
    let mut out = Vec::with_capacity(entries.len());
    let mut any = false;
    for entry in &entries {
        match prepare(&state, entry, base64) {
            Ok((s, body)) => {
                out.push(json!({ "token": queue(&state, &caller, &s, &body).await? }));
                any = true;
            }
            Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => out.push(e.body),
            Err(e) => return Err(e),
        }
    }
    state.wake_job_runner();
    let status = if any {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(out)))
}

/// `{"submissions": [record or null, ...]}`.
#[derive(Serialize, ToSchema)]
pub struct Judge0Batch {
    #[schema(value_type = Vec<Option<Object>>)]
    pub submissions: Vec<Value>,
}

/// Judge0: several submissions' records, by `tokens=a,b,c` (null for an unknown token).
#[utoipa::path(get, path = "/judge0/submissions/batch", operation_id = "judge0GetBatch", tag = "judge0",
    params(("tokens" = String, Query), ("base64_encoded" = Option<bool>, Query), ("fields" = Option<String>, Query)),
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0Batch), (status = 400, body = Judge0ErrorBody),
        (status = 401, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn get_batch(
    State(state): State<Arc<AppState>>,
    Judge0Caller(caller): Judge0Caller,
    Query(q): Params,
) -> Judge0Result<Json<Judge0Batch>> {
    let fields = fields(&q)?;
    let base64 = is_true(&q, "base64_encoded")?;
    let tokens: Vec<&str> = q
        .get("tokens")
        .map_or("", |t| t.trim())
        .split(',')
        .filter(|t| !t.is_empty())
        .collect();
    batch_size_ok(tokens.len())?;
    let mut submissions = Vec::with_capacity(tokens.len());
    for token in tokens {
        submissions.push(match load(&state, &caller.owner, token, base64).await? {
            Some(Ok(all)) => record::select(all, &fields),
            Some(Err(record::NotUtf8)) => return Err(Judge0Error::bad_request(NOT_UTF8_MANY)),
            None => Value::Null,
        });
    }
    Ok(Json(Judge0Batch { submissions }))
}

#[derive(Serialize, ToSchema)]
pub struct Judge0Language {
    pub id: i64,
    pub name: String,
}

/// Judge0: the languages this server can run, with Judge0 CE 1.13.1's ids.
#[utoipa::path(get, path = "/judge0/languages", operation_id = "judge0Languages", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Judge0Language>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn languages(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Vec<Judge0Language>> {
    let entries = state.languages().await;
    Json(
        catalogue::available(&entries)
            .into_iter()
            .map(|(id, name, _)| Judge0Language { id, name })
            .collect(),
    )
}

/// Judge0: every language with `is_archived` (none is).
#[utoipa::path(get, path = "/judge0/languages/all", operation_id = "judge0AllLanguages", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn all_languages(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Vec<Value>> {
    let entries = state.languages().await;
    Json(
        catalogue::available(&entries)
            .into_iter()
            .map(|(id, name, _)| json!({"id": id, "name": name, "is_archived": false}))
            .collect(),
    )
}

/// Judge0: one language, `{id, name, is_archived, source_file, compile_cmd, run_cmd}`.
#[utoipa::path(get, path = "/judge0/languages/{id}", operation_id = "judge0Language", tag = "judge0",
    params(("id" = i64, Path)), security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Object), (status = 401, body = Judge0ErrorBody),
        (status = 404, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn language(
    State(state): State<Arc<AppState>>,
    _caller: Judge0Caller,
    Path(id): Path<String>,
) -> Judge0Result<Json<Value>> {
    let id: i64 = id.parse().map_err(|_| Judge0Error::not_found())?;
    let entries = state.languages().await;
    let (id, name, entry) = catalogue::available(&entries)
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .ok_or_else(Judge0Error::not_found)?;
    let lang = state.engine.resolve(&entry.id).map_err(ApiError::from)?;
    let cmd = |argv: &[String]| argv.join(" ");
    Ok(Json(json!({
        "id": id,
        "name": name,
        "is_archived": false,
        "source_file": lang.source_file(),
        "compile_cmd": lang.compile().map(|c| cmd(c.argv_template())),
        "run_cmd": cmd(lang.run().argv_template()),
    })))
}

#[derive(Serialize, ToSchema)]
pub struct Judge0Status {
    pub id: u8,
    pub description: String,
}

/// Judge0: the statuses, ids 1 to 14.
#[utoipa::path(get, path = "/judge0/statuses", operation_id = "judge0Statuses", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Vec<Judge0Status>), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn statuses(_caller: Judge0Caller) -> Json<Vec<Judge0Status>> {
    Json(
        catalogue::STATUSES
            .iter()
            .map(|(id, d)| Judge0Status {
                id: *id,
                description: d.to_string(),
            })
            .collect(),
    )
}

#[derive(Serialize, ToSchema)]
pub struct Judge0About {
    pub version: String,
    pub homepage: String,
    pub source_code: String,
    pub maintainer: String,
}

/// Judge0: `{version, homepage, source_code, maintainer}`; the version is the Judge0 one runbox behaves as.
#[utoipa::path(get, path = "/judge0/about", operation_id = "judge0About", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Judge0About), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn about(_caller: Judge0Caller) -> Json<Value> {
    Json(catalogue::about())
}

/// Judge0: the configuration, every key Judge0 CE 1.13.1 has, in Judge0's units.
#[utoipa::path(get, path = "/judge0/config_info", operation_id = "judge0ConfigInfo", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, body = Object), (status = 401, body = Judge0ErrorBody),
        (status = 429, body = Judge0ErrorBody)))]
pub async fn config_info(State(state): State<Arc<AppState>>, _caller: Judge0Caller) -> Json<Value> {
    Json(catalogue::config_info(
        &state.config.limits,
        state.config.max_async_queued,
    ))
}

/// Judge0: the version, as plain text.
#[utoipa::path(get, path = "/judge0/version", operation_id = "judge0Version", tag = "judge0",
    security(("bearer" = []), ("api_key" = []), ("judge0_token" = [])),
    responses((status = 200, description = "e.g. 1.13.1", content_type = "text/plain"),
        (status = 401, body = Judge0ErrorBody), (status = 429, body = Judge0ErrorBody)))]
pub async fn version(_caller: Judge0Caller) -> &'static str {
    catalogue::VERSION
}
