//! The OpenAPI document says what the server does, in the places where a property-based tester (schemathesis) or a
//! generated client found them apart: limit bounds, the compatibility route, session cell bodies, error statuses,
//! optional bodies, binary uploads, the documentation page. No request here reaches a sandbox; the ones that need
//! a run (every example body is accepted, uploads round-trip) are in `crates/runbox/tests/it/api/api_runs_code_in_sandboxes.rs`.

use runbox_testkit::app as common;

use common::*;
use runbox_engine::{ExecuteRequest, LimitCaps, LimitOverrides};
use serde_json::{json, Value};

fn app() -> TestApp {
    TestApp::new(no_jail(), |_| {})
}

fn doc() -> Value {
    serde_json::to_value(runbox_server::openapi::document()).unwrap()
}

/// `#/components/schemas/NAME/properties/FIELD`, with `$ref`s followed.
fn property(doc: &Value, schema: &str, field: &str) -> Value {
    let p = doc["components"]["schemas"][schema]["properties"][field].clone();
    assert!(!p.is_null(), "{schema}.{field} is documented");
    p
}

fn set_limit(limits: &mut LimitOverrides, field: &str, v: u64) {
    match field {
        "timeout_ms" => limits.timeout_ms = Some(v),
        "cpu_ms" => limits.cpu_ms = Some(v),
        "memory_mb" => limits.memory_mb = Some(v),
        "processes" => limits.processes = Some(v as u32),
        "output_bytes" => limits.output_bytes = Some(v),
        "file_size_mb" => limits.file_size_mb = Some(v),
        "tmp_mb" => limits.tmp_mb = Some(v),
        "workspace_mb" => limits.workspace_mb = Some(v),
        "open_files" => limits.open_files = Some(v),
        "cpu_millicores" => limits.cpu_millicores = Some(v as u32),
        other => panic!("a limit this test does not know: {other}"),
    }
}

