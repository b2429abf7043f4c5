//! The drop-in Judge0 CE and Piston v2 routes running code in real sandboxes (in process, no socket): Judge0's
//! status for each kind of outcome, base64 both ways and the 400 for output that is not UTF-8, async submissions
//! run by the worker; Piston's stages from JSON, `text/plain` and form bodies. Every response is checked against
//! `openapi.json`. The real third-party clients are tested against `runbox serve` in `tests/clients/`.

use runbox_testkit::app as api;

use api::*;
use runbox_engine::Jail;
use serde_json::{json, Value};

fn app() -> TestApp {
    TestApp::new(Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]), |_| {})
}

async fn judge0_now(app: &TestApp, submission: Value) -> Value {
    app.post("/judge0/submissions?wait=true&fields=*", submission)
        .send()
        .await
        .expect(201)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_decides_each_status_from_the_outcome() {
    let app = app();
    let segv = "int main(void){volatile int *p = 0; return *p;}";
    // raise(): integer division by zero does not trap on every architecture (arm64).
    let fpe = "#include <signal.h>\nint main(void){raise(SIGFPE); return 0;}";
    let abrt = "#include <stdlib.h>\nint main(void){abort();}";
    let cases = [
        (
            json!({"language_id": 71, "source_code": "print(int(input())*2)", "stdin": "21", "expected_output": "42 \n\n"}),
            3,
        ),
        (
            json!({"language_id": 71, "source_code": "print(41)", "expected_output": "42"}),
            4,
        ),
        (
            json!({"language_id": 71, "source_code": "while True: pass", "cpu_time_limit": 0.5}),
            5,
        ),
        (json!({"language_id": 50, "source_code": "int main( {"}), 6),
        (json!({"language_id": 50, "source_code": segv}), 7),
        (json!({"language_id": 50, "source_code": fpe}), 9),
        (json!({"language_id": 50, "source_code": abrt}), 10),
        (
            json!({"language_id": 46, "source_code": "echo out; echo err >&2; exit 3"}),
            11,
        ),
        (json!({"language_id": 46, "source_code": "kill -USR1 $$"}), 12),
    ];
    for (submission, want) in cases {
        let r = judge0_now(&app, submission.clone()).await;
        assert_eq!(r["status"]["id"], want, "{submission} gave {r}");
        assert_eq!(r["status_id"], want);
        match want {
            3 | 4 => assert_eq!((&r["exit_code"], &r["message"]), (&json!(0), &Value::Null), "{r}"),
            5 => assert_eq!(r["message"], "Time limit exceeded"),
            6 => {
                assert!(r["compile_output"].as_str().is_some_and(|c| c.contains("error")), "{r}");
                assert_eq!((&r["time"], &r["stdout"]), (&Value::Null, &Value::Null));
            }
            7 => assert_eq!(
                (&r["exit_signal"], &r["message"]),
                (&json!(11), &json!("Caught fatal signal 11"))
            ),
            11 => {
                assert_eq!(
                    (&r["stdout"], &r["stderr"], &r["exit_code"]),
                    (&json!("out\n"), &json!("err\n"), &json!(3))
                );
                assert_eq!(r["message"], "Exited with error status 3");
            }
            _ => {}
        }
        if want != 6 {
            let time: f64 = r["time"].as_str().unwrap().parse().unwrap();
            assert!(
                time >= 0.0 && r["wall_time"].as_str().is_some() && r["memory"].as_u64().is_some(),
                "{r}"
            );
        }
    }
    // redirect_stderr_to_stdout and command_line_arguments.
    let r = judge0_now(
        &app,
        json!({"language_id": 46, "source_code": "echo \"$1|$2\"; echo e >&2", "command_line_arguments": "'a b' c",
               "redirect_stderr_to_stdout": true}),
    )
    .await;
    assert_eq!(
        (&r["stdout"], &r["stderr"]),
        (&json!("a b|c\ne\n"), &Value::Null),
        "{r}"
    );
    // additional_files: a base64 zip (made by Python's zipfile, deflated) unpacked next to the source.
    let zip = "UEsDBBQAAAAIAIiBfl1NPwKJDwAAAA0AAAALAAAAZGF0YS9pbi50eHRLK8rPVSjJSFWoyizgAgBQSwECFAMUAAAACACIgX5dTT8CiQ8\
               AAAANAAAACwAAAAAAAAAAAAAAgAEAAAAAZGF0YS9pbi50eHRQSwUGAAAAAAEAAQA5AAAAOAAAAAAA";
    let r = judge0_now(
        &app,
        json!({"language_id": 71, "source_code": "print(open('data/in.txt').read(), end='')", "additional_files": zip}),
    )
    .await;
    assert_eq!(
        (&r["status"]["id"], &r["stdout"]),
        (&json!(3), &json!("from the zip\n")),
        "{r}"
    );
    assert_eq!(r["additional_files"], zip, "echoed, base64");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_output_that_is_not_utf8_needs_base64() {
    let app = app();
    let code = "import sys; sys.stdout.buffer.write(bytes([0xff, 0x41]))";
    let r = app
        .post(
            "/judge0/submissions?wait=true",
            json!({"language_id": 71, "source_code": code}),
        )
        .send()
        .await
        .expect(201);
    let token = r["token"].as_str().expect("the token comes with the error").to_string();
    assert!(r["error"].as_str().unwrap().contains("use base64_encoded=true"), "{r}");
    let path = format!("/judge0/submissions/{token}");
    let e = app.get(&path).send().await.expect(400);
    assert!(
        e["error"].as_str().unwrap().contains("cannot be converted to UTF-8"),
        "{e}"
    );
    let r = app.get(&format!("{path}?base64_encoded=true")).send().await.expect(200);
    assert_eq!(r["stdout"], "/0E=", "the exact bytes");
    // Base64 in: source, stdin and expected output.
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let r = app
        .post(
            "/judge0/submissions?wait=true&base64_encoded=true",
            json!({"language_id": 71, "source_code": b64("print(input()[::-1])"), "stdin": b64("abc"),
                   "expected_output": b64("cba")}),
        )
        .send()
        .await
        .expect(201);
    assert_eq!(
        (&r["status"]["id"], &r["stdout"]),
        (&json!(3), &json!(b64("cba\n"))),
        "{r}"
    );
    // A finished submission can be deleted; it answers with its record, then is gone.
    let deleted = app.delete(&path).send().await.expect(200);
    assert_eq!(deleted["stdout"], "/0E=");
    app.get(&path).send().await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_async_submissions_are_run_by_the_worker() {
    let app = app();
    tokio::spawn(runbox_server::job_runner::run(app.state.clone()));
    let base = json!({"language_id": 71, "source_code": "print(int(input()) * 2)"});
    let submissions: Vec<Value> = [("1", "2"), ("2", "5")]
        .iter()
        .map(|(stdin, expected)| {
            let mut s = base.clone();
            s["stdin"] = json!(stdin);
            s["expected_output"] = json!(expected);
            s
        })
        .collect();
    let created = app
        .post("/judge0/submissions/batch", json!({ "submissions": submissions }))
        .send()
        .await
        .expect(201);
    let tokens: Vec<&str> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    let path = format!("/judge0/submissions/batch?tokens={}&fields=status", tokens.join(","));
    let mut statuses = Vec::new();
    within(30, "both submissions finish", async {
        loop {
            let got = app.get(&path).send().await.expect(200);
            statuses = got["submissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["status"]["id"].clone())
                .collect();
            if statuses.iter().all(|s| s.as_u64().is_some_and(|id| id > 2)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(statuses, [json!(3), json!(4)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piston_runs_json_text_and_form_bodies_and_shows_each_stage() {
    let app = app();
    // piston-client posts JSON as text/plain, with its default args.
    let body = json!({"language": "python", "version": "*", "files": [{"content": "import sys\nprint(input(), sys.argv[1:])"}],
                      "stdin": "hi", "args": ["1", "2", "3"], "compile_timeout": 10000, "run_timeout": 3000,
                      "compile_memory_limit": -1, "run_memory_limit": -1});
    let r = app
        .call("POST", "/api/v2/execute")
        .raw("text/plain;charset=UTF-8", body.to_string().into_bytes())
        .send()
        .await
        .expect(200);
    assert_eq!(r["run"]["stdout"], "hi ['1', '2', '3']\n", "{r}");
    assert_eq!(
        (&r["run"]["code"], &r["run"]["status"], &r["language"]),
        (&json!(0), &Value::Null, &json!("python"))
    );
    assert!(r.get("compile").is_none(), "no compile stage for Python: {r}");
    // pistonapi posts a form: files is the code, timeout the run timeout.
    let r = app
        .call("POST", "/api/v2/execute")
        .raw(
            "application/x-www-form-urlencoded",
            b"language=py&version=3&files=print%286%2A7%29&stdin=&timeout=5000".to_vec(),
        )
        .send()
        .await
        .expect(200);
    assert_eq!(r["run"]["output"], "42\n", "{r}");
    // A compiled language: both stages; a compile error makes `run` mirror `compile`.
    let r = app
        .post(
            "/api/v2/execute",
            json!({"language": "c", "files": [{"name": "main.c", "content": "int main(){return 3;}"}]}),
        )
        .send()
        .await
        .expect(200);
    assert_eq!(
        (&r["compile"]["code"], &r["run"]["code"], &r["run"]["status"]),
        (&json!(0), &json!(3), &json!("RE"))
    );
    let r = app
        .post(
            "/api/v2/execute",
            json!({"language": "c", "files": [{"content": "int main( {"}]}),
        )
        .send()
        .await
        .expect(200);
    assert_ne!(r["compile"]["code"], 0, "{r}");
    assert_eq!(r["run"], r["compile"]);
    // Limits: a run over its timeout is TO with SIGKILL.
    let r = app
        .post(
            "/api/v2/execute",
            json!({"language": "python", "files": [{"content": "while True: pass"}], "run_timeout": 300}),
        )
        .send()
        .await
        .expect(200);
    assert_eq!(
        (&r["run"]["status"], &r["run"]["signal"]),
        (&json!("TO"), &json!("SIGKILL")),
        "{r}"
    );
}

/// The app served on a loopback socket (WebSockets need one); returns its address.
async fn serve(app: &TestApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = runbox_server::app(app.state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piston_connect_runs_interactively_over_a_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let app = app();
    let addr = serve(&app).await;
    let url = format!("ws://{addr}/api/v2/connect");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "init", "language": "python", "version": "*",
        "files": [{"content": "print('name?', flush=True)\nprint('hi', input())"}]})))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let close = within(20, "the interactive run completes", async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "data" && v["data"].as_str().unwrap().contains("name?") {
                        ws.send(send(json!({"type": "data", "stream": "stdin", "data": "bob\n"})))
                            .await
                            .unwrap();
                    }
                    seen.push(v);
                }
                Message::Close(frame) => return frame,
                _ => {}
            }
        }
        None
    })
    .await;
    let frame = close.expect("a close frame");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4999, "Job Completed"));
    assert_eq!(seen[0]["type"], "runtime", "{seen:?}");
    assert_eq!(seen[1], json!({"type": "stage", "stage": "run"}));
    let stdout: String = seen
        .iter()
        .filter(|v| v["type"] == "data" && v["stream"] == "stdout")
        .map(|v| v["data"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, "name?\nhi bob\n");
    assert_eq!(
        seen.last().unwrap(),
        &json!({"type": "exit", "stage": "run", "code": 0, "signal": null})
    );

    // No init within a second: Piston's 4001.
    let (mut idle, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let frame = within(5, "the idle socket is closed", async {
        loop {
            if let Some(Ok(Message::Close(f))) = idle.next().await {
                return f;
            }
        }
    })
    .await
    .expect("a close frame");
    assert_eq!(u16::from(frame.code), 4001);
    // A bad init: an error message, then 4002.
    let (mut bad, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    bad.send(send(
        json!({"type": "init", "language": "cobol", "files": [{"content": "x"}]}),
    ))
    .await
    .unwrap();
    let first = within(5, "the error arrives", bad.next()).await.unwrap().unwrap();
    let v: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v, json!({"type": "error", "message": "cobol-* runtime is unknown"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge0_callbacks_are_put_with_the_base64_record() {
    let permissive = TestApp::new(Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]), |c| {
        c.callback_allow_private = true;
    });
    tokio::spawn(runbox_server::job_runner::run(permissive.state.clone()));
    // A receiver on loopback that hands each PUT body to the test.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let receiver = axum::Router::new().route(
        "/cb",
        axum::routing::put(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let created = permissive
        .post(
            "/judge0/submissions",
            json!({"language_id": 71, "source_code": "print(7)", "callback_url": url}),
        )
        .send()
        .await
        .expect(201);
    let body = within(30, "the callback arrives", rx.recv()).await.unwrap();
    assert_eq!(body["token"], created["token"]);
    assert_eq!(
        (&body["status"]["id"], &body["stdout"]),
        (&json!(3), &json!("Nwo=")),
        "{body}"
    );
    // A callback to a private address is refused unless the operator allows it, as for runbox's own callbacks.
    let strict = app();
    let e = strict
        .post(
            "/judge0/submissions",
            json!({"language_id": 71, "source_code": "1", "callback_url": "http://127.0.0.1:9/x"}),
        )
        .send()
        .await
        .expect(422);
    assert!(e["callback_url"][0].as_str().unwrap().contains("private"), "{e}");
}
