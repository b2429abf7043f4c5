mod session_support;
use serde_json::json;
use session_support::*;
use std::time::{Duration, Instant};
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch() {
    let api = Api::new(|c| c.sessions.interrupt_grace_ms = 3000);
    for lang in ["python", "javascript", "bash"] {
        let id = api.create(lang).await;
        let code = match lang {
            "python" => "while True: pass",
            "javascript" => "while(true){}",
            _ => "sleep 20",
        };
        let mut worst = Duration::ZERO;
        for i in 0..30 {
            let call = api.post(
                &format!("/sessions/{id}/execute"),
                json!({"code": code, "timeout_ms": 8000}),
            );
            let t = Instant::now();
            let running = tokio::spawn(call.send());
            loop {
                if api.info(&id).await["state"] == "busy" {
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200 * (i % 5))).await;
            }
            api.post(&format!("/sessions/{id}/interrupt"), json!({})).send().await;
            let r = running.await.unwrap().json();
            worst = worst.max(t.elapsed());
            if r["status"] != "interrupted" || api.info(&id).await["state"] == "dead" {
                eprintln!("{lang} {i} BAD: {r} {}", api.info(&id).await);
                break;
            }
        }
        let r = api
            .exec(&id, if lang == "bash" { "echo alive" } else { "'alive'" })
            .await;
        eprintln!("{lang}: worst {worst:?}, then {} {}", r["status"], r["stdout"]);
    }
}
