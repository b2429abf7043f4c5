//! A request served by a warm sandbox must be indistinguishable from a cold run: same arguments, environment,
//! stdin, exit status, errors, limits (counted from the go signal) and isolation. Each test checks that the warm
//! path was really taken (the pool's hit counter moved).

use crate::common;
use std::time::{Duration, Instant};

use common::Status;
use runbox_engine::pools::PoolConfig;
use runbox_engine::{
    CancelToken, Engine, EngineConfig, ExecuteRequest, ExecutionResult, ExecutionStatus, Jail, LimitOverrides,
};

fn engine(dir: &std::path::Path) -> Engine {
    common::pooled_engine(dir, &[("python", 2), ("javascript", 1), ("bash", 1)])
}

fn hits(engine: &Engine, lang: &str) -> u64 {
    engine
        .pool_stats()
        .into_iter()
        .find(|p| p.language == lang)
        .map(|p| p.hits)
        .unwrap_or(0)
}

fn wait_ready(engine: &Engine, lang: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine
        .pool_stats()
        .iter()
        .find(|p| p.language == lang)
        .is_none_or(|p| p.ready == 0)
    {
        assert!(
            Instant::now() < deadline,
            "the {lang} pool never filled: {:?}",
            engine.pool_stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `req` on a warm sandbox, asserting that it really was one.
fn warm(engine: &Engine, req: ExecuteRequest) -> ExecutionResult {
    wait_ready(engine, &req.language);
    let before = hits(engine, &req.language);
    let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(hits(engine, &req.language), before + 1, "not served warm: {result:#?}");
    result
}

fn req(lang: &str, code: &str) -> ExecuteRequest {
    ExecuteRequest {
        language: lang.into(),
        code: Some(code.into()),
        ..Default::default()
    }
}

#[test]
fn python_gets_args_env_stdin_and_main_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let code = "import os, sys\nprint(sys.argv, os.environ['GREETING'], sys.stdin.read().strip(), __name__, __file__)";
    let mut r = req("python", code);
    r.args = vec!["a b".into(), "".into()];
    r.env = [("GREETING".to_string(), "hi".to_string())].into();
    r.stdin = b"from stdin\n".to_vec();
    let out = warm(&e, r);
    assert_eq!(out.status, ExecutionStatus::Ok, "{out:#?}");
    assert_eq!(
        out.record.stdout,
        "['main.py', 'a b', ''] hi from stdin __main__ /workspace/main.py\n"
    );
}

#[test]
fn python_exit_codes_errors_threads_and_atexit_match_a_cold_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let out = warm(&e, req("python", "import sys\nsys.exit(3)"));
    assert_eq!(
        (out.status, out.record.exit_code),
        (ExecutionStatus::ExitedNonzero, Some(3))
    );
    let out = warm(&e, req("python", "def f():\n    1/0\nf()"));
    assert_eq!(out.record.exit_code, Some(1));
    assert!(
        out.record
            .stderr
            .starts_with("Traceback (most recent call last):\n  File \"/workspace/main.py\""),
        "{}",
        out.record.stderr
    );
    assert!(
        out.record.stderr.ends_with("ZeroDivisionError: division by zero\n"),
        "{}",
        out.record.stderr
    );
    assert!(!out.record.stderr.contains("<string>"), "{}", out.record.stderr);
    let code = "import atexit, threading, time\natexit.register(lambda: print('atexit'))\n\
                threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()";
    let out = warm(&e, req("python", code));
    assert_eq!(out.record.stdout, "thread\natexit\n");
    let out = warm(&e, req("python", "raise SystemExit('bye')"));
    assert_eq!((out.record.exit_code, out.record.stderr.as_str()), (Some(1), "bye\n"));
}

#[test]
fn limits_count_from_the_go_signal_and_still_bite() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    // The sandbox waited in the pool for a while; its wall clock starts only now.
    std::thread::sleep(Duration::from_millis(1500));
    let mut r = req("python", "import time\ntime.sleep(0.5)\nprint('done')");
    r.limits = LimitOverrides {
        timeout_ms: Some(1000),
        ..Default::default()
    };
    let out = warm(&e, r);
    assert_eq!(out.status, ExecutionStatus::Ok, "{out:#?}");
    let mut r = req("python", "while True: pass");
    r.limits = LimitOverrides {
        timeout_ms: Some(5000),
        cpu_ms: Some(300),
        ..Default::default()
    };
    let out = warm(&e, r);
    assert_eq!(out.status, ExecutionStatus::CpuLimit, "{out:#?}");
    let mut r = req("python", "import time\ntime.sleep(100)");
    r.limits = LimitOverrides {
        timeout_ms: Some(300),
        ..Default::default()
    };
    let out = warm(&e, r);
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:#?}");
    let out = warm(&e, req("python", "x = bytearray(1 << 30)"));
    assert_eq!(out.status, ExecutionStatus::MemoryLimit, "{out:#?}");
}

