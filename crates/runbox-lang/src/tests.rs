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

const EXPECTED_IDS: [&str; 15] = [
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

const BASE: &str = r#"
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

fn parse(text: &str) -> Result<Language, LangError> {
    Language::parse(Path::new("languages/demo.toml"), text)
}

fn edited(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

fn catalogue() -> Catalogue {
    Catalogue::load(None).expect("embedded catalogue loads")
}

fn plan_for(lang: &Language) -> Plan {
    Plan {
        entry: lang.source_file().to_string(),
        files: vec![lang.source_file().to_string()],
        args: vec!["a".into(), "b c".into()],
    }
}

// ---- embedded files -------------------------------------------------------

#[test]
fn every_embedded_file_loads_and_ids_are_the_fifteen() {
    for file in EMBEDDED {
        let lang = Language::parse(Path::new(file.path), file.text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.path,
            format!("languages/{}.toml", lang.id()),
            "file name should match the id"
        );
    }
    let cat = catalogue();
    let ids: Vec<&str> = cat.iter().map(Language::id).collect();
    assert_eq!(ids, EXPECTED_IDS);
}

#[test]
fn embedded_list_matches_the_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
    let mut on_disk: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("languages/{n}"))
        .collect();
    on_disk.sort();
    let embedded: Vec<&str> = EMBEDDED.iter().map(|f| f.path).collect();
    assert_eq!(embedded, on_disk);
}

#[test]
fn embedded_workers_match_the_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workers");
    let mut on_disk: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    on_disk.sort();
    let embedded: Vec<&str> = crate::workers::names().collect();
    assert_eq!(embedded, on_disk);
    assert!(crate::workers::source(crate::workers::ZYGOTE).is_some());
}

#[test]
fn sessions_pools_and_magics_come_from_the_language_files() {
    let cat = catalogue();
    let python = cat.get("python").unwrap();
    let session = python.session().unwrap();
    assert_eq!(
        (session.worker(), session.argv()),
        (
            "python_worker.py",
            &["/usr/bin/python3".to_string(), "-u".to_string()][..]
        )
    );
    assert!(session.source().contains("ready"));
    assert_eq!(python.pool().prelude(), "python_pooled.py");
    assert_eq!(
        python.pool().argv().last().map(String::as_str),
        Some(python.pool().source())
    );
    assert!(python.pool().in_process().is_some());
    let js = cat.get("javascript").unwrap();
    assert!(js.pool().runs_cold(Path::new("main.mjs")) && !js.pool().runs_cold(Path::new("main.js")));
    assert!(js.pool().in_process().is_none());
    let ts = cat.get("typescript").unwrap().session().unwrap();
    assert_eq!(ts.env().get("RUNBOX_TYPESCRIPT").map(String::as_str), Some("1"));
    // Without a [pool], a warm sandbox waits in the shell that execs the run command.
    let c = cat.get("c").unwrap();
    assert_eq!(c.pool().prelude(), "exec_pooled.sh");
    assert_eq!(c.pool().argv()[..2], ["/bin/bash", "-c"]);
    for (magic, id) in [
        ("bash", "bash"),
        ("sh", "bash"),
        ("script bash", "bash"),
        ("js", "javascript"),
        ("node", "javascript"),
        ("python3", "python"),
        ("ts", "typescript"),
    ] {
        assert_eq!(cat.by_magic(magic).map(Language::id), Some(id), "%%{magic}");
    }
    assert!(cat.by_magic("fortran").is_none());
}

#[test]
fn a_magic_selects_one_language_only() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("demo.toml"),
        edited("sessions = false", "magics = [\"sh\"]"),
    )
    .unwrap();
    let err = Catalogue::load(Some(dir.path())).unwrap_err().to_string();
    assert!(
        err.contains("magics[0]") && err.contains("already selects bash"),
        "{err}"
    );
}

#[test]
fn sessions_and_compiled_flags() {
    let cat = catalogue();
    let with_sessions: Vec<&str> = cat.iter().filter(|l| l.sessions()).map(Language::id).collect();
    assert_eq!(
        with_sessions,
        ["bash", "javascript", "python", "r", "ruby", "typescript"]
    );
    let compiled: Vec<&str> = cat.iter().filter(|l| l.is_compiled()).map(Language::id).collect();
    assert_eq!(compiled, ["c", "cpp", "go", "java", "rust", "typescript"]);
}

// ---- validation -----------------------------------------------------------

