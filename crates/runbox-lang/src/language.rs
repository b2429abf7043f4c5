//! One validated language: the rules a language file must follow, and the
//! accessors the engine, the sandbox and discovery use.
//!
//! Exists so that everything past `Language::parse` can trust the data: argv
//! templates are well-formed, binaries are absolute paths, limits are non-zero,
//! the version pattern compiles. Rules that involve several languages
//! (duplicate ids, aliases, extensions) are checked in `catalogue.rs`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

use crate::error::LangError;
use crate::programs::{build_pool, build_session, check_magic, Pool, SessionWorker};
use crate::spec::{self, StageFile};
use crate::template::{self, Arg, Placeholder, Plan};
use crate::WORKSPACE_DIR;

/// Per-stage resource defaults; `None` leaves the engine's own default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Memory limit in MiB.
    pub memory_mb: Option<u64>,
    /// Limit on processes plus threads.
    pub processes: Option<u64>,
}

/// A compile or run stage.
#[derive(Debug, Clone)]
pub struct Stage {
    argv: Vec<String>,
    template: Vec<Arg>,
    limits: Limits,
}

impl Stage {
    /// The argv template as written in the file, placeholders unexpanded.
    pub fn argv_template(&self) -> &[String] {
        &self.argv
    }

    /// The program: `argv[0]`, always an absolute path.
    pub fn program(&self) -> &Path {
        Path::new(&self.argv[0])
    }

    /// Resource defaults for this stage.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// How to ask the host's runtime for its version.
#[derive(Debug, Clone)]
pub struct VersionProbe {
    argv: Vec<String>,
    pattern: Regex,
}

impl VersionProbe {
    /// The command; `argv[0]` is an absolute path.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The pattern; capture group 1 is the version.
    pub fn pattern(&self) -> &Regex {
        &self.pattern
    }

