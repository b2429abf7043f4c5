//! Attempts to see or change the host from inside a sandbox. Each test asserts the attack failed and the host is
//! unharmed.

use crate::common;
use common::*;

#[test]
fn host_secrets_are_invisible() {
    // A "server config" with an API key, in a place the server could keep it.
    let dir = tempfile::Builder::new()
        .prefix("runbox-secret")
        .tempdir_in("/var/tmp")
        .unwrap();
    let secret = dir.path().join("config.toml");
    std::fs::write(&secret, "api_key = 'sk-live-123'\n").unwrap();
    let code = format!(
        r#"import os
for p in ['/etc/shadow', '/root', '/home', '/var', '/var/lib/runbox', '{secret}', '/proc/1/root/etc/shadow',
          '/work', '/sys', '/boot', '/opt']:
    print(p, os.path.exists(p))
"#,
        secret = secret.display()
    );
    let out = run("python", &code, &[]);
    assert_status(&out, Status::Ok);
    for line in out.record.stdout.lines() {
        assert!(line.ends_with("False"), "visible inside the sandbox: {line}");
    }
}

#[test]
fn reading_etc_shadow_fails() {
    let out = run("bash", "cat /etc/shadow; cat /proc/1/root/etc/shadow", &[]);
    assert_status(&out, Status::ExitedNonzero);
    assert!(!out.record.stdout.contains("root:"), "{out:?}");
}

#[test]
fn host_environment_does_not_leak() {
    let mut cmd = runbox();
    cmd.env("RUNBOX_TEST_API_KEY", "leaked-secret")
        .args(["run", "--json", "--lang", "bash", "--code", "env"]);
    let out = parse(&output_with_stdin(cmd, None));
    assert_status(&out, Status::Ok);
    assert!(!out.record.stdout.contains("leaked-secret"), "{}", out.record.stdout);
    assert!(out.record.stdout.contains("HOME=/workspace"), "{}", out.record.stdout);
}

#[test]
fn writes_outside_workspace_and_tmp_fail() {
    let code = r#"import os
for p in ['/usr/evil', '/etc/evil', '/evil', '/bin/evil', '/dev/evil', '/proc/evil']:
    try:
        open(p, 'w').write('x'); print('WROTE', p)
    except OSError as e:
        print('refused', p, e.errno)
open('/workspace/ok', 'w').write('x'); open('/tmp/ok', 'w').write('x'); print('workspace and tmp ok')
"#;
    let out = run("python", code, &[]);
    assert_status(&out, Status::Ok);
    assert!(!out.record.stdout.contains("WROTE"), "{}", out.record.stdout);
    assert!(out.record.stdout.contains("workspace and tmp ok"));
    assert!(!std::path::Path::new("/usr/evil").exists());
}

#[test]
fn program_runs_unprivileged_with_no_capabilities() {
    let out = run(
        "bash",
        "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        &[],
    );
    assert_status(&out, Status::Ok);
    let expected = "1000\n1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                    CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
    assert_eq!(out.record.stdout, expected);
}

#[test]
fn ptrace_of_the_parent_fails() {
    // PID 1 is the jail's init: the program must not be able to attach to it or read its memory.
    let code = r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH
print('attach', r, ctypes.get_errno())
try:
    open('/proc/1/mem', 'rb').read(1); print('READ MEMORY')
except OSError as e:
    print('mem refused', e.errno)
"#;
    let out = run("python", code, &[]);
    assert_status(&out, Status::Ok);
    assert!(out.record.stdout.contains("attach -1 1\n"), "{}", out.record.stdout);
    assert!(out.record.stdout.contains("mem refused"), "{}", out.record.stdout);
}

#[test]
fn mount_and_unshare_attempts_fail() {
    let out = run(
        "bash",
        "mount -t tmpfs none /tmp 2>&1; echo mount=$?; unshare -U -r true 2>&1; echo unshare=$?; \
         unshare -m true 2>&1; echo unshare_m=$?",
        &[],
    );
    assert_status(&out, Status::Ok);
    assert!(
        out.record.stdout.contains("mount=32") || out.record.stdout.contains("mount=1"),
        "{}",
        out.record.stdout
    );
    assert!(!out.record.stdout.contains("unshare=0"), "{}", out.record.stdout);
    assert!(!out.record.stdout.contains("unshare_m=0"), "{}", out.record.stdout);
}

#[test]
fn the_sandbox_sees_only_its_own_processes() {
    let out = run(
        "bash",
        "ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/comm; hostname",
        &[],
    );
    assert_status(&out, Status::Ok);
    let lines: Vec<&str> = out.record.stdout.lines().collect();
    let count: u32 = lines[0].trim().parse().unwrap();
    assert!(count <= 6, "saw {count} processes: {}", out.record.stdout);
    assert_eq!(lines[2], "runbox");
}

/// What a program reads of the host's uptime, load and boot id: `uptime monotonic | loadavg | boot_id`.
const HOST_VIEW_PROBE: &str = "import time\n\
    up = open('/proc/uptime').read().split()[0]\n\
    print(up, round(time.monotonic(), 1), '|', open('/proc/loadavg').read().strip(), '|', \
    open('/proc/sys/kernel/random/boot_id').read().strip())";

#[test]
fn the_hosts_uptime_load_and_boot_id_are_hidden() {
    let out = run("python", HOST_VIEW_PROBE, &[]);
    assert_status(&out, Status::Ok);
    let parts: Vec<&str> = out.record.stdout.trim().split(" | ").collect();
    let clocks: Vec<f64> = parts[0].split(' ').map(|c| c.parse().unwrap()).collect();
    // The sandbox's clocks started at 100 s when it was made (the host has been up far longer).
    for clock in clocks {
        assert!((100.0..130.0).contains(&clock), "{out:#?}");
    }
    assert_eq!(parts[1], "0.00 0.00 0.00 1/1 1");
    let host_boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_ne!(parts[2], host_boot_id.trim());
    assert_eq!(parts[2].len(), 36, "{out:#?}");
}
