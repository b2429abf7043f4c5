//! Resource abuse: each limit stops the program with its own status, and the host stays unharmed.

use crate::common;
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
        out.record.stderr.contains("fork") || out.record.stderr.contains("Resource temporarily unavailable"),
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
    assert!(
        out.record.memory_peak_bytes.unwrap() <= (64 << 20) + (2 << 20),
        "{out:#?}"
    );
}

#[test]
fn busy_loop_hits_the_cpu_limit() {
    let out = run(
        "python",
        "while True: pass",
        &["--cpu-ms", "300", "--timeout-ms", "5000"],
    );
    assert_status(&out, Status::CpuLimit);
    assert!(out.record.wall_ms < 2000, "{out:#?}");
}

#[test]
fn a_one_threaded_spin_given_only_a_timeout_always_ends_as_timeout() {
    // The CPU limit defaults to the wall limit. Both count from the moment the program starts: when the CPU time
    // PID 1 spent building the sandbox was counted too, 24 of 30 such runs ended as `cpu_limit` instead.
    for (lang, code) in [("bash", "while :; do :; done"), ("python", "while True: pass")] {
        for _ in 0..4 {
            let out = run(lang, code, &["--timeout-ms", "300"]);
            assert_status(&out, Status::Timeout);
        }
    }
}

