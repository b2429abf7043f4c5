//! Resource abuse: each limit stops the program with its own status, and the host stays unharmed.

mod common;
use common::*;

#[test]
fn fork_bomb_is_contained_by_the_process_limit() {
    let out = run(
        "bash",
        ":(){ :|:& };: ; sleep 3; echo survived",
        &["--timeout-ms", "1500", "--processes", "32"],
    );
    assert_status(&out, Status::Timeout);
    assert!(
        out.stderr.contains("fork") || out.stderr.contains("Resource temporarily unavailable"),
        "{out:#?}"
    );
}

#[test]
fn memory_bomb_is_reported_as_memory_limit() {
    let out = run(
        "python",
        "x = []\nwhile True: x.append(bytearray(8 << 20))",
        &["--memory-mb", "64"],
    );
    assert_status(&out, Status::MemoryLimit);
    // The peak may pass the limit by a page or so before the kernel reacts.
    assert!(out.memory_peak_bytes.unwrap() <= (64 << 20) + (2 << 20), "{out:#?}");
}

#[test]
fn busy_loop_hits_the_cpu_limit() {
    let out = run(
        "python",
        "while True: pass",
        &["--cpu-ms", "300", "--timeout-ms", "5000"],
    );
    assert_status(&out, Status::CpuLimit);
    assert!(out.wall_ms < 2000, "{out:#?}");
}

#[test]
fn busy_loop_hits_the_wall_time_limit() {
    let out = run("python", "while True: pass", &["--timeout-ms", "500"]);
    assert_status(&out, Status::Timeout);
    // SIGINT came first: Python had the chance to raise KeyboardInterrupt.
    assert!(out.stderr.contains("KeyboardInterrupt"), "{out:#?}");
}