#[test]
fn base_fixture_is_valid() {
    let lang = parse(BASE).unwrap();
    assert_eq!(lang.id(), "demo");
    assert_eq!(lang.compile().unwrap().limits().timeout_ms, Some(1000));
    assert_eq!(lang.run().limits().memory_mb, None);
    assert_eq!(lang.sandbox_paths(), [Path::new("/opt/demo")]);
    assert_eq!(lang.host_binaries(), [Path::new("/usr/bin/democ")]);
}

/// (edit from, edit to, field the error must name, text the message must contain)
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "sessions = false",
        "sessions = false\ncolour = \"red\"",
        "colour",
        "unknown field",
    ),
    (
        "timeout_ms = 1000",
        "timeout_ms = 1000\ntimout = 5",
        "compile.timout",
        "unknown field",
    ),
    (
        "[sandbox]\npaths",
        "[sandbox]\nextra = 1\npaths",
        "sandbox.extra",
        "unknown field",
    ),
    (
        "timeout_ms = 1000",
        "timeout_ms = \"1s\"",
        "compile.timeout_ms",
        "invalid type",
    ),
    (
        "timeout_ms = 1000",
        "timeout_ms = -1",
        "compile.timeout_ms",
        "invalid value",
    ),
    ("id = \"demo\"", "id = \"\"", "id", "must not be empty"),
    ("id = \"demo\"", "id = \"Demo\"", "id", "lowercase"),
    ("name = \"Demo\"", "name = \" \"", "name", "must not be empty"),
    (
        "aliases = [\"dm\"]",
        "aliases = [\"dm\", \"dm\"]",
        "aliases[1]",
        "twice",
    ),
    (
        "aliases = [\"dm\"]",
        "aliases = [\"demo\"]",
        "aliases[0]",
        "repeats the id",
    ),
    ("aliases = [\"dm\"]", "aliases = [\"d m\"]", "aliases[0]", "lowercase"),
    ("extensions = [\"dm\"]", "extensions = []", "extensions", "at least one"),
    (
        "extensions = [\"dm\"]",
        "extensions = [\".dm\"]",
        "extensions[0]",
        "leading dot",
    ),
    (
        "extensions = [\"dm\"]",
        "extensions = [\"dm\", \"dm\"]",
        "extensions[1]",
        "twice",
    ),
    (
        "source_file = \"main.dm\"",
        "source_file = \"main.txt\"",
        "source_file",
        "extensions",
    ),
    (
        "source_file = \"main.dm\"",
        "source_file = \"/main.dm\"",
        "source_file",
        "relative",
    ),
    (
        "source_file = \"main.dm\"",
        "source_file = \"../main.dm\"",
        "source_file",
        "plain relative path",
    ),
    (
        "[run]\nargv = [\"/workspace/.runbox/main\", \"{args}\"]",
        "[run]\nargv = []",
        "run.argv",
        "must not be empty",
    ),
    (
        "argv = [\"/usr/bin/democ\", \"-o\"",
        "argv = [\"democ\", \"-o\"",
        "compile.argv[0]",
        "absolute path",
    ),
    (
        "argv = [\"/usr/bin/democ\", \"-o\"",
        "argv = [\"/usr/bin/../democ\", \"-o\"",
        "compile.argv[0]",
        "..",
    ),
    (
        "\"{sources}\"",
        "\"{foo}\"",
        "compile.argv[3]",
        "unknown placeholder {foo}",
    ),
    (
        "\"{sources}\"",
        "\"--in={sources}\"",
        "compile.argv[3]",
        "whole argv element",
    ),
    (
        "\"{sources}\"",
        "\"{args}\"",
        "compile.argv[3]",
        "only allowed in run.argv",
    ),
    (
        "\"/workspace/.runbox/main\", \"{args}\"]",
        "\"/workspace/.runbox/main\", \"{args}\", \"-x\"]",
        "run.argv[1]",
        "last",
    ),
    (
        "\"/workspace/.runbox/main\", \"{args}\"]",
        "\"{source}\"]",
        "run.argv[0]",
        "absolute path",
    ),
    (
        "timeout_ms = 1000",
        "timeout_ms = 0",
        "compile.timeout_ms",
        "greater than 0",
    ),
    (
        "[run]\nargv = [\"/workspace/.runbox/main\", \"{args}\"]",
        "[run]\nargv = [\"/workspace/.runbox/main\"]\nmemory_mb = 0",
        "run.memory_mb",
        "greater than 0",
    ),
    (
        "[run]\nargv = [\"/workspace/.runbox/main\", \"{args}\"]",
        "[run]\nargv = [\"/workspace/.runbox/main\"]\nprocesses = 0",
        "run.processes",
        "greater than 0",
    ),
    (
        "HOME = \"/workspace\"",
        "\"1BAD\" = \"x\"",
        "env.1BAD",
        "not a valid variable name",
    ),
    (
        "paths = [\"/opt/demo\"]",
        "paths = [\"opt/demo\"]",
        "sandbox.paths[0]",
        "absolute",
    ),
    (
        "paths = [\"/opt/demo\"]",
        "paths = [\"/opt/demo\", \"/\"]",
        "sandbox.paths[1]",
        "whole host",
    ),
    (
        "paths = [\"/opt/demo\"]",
        "paths = [\"/workspace/x\"]",
        "sandbox.paths[0]",
        "sandbox provides itself",
    ),
    (
        "argv = [\"/usr/bin/democ\", \"--version\"]",
        "argv = []",
        "version.argv",
        "must not be empty",
    ),
    (
        "argv = [\"/usr/bin/democ\", \"--version\"]",
        "argv = [\"democ\", \"--version\"]",
        "version.argv[0]",
        "absolute",
    ),
    (
        "argv = [\"/usr/bin/democ\", \"--version\"]",
        "argv = [\"/usr/bin/democ\", \"{source}\"]",
        "version.argv[1]",
        "not allowed",
    ),
    (
        "pattern = \"demo ([0-9.]+)\"",
        "pattern = \"demo ([0-9.]+\"",
        "version.pattern",
        "invalid regular expression",
    ),
    (
        "pattern = \"demo ([0-9.]+)\"",
        "pattern = \"demo [0-9.]+\"",
        "version.pattern",
        "capture group",
    ),
    (
        "sessions = false",
        "sessions = true",
        "sessions",
        "needs a [session] table",
    ),
    (
        "sessions = false",
        "[session]\nworker = \"demo_worker.dm\"\nargv = [\"/usr/bin/demo\"]",
        "session.worker",
        "not one of the worker programs",
    ),
    (
        "sessions = false",
        "[session]\nworker = \"python_worker.py\"\nargv = [\"demo\"]",
        "session.argv[0]",
        "absolute",
    ),
    (
        "sessions = false",
        "[pool]\nprelude = \"exec_pooled.sh\"\nargv = [\"/bin/bash\", \"-c\"]",
        "pool.argv",
        "{prelude} exactly once",
    ),
    (
        "sessions = false",
        "[pool]\nprelude = \"exec_pooled.sh\"\nargv = [\"/bin/bash\", \"-c\", \"{prelude}\"]\ncold_extensions = [\"mjs\"]",
        "pool.cold_extensions[0]",
        "not one of the language's extensions",
    ),
    (
        "sessions = false",
        "magics = [\"Demo\"]",
        "magics[0]",
        "lowercase",
    ),
];

