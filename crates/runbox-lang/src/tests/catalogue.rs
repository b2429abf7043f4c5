//! The catalogue: override directories, clashes between files, and lookups by id, alias and extension.

use super::*;

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
