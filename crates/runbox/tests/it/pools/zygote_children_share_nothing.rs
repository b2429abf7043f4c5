//! Warm sandboxes forked by a zygote: two children share no files, memory, IPC objects or processes; every
//! protection of a sandbox built from scratch is in force in them; and the zygote itself never runs user code
//! (nothing a program does reaches it, and it lives in none of the namespaces a program runs in).

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runbox_engine::{CancelToken, Engine, ExecuteRequest, ExecutionResult, ExecutionStatus};
use runbox_testkit::procs::{self, cmdline};

fn engine(dir: &std::path::Path) -> Engine {
    common::pooled_engine(dir, &[("python", 2), ("bash", 1)])
}

fn stats(engine: &Engine, lang: &str) -> runbox_engine::pools::PoolStats {
    engine.pool_stats().into_iter().find(|p| p.language == lang).unwrap()
}

/// Waits until `lang`'s pool has a sandbox its zygote forked.
fn wait_for_zygote(engine: &Engine, lang: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(engine, lang);
        if s.ready > 0 && s.zygote.as_deref() == Some("running") {
            return;
        }
        assert!(Instant::now() < deadline, "no zygote-built sandbox for {lang}: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `code` on a sandbox forked by the zygote, asserting that it was one.
fn run(engine: &Engine, lang: &str, code: &str) -> ExecutionResult {
    wait_for_zygote(engine, lang);
    let before = stats(engine, lang).hits;
    let req = ExecuteRequest {
        language: lang.into(),
        code: Some(code.into()),
        ..Default::default()
    };
    let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap();
    assert!(stats(engine, lang).hits > before, "not served warm: {result:#?}");
    result
}

fn py(lines: &[&str]) -> String {
    lines.join("\n") + "\n"
}

fn ok(result: &ExecutionResult) -> &str {
    assert_eq!(result.status, ExecutionStatus::Ok, "{result:#?}");
    &result.record.stdout
}

/// Namespace identities (`/proc/<pid>/ns/<kind>` link targets) of a host process.
fn namespaces(pid: u32) -> BTreeMap<&'static str, String> {
    ["user", "pid", "mnt", "net", "ipc", "uts"]
        .into_iter()
        .map(|kind| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
            (kind, link.to_string_lossy().into_owned())
        })
        .collect()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Host pid of `lang`'s zygote: the Python process under its jail's PID 1.
fn zygote_pid(engine: &Engine, lang: &str) -> u32 {
    let (_, jail) = engine
        .zygote_pids()
        .into_iter()
        .find(|(l, _)| l == lang)
        .expect("a zygote jail");
    let init = children(jail)[0];
    children(init)
        .into_iter()
        .find(|&p| cmdline(p).contains("zygote.py"))
        .expect("the zygote under its jail's PID 1")
}

#[test]
fn two_children_share_no_files_ipc_or_processes() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    // The first child leaves files in every writable place, a System V shared memory segment and a process, and
    // stays alive while the second one looks for them.
    let holder = py(&[
        "import ctypes, os, subprocess, time",
        "for d in ('/tmp', '/workspace', '/dev/shm'):",
        "    open(d + '/left-behind', 'w').write('secret')",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "assert libc.shmget(4242, 4096, 0o1666) >= 0, ctypes.get_errno()",
        "p = subprocess.Popen(['sleep', '30'])",
        "print('holding', p.pid, flush=True)",
        "time.sleep(3)",
    ]);
    let looker = py(&[
        "import ctypes, os",
        "found = [d for d in ('/tmp', '/workspace', '/dev/shm') if os.path.exists(d + '/left-behind')]",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "shm = libc.shmget(4242, 0, 0)",
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())",
        "print(found, shm, ctypes.get_errno() == 2, pids == [1, os.getpid()], os.getpid())",
    ]);
    std::thread::scope(|s| {
        let first = s.spawn(|| run(&e, "python", &holder));
        std::thread::sleep(Duration::from_millis(1000));
        let second = run(&e, "python", &looker);
        assert_eq!(ok(&second), "[] -1 True True 2\n", "{second:#?}");
        let first = first.join().unwrap();
        assert!(ok(&first).starts_with("holding "), "{first:#?}");
    });
}

