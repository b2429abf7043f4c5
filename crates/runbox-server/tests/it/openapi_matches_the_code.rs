//! The committed `openapi.json` (repository root) is exactly what the code generates, and every route the router
//! serves is documented (and every documented route is served). Regenerate with
//! `RUNBOX_UPDATE_OPENAPI=1 cargo test -p runbox-server --test it openapi_matches_the_code`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use runbox_server::openapi::document;
use runbox_server::router::ROUTES;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json")
}

#[test]
fn committed_openapi_json_has_not_drifted() {
    let generated = document().to_pretty_json().unwrap() + "\n";
    let path = committed_path();
    if std::env::var_os("RUNBOX_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("openapi.json is committed at the repository root");
    assert!(
        committed == generated,
        "openapi.json differs from the code; regenerate it with RUNBOX_UPDATE_OPENAPI=1 cargo test -p runbox-server \
         --test it openapi_matches_the_code"
    );
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = serde_json::to_value(document()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(served, documented);
}

#[test]
fn operation_ids_are_unique_short_and_camel_case() {
    let doc = serde_json::to_value(document()).unwrap();
    let mut seen = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("every operation has an operationId");
            assert!(seen.insert(id.to_string()), "duplicate operationId {id}");
            assert!(
                id.len() <= 24 && id.chars().next().unwrap().is_ascii_lowercase(),
                "{id}"
            );
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
    }
}