#[test]
fn a_warm_runs_limits_arrive_even_when_no_signal_can_be_queued_to_its_jail() {
    // With RLIMIT_SIGPENDING at 0 (as when a sandbox has used up the queue of the jail's user), a signal sent with
    // `sigqueue` arrives without its payload: limits carried in one were silently lost and the pool's caps applied.
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.path().to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(
            "/usr/bin/prlimit",
            vec![
                "--sigpending=0:0".into(),
                env!("CARGO_BIN_EXE_runbox").into(),
                "jail".into(),
            ],
        ),
        compile_cache_bytes: 0,
        pools: PoolConfig {
            min: [("python".to_string(), 1)].into(),
            ..Default::default()
        },
    })
    .unwrap();
    e.start_pools();
    let mut r = req("python", "import time\ntime.sleep(5)\nprint('slept')");
    r.limits = LimitOverrides {
        timeout_ms: Some(1500),
        ..Default::default()
    };
    let out = warm(&e, r);
    assert_eq!(out.status, ExecutionStatus::Timeout, "{out:#?}");
    assert!(out.record.wall_ms < 4000, "{out:#?}");
}

#[test]
fn a_warm_sandbox_whose_limits_do_not_arrive_intact_never_runs_its_program() {
    use runbox_sandbox::protocol::{self, FrameKind};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = runbox_sandbox::SandboxSpec {
        mode: runbox_sandbox::RunMode::Pooled { from_zygote: None },
        ..runbox_sandbox::SandboxSpec::new(
            format!("garbled-go-{}", std::process::id()),
            vec!["sh".into(), "-c".into(), "head -c1 <&3 >/dev/null; echo ran".into()],
            dir.path(),
        )
    };
    let mut jail = std::process::Command::new(env!("CARGO_BIN_EXE_runbox"))
        .arg("jail")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = jail.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(jail.stdout.take().unwrap());
    protocol::write_spec(&mut stdin, &serde_json::to_vec(&spec).unwrap()).unwrap();
    let (kind, _) = protocol::read_frame(&mut stdout).unwrap().unwrap();
    assert_eq!(kind, FrameKind::Ready);
    // A complete message whose limits do not parse, then stdin for the program.
    let mut garbled = 11u32.to_le_bytes().to_vec();
    garbled.extend_from_slice(b"{\"wall\": 1}stdin bytes");
    stdin.write_all(&garbled).unwrap();
    let mut frames = vec![];
    while let Some((kind, data)) = protocol::read_frame(&mut stdout).unwrap() {
        frames.push((kind, String::from_utf8_lossy(&data).into_owned()));
    }
    let _ = jail.wait();
    assert!(
        frames.iter().all(|(k, _)| *k == FrameKind::Report),
        "the program ran or was acknowledged: {frames:?}"
    );
    let report = &frames.last().expect("a report").1;
    assert!(report.contains("sandbox_error"), "{report}");
    assert!(report.contains("limits did not arrive"), "{report}");
}

#[test]
fn node_and_bash_run_warm_with_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut r = req(
        "javascript",
        "console.log(process.argv.slice(2).join('|'), require.main === module, process.env.X)",
    );
    r.args = vec!["a".into(), "b c".into()];
    r.env = [("X".to_string(), "y".to_string())].into();
    let out = warm(&e, r);
    assert_eq!(out.record.stdout, "a|b c true y\n", "{out:#?}");
    let out = warm(&e, req("javascript", "process.exitCode = 4; throw new Error('boom')"));
    assert_eq!(out.record.exit_code, Some(1));
    assert!(out.record.stderr.contains("Error: boom"), "{}", out.record.stderr);
    let mut r = req("bash", "echo \"$0 $# $1\" $X; read line; echo got $line; exit 5");
    r.args = vec!["one two".into()];
    r.env = [("X".to_string(), "y".to_string())].into();
    r.stdin = b"input\n".to_vec();
    let out = warm(&e, r);
    assert_eq!(
        (out.record.stdout.as_str(), out.record.exit_code),
        ("main.sh 1 one two y\ngot input\n", Some(5))
    );
}