#[test]
fn two_children_share_no_interpreter_state() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mutate = py(&[
        "import builtins, json, os, random, sys",
        "builtins.LEAK = 1; json.LEAK = 1; os.environ['LEAK'] = '1'; sys.path.append('/leak')",
        "sys.modules['__main__'].__dict__['LEAK'] = 1",
        "print(random.random())",
    ]);
    let first = run(&e, "python", &mutate);
    let check = py(&[
        "import builtins, json, os, random, sys",
        "print(hasattr(builtins, 'LEAK'), hasattr(json, 'LEAK'), 'LEAK' in os.environ, '/leak' in sys.path,",
        "      'LEAK' in globals())",
        "print(random.random())",
    ]);
    let second = run(&e, "python", &check);
    let lines: Vec<&str> = ok(&second).lines().collect();
    assert_eq!(lines[0], "False False False False False", "{second:#?}");
    // Children of one zygote do not replay one random sequence.
    assert_ne!(ok(&first).trim(), lines[1], "{first:#?} {second:#?}");
}

#[test]
fn children_have_every_protection_of_a_sandbox_built_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let code = py(&[
        "import ctypes, os, socket",
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)",
        "print(os.getuid(), os.getgid(), status['CapEff'], status['CapPrm'], status['CapBnd'])",
        "print('NoNewPrivs', status['NoNewPrivs'], 'Seccomp', status['Seccomp'])",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "print('unshare', libc.unshare(0x20000), ctypes.get_errno())",
        "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())",
        "# Landlock stacks at most 16 layers: count how many more this process may add.",
        "attr = ctypes.c_uint64(1 << 1)",
        "more = 0",
        "while True:",
        "    fd = libc.syscall(444, ctypes.byref(attr), 8, 0)",
        "    if fd < 0 or libc.syscall(446, fd, 0) < 0:",
        "        break",
        "    more += 1",
        "print('landlock layers already', 16 - more)",
        "s = socket.socket()",
        "s.settimeout(1)",
        "try:",
        "    s.connect(('1.1.1.1', 80))",
        "    print('network reachable')",
        "except OSError as e:",
        "    print('network', type(e).__name__)",
        "print(open('/proc/self/uid_map').read().split(), socket.gethostname())",
    ]);
    let out = run(&e, "python", &code);
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "1000 1000 0000000000000000 0000000000000000 0000000000000000",
        "{out:#?}"
    );
    assert_eq!(lines[1], "NoNewPrivs 1 Seccomp 2", "{out:#?}");
    assert_eq!(lines[2], "unshare -1 1", "{out:#?}");
    assert_eq!(lines[3], "mount -1 1", "{out:#?}");
    assert_eq!(lines[4], "landlock layers already 1", "{out:#?}");
    assert_eq!(lines[5], "network OSError", "{out:#?}");
    assert_eq!(lines[6], "['1000', '1000', '1'] runbox", "{out:#?}");

    // The memory limit is the run's cgroup's: the zygote's child was moved there before it could run anything.
    let hog = run(
        &e,
        "python",
        "x = bytearray(1 << 30)\nx[::4096] = b'x' * len(x[::4096])\nprint('survived')",
    );
    assert_eq!(hog.status, ExecutionStatus::MemoryLimit, "{hog:#?}");

    // A program executed by a zygote's child (every language but Python) has the same protections.
    let sh = run(
        &e,
        "bash",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '; echo /proc/[0-9]*",
    );
    assert_eq!(
        ok(&sh),
        "CapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n/proc/1 /proc/2\n",
        "{sh:#?}"
    );
}

