//! Runs the corpus against one real server: the server and the host's secrets are set up once, each case's steps
//! are sent in order (variables such as `@sid@` filled in), each response checked against the step's expectations
//! and the rules every response obeys, then the host is checked (see [`crate::hostile::host`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::case::{Family, Step};
use super::host;
use super::wire::{doc_path, parse_response, random_hex, stream_status, Listeners};
use crate::live_server::{openapi_check, two_keys_setting, Server, StartRunbox, KEY_A, KEY_B};

pub(super) struct Ctx {
    pub(super) server: Server,
    pub(super) cgroup_parent: String,
    /// A random token written in host files no sandbox may read; no response may ever carry it.
    pub(super) secret: String,
    pub(super) secret_files: Vec<(std::path::PathBuf, Vec<u8>)>,
    pub(super) vars: HashMap<String, String>,
    /// Host services on loopback (TCP, UDP, an abstract Unix socket): no sandbox may ever reach them.
    pub(super) listeners: Listeners,
}

pub(super) struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Ctx {
    pub(super) fn fill(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (k, v) in &self.vars {
            out = out.replace(&format!("@{k}@"), v);
        }
        out
    }

    fn fill_json(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.fill(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.fill_json(v)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), self.fill_json(v))).collect()),
            other => other.clone(),
        }
    }

    fn key(&self, step: &Step) -> Option<&'static str> {
        match step.key.as_deref().unwrap_or("a") {
            "b" => Some(KEY_B),
            "none" => None,
            "wrong" => Some("key-c-not-a-key-of-this-server"),
            _ => Some(KEY_A),
        }
    }

    /// One request; every response must be documented and carry no secret of the host.
    pub(super) async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        // A raw HTTP/1.1 exchange, so the path reaches the server byte for byte (an HTTP client library would
        // resolve `%2e%2e` segments itself, and the attack would never be sent).
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.server.addr
        );
        if let Some(k) = key {
            head.push_str(&format!("authorization: Bearer {k}\r\n"));
        }
        let mut has_type = false;
        for (k, v) in headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = &body {
            if !has_type {
                head.push_str("content-type: application/json\r\n");
            }
            head.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&self.server.addr).await?;
            stream.write_all(head.as_bytes()).await?;
            if let Some(b) = &body {
                stream.write_all(b).await?;
            }
            let mut raw = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(90), exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 90 s"))?
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let (status, hdrs, body) = parse_response(&raw).ok_or_else(|| {
            format!(
                "{method} {path}: not an HTTP response: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(300)])
            )
        })?;
        let reply = Reply { status, body };
        if status >= 500 {
            return Err(format!("{method} {path} → {status}: {}", reply.text()));
        }
        if reply.text().contains(&self.secret) {
            return Err(format!("{method} {path}: the host's secret reached the response"));
        }
        // A download's type follows the file's extension, which openapi.json describes in words only (it lists
        // application/octet-stream): its content type is not checked.
        let hdrs: Vec<(String, String)> = if method == "GET" && path.contains("/files/") && status == 200 {
            hdrs.into_iter()
                .filter(|(k, _)| k != "content-type")
                .chain([("content-type".into(), "application/octet-stream".into())])
                .collect()
        } else {
            hdrs
        };
        openapi_check::committed()
            .check_response(method, &doc_path(path), status, &hdrs, &reply.body)
            .map_err(|e| format!("not as documented: {e}"))?;
        Ok(reply)
    }

    fn run_body(&self, step: &Step) -> Value {
        let mut body = json!({});
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body[k] = v;
            }
        };
        set("language", step.language.clone().map(Value::from));
        set("code", step.code.as_deref().map(|c| Value::from(self.fill(c))));
        set("stdin", step.stdin.as_deref().map(|c| Value::from(self.fill(c))));
        set("files", step.files.as_ref().map(|v| self.fill_json(v)));
        set("args", step.args.as_ref().map(|v| self.fill_json(v)));
        set("limits", step.limits.clone());
        set("timeout_ms", step.timeout_ms.clone());
        // Every process a case starts carries its marker, which the host check then looks for.
        let mut env = serde_json::Map::new();
        env.insert("HOSTILE_MARKER".into(), Value::from(self.vars["MARKER"].clone()));
        for (k, v) in step.env.iter().flatten() {
            env.insert(k.clone(), Value::from(self.fill(v)));
        }
        body["env"] = Value::Object(env);
        if let Some(Value::Object(extra)) = step.extra.as_ref().map(|v| self.fill_json(v)) {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        body
    }

    fn var(&self, name: &Option<String>, default: &str) -> Result<String, String> {
        let name = name.as_deref().unwrap_or(default);
        self.vars.get(name).cloned().ok_or(format!("no variable {name} yet"))
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let key = self.key(step);
        let action = step.action.as_deref().unwrap_or("execute");
        let headers: Vec<(String, String)> = step
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), self.fill(v)))
            .collect();
        let (reply, output) = match action {
            "execute" | "stream" => {
                let path = if action == "stream" {
                    "/execute/stream"
                } else {
                    "/execute"
                };
                let r = self
                    .send(
                        "POST",
                        path,
                        key,
                        &headers,
                        Some(self.run_body(step).to_string().into_bytes()),
                    )
                    .await?;
                let out = if action == "stream" {
                    r.text()
                } else {
                    r.json()["stdout"].as_str().map(str::to_string).unwrap_or_default()
                };
                let status = if action == "stream" {
                    stream_status(&r.text())
                } else {
                    r.json()["status"].clone()
                };
                (r, Some((out, status)))
            }
            "session" => {
                let mut body = json!({"language": step.language.clone().unwrap_or("python".into())});
                body["env"] = json!({"HOSTILE_MARKER": self.vars["MARKER"]});
                if let Some(l) = &step.limits {
                    body["limits"] = l.clone();
                }
                let r = self
                    .send("POST", "/sessions", key, &headers, Some(body.to_string().into_bytes()))
                    .await?;
                if let Some(id) = r.json()["id"].as_str() {
                    let name = step.save.clone().unwrap_or("sid".into());
                    self.vars.insert(name, id.to_string());
                    self.vars
                        .entry(format!("owner_of_{id}"))
                        .or_insert(step.key.clone().unwrap_or("a".into()));
                }
                (r, None)
            }
            "cell" => {
                let sid = self.var(&step.session, "sid")?;
                let mut body = json!({"code": self.fill(step.code.as_deref().unwrap_or(""))});
                if let Some(t) = &step.timeout_ms {
                    body["timeout_ms"] = t.clone();
                }
                let r = self
                    .send(
                        "POST",
                        &format!("/sessions/{sid}/execute"),
                        key,
                        &headers,
                        Some(body.to_string().into_bytes()),
                    )
                    .await?;
                let j = r.json();
                (
                    r,
                    Some((j["stdout"].as_str().unwrap_or("").to_string(), j["status"].clone())),
                )
            }
            "async" => {
                let r = self
                    .send(
                        "POST",
                        "/executions",
                        key,
                        &headers,
                        Some(self.run_body(step).to_string().into_bytes()),
                    )
                    .await?;
                let j = r.json();
                let Some(id) = j["id"].as_str() else {
                    return self.expect(step, &r, None);
                };
                self.vars
                    .insert(step.save.clone().unwrap_or("job".into()), id.to_string());
                if step.no_wait == Some(true) {
                    (r, None)
                } else {
                    self.finished_job(id, key).await?
                }
            }
            "wait" => {
                let id = self.var(&step.save, "job")?;
                self.finished_job(&id, key).await?
            }
            "put" | "get" | "list" | "delete" => {
                let sid = self.var(&step.session, "sid")?;
                let path = self.fill(step.path.as_deref().unwrap_or(""));
                let (method, url, body) = match action {
                    "put" => (
                        "PUT",
                        format!("/sessions/{sid}/files/{path}"),
                        Some(self.body_bytes(step)?),
                    ),
                    "get" => ("GET", format!("/sessions/{sid}/files/{path}"), None),
                    "delete" if path.is_empty() => ("DELETE", format!("/sessions/{sid}"), None),
                    "delete" => ("DELETE", format!("/sessions/{sid}/files/{path}"), None),
                    _ => ("GET", format!("/sessions/{sid}/files?path={path}"), None),
                };
                let mut headers = headers.clone();
                if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                    headers.push(("content-type".into(), "application/octet-stream".into()));
                }
                (self.send(method, &url, key, &headers, body).await?, None)
            }
            "http" => {
                let method = step.method.as_deref().unwrap_or("POST");
                let path = self.fill(step.path.as_deref().unwrap_or("/execute"));
                let body = if method == "GET" || method == "DELETE" {
                    None
                } else {
                    Some(self.body_bytes(step)?)
                };
                (self.send(method, &path, key, &headers, body).await?, None)
            }
            "ws_flood" => return self.ws_flood(step, key).await,
            "slow_bodies" => return self.slow_bodies(step).await,
            other => return Err(format!("unknown step `do = {other}`")),
        };
        self.expect(step, &reply, output)
    }

    /// Polls an async execution until it is neither queued nor running: its last view, with the result's stdout
    /// and status.
    async fn finished_job(&self, id: &str, key: Option<&str>) -> Result<(Reply, Option<(String, Value)>), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.send("GET", &format!("/executions/{id}"), key, &[], None).await?;
            let j = v.json();
            let s = j["status"].as_str().unwrap_or("").to_string();
            if s != "queued" && s != "running" {
                let out = (
                    j["result"]["stdout"].as_str().unwrap_or("").to_string(),
                    j["result"]["status"].clone(),
                );
                return Ok((v, Some(out)));
            }
            if Instant::now() > deadline {
                return Err(format!("async job {id} still {s} after 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) fn body_bytes(&self, step: &Step) -> Result<Vec<u8>, String> {
        if let Some(hex) = &step.body_hex {
            return (0..hex.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16).map_err(|e| format!("body_hex: {e}"))
                })
                .collect();
        }
        if let Some(spec) = &step.body_gen {
            let (kind, n) = spec.split_once(':').ok_or("body_gen is kind:N")?;
            let n: usize = n.parse().map_err(|e| format!("body_gen: {e}"))?;
            return Ok(match kind {
                // A body that is nothing but nesting, and nesting inside a field the server parses.
                "nested" => format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes(),
                "nested_field" => format!(
                    "{{\"language\":\"python\",\"code\":\"print(1)\",\"env\":{}\"x\"{}}}",
                    "{\"a\":".repeat(n),
                    "}".repeat(n)
                )
                .into_bytes(),
                "huge" => format!("{{\"language\":\"python\",\"code\":\"# {}\"}}", "x".repeat(n)).into_bytes(),
                "array" => format!(
                    "{{\"language\":\"python\",\"code\":\"print(1)\",\"args\":[{}\"a\"]}}",
                    "\"a\",".repeat(n)
                )
                .into_bytes(),
                "envs" => {
                    let vars: Vec<String> = (0..n).map(|i| format!("\"V{i}\":\"x\"")).collect();
                    format!(
                        "{{\"language\":\"python\",\"code\":\"print(1)\",\"env\":{{{}}}}}",
                        vars.join(",")
                    )
                    .into_bytes()
                }
                other => return Err(format!("unknown body_gen {other}")),
            });
        }
        Ok(self.fill(step.body.as_deref().unwrap_or("")).into_bytes())
    }

    fn expect(&self, step: &Step, reply: &Reply, output: Option<(String, Value)>) -> Result<(), String> {
        let text = reply.text();
        if std::env::var_os("HOSTILE_VERBOSE").is_some() {
            say!(
                "    HTTP {}: {}",
                reply.status,
                text.chars().take(1500).collect::<String>()
            );
        }
        let short = || text.chars().take(600).collect::<String>();
        match &step.http {
            Some(allowed) if !allowed.contains(&reply.status) => {
                return Err(format!("HTTP {} (expected {allowed:?}): {}", reply.status, short()))
            }
            None if output.is_some() && reply.status >= 400 => {
                return Err(format!("HTTP {}: {}", reply.status, short()))
            }
            _ => {}
        }
        if let Some(codes) = &step.error {
            let code = reply.json()["code"].as_str().unwrap_or("").to_string();
            if !codes.contains(&code) {
                return Err(format!("error code {code:?} (expected {codes:?}): {}", short()));
            }
        }
        if let Some(statuses) = &step.status {
            let got = output
                .as_ref()
                .map(|(_, s)| s.as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            if !statuses.contains(&got) {
                return Err(format!("status {got:?} (expected {statuses:?}): {}", short()));
            }
        }
        let haystack = output.as_ref().map(|(o, _)| o.clone()).unwrap_or_else(|| text.clone());
        for want in step.has.iter().flatten() {
            let want = self.fill(want);
            if !haystack.contains(&want) {
                return Err(format!("{want:?} missing: {}", short()));
            }
        }
        for bad in step.lacks.iter().flatten() {
            let bad = self.fill(bad);
            if text.contains(&bad) {
                return Err(format!("{bad:?} present: {}", short()));
            }
        }
        Ok(())
    }

    pub(super) async fn print_one(&self) -> Result<(), String> {
        let body = json!({"language": "python", "code": "print(1)"})
            .to_string()
            .into_bytes();
        let r = self.send("POST", "/execute", Some(KEY_A), &[], Some(body)).await?;
        let j = r.json();
        if r.status != 200 || j["status"] != "ok" || j["stdout"] != "1\n" {
            return Err(format!("print(1) no longer runs right: {} {}", r.status, r.text()));
        }
        Ok(())
    }

    /// The secret files are as written, the server lives, nothing of the case is left, and print(1) runs.
    async fn after_case(&mut self) -> Result<(), String> {
        for (path, content) in &self.secret_files {
            if std::fs::read(path).ok().as_deref() != Some(content.as_slice()) {
                return Err(format!("host file {} changed or vanished", path.display()));
            }
        }
        let secret_dir = std::path::Path::new(&self.vars["SECRET_DIR"]);
        let names: Vec<_> = std::fs::read_dir(secret_dir)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if names != [std::ffi::OsString::from("secret.txt")] {
            return Err(format!("the host's secret directory changed: {names:?}"));
        }
        // Sessions the case made end now (their owner's key), so that their workers are gone too.
        let sessions: Vec<(String, String)> = self
            .vars
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("owner_of_").map(|id| (id.to_string(), v.clone())))
            .collect();
        for (id, owner) in sessions {
            let key = if owner == "b" { KEY_B } else { KEY_A };
            let _ = self
                .send("DELETE", &format!("/sessions/{id}"), Some(key), &[], None)
                .await;
        }
        if let Some(what) = self.listeners.reached() {
            return Err(what.to_string());
        }
        if let Ok(Some(status)) = self.server_exit() {
            return Err(format!("the server exited: {status}"));
        }
        let marker = self.vars["MARKER"].clone();
        host::settle(
            &marker,
            &self.server.data_dir,
            &self.cgroup_parent,
            self.server.pid(),
            20,
        )
        .await?;
        self.print_one().await
    }

    fn server_exit(&self) -> Result<Option<String>, String> {
        let alive = std::path::Path::new(&format!("/proc/{}", self.server.pid())).exists();
        Ok((!alive).then(|| "gone".to_string()))
    }
}

