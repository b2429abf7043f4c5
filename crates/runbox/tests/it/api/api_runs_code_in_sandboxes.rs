//! The HTTP API in process (no socket), running code in real sandboxes through this crate's binary: results,
//! judge verdicts, cell magics, the compatibility route, metrics, the CPU bandwidth a request may ask for, and the
//! limits that need a run in flight (per-key concurrency → 429, a full server → 503). Every response is checked
//! against `openapi.json`.

use runbox_testkit::app as api;

use std::sync::atomic::Ordering;

use api::*;
use runbox_engine::Jail;
use serde_json::{json, Value};

fn jail() -> Jail {
    Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()])
}

fn app() -> TestApp {
    TestApp::new(jail(), |_| {})
}

async fn execute(app: &TestApp, body: Value) -> Value {
    app.post("/execute", body).send().await.expect(200)
}

/// Whether a process of the host has `marker` in its command line.
fn process_named(marker: &str) -> bool {
    !runbox_testkit::procs::named(marker).is_empty()
}

/// Starts a run that sleeps until cancelled, and waits until it holds a sandbox slot and its program runs (a
/// cancel that reaches the jail as it starts is a known bug: see server_binary_end_to_end.rs).
async fn hold_a_slot(app: &TestApp, key: Option<&str>) -> tokio::task::JoinHandle<Reply> {
    static HELD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let marker = format!(
        "runbox-api-held-{}-{}",
        std::process::id(),
        HELD.fetch_add(1, Ordering::Relaxed)
    );
    let active = app.state.metrics.active_runs.load(Ordering::Relaxed);
    let code = format!("exec -a {marker} sleep 60");
    let mut call = app.post("/execute", json!({"language": "bash", "code": code}));
    if let Some(k) = key {
        call = call.key(k);
    }
    let held = tokio::spawn(call.send());
    let state = app.state.clone();
    wait_until(10, "the slow run takes its slot", || {
        state.metrics.active_runs.load(Ordering::Relaxed) > active
    })
    .await;
    wait_until(10, "the slow run's program starts", || process_named(&marker)).await;
    held
}

