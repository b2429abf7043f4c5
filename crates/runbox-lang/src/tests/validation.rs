//! Validation of a language file: every invalid field is named, with the file, in a readable message.

use super::*;

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