    /// Finds the version in a command's output.
    pub fn extract(&self, output: &str) -> Option<String> {
        let caps = self.pattern.captures(output)?;
        caps.get(1)
            .map(|m| m.as_str().trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// A language of the catalogue.
#[derive(Debug, Clone)]
pub struct Language {
    id: String,
    name: String,
    aliases: Vec<String>,
    extensions: Vec<String>,
    source_file: String,
    sessions: bool,
    compile: Option<Stage>,
    run: Stage,
    env: BTreeMap<String, String>,
    sandbox_paths: Vec<PathBuf>,
    version: VersionProbe,
    session: Option<SessionWorker>,
    pool: Pool,
    magics: Vec<String>,
    origin: PathBuf,
}

impl Language {
    /// Parses and validates one language file. `origin` is only used in
    /// error messages and kept as [`Language::origin`].
    pub fn parse(origin: &Path, text: &str) -> Result<Language, LangError> {
        let raw = spec::parse(origin, text)?;
        let bad = |field: &str, message: String| LangError::invalid(origin, field, message);

        check_name("id", &raw.id).map_err(|m| bad("id", m))?;
        if raw.name.trim().is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        for (i, alias) in raw.aliases.iter().enumerate() {
            let field = format!("aliases[{i}]");
            check_name("alias", alias).map_err(|m| bad(&field, m))?;
            if *alias == raw.id {
                return Err(bad(&field, format!("alias {alias:?} repeats the id")));
            }
            if raw.aliases[..i].contains(alias) {
                return Err(bad(&field, format!("alias {alias:?} is listed twice")));
            }
        }
        if raw.extensions.is_empty() {
            return Err(bad("extensions", "must list at least one extension".into()));
        }
        for (i, ext) in raw.extensions.iter().enumerate() {
            let field = format!("extensions[{i}]");
            check_extension(ext).map_err(|m| bad(&field, m))?;
            if raw.extensions[..i].contains(ext) {
                return Err(bad(&field, format!("extension {ext:?} is listed twice")));
            }
        }
        check_source_file(&raw.source_file, &raw.extensions).map_err(|m| bad("source_file", m))?;

        let compile = raw
            .compile
            .map(|stage| build_stage(origin, "compile", stage))
            .transpose()?;
        let run = build_stage(origin, "run", raw.run)?;

        for (key, value) in &raw.env {
            let field = format!("env.{key}");
            check_env_name(key).map_err(|m| bad(&field, m))?;
            if value.contains('\0') {
                return Err(bad(&field, "value must not contain a NUL byte".into()));
            }
        }

        let mut sandbox_paths = Vec::with_capacity(raw.sandbox.paths.len());
        for (i, path) in raw.sandbox.paths.iter().enumerate() {
            let field = format!("sandbox.paths[{i}]");
            check_sandbox_path(path).map_err(|m| bad(&field, m))?;
            sandbox_paths.push(PathBuf::from(path));
        }

        let version = build_version(origin, raw.version)?;

        let session = raw.session.map(|s| build_session(origin, s)).transpose()?;
        if raw.sessions && session.is_none() {
            return Err(bad(
                "sessions",
                "sessions = true needs a [session] table naming the worker (see languages/README.md)".into(),
            ));
        }
        let pool = match raw.pool {
            Some(p) => build_pool(origin, p, &raw.extensions)?,
            None => Pool::exec(),
        };
        for (i, magic) in raw.magics.iter().enumerate() {
            check_magic(magic).map_err(|m| bad(&format!("magics[{i}]"), m))?;
            if raw.magics[..i].contains(magic) {
                return Err(bad(&format!("magics[{i}]"), format!("magic {magic:?} is listed twice")));
            }
        }

        Ok(Language {
            id: raw.id,
            name: raw.name,
            aliases: raw.aliases,
            extensions: raw.extensions,
            source_file: raw.source_file,
            sessions: session.is_some(),
            compile,
            run,
            env: raw.env,
            sandbox_paths,
            version,
            session,
            pool,
            magics: raw.magics,
            origin: origin.to_path_buf(),
        })
    }

    /// How sessions of this language run (`[session]`), when it has them.
    pub fn session(&self) -> Option<&SessionWorker> {
        self.session.as_ref()
    }

    /// How warm sandboxes of this language wait (`[pool]`, or the default shell).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Notebook cell magics (`bash` for `%%bash`) that select this language.
    pub fn magics(&self) -> &[String] {
        &self.magics
    }

    /// Unique lowercase id (`python`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Human-readable name (`Python 3`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Other names accepted by [`crate::Catalogue::get`] (`py`, `python3`).
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// File extensions, lowercase and without the dot (`py`).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// File name to use when the user sends bare code (`main.py`).
    pub fn source_file(&self) -> &str {
        &self.source_file
    }

    /// Whether stateful sessions are supported.
    pub fn sessions(&self) -> bool {
        self.sessions
    }

    /// Whether the language has a compile stage.
    pub fn is_compiled(&self) -> bool {
        self.compile.is_some()
    }

    /// The compile stage, if any.
    pub fn compile(&self) -> Option<&Stage> {
        self.compile.as_ref()
    }

    /// The run stage.
    pub fn run(&self) -> &Stage {
        &self.run
    }

    /// Extra environment for both stages.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Extra host paths to bind read-only into the sandbox (may be missing on a host).
    pub fn sandbox_paths(&self) -> &[PathBuf] {
        &self.sandbox_paths
    }

    /// How to find the installed version.
    pub fn version_probe(&self) -> &VersionProbe {
        &self.version
    }

    /// The file the language was loaded from (`languages/python.toml` for an
    /// embedded one, the full path for an override).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The files `{sources}` stands for in this plan.
    pub fn sources(&self, plan: &Plan) -> Vec<String> {
        template::sources(plan, &self.extensions)
    }

    /// The compile command for `plan`, or `None` for an interpreted language.
    pub fn compile_argv(&self, plan: &Plan) -> Option<Vec<String>> {
        self.compile
            .as_ref()
            .map(|stage| template::expand(&stage.template, plan, &self.extensions))
    }

    /// The run command for `plan`.
    pub fn run_argv(&self, plan: &Plan) -> Vec<String> {
        template::expand(&self.run.template, plan, &self.extensions)
    }

    /// The host binaries this language needs: the programs of its stages and
    /// of its version probe, without duplicates, leaving out programs under
    /// `/workspace` (a compiled artefact, not a host binary).
    pub fn host_binaries(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        let candidates = self
            .compile
            .iter()
            .map(Stage::program)
            .chain([self.run.program(), Path::new(&self.version.argv[0])]);
        for program in candidates {
            if !program.starts_with(WORKSPACE_DIR) && !out.contains(&program) {
                out.push(program);
            }
        }
        out
    }
}

fn build_stage(origin: &Path, stage: &str, raw: StageFile) -> Result<Stage, LangError> {
    let bad = |field: String, message: String| LangError::invalid(origin, field, message);
    if raw.argv.is_empty() {
        return Err(bad(format!("{stage}.argv"), "must not be empty".into()));
    }
    let mut template = Vec::with_capacity(raw.argv.len());
    for (i, element) in raw.argv.iter().enumerate() {
        let field = format!("{stage}.argv[{i}]");
        let arg = template::parse_arg(element).map_err(|m| bad(field.clone(), m))?;
        if i == 0 {
            match &arg {
                Arg::Placeholder(p) => {
                    return Err(bad(field, format!("the program must be an absolute path, not {p}")));
                }
                Arg::Literal(program) => check_absolute(program).map_err(|m| bad(field.clone(), m))?,
            }
        }
        if arg == Arg::Placeholder(Placeholder::Args) {
            if stage != "run" {
                return Err(bad(
                    field,
                    format!("{{args}} is only allowed in run.argv, not {stage}.argv"),
                ));
            }
            if i + 1 != raw.argv.len() {
                return Err(bad(field, "{args} must be the last element".into()));
            }
        }
        template.push(arg);
    }
    let limits = Limits {
        timeout_ms: positive(origin, stage, "timeout_ms", raw.timeout_ms)?,
        memory_mb: positive(origin, stage, "memory_mb", raw.memory_mb)?,
        processes: positive(origin, stage, "processes", raw.processes)?,
    };
    Ok(Stage {
        argv: raw.argv,
        template,
        limits,
    })
}

fn positive(origin: &Path, stage: &str, key: &str, value: Option<u64>) -> Result<Option<u64>, LangError> {
    if value == Some(0) {
        return Err(LangError::invalid(
            origin,
            format!("{stage}.{key}"),
            "must be greater than 0",
        ));
    }
    Ok(value)
}

fn build_version(origin: &Path, raw: spec::VersionFile) -> Result<VersionProbe, LangError> {
    let bad = |field: String, message: String| LangError::invalid(origin, field, message);
    if raw.argv.is_empty() {
        return Err(bad("version.argv".into(), "must not be empty".into()));
    }
    for (i, element) in raw.argv.iter().enumerate() {
        let field = format!("version.argv[{i}]");
        match template::parse_arg(element).map_err(|m| bad(field.clone(), m))? {
            Arg::Placeholder(p) => return Err(bad(field, format!("placeholders are not allowed here ({p})"))),
            Arg::Literal(program) if i == 0 => check_absolute(&program).map_err(|m| bad(field, m))?,
            Arg::Literal(_) => {}
        }
    }
    let pattern = Regex::new(&raw.pattern)
        .map_err(|e| bad("version.pattern".into(), format!("invalid regular expression: {e}")))?;
    if pattern.captures_len() < 2 {
        return Err(bad(
            "version.pattern".into(),
            "needs a capture group: group 1 is the version".into(),
        ));
    }
    Ok(VersionProbe {
        argv: raw.argv,
        pattern,
    })
}

/// Ids and aliases: lowercase ASCII letters and digits, plus `+ - _ . #`,
/// starting with a letter or digit (`c++`, `lua5.4`).
fn check_name(what: &str, value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return Err("must not be empty".into());
    };
    let ok = (first.is_ascii_lowercase() || first.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-_.#".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} must be lowercase ASCII letters, digits and + - _ . #, starting with a letter or digit"
        ))
    }
}

fn check_extension(ext: &str) -> Result<(), String> {
    if ext.is_empty() {
        return Err("must not be empty".into());
    }
    if ext.starts_with('.') {
        return Err(format!("write {:?} without the leading dot", ext));
    }
    if !ext
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-_".contains(c))
    {
        return Err(format!(
            "extension {ext:?} must be lowercase ASCII letters, digits and + - _"
        ));
    }
    Ok(())
}

fn check_source_file(name: &str, extensions: &[String]) -> Result<(), String> {
    check_relative(name)?;
    match template::extension(name.rsplit('/').next().unwrap_or(name)) {
        Some(ext) if extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)) => Ok(()),
        _ => Err(format!(
            "{name:?} must end with one of the language's extensions ({})",
            extensions.join(", ")
        )),
    }
}

/// A clean relative path: not empty, no leading `/`, no `.`/`..`/empty components.
fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} must be relative to /workspace"));
    }
    if path.contains('\0') || path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!(
            "{path:?} must be a plain relative path (no empty, . or .. components)"
        ));
    }
    Ok(())
}

/// An absolute, normalised path (no `.`/`..` components).
pub(crate) fn check_absolute(path: &str) -> Result<(), String> {
    if path.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} must be an absolute path (the sandbox does not search PATH)"
        ));
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err(format!("{path:?} must not contain . or .. components"));
    }
    Ok(())
}

/// Host paths the sandbox may bind: absolute, and not one of the places the
/// sandbox builds itself (binding `/` or over `/workspace` would defeat it).
fn check_sandbox_path(path: &str) -> Result<(), String> {
    check_absolute(path)?;
    let p = Path::new(path);
    if p == Path::new("/") {
        return Err("binding / would expose the whole host".into());
    }
    for reserved in ["/workspace", "/tmp", "/proc", "/dev", "/sys"] {
        if p.starts_with(reserved) {
            return Err(format!(
                "{path:?} is under {reserved}, which the sandbox provides itself"
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_env_name(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a valid variable name (letters, digits, _; not starting with a digit)"
        ))
    }
}
