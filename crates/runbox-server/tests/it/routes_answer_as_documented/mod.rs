//! Every route answers as `openapi.json` documents, and every refusal is a JSON `{code, message}` with the right
//! status. These requests never reach a sandbox (the jail cannot even start); runs are tested in
//! `crates/runbox/tests/it/api/api_runs_code_in_sandboxes.rs` and `server/server_binary_end_to_end.rs`.
//!
//! One module per area: `access` (keys, Host guard, request ids), `info` (info and documentation routes),
//! `refusals` (400, 404, 405, 413, 415, 422), `admission` (429 and 503), `executions` (async ownership), `mcp` and
//! `cluster`.

mod access;
mod admission;
mod cluster;
mod executions;
mod info;
mod mcp;
mod refusals;

use runbox_testkit::app as common;

use common::*;
use serde_json::{json, Value};

fn app() -> TestApp {
    TestApp::new(no_jail(), |_| {})
}

fn app_with_keys() -> TestApp {
    TestApp::new(no_jail(), two_keys)
}