#[test]
fn each_invalid_case_names_file_and_field() {
    for &(from, to, field, needle) in INVALID {
        let text = edited(from, to);
        let err = match parse(&text) {
            Ok(_) => panic!("accepted invalid file (expected error at {field}):\n{text}"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.file(), Path::new("languages/demo.toml"), "{shown}");
        assert_eq!(err.field(), Some(field), "wrong field in: {shown}");
        assert!(
            shown.starts_with(&format!("languages/demo.toml: {field}: ")),
            "bad format: {shown}"
        );
        assert!(shown.contains(needle), "{shown:?} should contain {needle:?}");
    }
}

#[test]
fn missing_required_field_and_bad_toml_are_reported() {
    let err = parse(&edited("[run]\nargv = [\"/workspace/.runbox/main\", \"{args}\"]\n", "")).unwrap_err();
    assert!(matches!(err, LangError::Parse { .. }), "{err:?}");
    assert!(err.to_string().starts_with("languages/demo.toml: "), "{err}");
    assert!(err.to_string().contains("missing field `run`"), "{err}");

    let err = parse("id = \"x\"\nname = \n").unwrap_err();
    assert!(matches!(err, LangError::Parse { line: Some(2), .. }), "{err:?}");
    assert!(err.to_string().starts_with("languages/demo.toml: "), "{err}");
}

#[test]
fn example_message_shape() {
    let err = parse(&edited("\"{args}\"]", "\"x\", \"{foo}\"]")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "languages/demo.toml: run.argv[2]: unknown placeholder {foo} \
         (known: {source}, {sources}, {entry_stem}, {entry_js}, {args})"
    );
}

#[test]
fn braces_that_are_not_placeholders_are_literals() {
    let lang = parse(&edited("\"{args}\"]", "\"${HOME}\", \"{print $1}\", \"{args}\"]")).unwrap();
    let plan = Plan {
        entry: "main.dm".into(),
        files: vec![],
        args: vec!["z".into()],
    };
    assert_eq!(
        lang.run_argv(&plan),
        ["/workspace/.runbox/main", "${HOME}", "{print $1}", "z"]
    );
}

// ---- catalogue: overrides and clashes ---------------------------------------

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn override_dir_replaces_and_adds() {
    let dir = tempfile::tempdir().unwrap();
    let python = EMBEDDED
        .iter()
        .find(|f| f.path == "languages/python.toml")
        .unwrap()
        .text;
    write(
        dir.path(),
        "my-python.toml",
        &python.replace("name = \"Python 3\"", "name = \"Python (site)\""),
    );
    write(dir.path(), "demo.toml", BASE);
    write(dir.path(), "notes.txt", "ignored");
    write(dir.path(), ".hidden.toml", "not even toml [");
    fs::create_dir(dir.path().join("sub.toml")).unwrap();

    let cat = Catalogue::load(Some(dir.path())).unwrap();
    assert_eq!(cat.len(), 16);
    let py = cat.get("py").unwrap();
    assert_eq!(py.name(), "Python (site)");
    assert_eq!(py.origin(), dir.path().join("my-python.toml"));
    assert_eq!(cat.get("DM").unwrap().id(), "demo");
    assert_eq!(cat.by_extension("dm").unwrap().id(), "demo");
    // Unchanged defaults are still there.
    assert_eq!(cat.get("go").unwrap().origin(), Path::new("languages/go.toml"));
}

#[test]
fn override_errors_name_the_override_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", &edited("\"{sources}\"", "\"{nope}\""));
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.file(), dir.path().join("bad.toml"));
    assert_eq!(err.field(), Some("compile.argv[3]"));
}