#[test]
fn the_zygote_never_runs_user_code() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_for_zygote(&e, "python");
    let zygote = zygote_pid(&e, "python");
    let zygote_ns = namespaces(zygote);

    // While a program runs, no process of its sandbox shares a namespace with the zygote.
    std::thread::scope(|s| {
        let sleeper = s.spawn(|| run(&e, "python", "import time\ntime.sleep(2)\nprint('done')"));
        std::thread::sleep(Duration::from_millis(800));
        // Every process of the zygote's jail but the zygote and the jail's PID 1: the sandboxes it forked (each
        // a PID 1 of its own, the zygote's child) and their programs.
        let (_, jail) = e.zygote_pids().into_iter().find(|(l, _)| l == "python").unwrap();
        let mut sandboxes = Vec::new();
        let mut todo = children(zygote);
        while let Some(pid) = todo.pop() {
            todo.extend(children(pid));
            sandboxes.push(pid);
        }
        assert!(sandboxes.len() >= 2, "no running sandbox under the zygote");
        assert_eq!(children(children(jail)[0]), vec![zygote], "a process beside the zygote");
        for &pid in &sandboxes {
            let ns = namespaces(pid);
            for (kind, id) in &ns {
                assert_ne!(
                    id, &zygote_ns[kind],
                    "process {pid} shares the zygote's {kind} namespace"
                );
            }
        }
        assert_eq!(ok(&sleeper.join().unwrap()), "done\n");
    });

    // Nothing a program does reaches the zygote: it cannot see it, signal it, or change it.
    let hostile = py(&[
        "import os, signal",
        "for pid in range(1, 64):",
        "    try:",
        "        if pid != os.getpid():",
        "            os.kill(pid, signal.SIGKILL)",
        "    except OSError:",
        "        pass",
        "try:",
        "    os.kill(-1, signal.SIGKILL)",
        "except ProcessLookupError:",
        "    pass  # nothing else of the sandbox to signal",
        "os.kill(os.getpid(), signal.SIGKILL)",
    ]);
    let killed = run(&e, "python", &hostile);
    assert_eq!(killed.record.signal, Some(9), "{killed:#?}");
    let crash = run(&e, "python", "import ctypes\nctypes.string_at(0)");
    assert_eq!(crash.record.signal, Some(11), "{crash:#?}");
    let memory_before = std::fs::read_to_string(format!("/proc/{zygote}/statm")).unwrap();
    let big = run(&e, "python", "x = bytearray(100 << 20)\nprint(len(x))");
    assert_eq!(ok(&big), format!("{}\n", 100 << 20));
    let after = run(&e, "python", "print('still here')");
    assert_eq!(ok(&after), "still here\n");
    assert_eq!(zygote_pid(&e, "python"), zygote, "the zygote was replaced");
    let memory_after = std::fs::read_to_string(format!("/proc/{zygote}/statm")).unwrap();
    let resident = |statm: &str| statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
    assert!(
        resident(&memory_after) < resident(&memory_before) + 256,
        "the zygote grew: {memory_before} -> {memory_after}"
    );
}

/// The zygote runs its program from a file, not from a `-c` argument: `ps` shows a short, readable command line for
/// it and for every sandbox it forks (a fork keeps its parent's command line).
#[test]
fn the_zygote_and_its_children_show_a_short_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_for_zygote(&e, "python");
    let zygote = zygote_pid(&e, "python");
    assert_eq!(
        cmdline(zygote),
        "/usr/bin/python3 -u /workspace/.runbox/zygote.py /workspace/.runbox/python_pooled.py "
    );
    std::thread::scope(|s| {
        let sleeper = s.spawn(|| run(&e, "python", "import time\ntime.sleep(1.5)\nprint('done')"));
        std::thread::sleep(Duration::from_millis(800));
        let mut todo = children(zygote);
        assert!(!todo.is_empty(), "no sandbox under the zygote");
        while let Some(pid) = todo.pop() {
            todo.extend(children(pid));
            let line = cmdline(pid);
            assert!(line.len() < 200, "process {pid} shows a long command line: {line:.300}");
        }
        assert_eq!(ok(&sleeper.join().unwrap()), "done\n");
    });
}

/// Host processes whose command line contains `marker`, as (pid, parent pid).
fn processes_named(marker: &str) -> Vec<(u32, u32)> {
    procs::processes()
        .into_iter()
        .filter(|&(pid, _, _)| cmdline(pid).contains(marker))
        .map(|(pid, ppid, _)| (pid, ppid))
        .collect()
}

/// The jail (a child of this test process) that holds a pidfd of `pid`.
fn jail_watching(pid: u32) -> Option<u32> {
    procs::children_of(std::process::id()).into_iter().find_map(|jail| {
        let fds = std::fs::read_dir(format!("/proc/{jail}/fdinfo")).ok()?;
        let wanted = format!("Pid:\t{pid}\n");
        fds.flatten()
            .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.contains(&wanted)))
            .then_some(jail)
    })
}