#[test]
fn a_warm_sandbox_serves_one_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let first = warm(
        &e,
        req(
            "python",
            "open('/tmp/mark', 'w').write('x'); open('mark', 'w').write('x'); print('ok')",
        ),
    );
    assert_eq!(first.status, ExecutionStatus::Ok);
    for _ in 0..3 {
        let out = warm(
            &e,
            req(
                "python",
                "import os; print(os.path.exists('/tmp/mark'), os.path.exists('mark'))",
            ),
        );
        assert_eq!(out.record.stdout, "False False\n");
    }
    let _ = Status::Ok;
}

#[test]
fn different_limits_take_the_cold_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_ready(&e, "python");
    let before = hits(&e, "python");
    let mut r = req("python", "print(1)");
    r.limits = LimitOverrides {
        memory_mb: Some(100),
        ..Default::default()
    };
    let out = e.execute(&r, None, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(out.record.stdout, "1\n");
    assert_eq!(
        hits(&e, "python"),
        before,
        "a request with other limits must not use a warm sandbox"
    );
}

#[test]
fn a_compiled_program_runs_in_a_warm_sandbox_after_its_compile() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::new(EngineConfig {
        languages_dir: None,
        data_dir: dir.path().to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 16 << 20,
        pools: PoolConfig {
            min: [("c".into(), 1)].into(),
            ..Default::default()
        },
    })
    .unwrap();
    e.start_pools();
    let code =
        "#include <stdio.h>\n#include <stdlib.h>\nint main(int c, char **v) { char l[64]; fgets(l, 64, stdin);\n\
                printf(\"%s %s %s\", v[1], getenv(\"X\"), l); return 7; }\n";
    for round in 0..2 {
        let mut r = req("c", code);
        r.args = vec!["arg".into()];
        r.env = [("X".to_string(), "env".to_string())].into();
        r.stdin = b"input\n".to_vec();
        let out = warm(&e, r);
        assert_eq!(
            (out.record.stdout.as_str(), out.record.exit_code),
            ("arg env input\n", Some(7)),
            "{out:#?}"
        );
        assert_eq!(out.compile_cached, round == 1);
        assert!(out.compile.is_some() && out.run.is_some());
    }
}

