//! Prints the catalogue as `GET /languages` will: every language with its
//! discovered availability, as JSON. Takes the override directory from
//! `RUNBOX_LANGUAGES_DIR`, like the CLI.
//!
//! `cargo run -p runbox-lang --example languages`

use std::path::PathBuf;
use std::process::ExitCode;

use runbox_lang::{discovery, Catalogue, LANGUAGES_DIR_ENV};

fn main() -> ExitCode {
    let overrides = std::env::var_os(LANGUAGES_DIR_ENV).map(PathBuf::from);
    let catalogue = match Catalogue::load(overrides.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let entries = discovery::catalogue_entries(&catalogue);
    println!("{}", serde_json::to_string_pretty(&entries).expect("serialisable"));
    ExitCode::SUCCESS
}