#[test]
fn busy_loop_hits_the_wall_time_limit() {
    // A CPU limit far away leaves the wall limit alone to act (even a program with several threads stops on it).
    let out = run(
        "python",
        "while True: pass",
        &["--timeout-ms", "500", "--cpu-ms", "10000"],
    );
    assert_status(&out, Status::Timeout);
    // SIGINT came first: Python had the chance to raise KeyboardInterrupt.
    assert!(out.record.stderr.contains("KeyboardInterrupt"), "{out:#?}");
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
    assert_eq!(out.record.stdout, "ignoring\n");
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn output_flood_of_a_gibibyte_is_cut_quickly() {
    let started = std::time::Instant::now();
    let out = run("bash", "head -c 1073741824 /dev/zero", &["--output-bytes", "65536"]);
    assert_status(&out, Status::OutputLimit);
    assert!(out.record.stdout_truncated);
    assert_eq!(out.record.stdout.len(), 65536);
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn filling_tmp_stops_at_its_size() {
    let code = "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1 | grep -o 'No space left on device'; ls -l /tmp/fill | awk '{print $5}'";
    let out = run("bash", code, &["--tmp-mb", "8"]);
    assert_status(&out, Status::Ok);
    assert!(out.record.stdout.contains("No space left on device"), "{out:#?}");
    let size: u64 = out.record.stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(size <= 8 << 20, "{size}");
}

#[test]
fn filling_the_workspace_stops_at_its_size() {
    let code = "dd if=/dev/zero of=/workspace/fill bs=1M count=100 2>&1 | grep -o 'No space left on device'";
    let out = run("bash", code, &["--workspace-mb", "8", "--file-size-mb", "128"]);
    assert_status(&out, Status::Ok);
    assert!(out.record.stdout.contains("No space left on device"), "{out:#?}");
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
    assert_eq!(out.record.stdout, "True 24\n", "{out:#?}"); // EMFILE under the default limit of 256
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
        assert_eq!(other.record.stdout, format!("128 {}\n", libc::EMFILE), "{other:#?}");
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

/// Four threads spinning for two seconds: `cpu_ms` of the whole run against its `wall_ms`.
fn four_thread_spin(flags: &[&str]) -> (u64, u64) {
    let code = "for i in 1 2 3 4; do ( while :; do :; done ) & done; sleep 2; kill $(jobs -p)";
    let out = run("bash", code, flags);
    assert_status(&out, Status::Ok);
    (out.record.cpu_ms.expect("cgroup CPU accounting"), out.record.wall_ms)
}

/// The CPU bandwidth (quota µs, period µs) the kernel holds for the run of a program renamed `marker`, read on
/// the host from the cgroup that process is in, while it runs.
fn cpu_bandwidth_of_run(marker: &str, flags: &[&str]) -> (u64, u64) {
    let code = format!("exec -a {marker} sleep 3");
    let mut cmd = runbox();
    cmd.args(["run", "--json", "--lang", "bash", "--code", &code])
        .args(flags);
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pid = loop {
        if let Some(found) = host_processes_matching(marker).first() {
            break found.split(':').next().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let host = runbox_sandbox::cgroup::detect();
    let in_force = runbox_sandbox::probe::decide(&runbox_sandbox::probe::host(), &Default::default()).unwrap();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let bandwidth = match in_force.cgroup.expect("cgroups in force") {
        runbox_sandbox::cgroup::CgroupVersion::V2 => {
            let path = membership.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let max = read(
                host.v2_mount
                    .unwrap()
                    .join(path.trim_start_matches('/'))
                    .join("cpu.max"),
            );
            let (quota, period) = max.trim().split_once(' ').unwrap();
            (quota.parse().unwrap(), period.parse().unwrap())
        }
        runbox_sandbox::cgroup::CgroupVersion::V1 => {
            let path = membership
                .lines()
                .find_map(|l| {
                    let mut parts = l.splitn(3, ':');
                    let controllers = parts.nth(1)?;
                    controllers.split(',').any(|c| c == "cpu").then(|| parts.next())?
                })
                .unwrap();
            let dir = host.v1_cpu.unwrap().join(path.trim_start_matches('/'));
            let number = |f: &str| read(dir.join(f)).trim().parse::<u64>().unwrap();
            (number("cpu.cfs_quota_us"), number("cpu.cfs_period_us"))
        }
    };
    let out = child.wait_with_output().unwrap();
    assert_status(&parse(&out), Status::Ok);
    bandwidth
}

/// The CPU bandwidth cap is written where the kernel enforces it: one core by default, what the run asks for
/// otherwise. (Read from the host, so it holds however busy the machine is.)
#[test]
fn each_run_is_held_to_its_cpu_bandwidth_in_the_kernel() {
    assert_eq!(cpu_bandwidth_of_run("rb-cpu-cap-default", &[]), (100_000, 100_000));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        let asked = cpu_bandwidth_of_run("rb-cpu-cap-two", &["--cpu-millicores", "2000"]);
        assert_eq!(asked, (200_000, 100_000));
    }
    let asked = cpu_bandwidth_of_run("rb-cpu-cap-half", &["--cpu-millicores", "500"]);
    assert_eq!(asked, (50_000, 100_000));
}

/// The cap in effect: by default a run gets one core's worth of CPU however many threads it starts (without the
/// cap, four spinning threads take every core: cpu_ms ≈ 2 × wall_ms on a 2-core machine); a run that asks for two
/// cores gets more than one.
#[test]
fn a_four_thread_spin_gets_one_core_by_default_and_more_when_it_asks_for_two() {
    // The spin lasts from the first loop to `kill`; the wall time also counts the sandbox's start and end, so
    // `cpu_ms` can only come under `wall_ms` — a small margin covers the accounting's granularity.
    let (cpu, wall) = four_thread_spin(&[]);
    assert!(
        cpu <= wall + wall / 10,
        "one core: cpu {cpu} ms in {wall} ms of wall time"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("one core only: a two-core run cannot be shown to get more");
        return;
    }
    // Whether two cores' worth arrives depends on what else the machine runs; a busy machine gets a few tries.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (cpu, wall) = four_thread_spin(&["--cpu-millicores", "2000"]);
        if cpu > wall + wall / 5 {
            return;
        }
        seen.push((cpu, wall));
    }
    // On a machine whose other work leaves this run less than two cores, "more than one core" cannot show; the
    // kernel-side test above proves the cap's value whatever the load.
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    if load > cores as f64 {
        eprintln!("inconclusive: load average {load} on {cores} cores; two-core runs got {seen:?} (cpu ms, wall ms)");
        return;
    }
    panic!("two cores never got more than one core's worth (cpu ms, wall ms): {seen:?}");
}
#[test]
fn a_cpu_bandwidth_below_a_tenth_of_a_core_is_refused() {
    let out = runbox()
        .args([
            "run",
            "--json",
            "--lang",
            "bash",
            "--code",
            "echo hi",
            "--cpu-millicores",
            "99",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limits.cpu_millicores"), "{stderr}");
}
