//! The shipped language and worker files: all load, and sessions, pools and magics come from them.

use super::*;

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
