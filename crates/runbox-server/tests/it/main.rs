//! The integration tests of `runbox-server`: one test binary, a module per area, every one driving the API in
//! process through the one test client of the workspace (`runbox_testkit::app`). Nothing here reaches a sandbox
//! (the jail cannot start); runs are tested in `crates/runbox/tests/it`.
//!
//! Run one area with `cargo test -p runbox-server --test it <module>::`; regenerate the committed `openapi.json`
//! with `RUNBOX_UPDATE_OPENAPI=1 cargo test -p runbox-server --test it openapi_matches_the_code`.

mod cors_is_off_unless_configured;
mod incumbent_apis_answer_in_their_own_shapes;
mod openapi_agrees_with_behaviour;
mod openapi_matches_the_code;
mod routes_answer_as_documented;
