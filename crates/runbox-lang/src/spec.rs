//! The on-disk shape of a language file, exactly as TOML gives it.
//!
//! Exists to keep parsing (serde, `deny_unknown_fields`, field paths in error
//! messages) apart from the rules checked afterwards in `language.rs`: these
//! structs accept anything well-typed, `Language::parse` decides what is valid.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::LangError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LanguageFile {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    pub(crate) extensions: Vec<String>,
    pub(crate) source_file: String,
    #[serde(default)]
    pub(crate) sessions: bool,
    pub(crate) compile: Option<StageFile>,
    pub(crate) run: StageFile,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) sandbox: SandboxFile,
    pub(crate) version: VersionFile,
    pub(crate) session: Option<SessionFile>,
    pub(crate) pool: Option<PoolFile>,
    /// Notebook cell magics (`%%bash`) that select this language.
    #[serde(default)]
    pub(crate) magics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionFile {
    pub(crate) worker: String,
    pub(crate) argv: Vec<String>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    pub(crate) prelude: String,
    pub(crate) argv: Vec<String>,
    pub(crate) in_process: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) cold_extensions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageFile {
    pub(crate) argv: Vec<String>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) memory_mb: Option<u64>,
    pub(crate) processes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SandboxFile {
    #[serde(default)]
    pub(crate) paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionFile {
    pub(crate) argv: Vec<String>,
    pub(crate) pattern: String,
}

/// Parses `text` as a language file; errors name `file`, the field path and the line.
pub(crate) fn parse(file: &Path, text: &str) -> Result<LanguageFile, LangError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner
            .message()
            .trim()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ");
        let line = inner.span().map(|span| line_of(text, span.start));
        let mut field = (path != "." && !path.is_empty()).then_some(path);
        // Make sure an unknown field is named itself, not only its table.
        if let Some(unknown) = unknown_field_name(&message) {
            field = Some(match field {
                Some(path) if path == unknown || path.ends_with(&format!(".{unknown}")) => path,
                Some(table) => format!("{table}.{unknown}"),
                None => unknown.to_string(),
            });
        }
        LangError::Parse {
            file: file.to_path_buf(),
            field,
            line,
            message,
        }
    })
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}
