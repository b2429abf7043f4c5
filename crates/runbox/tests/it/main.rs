//! The integration tests of the `runbox` crate, in one test binary (linked once, not once per file): a module per
//! area, each opening with a comment on what belongs there, and in it a file per behaviour, named for what it
//! proves. Run one area, file or test with a filter: `cargo test -p runbox --test it sessions::`,
//! `... --test it session_lifecycle::`, `... --test it go::memory_bomb`.
//!
//! Tests of every area run in one process, at the same time: a test may not assume that no other test's sandboxes,
//! processes or servers exist. It finds its own by a mark of its own (a unique marker in a command line or an
//! environment variable, the pids it recorded), never by counting everything on the host or under this process.
//!
//! Adding a behaviour file: put it in the area's folder (`git mv` an existing `tests/<file>.rs` there), add
//! `mod <file>;` to the area's `mod.rs`, and turn its `mod common;` / `mod live_server;` / `mod session_support;`
//! into `use crate::common;` (and so on); what is not specific to this crate comes from `runbox_testkit`. A new area
//! is a folder with a `mod.rs` saying what belongs there, named below.

mod common;
mod live_server;
mod session_support;

mod api;
mod cluster;
mod hostile;
mod languages;
mod pools;
mod sandbox;
mod server;
mod sessions;
