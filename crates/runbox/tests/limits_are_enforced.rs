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