/// A sandbox forked by the zygote is not its jail's child, yet it ends with its jail: killed outright (as a killed
/// server's process group would be), the jail takes the run with it at once, and the zygote lives on.
#[test]
fn a_sandbox_forked_by_the_zygote_ends_when_its_jail_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_for_zygote(&e, "bash");
    let bash_zygote = |e: &Engine| e.zygote_pids().into_iter().find(|(l, _)| l == "bash");
    let zygote = bash_zygote(&e).expect("the bash zygote");
    let marker = format!("runbox-jail-lifeline-{}", std::process::id());
    std::thread::scope(|s| {
        let code = format!("exec -a {marker} sleep 60");
        let run = s.spawn(|| {
            let req = ExecuteRequest {
                language: "bash".into(),
                code: Some(code),
                ..Default::default()
            };
            e.execute(&req, None, &CancelToken::new(), &mut |_| {})
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (sleeper, pid1) = loop {
            if let Some(&found) = processes_named(&marker).first() {
                break found;
            }
            assert!(Instant::now() < deadline, "the sleeper never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        let jail = jail_watching(pid1).expect("the run's jail");
        assert!(
            !e.zygote_pids().iter().any(|&(_, z)| z == jail),
            "that is a zygote's jail"
        );
        // SAFETY: kill(2) on a jail this process started, found by its pidfd of the sandbox's PID 1.
        assert_eq!(unsafe { libc::kill(jail as libc::pid_t, libc::SIGKILL) }, 0);
        let deadline = Instant::now() + Duration::from_secs(2);
        while processes_named(&marker).iter().any(|&(p, _)| p == sleeper) {
            assert!(Instant::now() < deadline, "the run outlived its jail by 2 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let outcome = run.join().unwrap();
        assert!(
            outcome.is_err(),
            "a run whose jail was killed has no result: {outcome:?}"
        );
    });
    assert_eq!(bash_zygote(&e), Some(zygote), "the zygote was replaced");
    assert_eq!(ok(&run(&e, "bash", "echo still serving")), "still serving\n");
}

/// Signals queued host-wide for host uid 0 (`SigQ` counts the reading process's real user).
fn signals_queued_for_host_root() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("SigQ:")).expect("SigQ line");
    line[5..].trim().split('/').next().unwrap().parse().unwrap()
}

#[test]
fn a_childs_signal_queue_and_inotify_instances_are_capped_and_never_charged_to_host_root() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    wait_for_zygote(&e, "python");
    let before = signals_queued_for_host_root();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                most = most.max(signals_queued_for_host_root());
                std::thread::sleep(Duration::from_millis(50));
            }
            most
        })
    };
    let code = py(&[
        "import ctypes, os, signal, time",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])",
        "n = 0",
        "while n < 200000 and libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0)) == 0:",
        "    n += 1",
        "fds = []",
        "while len(fds) < 300 and libc.inotify_init1(0) >= 0:",
        "    fds.append(1)",
        "print(n, len(fds))",
        "time.sleep(1.5)",
    ]);
    let out = run(&e, "python", &code);
    done.store(true, std::sync::atomic::Ordering::Release);
    let most = sampler.join().unwrap();
    let counts: Vec<u64> = ok(&out).split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!((1000..=1024).contains(&counts[0]), "{counts:?}");
    assert_eq!(counts[1], 128, "{counts:?}");
    assert!(
        most < before + 500,
        "a child's signals were charged to host root: {before} before, {most} during"
    );
}

#[test]
fn a_childs_clocks_load_and_boot_id_hide_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let code = py(&[
        "import time",
        "up = open('/proc/uptime').read().split()[0]",
        "print(up, round(time.monotonic(), 1), '|', open('/proc/loadavg').read().strip(), '|',",
        "      open('/proc/sys/kernel/random/boot_id').read().strip())",
    ]);
    let first = run(&e, "python", &code);
    let second = run(
        &e,
        "bash",
        "cat /proc/sys/kernel/random/boot_id /proc/loadavg; cut -d' ' -f1 /proc/uptime",
    );
    let parts: Vec<&str> = ok(&first).trim().split(" | ").collect();
    for clock in parts[0].split(' ').map(|c| c.parse::<f64>().unwrap()) {
        // The child's clocks started at 100 s when it was forked (the host has been up far longer).
        assert!((100.0..130.0).contains(&clock), "{first:#?}");
    }
    assert_eq!(parts[1], "0.00 0.00 0.00 1/1 1");
    let host_boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let lines: Vec<&str> = ok(&second).lines().collect();
    assert_eq!(lines[1], "0.00 0.00 0.00 1/1 1", "{second:#?}");
    assert!(lines[2].parse::<f64>().unwrap() < 130.0, "{second:#?}");
    for boot_id in [parts[2], lines[0]] {
        assert_eq!(boot_id.len(), 36);
        assert_ne!(boot_id, host_boot_id.trim());
    }
    assert_ne!(parts[2], lines[0], "two children share a boot id");
}

