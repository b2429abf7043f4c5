//! The backend of `runbox mcp --url`: a runbox server over its HTTP API, authenticated with an API key. The
//! server's errors (`{code, message}`) become tool failures with the same code.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use rmcp::model::Extensions;
use runbox_engine::files::FileEntry;
use runbox_engine::sessions::{CellResult, SessionInfo};
use runbox_engine::{CatalogueEntry, ExecutionResult};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::backend::{Backend, Outcome, RunRequest, ToolFailure};

pub struct RemoteBackend {
    base: Url,
    key: Option<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl RemoteBackend {
    /// A client of the server at `base` (`http://host:port`, optionally with a path prefix).
    pub fn new(base: &str, key: Option<String>) -> Result<RemoteBackend, String> {
        let base = Url::parse(base).map_err(|e| format!("runbox URL {base:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(format!("runbox URL {base}: not an http(s) URL"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // The longest tool timeout, and room for the sandbox's start and the answer.
            .timeout(Duration::from_secs(crate::tools::MAX_TIMEOUT_S as u64 + 120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RemoteBackend {
            base,
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The URL of a route. A segment URL parsing would resolve away (a session id of `..`) names nothing.
    fn url(&self, segments: &[&str]) -> Outcome<Url> {
        if segments.iter().any(|s| matches!(*s, "" | "." | "..")) {
            return Err(ToolFailure::new("not_found", "no such session"));
        }
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<reqwest::Body>,
        json: Option<serde_json::Value>,
    ) -> Outcome<reqwest::Response> {
        let mut req = self.http.request(method, url);
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(json) = json {
            req = req.json(&json);
        } else if let Some(body) = body {
            req = req.header("content-type", "application/octet-stream").body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ToolFailure::new("unreachable", format!("cannot reach the runbox server: {e}")))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => ToolFailure::new(e.code, e.message),
            Err(_) if status == StatusCode::NOT_FOUND => ToolFailure::new("not_found", "not found"),
            Err(_) => ToolFailure::new(
                format!("http_{}", status.as_u16()),
                format!("the runbox server answered {status}"),
            ),
        })
    }

    /// The URL of a file of a session. The path is checked here as the server would check it, because URL
    /// parsing would silently resolve `..` (into a different, still confined, path) before the server saw it.
    fn file_url(&self, session: &str, path: &str) -> Outcome<Url> {
        let rel = runbox_engine::paths::confined("path", path)
            .map_err(|e| ToolFailure::new("invalid_path", e.to_string()))?;
        let segments: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        let mut all = vec!["sessions", session, "files"];
        all.extend(segments.iter().map(String::as_str));
        self.url(&all)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Outcome<T> {
        let resp = self.send(method, self.url(segments)?, None, body).await?;
        resp.json()
            .await
            .map_err(|e| ToolFailure::new("bad_response", format!("the runbox server's answer: {e}")))
    }
}

impl Backend for RemoteBackend {
    type Caller = ();

    fn caller(&self, _extensions: &Extensions) -> Outcome<()> {
        Ok(())
    }

    async fn execute(&self, _who: &(), req: RunRequest) -> Outcome<ExecutionResult> {
        let body =
            json!({"language": req.language, "code": req.code, "stdin": req.stdin, "timeout_ms": req.timeout_ms});
        self.json(Method::POST, &["execute"], Some(body)).await
    }

    async fn languages(&self, _who: &()) -> Outcome<Vec<CatalogueEntry>> {
        self.json(Method::GET, &["languages"], None).await
    }

    async fn create_session(&self, _who: &(), language: String) -> Outcome<SessionInfo> {
        self.json(Method::POST, &["sessions"], Some(json!({"language": language})))
            .await
    }

    async fn run_cell(&self, _who: &(), session: String, code: String, timeout_ms: Option<u64>) -> Outcome<CellResult> {
        let body = json!({"code": code, "timeout_ms": timeout_ms});
        self.json(Method::POST, &["sessions", &session, "execute"], Some(body))
            .await
    }

    async fn close_session(&self, _who: &(), session: String) -> Outcome<()> {
        self.send(Method::DELETE, self.url(&["sessions", &session])?, None, None)
            .await?;
        Ok(())
    }

    async fn upload(&self, _who: &(), session: String, path: String, content: Vec<u8>) -> Outcome<()> {
        let url = self.file_url(&session, &path)?;
        self.send(Method::PUT, url, Some(content.into()), None).await?;
        Ok(())
    }

    async fn download(&self, _who: &(), session: String, path: String, max_bytes: u64) -> Outcome<Vec<u8>> {
        let url = self.file_url(&session, &path)?;
        let mut resp = self.send(Method::GET, url, None, None).await?;
        let mut bytes = Vec::new();
        let too_big = || ToolFailure::new("file_too_large", format!("the file is larger than {max_bytes} bytes"));
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_big());
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ToolFailure::new("unreachable", format!("reading the file: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(too_big());
            }
        }
        Ok(bytes)
    }

    async fn list_files(&self, _who: &(), session: String, path: String) -> Outcome<Vec<FileEntry>> {
        let mut url = self.url(&["sessions", &session, "files"])?;
        if !path.is_empty() {
            url.query_pairs_mut().append_pair("path", &path);
        }
        let resp = self.send(Method::GET, url, None, None).await?;
        resp.json()
            .await
            .map_err(|e| ToolFailure::new("bad_response", format!("the runbox server's answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_prefix_and_never_resolve_dot_segments() {
        let b = RemoteBackend::new("http://127.0.0.1:9/runbox/", None).unwrap();
        assert_eq!(
            b.file_url("s1", "a b/c.txt").unwrap().as_str(),
            "http://127.0.0.1:9/runbox/sessions/s1/files/a%20b/c.txt"
        );
        assert_eq!(b.file_url("s1", "../x").unwrap_err().code, "invalid_path");
        assert_eq!(b.file_url("s1", "/etc/passwd").unwrap_err().code, "invalid_path");
        assert_eq!(b.url(&["sessions", "..", "execute"]).unwrap_err().code, "not_found");
        assert!(RemoteBackend::new("unix:/x", None).is_err());
    }
}
