//! One test per family of `runbox_sandbox::seccomp::policy::DENIED`: every syscall of the family, called from inside
//! a sandbox with zero arguments, fails with EPERM. Where a call would succeed without the filter (nested user
//! namespaces, PTRACE_TRACEME, the x32 ABI), a dedicated test proves the filter, not a missing capability, said no.

mod common;
use common::*;
use runbox_sandbox::seccomp::policy;

const PRELUDE: &str = r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def probe(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    if r == 0 and name.startswith('clone'):
        os._exit(0)
    print(name, r, e)
"#;

/// Runs the probes and returns `name -> errno` for calls that returned -1.
fn probe(calls: &[(String, i64, Vec<i64>)]) -> Vec<(String, i64, i64)> {
    let mut code = PRELUDE.to_string();
    for (name, nr, args) in calls {
        let args: String = args.iter().map(|a| format!(", {a}")).collect();
        code.push_str(&format!("probe('{name}', {nr}{args})\n"));
    }
    let out = run("python", &code, &[]);
    assert_status(&out, Status::Ok);
    out.stdout
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (
                parts[0].to_string(),
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

fn family_is_denied(name: &str) {
    let family = policy::DENIED.iter().find(|f| f.name == name).expect("family exists");
    let calls: Vec<_> = family
        .syscalls
        .iter()
        .map(|&(n, nr)| (n.to_string(), nr, vec![0, 0, 0, 0, 0, 0]))
        .collect();
    for (call, ret, errno) in probe(&calls) {
        assert_eq!(
            (ret, errno),
            (-1, libc::EPERM as i64),
            "{call} was not denied with EPERM"
        );
    }
}

macro_rules! family_tests {
    ($($test:ident => $family:literal),* $(,)?) => {
        $( #[test] fn $test() { family_is_denied($family); } )*
        const TESTED: &[&str] = &[$($family),*];
    };
}

family_tests! {
    mount_family_is_denied => "mount",
    namespace_family_is_denied => "namespaces",
    ptrace_family_is_denied => "ptrace",
    bpf_is_denied => "bpf",
    perf_is_denied => "perf",
    keyring_family_is_denied => "keyring",
    kexec_family_is_denied => "kexec",
    module_family_is_denied => "modules",
    reboot_is_denied => "reboot",
    swap_family_is_denied => "swap",
    clock_family_is_denied => "clock",
    io_uring_family_is_denied => "io_uring",
    userfaultfd_is_denied => "userfaultfd",
    file_handle_family_is_denied => "file_handles",
    host_admin_family_is_denied => "host_admin",
}

#[test]
fn every_policy_family_has_a_test() {
    let families: Vec<&str> = policy::DENIED.iter().map(|f| f.name).collect();
    assert_eq!(families, TESTED);
}

#[test]
fn calls_that_work_without_the_filter_are_refused_by_it() {
    let calls = vec![
        // A nested user namespace needs no capability: only seccomp stops it.
        (
            "unshare_newuser".to_string(),
            libc::SYS_unshare,
            vec![libc::CLONE_NEWUSER as i64],
        ),
        ("ptrace_traceme".to_string(), libc::SYS_ptrace, vec![0, 0, 0, 0]),
        (
            "process_vm_readv_self".to_string(),
            libc::SYS_process_vm_readv,
            vec![0, 0, 0, 0, 0, 0],
        ),
        ("x32_getpid".to_string(), libc::SYS_getpid | 0x4000_0000, vec![]),
    ];
    for (call, ret, errno) in probe(&calls) {
        assert_eq!((ret, errno), (-1, libc::EPERM as i64), "{call} was not denied");
    }
}

#[test]
fn clone_with_any_namespace_flag_is_denied_but_fork_works() {
    let mut calls: Vec<_> = policy::CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&(name, flag)| {
            (
                format!("clone_{name}"),
                libc::SYS_clone,
                vec![flag as i64 | libc::SIGCHLD as i64, 0, 0, 0, 0],
            )
        })
        .collect();
    calls.push(("clone3".to_string(), libc::SYS_clone3, vec![0, 0]));
    let results = probe(&calls);
    for (call, ret, errno) in &results {
        let expected = if call == "clone3" { libc::ENOSYS } else { libc::EPERM } as i64;
        assert_eq!((*ret, *errno), (-1, expected), "{call}");
    }
    let out = run(
        "python",
        "import os\npid = os.fork()\nif pid == 0: os._exit(7)\nprint(os.waitpid(pid, 0)[1] >> 8)",
        &[],
    );
    assert_eq!(out.stdout, "7\n", "{out:#?}");
}

#[test]
fn terminal_injection_ioctls_are_denied() {
    let calls: Vec<_> = policy::DENIED_IOCTLS
        .iter()
        .map(|&(name, req)| (name.to_string(), libc::SYS_ioctl, vec![0, req as i64, 0]))
        .collect();
    for (call, ret, errno) in probe(&calls) {
        assert_eq!((ret, errno), (-1, libc::EPERM as i64), "{call}");
    }
}