#[test]
fn a_language_without_its_runtime_gets_no_pool() {
    let dir = tempfile::tempdir().unwrap();
    let langs = dir.path().join("languages");
    std::fs::create_dir(&langs).unwrap();
    std::fs::write(
        langs.join("ghost.toml"),
        "id = \"ghost\"\nname = \"Ghost\"\naliases = []\nextensions = [\"ghost\"]\nsource_file = \"main.ghost\"\n\
         [run]\nargv = [\"/nonexistent/ghost\", \"{source}\"]\n\
         [version]\nargv = [\"/nonexistent/ghost\", \"--version\"]\npattern = \"([0-9.]+)\"\n",
    )
    .unwrap();
    let e = Engine::new(EngineConfig {
        languages_dir: Some(langs),
        data_dir: dir.path().to_path_buf(),
        policy: Default::default(),
        caps: Default::default(),
        jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
        compile_cache_bytes: 0,
        pools: PoolConfig {
            min: [("ghost".into(), 2)].into(),
            ..Default::default()
        },
    })
    .unwrap();
    e.start_pools();
    std::thread::sleep(Duration::from_millis(1500));
    let ghost = e.pool_stats().into_iter().find(|p| p.language == "ghost").unwrap();
    assert_eq!(
        (ghost.ready, ghost.starting),
        (0, 0),
        "no sandbox is built for a missing runtime: {ghost:?}"
    );
    let err = e
        .execute(&req("ghost", "x"), None, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert_eq!(err.code(), "language_unavailable");
}

/// A program that exits without reading the stdin it was given is an ordinary run, never a lost one. The jail used
/// to panic (and so end without a report) when PID 1 ended in the same wake-up in which the stdin pipe became
/// writable: about one warm run in fifty, four at a time. 1000 runs over pooled (Python in the zygote's interpreter,
/// Bash) and cold (Perl) sandboxes, four at a time, must all succeed.
#[test]
fn a_program_that_ignores_its_stdin_never_loses_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_ready(&e, "python");
    wait_ready(&e, "bash");
    let cases = [
        ("python", "print(1)"),
        ("python", "print(1)"),
        ("bash", "echo 1"),
        ("bash", "echo 1"),
        ("perl", "print \"1\\n\";"),
    ];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 1000 {
                    return;
                }
                let (lang, code) = cases[i % cases.len()];
                let mut r = req(lang, code);
                r.stdin = b"xxxxxxxxxx".to_vec();
                match e.execute(&r, None, &CancelToken::new(), &mut |_| {}) {
                    Ok(out) if out.status == ExecutionStatus::Ok && out.record.stdout == "1\n" => {}
                    Ok(out) => failures.lock().unwrap().push(format!("{lang}: {out:?}")),
                    Err(err) => failures.lock().unwrap().push(format!("{lang}: {err}")),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of 1000 runs failed in {:?}, first: {:#?}",
        failures.len(),
        started.elapsed(),
        &failures[..failures.len().min(3)]
    );
    assert!(hits(&e, "python") > 0 && hits(&e, "bash") > 0, "{:?}", e.pool_stats());
}

/// An operator's `python.toml` is the Python of every path: a cold run, a warm sandbox (its prelude's interpreter,
/// and, as root, the zygote's, in which the program runs in process) and a session's worker. The override starts
/// each interpreter with `-X runbox=override`, which the program reads back from `sys._xoptions`.
#[test]
fn a_language_file_override_reaches_every_path_that_runs_the_language() {
    let dir = tempfile::tempdir().unwrap();
    let langs = dir.path().join("languages");
    std::fs::create_dir(&langs).unwrap();
    let python = include_str!("../../../../../languages/python.toml").replace(
        "\"/usr/bin/python3\", \"-u\"",
        "\"/usr/bin/python3\", \"-u\", \"-X\", \"runbox=override\"",
    );
    assert_eq!(
        python.matches("runbox=override").count(),
        4,
        "run, session, pool, in_process: {python}"
    );
    std::fs::write(langs.join("python.toml"), python).unwrap();
    let e = std::sync::Arc::new(
        Engine::new(EngineConfig {
            languages_dir: Some(langs),
            data_dir: dir.path().to_path_buf(),
            policy: Default::default(),
            caps: Default::default(),
            jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
            compile_cache_bytes: 0,
            pools: PoolConfig {
                min: [("python".to_string(), 1)].into(),
                ..Default::default()
            },
        })
        .unwrap(),
    );
    e.start_pools();
    let probe = "import sys; print(sys._xoptions.get('runbox'))";

    let out = warm(&e, req("python", probe));
    assert_eq!(out.record.stdout, "override\n", "warm: {out:#?}");
    if nix::unistd::geteuid().is_root() {
        assert!(
            e.zygote_pids().iter().any(|(lang, _)| lang == "python"),
            "the warm sandbox came from the override's zygote: {:?}",
            e.pool_stats()
        );
    }

    let before = hits(&e, "python");
    let cold = ExecuteRequest {
        limits: LimitOverrides {
            memory_mb: Some(200), // not the pool's: a cold run
            ..Default::default()
        },
        ..req("python", probe)
    };
    let out = e.execute(&cold, None, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(out.record.stdout, "override\n", "cold: {out:#?}");
    assert_eq!(hits(&e, "python"), before, "the cold run took no warm sandbox");

    let sessions = runbox_engine::sessions::Sessions::new(e.clone(), Default::default());
    let info = sessions
        .create(
            "me",
            &runbox_engine::sessions::CreateSession {
                language: "python".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let cell = sessions
        .execute(
            "me",
            &info.id,
            "import sys\nsys._xoptions.get('runbox')",
            None,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(cell.result.unwrap()["text/plain"], "'override'", "session");
    sessions.delete("me", &info.id).ok();
    e.drain_pools();
}
