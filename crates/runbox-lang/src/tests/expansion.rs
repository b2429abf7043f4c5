//! Each language expands to concrete command lines for its compile and run steps.

use super::*;

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