#[test]
fn alias_clash_with_a_default_is_reported_against_the_override() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "demo.toml",
        &edited("aliases = [\"dm\"]", "aliases = [\"dm\", \"JS\"]"),
    );
    // Uppercase is rejected first...
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.field(), Some("aliases[1]"));
    // ...and a lowercase clash names the other language.
    write(
        dir.path(),
        "demo.toml",
        &edited("aliases = [\"dm\"]", "aliases = [\"dm\", \"js\"]"),
    );
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.file(), dir.path().join("demo.toml"));
    assert_eq!(err.field(), Some("aliases[1]"));
    assert!(
        err.to_string().contains("javascript (languages/javascript.toml)"),
        "{err}"
    );
}

#[test]
fn id_clashing_with_an_alias_and_duplicate_extensions_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "demo.toml", &edited("id = \"demo\"", "id = \"py\""));
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.field(), Some("id"));
    assert!(err.to_string().contains("python"), "{err}");

    write(
        dir.path(),
        "demo.toml",
        &edited("extensions = [\"dm\"]", "extensions = [\"dm\", \"rb\"]"),
    );
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.field(), Some("extensions[1]"));
    assert!(err.to_string().contains("ruby"), "{err}");
}

#[test]
fn duplicate_ids_within_the_override_dir_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", BASE);
    write(dir.path(), "b.toml", BASE);
    let err = Catalogue::load(Some(dir.path())).unwrap_err();
    assert_eq!(err.file(), dir.path().join("b.toml"));
    assert_eq!(err.field(), Some("id"));
    assert!(err.to_string().contains("a.toml"), "{err}");
}

#[test]
fn missing_override_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Catalogue::load(Some(&missing)).unwrap_err();
    assert!(matches!(err, LangError::OverrideDir { .. }), "{err:?}");
    assert_eq!(err.file(), missing);
}

// ---- lookups -----------------------------------------------------------------

