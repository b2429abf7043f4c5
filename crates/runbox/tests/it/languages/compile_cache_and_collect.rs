//! The compile cache reuses artefacts only for identical sources of the same tenant (and says so), judge test
//! cases cannot see or change each other's workspace, and `collect` returns the files a program produced, never
//! the host's files behind a symlink.

use base64::Engine as _;
use runbox_engine::pools::PoolConfig;
use runbox_engine::{
    CancelToken, Engine, EngineConfig, ExecuteRequest, ExecutionResult, ExecutionStatus, Jail, TestCase,
};

fn engine(dir: &std::path::Path) -> Engine {
    Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 64 << 20,
        pools: PoolConfig {
            enabled: false,
            ..Default::default()
        },
    })
    .unwrap()
}

fn run(e: &Engine, req: &ExecuteRequest) -> ExecutionResult {
    e.execute(req, None, &CancelToken::new(), &mut |_| {}).unwrap()
}

fn c(code: &str) -> ExecuteRequest {
    ExecuteRequest {
        language: "c".into(),
        code: Some(code.into()),
        ..Default::default()
    }
}

#[test]
fn the_same_source_compiles_once_and_a_different_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let hello = "#include <stdio.h>\nint main(void) { puts(\"one\"); return 0; }\n";
    let first = run(&e, &c(hello));
    assert_eq!(
        (first.status, first.compile_cached, first.record.stdout.as_str()),
        (ExecutionStatus::Ok, false, "one\n")
    );
    let again = run(&e, &c(hello));
    assert_eq!(
        (again.status, again.compile_cached, again.record.stdout.as_str()),
        (ExecutionStatus::Ok, true, "one\n")
    );
    let other = run(&e, &c(&hello.replace("one", "two")));
    assert_eq!((other.compile_cached, other.record.stdout.as_str()), (false, "two\n"));
    // A compile error is never cached.
    let broken = "int main( {";
    assert_eq!(run(&e, &c(broken)).status, ExecutionStatus::CompileError);
    let broken_again = run(&e, &c(broken));
    assert_eq!(
        (broken_again.status, broken_again.compile_cached),
        (ExecutionStatus::CompileError, false)
    );
}

#[test]
fn a_judge_compiles_once_and_gives_a_verdict_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut req =
        c("#include <stdio.h>\nint main(void) { int a, b; scanf(\"%d %d\", &a, &b); printf(\"%d\\n\", a + b); }\n");
    req.tests = vec![
        TestCase {
            stdin: "1 2\n".into(),
            expected_output: Some("3".into()),
            ..Default::default()
        },
        TestCase {
            stdin: "2 2\n".into(),
            expected_output: Some("5".into()),
            ..Default::default()
        },
    ];
    let out = run(&e, &req);
    let summary = out.summary.expect("judge summary");
    assert_eq!(
        (summary.total, summary.passed, summary.verdict.as_str()),
        (2, 1, "wrong_output")
    );
    let again = run(&e, &req);
    assert!(again.compile_cached);
}

#[test]
fn a_tenant_never_learns_that_another_compiled_the_same_source() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let of = |tenant: &str| ExecuteRequest {
        tenant: tenant.into(),
        ..c("#include <stdio.h>\nint main(void) { puts(\"mine\"); return 0; }\n")
    };
    let a = run(&e, &of("key-a"));
    assert_eq!((a.status, a.compile_cached), (ExecutionStatus::Ok, false));
    let b = run(&e, &of("key-b"));
    assert_eq!(
        (b.status, b.compile_cached, b.record.stdout.as_str()),
        (ExecutionStatus::Ok, false, "mine\n"),
        "key-b was told key-a compiled this source"
    );
    assert!(
        run(&e, &of("key-a")).compile_cached,
        "a tenant still hits its own entries"
    );
}

fn case(stdin: &str, expected: &str) -> TestCase {
    TestCase {
        stdin: stdin.into(),
        expected_output: Some(expected.into()),
        ..Default::default()
    }
}

#[test]
fn a_judge_case_cannot_replace_the_compiled_program_for_the_cases_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    // Given "hijack", the program tries to delete and replace its own binary and leaves a marker in the
    // workspace; any other input is echoed, unless a marker from an earlier case is visible.
    let mut req = c(r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char line[64] = {0};
    if (!fgets(line, sizeof line, stdin)) return 1;
    if (strncmp(line, "hijack", 6) == 0) {
        int removed = unlink("/workspace/.runbox/main") == 0;
        FILE *f = fopen("/workspace/.runbox/main", "w");
        if (f) { fputs("garbage", f); fclose(f); }
        FILE *m = fopen("/workspace/marker", "w");
        if (m) { fputs("case 1 was here", m); fclose(m); }
        printf("%s\n", removed || f ? "replaced" : "kept");
        return 0;
    }
    if (access("/workspace/marker", F_OK) == 0) { puts("HIJACKED"); return 0; }
    fputs(line, stdout);
    return 0;
}
"#);
    req.tests = vec![case("hijack\n", "kept"), case("two\n", "two"), case("three\n", "three")];
    let out = run(&e, &req);
    let cases = out.tests.expect("a verdict per case");
    let seen: Vec<&str> = cases.iter().map(|c| c.stdout.as_str()).collect();
    assert_eq!(seen, ["kept\n", "two\n", "three\n"], "{cases:#?}");
    assert_eq!(out.summary.expect("summary").verdict, "passed");
}

#[test]
fn a_judge_case_cannot_see_the_files_of_the_case_before() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let req = ExecuteRequest {
        language: "python".into(),
        code: Some(
            "import os, sys\nseen = sorted(n for n in os.listdir('.') if n.startswith('left'))\n\
             print(seen)\nopen('left-' + sys.stdin.read().strip(), 'w').write('input')\n"
                .into(),
        ),
        tests: vec![case("one", "[]"), case("two", "[]"), case("three", "[]")],
        ..Default::default()
    };
    let out = run(&e, &req);
    let cases = out.tests.expect("a verdict per case");
    let seen: Vec<&str> = cases.iter().map(|c| c.stdout.as_str()).collect();
    assert_eq!(seen, ["[]\n", "[]\n", "[]\n"], "{cases:#?}");
}

#[test]
fn collect_returns_produced_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let code = "import os\nos.makedirs('out/deep')\nopen('out/a.txt', 'w').write('A')\n\
                open('out/deep/b.bin', 'wb').write(bytes([0, 255]))\nos.symlink('/etc/passwd', 'out/passwd')\n\
                open('skip.log', 'w').write('no')";
    let mut req = ExecuteRequest {
        language: "python".into(),
        code: Some(code.into()),
        ..Default::default()
    };
    req.collect = vec!["out/**".into(), "main.py".into()];
    let out = run(&e, &req);
    assert_eq!(out.status, ExecutionStatus::Ok, "{out:#?}");
    let files = out.files.expect("collected files");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["out/a.txt", "out/deep/b.bin"],
        "symlinks, unmatched files and unchanged inputs stay out"
    );
    let b = base64::engine::general_purpose::STANDARD
        .decode(files[1].content_base64.as_ref().unwrap())
        .unwrap();
    assert_eq!(b, [0, 255]);
}
