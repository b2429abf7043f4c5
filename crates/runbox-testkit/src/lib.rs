//! What the integration tests of the workspace share, written once: awaiting with a deadline ([`wait`]), Server-Sent
//! Events ([`sse`]), scans of the host's `/proc` ([`procs`]), the check of a response against the committed
//! `openapi.json` ([`openapi`]), the API in process without a socket ([`app`]) and the real `runbox serve` binary
//! over HTTP and WebSocket ([`live`]).
//!
//! A dev-dependency of `runbox-server` and `runbox`, never of a shipped crate. It cannot know the path of the
//! `runbox` binary (`CARGO_BIN_EXE_runbox` exists only while an integration test of that crate is compiled), so what
//! starts the binary takes its path.

pub mod app;
pub mod live;
pub mod openapi;
pub mod procs;
pub mod sse;
pub mod wait;
