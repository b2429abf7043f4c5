//! runbox's language catalogue.
//!
//! A language is data, not code: each one is a TOML file (see
//! `languages/README.md` at the top of the repository) saying how to compile
//! and run a program, which host paths and environment it needs in the sandbox
//! and how to ask the installed runtime for its version. This crate
//!
//! - embeds the default files (`languages/*.toml`) at compile time,
//! - lets an operator replace or add languages with a directory of TOML files
//!   (the CLI and server take it from [`LANGUAGES_DIR_ENV`]),
//! - validates everything at load time, with errors naming the file and field,
//! - expands argv templates for one submission ([`Language::compile_argv`],
//!   [`Language::run_argv`]), and
//! - finds out which runtimes this host has ([`discovery`]).

#![forbid(unsafe_code)]

mod catalogue;
pub mod discovery;
mod embedded;
mod error;
mod language;
mod programs;
mod spec;
mod template;
pub mod workers;

pub use catalogue::Catalogue;
pub use discovery::{Availability, CatalogueEntry};
pub use error::LangError;
pub use language::{Language, Limits, Stage, VersionProbe};
pub use programs::{Pool, SessionWorker};
pub use template::{Placeholder, Plan};

/// The environment variable the CLI and server read for the operator's
/// override directory, which they pass to [`Catalogue::load`].
pub const LANGUAGES_DIR_ENV: &str = "RUNBOX_LANGUAGES_DIR";

/// The sandbox's working directory, where the user's files are.
pub const WORKSPACE_DIR: &str = "/workspace";

/// Where compile stages put their artefacts; the engine creates it.
pub const ARTEFACT_DIR: &str = "/workspace/.runbox";

#[cfg(test)]
mod tests;
