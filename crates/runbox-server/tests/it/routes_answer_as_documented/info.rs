//! The info and documentation routes (`/`, `/health`, `/languages`, `/metrics`, `/openapi.json`, `/docs`,
//! `/redoc`), and the schema check every response here goes through refusing what the document forbids.

use super::*;

#[tokio::test]
async fn info_routes_answer() {
    let app = app();
    let info = app.get("/").send().await.expect(200);
    assert_eq!(info["name"], "runbox");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (&info["docs"], &info["openapi"], &info["redoc"]),
        (&json!("/docs"), &json!("/openapi.json"), &json!("/redoc"))
    );

    let health = app.get("/health").send().await.expect(200);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        (health["active_runs"].as_i64(), health["queued"].as_i64()),
        (Some(0), Some(0))
    );

    let languages = app.get("/languages").send().await.expect(200);
    let python = languages
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "python")
        .expect("python is listed");
    assert_eq!(python["available"], true, "{python}");
    // Discovery is cached: /health now counts the languages.
    let health = app.get("/health").send().await.expect(200);
    assert!(health["languages"]["available"].as_u64().unwrap() >= 1, "{health}");

    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    for name in [
        "runbox_active_runs 0",
        "runbox_queue_depth 0",
        "runbox_async_jobs_queued 0",
    ] {
        assert!(metrics.text().contains(name), "{name} missing from\n{}", metrics.text());
    }
}

#[tokio::test]
async fn documentation_is_served_from_the_binary() {
    let app = app_with_keys();
    // The served document is the committed one.
    let served = app.get("/openapi.json").send().await.expect(200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, committed);

    let docs = app.get("/docs/").send().await;
    assert_eq!(docs.status, 200, "{}", docs.text());
    assert!(docs.header("content-type").unwrap().starts_with("text/html"));
    assert!(docs.text().contains("swagger-ui"), "{}", docs.text());
    // Its assets come from the binary too, and it loads our document.
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let r = app.get(asset).send().await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.body.len() > 10_000, "{asset} is {} bytes", r.body.len());
    }
    let init = app.get("/docs/swagger-initializer.js").send().await;
    assert_eq!(init.status, 200);
    assert!(init.text().contains("/openapi.json"), "{}", init.text());

    let redoc = app.get("/redoc").send().await;
    assert_eq!(redoc.status, 200);
    assert!(redoc.header("content-type").unwrap().starts_with("text/html"));
    let html = redoc.text();
    assert!(html.contains("openapi.json"), "the reference page reads the document");
    for external in ["src=\"http", "href=\"http", "src='http", "@import"] {
        assert!(
            !html.contains(external),
            "the reference page loads an external asset ({external})"
        );
    }
}

#[test]
fn the_schema_check_refuses_what_the_document_forbids() {
    let doc = openapi_check::committed();
    let good = json!({"status": "ok", "language": "python", "version": null, "exit_code": 0, "signal": null,
        "stdout": "", "stderr": "", "stdout_truncated": false, "stderr_truncated": false, "wall_ms": 1,
        "cpu_ms": null, "memory_peak_bytes": null, "duration_ms": 1});
    doc.validate_named("ExecutionResult", &good).unwrap();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("stdout");
    let mut bad_enum = good.clone();
    bad_enum["status"] = json!("exploded");
    let mut bad_type = good.clone();
    bad_type["wall_ms"] = json!("fast");
    let mut negative = good.clone();
    negative["wall_ms"] = json!(-1);
    let mut bad_nested = good.clone();
    bad_nested["summary"] = json!({"total": 1});
    for (what, value) in [
        ("a missing property", missing),
        ("a value outside the enum", bad_enum),
        ("a wrong type", bad_type),
        ("a value under the minimum", negative),
        ("a wrong nested object", bad_nested),
    ] {
        assert!(doc.validate_named("ExecutionResult", &value).is_err(), "{what} passed");
    }
    assert!(doc
        .validate_named("ErrorBody", &json!({"code": 1, "message": "m"}))
        .is_err());
    // A status the operation does not document fails the check.
    let err = doc.check_response("GET", "/health", 418, &[], b"{}").unwrap_err();
    assert!(err.contains("not documented"), "{err}");
    let headers = [("content-type".to_string(), "application/json".to_string())];
    assert!(doc
        .check_response(
            "POST",
            "/executions",
            202,
            &headers,
            br#"{"id":"x","status":"queued","location":"/executions/x"}"#
        )
        .unwrap_err()
        .contains("Location"));
}