#[test]
fn lookups_by_id_alias_and_extension() {
    let cat = catalogue();
    let cases = [
        ("python", "python"),
        ("PY", "python"),
        ("Python3", "python"),
        ("js", "javascript"),
        ("node", "javascript"),
        ("ts", "typescript"),
        ("sh", "bash"),
        ("c++", "cpp"),
        ("golang", "go"),
        ("rs", "rust"),
        ("rb", "ruby"),
        ("sqlite", "sql"),
        (" lua5.4 ", "lua"),
    ];
    for (name, id) in cases {
        assert_eq!(cat.get(name).map(Language::id), Some(id), "get({name:?})");
    }
    assert!(cat.get("cobol").is_none());
    assert_eq!(cat.by_extension("py").unwrap().id(), "python");
    assert_eq!(cat.by_extension(".PY").unwrap().id(), "python");
    assert_eq!(cat.by_extension("R").unwrap().id(), "r");
    assert!(cat.by_extension("txt").is_none());
    assert_eq!(cat.by_file_name("src/app.ts").unwrap().id(), "typescript");
    assert_eq!(cat.by_file_name("Main.java").unwrap().id(), "java");
    assert!(cat.by_file_name("Makefile").is_none());
    assert!(cat.by_file_name(".bashrc").is_none());
}

// ---- expansion per language ---------------------------------------------------

#[test]
fn every_language_expands_to_concrete_argv() {
    let cat = catalogue();
    for lang in &cat {
        let plan = plan_for(lang);
        let mut all = lang.run_argv(&plan);
        all.extend(lang.compile_argv(&plan).unwrap_or_default());
        for arg in &all {
            assert!(
                !(arg.starts_with('{') && arg.ends_with('}')),
                "{}: unexpanded {arg}",
                lang.id()
            );
        }
        assert!(lang.run_argv(&plan)[0].starts_with('/'), "{}", lang.id());
    }
}

#[test]
fn expansion_of_selected_languages() {
    let cat = catalogue();
    let run = |id: &str, plan: &Plan| cat.get(id).unwrap().run_argv(plan);
    let compile = |id: &str, plan: &Plan| cat.get(id).unwrap().compile_argv(plan);

    let py = plan_for(cat.get("python").unwrap());
    assert_eq!(run("python", &py), ["/usr/bin/python3", "-u", "main.py", "a", "b c"]);
    assert_eq!(compile("python", &py), None);

    let java = Plan {
        entry: "Main.java".into(),
        files: vec!["Util.java".into(), "Main.java".into(), "data.txt".into()],
        args: vec!["x".into()],
    };
    let javac = compile("java", &java).unwrap();
    assert_eq!(javac[0], "/usr/bin/javac");
    assert_eq!(
        javac[javac.len() - 4..],
        ["-d", "/workspace/.runbox", "Main.java", "Util.java"]
    );
    assert_eq!(
        run("java", &java)[run("java", &java).len() - 4..],
        ["-cp", "/workspace/.runbox", "Main", "x"]
    );

    let ts = Plan {
        entry: "src/app.ts".into(),
        files: vec!["src/app.ts".into(), "src/lib.ts".into()],
        args: vec![],
    };
    assert_eq!(
        run("typescript", &ts),
        ["/usr/bin/node", "/workspace/.runbox/src/app.js"]
    );
    assert!(compile("typescript", &ts)
        .unwrap()
        .ends_with(&["src/app.ts".to_string(), "src/lib.ts".to_string()]));

    let c = Plan {
        entry: "main.c".into(),
        files: vec!["util.c".into(), "main.c".into(), "util.h".into()],
        args: vec![],
    };
    assert_eq!(
        compile("c", &c).unwrap(),
        [
            "/usr/bin/gcc",
            "-O2",
            "-pipe",
            "-o",
            "/workspace/.runbox/main",
            "main.c",
            "util.c",
            "-lm"
        ]
    );
    assert_eq!(run("c", &c), ["/workspace/.runbox/main"]);

    let rs = Plan {
        entry: "main.rs".into(),
        files: vec!["main.rs".into(), "util.rs".into()],
        args: vec![],
    };
    assert_eq!(compile("rust", &rs).unwrap().last().unwrap(), "main.rs");

    let sql = plan_for(cat.get("sql").unwrap());
    assert_eq!(
        run("sql", &sql),
        [
            "/usr/bin/sqlite3",
            "-bail",
            "-batch",
            "-init",
            "main.sql",
            ":memory:",
            ".quit"
        ]
    );
}

// ---- discovery ---------------------------------------------------------------

fn fake(run_argv: &str, version_argv: &str, pattern: &str) -> Language {
    let text = format!(
        "id = \"fake\"\nname = \"Fake\"\nextensions = [\"fk\"]\nsource_file = \"main.fk\"\n\
         [run]\nargv = {run_argv}\n[version]\nargv = {version_argv}\npattern = {pattern:?}\n"
    );
    Language::parse(Path::new("fake.toml"), &text).unwrap()
}