#[test]
fn sleep_1000_is_stopped_by_the_wall_time_limit() {
    let started = std::time::Instant::now();
    let out = run("bash", "sleep 1000", &["--timeout-ms", "500"]);
    assert_status(&out, Status::Timeout);
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn ignoring_sigint_and_sigterm_does_not_survive_the_grace_period() {
    let code = r#"import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('ignoring', flush=True)
time.sleep(1000)
"#;
    let started = std::time::Instant::now();
    let out = run("python", code, &["--timeout-ms", "500"]);
    assert_status(&out, Status::Timeout);
    assert_eq!(out.stdout, "ignoring\n");
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn output_flood_of_a_gibibyte_is_cut_quickly() {
    let started = std::time::Instant::now();
    let out = run("bash", "head -c 1073741824 /dev/zero", &["--output-bytes", "65536"]);
    assert_status(&out, Status::OutputLimit);
    assert!(out.stdout_truncated);
    assert_eq!(out.stdout.len(), 65536);
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn filling_tmp_stops_at_its_size() {
    let code = "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1 | grep -o 'No space left on device'; ls -l /tmp/fill | awk '{print $5}'";
    let out = run("bash", code, &["--tmp-mb", "8"]);
    assert_status(&out, Status::Ok);
    assert!(out.stdout.contains("No space left on device"), "{out:#?}");
    let size: u64 = out.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(size <= 8 << 20, "{size}");
}

#[test]
fn filling_the_workspace_stops_at_its_size() {
    let code = "dd if=/dev/zero of=/workspace/fill bs=1M count=100 2>&1 | grep -o 'No space left on device'";
    let out = run("bash", code, &["--workspace-mb", "8", "--file-size-mb", "128"]);
    assert_status(&out, Status::Ok);
    assert!(out.stdout.contains("No space left on device"), "{out:#?}");
}

#[test]
fn file_size_limit_applies_per_file() {
    let code = "import os\ntry:\n    open('big', 'wb').write(b'x' * (3 << 20))\nexcept OSError as e:\n    print('refused', e.errno)\n";
    let out = run("python", code, &["--file-size-mb", "1"]);
    // RLIMIT_FSIZE raises SIGXFSZ, which kills Python unless ignored; either way the file stays small.
    assert!(matches!(out.status, Status::Killed | Status::Ok), "{out:#?}");
}

#[test]
fn open_files_are_limited_per_process() {
    let code = "import os\nfds = []\ntry:\n    while True: fds.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e:\n    print(len(fds) < 300, e.errno)";
    let out = run("python", code, &[]);
    assert_status(&out, Status::Ok);
    assert_eq!(out.stdout, "True 24\n", "{out:#?}"); // EMFILE under the default limit of 256
}

/// Starts `code` (Python) in a sandbox, waits for the first line it prints (it then holds what it took until
/// it ends), runs `while_held` on the host meanwhile, and returns that line.
fn while_a_sandbox_holds(code: &str, while_held: impl FnOnce(&str)) -> String {
    use std::io::BufRead;
    let mut child = runbox()
        .args(["run", "--lang", "python", "--timeout-ms", "20000", "--code", code])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start runbox");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    while_held(line.trim());
    let _ = child.wait();
    line.trim().to_string()
}

/// How many signals are queued, host-wide, for host uid 0 (`SigQ` counts the reading process's real user).
fn signals_queued_for_host_root() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("SigQ:")).expect("SigQ line");
    line[5..].trim().split('/').next().unwrap().parse().unwrap()
}

#[test]
fn a_sandbox_holding_every_inotify_instance_it_may_starves_neither_host_root_nor_another_sandbox() {
    let code = "import ctypes, time\nlibc = ctypes.CDLL(None, use_errno=True)\nfds = []\n\
                while len(fds) < 300:\n    fd = libc.inotify_init1(0)\n    if fd < 0: break\n    fds.append(fd)\n\
                print(len(fds), ctypes.get_errno(), flush=True)\ntime.sleep(3)";
    let line = while_a_sandbox_holds(code, |_| {
        // SAFETY: inotify_init1 returns a new descriptor (closed at once) or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        let error = std::io::Error::last_os_error();
        assert!(
            fd >= 0,
            "host root's inotify_init1 failed while a sandbox held its instances: {error}"
        );
        // SAFETY: closing the descriptor we just opened.
        unsafe { libc::close(fd) };
        // Another sandbox has a quota of its own, too.
        let other = run("python", code.trim_end_matches("time.sleep(3)"), &[]);
        assert_eq!(other.stdout, format!("128 {}\n", libc::EMFILE), "{other:#?}");
    });
    // The sandbox got its own quota (128, the host's usual per-user figure), then EMFILE.
    assert_eq!(line, format!("128 {}", libc::EMFILE), "{line}");
}

#[test]
fn a_sandbox_queuing_signals_is_capped_and_charged_to_its_own_uid_not_host_root() {
    let code = "import ctypes, os, signal, time\nlibc = ctypes.CDLL(None, use_errno=True)\n\
                sig = signal.SIGRTMIN\nsignal.pthread_sigmask(signal.SIG_BLOCK, [sig])\nn = 0\n\
                while n < 200000 and libc.sigqueue(os.getpid(), sig, ctypes.c_void_p(0)) == 0:\n    n += 1\n\
                print(n, ctypes.get_errno(), flush=True)\ntime.sleep(3)";
    let before = signals_queued_for_host_root();
    let line = while_a_sandbox_holds(code, |_| {
        let during = signals_queued_for_host_root();
        // A signal queue of the sandbox's own: host root's did not grow by the sandbox's ~1000 signals.
        assert!(
            during < before + 500,
            "the sandbox's signals were charged to host root: {before} queued before, {during} while it held"
        );
        // And host root can still queue one (a root process of its own, so no thread of the tests receives it).
        let ok = std::process::Command::new("python3")
            .args([
                "-c",
                "import ctypes, os, signal\nlibc = ctypes.CDLL(None, use_errno=True)\n\
                 signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])\n\
                 assert libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0)) == 0, ctypes.get_errno()",
            ])
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "host root's sigqueue failed while a sandbox held its signals"
        );
    });
    let queued: u64 = line.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(line, format!("{queued} {}", libc::EAGAIN), "{line}");
    assert!((1000..=1024).contains(&queued), "the sandbox queued {queued} signals");
}
