//! Tests of the crate as a whole: the shipped language files, validation
//! messages, overrides, lookups, per-language expansion and discovery.
//!
//! Lives apart from the modules because most cases go through the public
//! entry points (`Language::parse`, `Catalogue::load`) the way a caller would.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::discovery::{self, Availability, CatalogueEntry};
use crate::embedded::EMBEDDED;
use crate::{Catalogue, LangError, Language, Plan};

pub(super) const EXPECTED_IDS: [&str; 15] = [
    "bash",
    "c",
    "cpp",
    "go",
    "java",
    "javascript",
    "lua",
    "perl",
    "php",
    "python",
    "r",
    "ruby",
    "rust",
    "sql",
    "typescript",
];

pub(super) const BASE: &str = r#"
id = "demo"
name = "Demo"
aliases = ["dm"]
extensions = ["dm"]
source_file = "main.dm"
sessions = false

[compile]
argv = ["/usr/bin/democ", "-o", "/workspace/.runbox/main", "{sources}"]
timeout_ms = 1000

[run]
argv = ["/workspace/.runbox/main", "{args}"]

[env]
HOME = "/workspace"

[sandbox]
paths = ["/opt/demo"]

[version]
argv = ["/usr/bin/democ", "--version"]
pattern = "demo ([0-9.]+)"
"#;

pub(super) fn parse(text: &str) -> Result<Language, LangError> {
    Language::parse(Path::new("languages/demo.toml"), text)
}

pub(super) fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

pub(super) fn catalogue() -> Catalogue {
    Catalogue::load(None).expect("embedded catalogue loads")
}

pub(super) fn plan_for(lang: &Language) -> Plan {
    Plan {
        entry: lang.source_file().to_string(),
        files: vec![lang.source_file().to_string()],
        args: vec!["a".into(), "b c".into()],
    }
}

mod catalogue;
mod embedded;
mod expansion;
mod runtimes;
mod validation;