#[test]
fn probe_reports_missing_binary() {
    let lang = fake(
        r#"["/nonexistent/bin/fake", "{source}"]"#,
        r#"["/bin/sh", "-c", "echo fake 1.0"]"#,
        "fake (.*)",
    );
    let a = discovery::probe(&lang, Duration::from_secs(5));
    assert_eq!(
        a,
        Availability {
            available: false,
            version: None,
            reason: Some("/nonexistent/bin/fake not found".into())
        }
    );
}

#[test]
fn probe_reports_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tool");
    fs::write(&file, "#!/bin/sh\n").unwrap();
    let lang = fake(
        &format!("[{:?}]", file.to_str().unwrap()),
        r#"["/bin/sh", "-c", "echo"]"#,
        "(.*)",
    );
    let a = discovery::probe(&lang, Duration::from_secs(5));
    assert!(!a.available);
    assert!(a.reason.unwrap().ends_with("is not executable"));
}

#[test]
fn probe_extracts_version_from_stdout_or_stderr() {
    let lang = fake(
        r#"["/bin/sh", "{source}"]"#,
        r#"["/bin/sh", "-c", "echo banner; echo 'fake 1.2.3-x' >&2"]"#,
        r"fake ([0-9][^\s]*)",
    );
    let a = discovery::probe(&lang, Duration::from_secs(5));
    assert_eq!(
        a,
        Availability {
            available: true,
            version: Some("1.2.3-x".into()),
            reason: None
        }
    );

    let lang = fake(
        r#"["/bin/sh", "{source}"]"#,
        r#"["/bin/sh", "-c", "echo something else"]"#,
        r"fake ([0-9.]+)",
    );
    let a = discovery::probe(&lang, Duration::from_secs(5));
    assert!(a.available && a.version.is_none());
    assert!(a.reason.unwrap().contains("did not match"));
}

#[test]
fn probe_reports_failure_and_timeout() {
    let lang = fake(
        r#"["/bin/sh", "{source}"]"#,
        r#"["/bin/sh", "-c", "echo broken >&2; exit 3"]"#,
        "(.*)",
    );
    let a = discovery::probe(&lang, Duration::from_secs(5));
    assert!(!a.available);
    let reason = a.reason.unwrap();
    assert!(
        reason.contains("exit status: 3") && reason.contains("broken"),
        "{reason}"
    );

    let lang = fake(r#"["/bin/sh", "{source}"]"#, r#"["/bin/sleep", "30"]"#, "(.*)");
    let started = std::time::Instant::now();
    let a = discovery::probe(&lang, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!a.available);
    assert!(a.reason.unwrap().contains("timed out"));
}

#[test]
fn catalogue_entry_json_shape() {
    let cat = catalogue();
    let a = Availability {
        available: true,
        version: Some("3.11.2".into()),
        reason: None,
    };
    let entry = CatalogueEntry::new(cat.get("python").unwrap(), &a);
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "python",
            "name": "Python 3",
            "aliases": ["py", "python3"],
            "version": "3.11.2",
            "available": true,
            "reason": null,
            "compiled": false,
            "sessions": true,
            "extensions": ["py"],
        })
    );
    let back: CatalogueEntry = serde_json::from_value(json).unwrap();
    assert_eq!(back, entry);
}

/// With `RUNBOX_REQUIRE_RUNTIMES=1` (set by CI) every runtime must be
/// installed and report a version; otherwise only the shape is checked.
#[test]
fn discovery_on_this_host() {
    let cat = catalogue();
    let entries = discovery::catalogue_entries(&cat);
    assert_eq!(entries.len(), cat.len());
    for e in &entries {
        assert!(
            e.available || e.reason.is_some(),
            "{}: unavailable without a reason",
            e.id
        );
        assert!(
            e.version.is_some() || e.reason.is_some(),
            "{}: no version and no reason",
            e.id
        );
    }
    if std::env::var("RUNBOX_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        let missing: Vec<String> = entries
            .iter()
            .filter(|e| !e.available || e.version.is_none())
            .map(|e| format!("{}: {}", e.id, e.reason.as_deref().unwrap_or("?")))
            .collect();
        assert!(
            missing.is_empty(),
            "runtimes missing (run scripts/install-runtimes.sh): {missing:#?}"
        );
    } else {
        eprintln!("RUNBOX_REQUIRE_RUNTIMES is not 1: only checked the shape of discovery results");
    }
}