#[test]
fn documented_limit_bounds_are_the_ones_the_server_enforces_by_default() {
    let doc = doc();
    let props = doc["components"]["schemas"]["LimitOverrides"]["properties"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(props.len(), 10, "every limit is checked here");
    let caps = LimitCaps::default();
    for (field, schema) in &props {
        let (min, max) = (schema["minimum"].as_u64().unwrap(), schema["maximum"].as_u64().unwrap());
        let request = |v: u64| {
            let mut r = ExecuteRequest {
                language: "python".into(),
                code: Some("1".into()),
                ..Default::default()
            };
            set_limit(&mut r.limits, field, v);
            r.validate(&caps)
        };
        assert!(request(min).is_ok(), "{field} = {min} (documented minimum) is accepted");
        if field == "cpu_millicores" {
            // The default maximum is every core of the machine, which no static document can state: the schema
            // gives the largest any server accepts, and the description says the rest.
            let cores = u64::from(caps.cpu_millicores);
            assert!(request(cores).is_ok() && request(cores + 1).is_err() && cores <= max);
            assert!(request(min - 1).is_err(), "{field} = {} is refused", min - 1);
            continue;
        }
        assert!(request(max).is_ok(), "{field} = {max} (documented maximum) is accepted");
        assert!(request(max + 1).is_err(), "{field} = {} is refused", max + 1);
        if min > 0 {
            assert!(request(min - 1).is_err(), "{field} = {} is refused", min - 1);
        }
    }
    // The shorthands have the same bounds as the limit they stand for.
    let timeout = &props["timeout_ms"];
    for (schema, field) in [("ExecuteBody", "timeout_ms"), ("SessionExecuteBody", "timeout_ms")] {
        let p = property(&doc, schema, field);
        assert_eq!(
            (&p["minimum"], &p["maximum"]),
            (&timeout["minimum"], &timeout["maximum"]),
            "{schema}"
        );
    }
    let seconds = property(&doc, "InterpreterBody", "timeout");
    assert_eq!(seconds["exclusiveMinimum"], 0);
    assert_eq!(seconds["maximum"].as_u64().unwrap() * 1000, caps.timeout_ms);
}

#[test]
fn whole_numbers_written_with_a_zero_fraction_are_integers() {
    // JSON Schema's `integer` includes 707.0; generated clients and testers send it.
    let limits: LimitOverrides = serde_json::from_value(json!({"timeout_ms": 707.0, "processes": 4.0})).unwrap();
    assert_eq!((limits.timeout_ms, limits.processes), (Some(707), Some(4)));
    for bad in [json!(1.5), json!(-1), json!(-1.0), json!("5"), json!(1e30)] {
        assert!(
            serde_json::from_value::<LimitOverrides>(json!({"memory_mb": bad.clone()})).is_err(),
            "{bad}"
        );
    }
    let body: runbox_server::api::ExecuteBody =
        serde_json::from_value(json!({"code": "1", "timeout_ms": 2000.0})).unwrap();
    assert_eq!(body.timeout_ms, Some(2000));
    let session: runbox_engine::sessions::CreateSession =
        serde_json::from_value(json!({"idle_timeout_s": 60.0})).unwrap();
    assert_eq!(session.idle_timeout_s, Some(60));
}

#[tokio::test]
async fn a_shadowed_limits_timeout_is_still_checked() {
    let app = app();
    for path in ["/execute", "/executions"] {
        app.post(
            path,
            json!({"code": "1", "timeout_ms": 1000, "limits": {"timeout_ms": 0}}),
        )
        .send()
        .await
        .expect_invalid("invalid_field", "limits.timeout_ms");
    }
    assert_eq!(app.state.jobs.count("queued").await, 0);
}

#[tokio::test]
async fn the_interpreter_route_checks_its_own_fields() {
    let app = app();
    let path = "/process/interpreter/execute";
    for timeout in [json!(0), json!(-1), json!(61), json!(1e300)] {
        app.post(path, json!({"code": "1", "timeout": timeout}))
            .send()
            .await
            .expect_invalid("invalid_field", "timeout");
    }
    // Errors name this route's own fields.
    app.post(path, json!({"code": "1", "envs": {"1BAD": "x"}}))
        .send()
        .await
        .expect_invalid("invalid_field", "envs.1BAD");
    // Unknown fields are refused, as on /execute.
    app.post(path, json!({"code": "1", "timeot": 5}))
        .send()
        .await
        .expect_invalid("invalid_field", "timeot");
    let doc = doc();
    assert_eq!(
        doc["components"]["schemas"]["InterpreterBody"]["additionalProperties"],
        false
    );
    assert!(!property(&doc, "InterpreterResponse", "exitCode").is_null());
}

#[tokio::test]
async fn session_cells_have_no_env_and_their_refusals_are_documented() {
    let app = app();
    let doc = doc();
    assert!(
        doc["components"]["schemas"]["SessionExecuteBody"]["properties"]["env"].is_null(),
        "env is not a field of a cell"
    );
    for path in ["/sessions/sess_0123/execute", "/sessions/sess_0123/execute/stream"] {
        // Each reply is checked against the document by `send`: these statuses must be documented.
        app.call("POST", path)
            .raw("application/json", b"{\"code\": ".to_vec())
            .send()
            .await
            .expect_error(400, "malformed_request");
        app.call("POST", path)
            .raw("text/plain", b"print(1)".to_vec())
            .send()
            .await
            .expect_error(415, "unsupported_media_type");
        app.post(path, json!({"code": "1", "env": {"A": "b"}}))
            .send()
            .await
            .expect_invalid("invalid_field", "env");
        app.post(path, json!({"code": "1"}))
            .send()
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn get_ws_without_an_upgrade_is_a_json_error() {
    let app = app();
    let r = app.get("/ws").send().await;
    assert!(
        r.header("content-type").unwrap().starts_with("application/json"),
        "{:?}",
        r.headers
    );
    r.expect_error(400, "websocket_upgrade_required");
}

#[tokio::test]
async fn a_json_array_or_scalar_is_refused_as_a_body() {
    let app = app();
    for path in [
        "/execute",
        "/execute/stream",
        "/executions",
        "/process/interpreter/execute",
        "/sessions",
        "/sessions/sess_0123/execute",
    ] {
        for body in [json!(["python", "print(1)"]), json!("print(1)"), json!(7)] {
            app.post(path, body.clone())
                .send()
                .await
                .expect_invalid("invalid_field", "body");
        }
    }
    // Nor in place of an object inside one.
    for (body, field) in [
        (json!({"code": "1", "limits": [1000]}), "limits"),
        (json!({"code": "1", "files": [["a.py", "print(1)"]]}), "files[0]"),
        (json!({"code": "1", "tests": [["", "1"]]}), "tests[0]"),
    ] {
        for path in ["/execute", "/executions"] {
            app.post(path, body.clone())
                .send()
                .await
                .expect_invalid("invalid_field", field);
        }
    }
    app.post("/sessions", json!({"limits": [null, null]}))
        .send()
        .await
        .expect_invalid("invalid_field", "limits");
    assert_eq!(app.state.jobs.count("queued").await, 0, "nothing was queued");
}

#[tokio::test]
async fn command_is_documented_as_an_alias_of_code() {
    let doc = doc();
    let command = property(&doc, "ExecuteBody", "command");
    assert!(
        command["description"].as_str().unwrap().contains("Alias of `code`"),
        "{command}"
    );
    let app = app();
    app.post("/execute", json!({"code": "print(1)", "command": "print(2)"}))
        .send()
        .await
        .expect_invalid("invalid_field", "command");
}

#[test]
fn optional_bodies_are_not_marked_required() {
    let doc = doc();
    for (path, method) in [("/sessions", "post"), ("/sessions/{id}/files/{path}", "put")] {
        let body = &doc["paths"][path][method]["requestBody"];
        assert_eq!(body["required"], false, "{method} {path}: {body}");
    }
    assert_eq!(doc["paths"]["/execute"]["post"]["requestBody"]["required"], true);
}

#[test]
fn file_uploads_are_documented_as_binary() {
    let doc = doc();
    let content = doc["paths"]["/sessions/{id}/files/{path}"]["put"]["requestBody"]["content"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(content.keys().collect::<Vec<_>>(), ["application/octet-stream"]);
    let mut schema = content["application/octet-stream"]["schema"].clone();
    if let Some(r) = schema["$ref"].as_str() {
        schema = doc.pointer(r.trim_start_matches('#')).unwrap().clone();
    }
    assert_eq!(
        (&schema["type"], &schema["format"]),
        (&json!("string"), &json!("binary")),
        "{schema}"
    );
}

#[test]
fn every_json_request_body_has_an_example_that_fits_its_schema() {
    let doc = doc();
    let check = openapi_check::committed();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(media) = op["requestBody"]["content"].get("application/json") else {
                continue;
            };
            // Swagger UI pre-fills this example; without one it would make one up from the schema ("string").
            let example = media
                .get("example")
                .unwrap_or_else(|| panic!("{method} {path} has no example body"));
            check
                .validate(&media["schema"], example)
                .unwrap_or_else(|e| panic!("{method} {path}: the example does not fit the schema: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 6, "{seen} bodies");
}

#[test]
fn the_licence_has_an_spdx_identifier() {
    assert_eq!(doc()["info"]["license"]["identifier"], "Apache-2.0");
}

#[tokio::test]
async fn the_docs_page_contacts_no_validator() {
    let app = app();
    let text = app.get("/docs/swagger-initializer.js").send().await.text();
    let compact: String = text.split_whitespace().collect();
    assert!(compact.contains("\"validatorUrl\":\"none\""), "{text}");
}