/// What a program sees of its own sandbox, one `name: value` line each: identity, capabilities, seccomp, id
/// maps, mounts, a path Landlock denies, Landlock's layers, rlimits, cgroup and which namespaces differ from the
/// host's (passed in as `HOST_NS`).
const SANDBOX_PROBE: &str = r#"import ctypes, os
status = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
for key in ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Seccomp_filters']:
    print(f'status {key}:', status.get(key, '').split())
for name in ['uid_map', 'gid_map']:
    inside, outside, count = open(f'/proc/self/{name}').read().split()
    print(f'{name} inside:', inside, count)
for name in ['setgroups', 'cgroup']:
    print(f'{name}:', open(f'/proc/self/{name}').read().split())
for line in sorted(open('/proc/self/mounts').read().splitlines()):
    print('mount:', line.split()[1:4])
for line in open('/proc/self/limits').read().splitlines()[1:]:
    if 'Max cpu time' not in line:
        print('limit:', line.split())
try:
    open('/proc/self/comm', 'w').write('x')
    print('landlock /proc/self/comm: writable')
except OSError as e:
    print('landlock /proc/self/comm:', type(e).__name__, e.errno)
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.c_uint64(1 << 1)
more = 0
while True:
    fd = libc.syscall(444, ctypes.byref(attr), 8, 0)
    if fd < 0 or libc.syscall(446, fd, 0) < 0:
        break
    more += 1
print('landlock layers:', 16 - more)
host = dict(kv.split('=', 1) for kv in os.environ['HOST_NS'].split(','))
for kind in sorted(host):
    print(f'ns {kind} differs from the host:', os.readlink(f'/proc/self/ns/{kind}') != host[kind])
"#;

/// The zygote re-implements PID 1 and the hardening steps in Python (see `crates/runbox-sandbox/src/jail/
/// from_zygote.rs` on why there are two copies): the same program must find the same sandbox whichever way it was
/// built, but for the differences listed (and explained) in [`KNOWN_DIFFERENCES`].
#[test]
fn a_zygote_child_and_a_sandbox_built_from_scratch_look_the_same_from_inside() {
    let host_ns = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time"]
        .into_iter()
        .filter_map(|kind| {
            let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok()?;
            Some(format!("{kind}={}", link.display()))
        })
        .collect::<Vec<_>>()
        .join(",");
    let probe = |engine: &Engine, warm: bool, lang: &str| {
        let code = match lang {
            "python" => SANDBOX_PROBE.to_string(),
            // Any other language is executed by the zygote's child (not run in its interpreter): probe from a
            // program bash starts.
            _ => format!("python3 - <<'PROBE'\n{SANDBOX_PROBE}PROBE\n"),
        };
        let req = ExecuteRequest {
            language: lang.into(),
            code: Some(code),
            env: [("HOST_NS".to_string(), host_ns.clone())].into(),
            ..Default::default()
        };
        let result = if warm {
            wait_for_zygote(engine, lang);
            let before = stats(engine, lang).hits;
            let result = engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap();
            assert!(stats(engine, lang).hits > before, "not served warm: {result:#?}");
            result
        } else {
            engine.execute(&req, None, &CancelToken::new(), &mut |_| {}).unwrap()
        };
        ok(&result).to_string()
    };
    let cold_dir = tempfile::tempdir().unwrap();
    let cold = common::pooled_engine(cold_dir.path(), &[]);
    let warm_dir = tempfile::tempdir().unwrap();
    let warm = engine(warm_dir.path());
    for lang in ["python", "bash"] {
        let from_scratch = probe(&cold, false, lang);
        let from_zygote = probe(&warm, true, lang);
        for line in from_scratch.lines() {
            if line.starts_with("ns ") {
                assert!(line.ends_with("True"), "{lang}: {line}");
            }
        }
        assert!(from_scratch.contains("status Seccomp: ['2']"), "{lang}: {from_scratch}");
        pretty_diff(lang, &from_scratch, &from_zygote);
    }
}

