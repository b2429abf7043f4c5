//! Discovery of installed runtimes: missing, not executable, failing or slow probes, versions, JSON shape.

use super::*;

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