/// Cancels every run in flight and checks the held one ended `killed`.
async fn release(app: &TestApp, held: tokio::task::JoinHandle<Reply>) {
    app.state.admission.cancel_all();
    let reply = within(10, "the cancelled run answers", held).await.unwrap();
    assert_eq!(reply.expect(200)["status"], "killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_answers_with_the_documented_result() {
    let app = app();
    let r = execute(&app, json!({"language": "python", "code": "print('hello')"})).await;
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("hello\n")),
        "{r}"
    );
    assert_eq!(
        (r["language"].as_str(), r["exit_code"].as_i64()),
        (Some("python"), Some(0))
    );
    assert!(r["version"].as_str().is_some_and(|v| v.starts_with('3')), "{r}");

    // Language defaults to Python; stdin, args and env reach the program.
    let r = execute(
        &app,
        json!({"code": "import os, sys\nprint(input(), sys.argv[1:], os.environ['GREETING'])",
            "stdin": "from stdin\n", "args": ["a", "b c"], "env": {"GREETING": "hej"}}),
    )
    .await;
    assert_eq!(r["stdout"], "from stdin ['a', 'b c'] hej\n", "{r}");

    // Several files, with an entry point.
    let r = execute(
        &app,
        json!({"language": "python", "entry": "app/main.py", "files": [
            {"path": "app/util.py", "content": "def twice(x):\n    return 2 * x\n"},
            {"path": "app/main.py", "content": "from util import twice\nprint(twice(21))"}]}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("42\n")),
        "{r}"
    );

    // What the program does is a result, not an error.
    let r = execute(&app, json!({"language": "bash", "code": "echo oops >&2; exit 3"})).await;
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("exited_nonzero"), Some(3)),
        "{r}"
    );
    assert_eq!(r["stderr"], "oops\n");
    let r = execute(&app, json!({"language": "bash", "code": "sleep 10", "timeout_ms": 300})).await;
    assert_eq!(r["status"], "timeout", "{r}");

    // A compiled language reports both stages.
    let r = execute(
        &app,
        json!({"language": "c", "code": "#include <stdio.h>\nint main(void) { puts(\"compiled\"); return 0; }"}),
    )
    .await;
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("compiled\n")),
        "{r}"
    );
    assert_eq!(
        (r["compile"]["status"].as_str(), r["run"]["status"].as_str()),
        (Some("ok"), Some("ok"))
    );
    let r = execute(
        &app,
        json!({"language": "c", "code": "int main(void) { return nope; }"}),
    )
    .await;
    assert_eq!(r["status"], "compile_error", "{r}");
    assert!(r["stderr"].as_str().unwrap().contains("nope"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_mode_gives_a_verdict_per_case() {
    let app = app();
    let code = "import sys\nx = input()\nif x == 'boom':\n    sys.exit(4)\nprint(x.upper())";
    let r = execute(
        &app,
        json!({"language": "python", "code": code, "tests": [
            {"stdin": "abc\n", "expected_output": "ABC"},
            {"stdin": "abc\n", "expected_output": "abc"},
            {"stdin": "boom\n", "expected_output": "BOOM"},
            {"stdin": "  trailing  \n", "expected_output": "  TRAILING\n\n"},
        ]}),
    )
    .await;
    let tests = r["tests"].as_array().unwrap_or_else(|| panic!("per-case results: {r}"));
    let verdicts: Vec<&str> = tests.iter().map(|t| t["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["passed", "wrong_output", "failed", "passed"], "{r}");
    assert_eq!(tests[1]["stdout"], "ABC\n");
    assert_eq!(
        (tests[2]["status"].as_str(), tests[2]["exit_code"].as_i64()),
        (Some("exited_nonzero"), Some(4))
    );
    let indexes: Vec<u64> = tests.iter().map(|t| t["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(
        r["summary"],
        json!({"total": 4, "passed": 2, "failed": 2, "verdict": "wrong_output"}),
        "{r}"
    );
    let r = execute(
        &app,
        json!({"code": "print(int(input()) * 2)", "tests": [
            {"stdin": "1", "expected_output": "2"}, {"stdin": "21", "expected_output": "42\n"}]}),
    )
    .await;
    assert_eq!(r["summary"]["verdict"], "passed", "{r}");
    assert_eq!(r["summary"]["passed"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_never_told_that_another_key_compiled_the_same_source() {
    let app = TestApp::new(jail(), two_keys);
    let body = json!({"language": "c", "code": format!(
        "#include <stdio.h>\nint main(void) {{ puts(\"{}\"); return 0; }}\n",
        std::process::id()
    )});
    let run = |key: &'static str| app.post("/execute", body.clone()).key(key).send();
    let a = run(KEY_A).await.expect(200);
    // `compile_cached` is left out when false.
    let cached = |r: &Value| r["compile_cached"].as_bool().unwrap_or(false);
    assert_eq!((a["status"].as_str(), cached(&a)), (Some("ok"), false), "{a}");
    let b = run(KEY_B).await.expect(200);
    assert_eq!(
        (b["status"].as_str(), cached(&b)),
        (Some("ok"), false),
        "key b learnt that key a compiled this source: {b}"
    );
    let a_again = run(KEY_A).await.expect(200);
    assert_eq!(a_again["compile_cached"], true, "{a_again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cell_magics_and_the_command_alias_select_what_runs() {
    let app = app();
    let r = execute(&app, json!({"code": "%%bash\necho \"$BASH_VERSION\" | cut -c1"})).await;
    assert_eq!(
        (r["language"].as_str(), r["stdout"].as_str()),
        (Some("bash"), Some("5\n")),
        "{r}"
    );
    // The magic wins over the language field.
    let r = execute(
        &app,
        json!({"language": "python", "code": "%%javascript\nconsole.log(1 + 1)"}),
    )
    .await;
    assert_eq!(
        (r["language"].as_str(), r["stdout"].as_str()),
        (Some("javascript"), Some("2\n")),
        "{r}"
    );
    let r = execute(&app, json!({"command": "print('alias')"})).await;
    assert_eq!(r["stdout"], "alias\n", "{r}");
    let r = execute(&app, json!({"language": "sh", "command": "echo alias too"})).await;
    assert_eq!(
        (r["language"].as_str(), r["stdout"].as_str()),
        (Some("bash"), Some("alias too\n")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compat_route_answers_like_a_jupyter_interpreter() {
    let app = app();
    let path = "/process/interpreter/execute";
    let r = app
        .post(
            path,
            json!({"code": "import os\nprint(6 * 7, os.environ['X'])", "envs": {"X": "y"}}),
        )
        .send()
        .await
        .expect(200);
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("42 y\n")),
        "{r}"
    );
    assert!(r["error"].is_null(), "{r}");

    let r = app
        .post(path, json!({"code": "print('before')\n1/0"}))
        .send()
        .await
        .expect(200);
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("error"), Some("before\n")),
        "{r}"
    );
    assert_eq!(r["error"]["name"], "ZeroDivisionError", "{r}");
    assert_eq!(r["error"]["value"], "division by zero", "{r}");
    assert!(
        r["error"]["traceback"]
            .as_str()
            .unwrap()
            .contains("Traceback (most recent call last)"),
        "{r}"
    );

    let r = app.post(path, json!({"code": "x = ("})).send().await.expect(200);
    assert_eq!(
        (r["status"].as_str(), r["error"]["name"].as_str()),
        (Some("error"), Some("SyntaxError")),
        "{r}"
    );

    let started = std::time::Instant::now();
    let r = app
        .post(path, json!({"code": "import time\ntime.sleep(30)", "timeout": 0.5}))
        .send()
        .await
        .expect(200);
    assert_eq!(r["status"], "interrupted", "{r}");
    assert!(started.elapsed().as_secs() < 10, "the timeout ended the run");

    let r = app
        .post(path, json!({"code": "import sys; sys.exit(2)"}))
        .send()
        .await
        .expect(200);
    assert_eq!(r["status"], "exit", "{r}");
    assert_eq!(r["exitCode"], 2, "an `exit` result keeps the exit code: {r}");
}

/// `{id}` of a path template filled in: a fresh session of `app`.
async fn concrete_path(app: &TestApp, template: &str) -> String {
    if !template.contains("{id}") {
        return template.to_string();
    }
    let session = app.post("/sessions", json!({})).send().await.expect(201);
    template.replace("{id}", session["id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_body_in_the_document_is_accepted() {
    // What the docs page's "Try it out" pre-fills, sent as it stands, must work: 2xx on every route.
    let app = app();
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    let mut tried = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(example) = op["requestBody"]["content"]["application/json"].get("example") else {
                continue;
            };
            let path = concrete_path(&app, template).await;
            let r = app
                .call(&method.to_uppercase(), &path)
                .json(example.clone())
                .send()
                .await;
            assert!(
                r.status.is_success(),
                "{method} {template} refused its own example {example}: {} {}",
                r.status,
                r.text()
            );
            if path.ends_with("/stream") {
                let events = sse_events(&r.text());
                assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("result"), "{events:?}");
            }
            tried.push(format!("{method} {template}"));
        }
    }
    assert!(tried.len() >= 7, "{tried:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stream_refuses_a_bad_cell_before_it_streams() {
    let app = app();
    let path = concrete_path(&app, "/sessions/{id}/execute/stream").await;
    for timeout in [0, 3_600_000] {
        let r = app
            .post(&path, json!({"code": "1", "timeout_ms": timeout}))
            .send()
            .await;
        assert!(
            r.header("content-type").unwrap().starts_with("application/json"),
            "an error status, not a stream: {}",
            r.text()
        );
        r.expect_invalid("invalid_field", "timeout_ms");
    }
    // A good cell still streams.
    let r = app.post(&path, json!({"code": "print(41 + 1)"})).send().await;
    assert_eq!(r.status, 200);
    assert_eq!(sse_events(&r.text()).last().unwrap().0, "result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_cannot_start_within_its_own_limits_is_refused_not_a_server_error() {
    let app = app();
    app.post("/sessions", json!({"language": "python", "limits": {"processes": 1}}))
        .send()
        .await
        .expect_invalid("invalid_field", "limits");
}

/// How a client generated from `openapi.json` encodes a file's bytes for `PUT /sessions/{id}/files/{path}`: raw for
/// a binary string (what the document must say), as JSON numbers for an array of integers (what it once said).
fn body_a_generated_client_sends(bytes: &[u8]) -> (String, Vec<u8>) {
    let doc = openapi_check::committed();
    let (_, op) = doc.operation("put", "/sessions/s/files/a.bin").unwrap();
    let (content_type, media) = op["requestBody"]["content"].as_object().unwrap().iter().next().unwrap();
    let mut schema = media["schema"].clone();
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        schema = doc.schema(name).clone();
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), Some("binary")) => (content_type.clone(), bytes.to_vec()),
        (Some("array"), _) => (content_type.clone(), serde_json::to_vec(bytes).unwrap()),
        other => panic!("a file body documented as {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_round_trip_the_bytes_a_generated_client_sends() {
    // A generated client follows the document: the bytes it sends must be stored, and come back, unchanged.
    let bytes: Vec<u8> = vec![0, 1, 2, 0xff, 0xfe, b'h', b'i', b'\n', 0x80];
    let (content_type, body) = body_a_generated_client_sends(&bytes);
    assert_eq!(content_type, "application/octet-stream");
    let app = app();
    let base = concrete_path(&app, "/sessions/{id}/files").await;
    let put = app
        .call("PUT", &format!("{base}/a.bin"))
        .raw(&content_type, body)
        .send()
        .await
        .expect(201);
    assert_eq!(put["size"], bytes.len());
    let got = app.get(&format!("{base}/a.bin")).send().await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    // An upload without a body (it is optional) makes an empty file.
    app.call("PUT", &format!("{base}/empty.txt")).send().await.expect(201);
    assert!(app.get(&format!("{base}/empty.txt")).send().await.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_route_sends_output_events_then_the_result() {
    let app = app();
    let reply = app
        .post(
            "/execute/stream",
            json!({"language": "bash", "code": "echo out; echo err >&2; printf 'caf\\xc3'; printf '\\xa9\\n'"}),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = sse_events(&reply.text());
    let (last, result) = events.last().expect("events");
    assert_eq!(last, "result", "{events:?}");
    openapi_check::committed()
        .validate_named("ExecutionResult", result)
        .unwrap();
    let stdout: String = events
        .iter()
        .filter(|(n, _)| n == "stdout")
        .map(|(_, d)| d["data"].as_str().unwrap())
        .collect();
    // A character split across two writes arrives whole.
    assert_eq!(stdout, "out\ncafé\n");
    assert_eq!(result["stdout"], "out\ncafé\n");
    assert!(
        events.iter().any(|(n, d)| n == "stderr" && d["data"] == "err\n"),
        "{events:?}"
    );

    // Judge verdicts stream as they come; compiler output is its own event.
    let reply = app
        .post(
            "/execute/stream",
            json!({"code": "print(input())", "tests": [{"stdin": "a", "expected_output": "a"},
                {"stdin": "b", "expected_output": "c"}]}),
        )
        .send()
        .await;
    let events = sse_events(&reply.text());
    let cases: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "test_case")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(cases.len(), 2, "{events:?}");
    for case in &cases {
        openapi_check::committed()
            .validate_named("TestCaseResult", case)
            .unwrap();
    }
    assert_eq!(
        (&cases[0]["verdict"], &cases[1]["verdict"]),
        (&json!("passed"), &json!("wrong_output"))
    );
    let reply = app
        .post(
            "/execute/stream",
            json!({"language": "c", "code": "int main(void) { return nope; }"}),
        )
        .send()
        .await;
    let events = sse_events(&reply.text());
    assert!(
        events.iter().any(|(n, d)| n == "compile" && d["stream"] == "stderr"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().1["status"], "compile_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_executions_by_language_and_status() {
    let app = app();
    execute(&app, json!({"language": "python", "code": "print(1)"})).await;
    execute(&app, json!({"language": "bash", "code": "exit 1"})).await;
    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for line in [
        "runbox_executions_total{language=\"python\",status=\"ok\"} 1",
        "runbox_executions_total{language=\"bash\",status=\"exited_nonzero\"} 1",
        "runbox_execution_duration_seconds_count{language=\"python\"} 1",
        "runbox_active_runs 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_at_its_concurrency_limit_gets_429() {
    let app = TestApp::new(jail(), |c| {
        c.api_keys = vec![
            runbox_server::config::ApiKeyConfig {
                max_concurrent: Some(1),
                ..key("one-at-a-time", KEY_A)
            },
            key("other", KEY_B),
        ];
    });
    let held = hold_a_slot(&app, Some(KEY_A)).await;
    let r = app
        .post("/execute", json!({"code": "print(1)"}))
        .key(KEY_A)
        .send()
        .await;
    r.expect_error(429, "too_many_concurrent");
    assert!(r.header("retry-after").is_some());
    app.post("/process/interpreter/execute", json!({"code": "print(1)"}))
        .key(KEY_A)
        .send()
        .await
        .expect_error(429, "too_many_concurrent");
    // Other keys are not held back by it.
    let r = app
        .post("/execute", json!({"code": "print(2)"}))
        .key(KEY_B)
        .send()
        .await
        .expect(200);
    assert_eq!(r["stdout"], "2\n");
    release(&app, held).await;
    // The slot is free again.
    let r = app
        .post("/execute", json!({"code": "print(3)"}))
        .key(KEY_A)
        .send()
        .await
        .expect(200);
    assert_eq!(r["stdout"], "3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_503() {
    let app = TestApp::new(jail(), |c| {
        c.max_concurrent = 1;
        c.max_queue = 0;
    });
    let held = hold_a_slot(&app, None).await;
    let health = app.get("/health").send().await.expect(200);
    assert_eq!(health["active_runs"], 1, "{health}");
    for path in ["/execute", "/execute/stream", "/process/interpreter/execute"] {
        let r = app.post(path, json!({"code": "print(1)"})).send().await;
        r.expect_error(503, "overloaded");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let metrics = app.get("/metrics").send().await.text();
    assert!(
        metrics.contains("runbox_rejected_requests_total{reason=\"overloaded\"} 3"),
        "{metrics}"
    );
    release(&app, held).await;
    execute(&app, json!({"code": "print(1)"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_in_the_queue_for_a_slot() {
    let app = TestApp::new(jail(), |c| {
        c.max_concurrent = 1;
        c.max_queue = 1;
    });
    let held = hold_a_slot(&app, None).await;
    let queued = tokio::spawn(app.post("/execute", json!({"code": "print('waited')"})).send());
    let state = app.state.clone();
    wait_until(10, "the second request queues", || {
        state.metrics.queued.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(app.get("/health").send().await.expect(200)["queued"], 1);
    // The queue is full now.
    app.post("/execute", json!({"code": "print(1)"}))
        .send()
        .await
        .expect_error(503, "overloaded");
    release(&app, held).await;
    let r = within(20, "the queued request runs", queued).await.unwrap().expect(200);
    assert_eq!(r["stdout"], "waited\n");
}

/// The CPU bandwidth over HTTP: `/health` says every run is capped, a request within the server's maximum runs,
/// and one outside it is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_millicores_is_in_force_and_bounded_by_the_servers_maximum() {
    let app = TestApp::new(jail(), |c| c.limits.cpu_millicores = 2000);
    let health = app.get("/health").send().await.expect(200);
    assert_eq!(health["sandbox"]["cpu_cap"], true, "{health}");
    let r = execute(
        &app,
        json!({"language": "bash", "code": "echo ok", "limits": {"cpu_millicores": 1500}}),
    )
    .await;
    assert_eq!(r["stdout"], "ok\n", "{r}");
    for too_much_or_little in [2001, 99] {
        let body = json!({"language": "bash", "code": "echo ok", "limits": {"cpu_millicores": too_much_or_little}});
        let e = app
            .post("/execute", body)
            .send()
            .await
            .expect_error(422, "invalid_field");
        assert_eq!(e["details"]["field"], "limits.cpu_millicores", "{e}");
    }
}