/// Lines that may differ between the two kinds of sandbox, as (only from scratch, only from the zygote) prefixes,
/// each for a reason that leaves the program no more power in one than in the other:
/// - `setgroups`: a sandbox built from scratch as root clears its groups itself (PID 1 holds CAP_SETGID in its
///   namespace until it drops every capability), so its file says `allow`; a zygote's child, in a namespace
///   nested in the zygote's, has to deny it before writing its id maps. Neither can call setgroups afterwards.
/// - the zygote's own /tmp, /dev/shm and /workspace stay listed under the child's: they are shadowed by the
///   child's own mounts (present in both lists) and locked there, since they came from the zygote's namespace.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    ("setgroups: ['allow']", "setgroups: ['deny']"),
    ("", "mount: ['/tmp', 'tmpfs',"),
    ("", "mount: ['/dev/shm', 'tmpfs',"),
    ("", "mount: ['/workspace', 'tmpfs',"),
];

fn pretty_diff(lang: &str, from_scratch: &str, from_zygote: &str) {
    let a: Vec<&str> = from_scratch.lines().collect();
    let b: Vec<&str> = from_zygote.lines().collect();
    let explained = |line: &str, scratch_side: bool| {
        KNOWN_DIFFERENCES.iter().any(|&(s, z)| {
            let prefix = if scratch_side { s } else { z };
            !prefix.is_empty() && line.starts_with(prefix)
        })
    };
    let only_scratch: Vec<&&str> = a.iter().filter(|l| !b.contains(l) && !explained(l, true)).collect();
    let only_zygote: Vec<&&str> = b.iter().filter(|l| !a.contains(l) && !explained(l, false)).collect();
    assert!(
        only_scratch.is_empty() && only_zygote.is_empty(),
        "{lang}: the sandboxes differ\nonly from scratch: {only_scratch:#?}\nonly from the zygote: {only_zygote:#?}"
    );
    // Every mount point of one is a mount point of the other (the zygote's extra ones lie under the child's own).
    let points = |lines: &[&str]| -> std::collections::BTreeSet<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("mount: ['"))
            .map(|l| l.split('\'').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(points(&a), points(&b), "{lang}: mount points differ");
}

/// A program a zygote's child executes (every language but Python: the child forks and execs it) holds only its standard descriptors, starts with no signal blocked and SIGPIPE and SIGINT at their defaults,
/// and runs under the run's limits (open files 256, file size 64 MiB, core files none: the defaults).
#[test]
fn a_program_a_zygote_child_executes_holds_nothing_of_the_zygote_and_runs_under_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let sh = run(
        &e,
        "bash",
        "ls /proc/$$/fd > /tmp/fds; tr '\\n' ' ' < /tmp/fds; echo\n\
         grep -E '^(SigBlk|SigIgn):' /proc/self/status | tr -s '\\t' ' '\n\
         echo \"nofile $(ulimit -n) fsize $(ulimit -f) core $(ulimit -c)\"\n\
         trap -p\n\
         echo \"cwd $PWD\"",
    );
    let text = ok(&sh);
    let lines: Vec<&str> = text.lines().collect();
    // 0-2 and the script bash reads (255): nothing of the zygote's, the jail's or its child's. (Listed through a
    // file: in `ls … | tr` the shell's own ends of the pipe can still be open while `ls` reads the list.)
    assert_eq!(lines[0], "0 1 2 255 ", "{sh:#?}");
    // What a command of the script inherits (bash passes on the mask and ignored signals it started with):
    // no signal blocked; SIGPIPE (bit 13) and SIGINT (bit 2) not ignored.
    assert_eq!(lines[1], "SigBlk: 0000000000000000", "{sh:#?}");
    let ignored = u64::from_str_radix(lines[2].trim_start_matches("SigIgn: "), 16).unwrap();
    assert_eq!(ignored & ((1 << 12) | (1 << 1)), 0, "{sh:#?}");
    assert_eq!(
        lines[3],
        format!("nofile 256 fsize {} core 0", (64 << 20) / 1024),
        "{sh:#?}"
    );
    assert_eq!(lines.last().copied(), Some("cwd /workspace"), "{sh:#?}");
}