/// Starts the server and the host's secrets, then runs every case; returns (passed, failed).
pub async fn run_all(families: &[Family], filter: &str) -> (usize, usize) {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let data_dir = scratch.path().join("data");
    let secret = format!("HOSTSECRET{}", random_hex());
    let secret_dir = scratch.path().join("host-only");
    std::fs::create_dir(&secret_dir).unwrap();
    let secret_file = secret_dir.join("secret.txt");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let cgroup_parent = format!("runbox-hostile-{}", std::process::id());
    let keys = two_keys_setting();
    let parent_setting = format!("aggregate.cgroup_parent={cgroup_parent}");
    let server = Server::start(
        &data_dir,
        &[
            &keys,
            &parent_setting,
            "limits.timeout_ms=10000",
            "limits.cpu_ms=10000",
            "limits.memory_mb=512",
            "limits.processes=128",
            "max_concurrent=4",
        ],
    );
    // A file the data directory holds beside the store: no sandbox may read it either.
    let canary = data_dir.join("hostile-canary.txt");
    std::fs::write(&canary, format!("{secret}\n")).unwrap();
    let secret_files = vec![
        (secret_file.clone(), format!("{secret}\n").into_bytes()),
        (canary.clone(), format!("{secret}\n").into_bytes()),
    ];
    let mut vars = HashMap::new();
    vars.insert("SECRET_FILE".into(), secret_file.display().to_string());
    vars.insert("SECRET_DIR".into(), secret_dir.display().to_string());
    vars.insert("DATA_DIR".into(), data_dir.display().to_string());
    vars.insert("ADDR".into(), server.addr.clone());
    vars.insert("PORT".into(), server.addr.rsplit(':').next().unwrap_or("").to_string());
    // The detectors must see something, or every "nothing left" below would pass vacuously: a marked host process
    // is found, and the server's pools show up as workspaces and cgroups.
    if let Err(e) = host::self_check(&data_dir, &cgroup_parent).await {
        say!("FAILED self-check: {e}");
        return (0, 1);
    }
    let listeners = Listeners::open(&mut vars);
    let mut ctx = Ctx {
        listeners,
        server,
        cgroup_parent: cgroup_parent.clone(),
        secret,
        secret_files,
        vars,
    };
    let (mut passed, mut failed) = (0, 0);
    for family in families {
        for case in &family.cases {
            let id = format!("{}/{}", family.name, case.name);
            if !id.contains(filter) {
                continue;
            }
            let started = Instant::now();
            let marker = format!("hostile-{}-{}", case.name, random_hex());
            ctx.vars
                .retain(|k, _| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            ctx.vars.insert("MARKER".into(), marker);
            let mut verdict = Ok(());
            'steps: for (i, step) in case.steps.iter().enumerate() {
                for _ in 0..step.repeat.unwrap_or(1) {
                    if let Err(e) = ctx.step(step).await {
                        verdict = Err(format!("step {}: {e}", i + 1));
                        break 'steps;
                    }
                }
            }
            let after = ctx.after_case().await;
            let verdict = verdict.and(after.map_err(|e| format!("afterwards: {e}")));
            let ms = started.elapsed().as_millis();
            match verdict {
                Ok(()) => {
                    passed += 1;
                    say!("ok     {id} ({ms} ms)");
                }
                Err(e) => {
                    failed += 1;
                    say!("FAILED {id} ({ms} ms): {e}");
                }
            }
        }
    }
    let mut server = ctx.server;
    let _ = server.terminate().await;
    // The whole server log is kept for a look afterwards; on failure, its warnings and errors are printed.
    let log = server.log();
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-server.log");
    let _ = std::fs::write(&kept, &log);
    if failed > 0 {
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("status=5"))
            .collect();
        eprintln!(
            "server warnings and errors (whole log in {}):\n{}",
            kept.display(),
            notable[notable.len().saturating_sub(60)..].join("\n")
        );
    }
    // The server made its aggregate cgroup in every hierarchy; with the server gone, each is empty.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join(&cgroup_parent));
    }
    let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(&cgroup_parent));
    (passed, failed)
}
