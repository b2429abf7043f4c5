//! The HTTP API in process (the router called without a socket) running code in real sandboxes: the native routes
//! and the drop-in Judge0 and Piston routes. Every response is checked against `openapi.json`.

mod api_runs_code_in_sandboxes;
mod incumbent_apis_run_code;
