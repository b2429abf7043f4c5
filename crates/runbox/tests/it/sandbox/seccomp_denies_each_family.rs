//! One test per family of `runbox_sandbox::seccomp::policy::DENIED`: every syscall of the family, called from inside
//! a sandbox with zero arguments, fails with EPERM. Where a call would succeed without the filter (nested user
//! namespaces, PTRACE_TRACEME, the x32 ABI), a dedicated test proves the filter, not a missing capability, said no.
//! Socket families: each refused family of `policy::REFUSED_SOCKET_FAMILIES` has its own test, and one test sweeps
//! every family number.

use crate::common;
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
    out.record
        .stdout
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
    numa_family_is_denied => "numa",
    memfd_secret_is_denied => "memfd_secret",
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
    assert_eq!(out.record.stdout, "7\n", "{out:#?}");
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

/// `socket` and `socketpair` for `family`, from inside a sandbox: (name, ret, errno) of each call that failed.
fn socket_calls(family: i32) -> Vec<(String, i64, i64)> {
    let calls = vec![
        (
            "socket".to_string(),
            libc::SYS_socket,
            vec![family as i64, libc::SOCK_STREAM as i64, 0],
        ),
        (
            "socket_dgram".to_string(),
            libc::SYS_socket,
            vec![family as i64, libc::SOCK_DGRAM as i64, 0],
        ),
        (
            "socket_raw".to_string(),
            libc::SYS_socket,
            vec![family as i64, libc::SOCK_RAW as i64, 0],
        ),
    ];
    probe(&calls)
}

fn socket_family_is_refused(name: &str) {
    let family = policy::REFUSED_SOCKET_FAMILIES
        .iter()
        .find(|f| f.name == name)
        .expect("family is listed");
    let results = socket_calls(family.family);
    assert_eq!(results.len(), 3, "{name}: {results:?}");
    for (call, ret, errno) in results {
        assert_eq!(
            (ret, errno),
            (-1, policy::SOCKET_FAMILY_ERRNO as i64),
            "{name} {call} was not refused by the filter"
        );
    }
}

macro_rules! socket_family_tests {
    ($($test:ident => $family:literal),* $(,)?) => {
        $( #[test] fn $test() { socket_family_is_refused($family); } )*
        const SOCKET_FAMILIES_TESTED: &[&str] = &[$($family),*];
    };
}

socket_family_tests! {
    socket_family_vsock_is_refused => "AF_VSOCK",
    socket_family_packet_is_refused => "AF_PACKET",
    socket_family_netlink_is_refused => "AF_NETLINK",
    socket_family_alg_is_refused => "AF_ALG",
    socket_family_key_is_refused => "AF_KEY",
    socket_family_bluetooth_is_refused => "AF_BLUETOOTH",
    socket_family_xdp_is_refused => "AF_XDP",
    socket_family_rds_is_refused => "AF_RDS",
    socket_family_tipc_is_refused => "AF_TIPC",
}

#[test]
fn every_refused_socket_family_has_a_test() {
    let families: Vec<&str> = policy::REFUSED_SOCKET_FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(families, SOCKET_FAMILIES_TESTED);
}

#[test]
fn every_family_but_unix_and_inet_is_refused_and_those_work() {
    // Every family number the kernel knows of (AF_MAX is 46 today) and a few beyond: only the allowed ones open.
    let mut code = PRELUDE.to_string();
    code.push_str(&format!(
        "for fam in range(0, 64):\n    probe('f%d' % fam, {}, fam, {}, 0)\n",
        libc::SYS_socket,
        libc::SOCK_DGRAM
    ));
    code.push_str(&format!(
        "for fam in range(0, 64):\n    probe('p%d' % fam, {}, fam, {}, 0, 0)\n",
        libc::SYS_socketpair,
        libc::SOCK_DGRAM
    ));
    // socketpair with a real buffer, and a TCP connection over loopback on IPv4 and IPv6.
    code.push_str(
        "import socket\n\
         a, b = socket.socketpair()\na.send(b'x')\nassert b.recv(1) == b'x'\n\
         for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n\
         \x20   s = socket.socket(fam)\n    s.bind((host, 0))\n    s.listen()\n\
         \x20   c = socket.create_connection(s.getsockname()[:2])\n    c.close()\n\
         print('connected', 0, 0)\n\
         print('getaddrinfo', len(socket.getaddrinfo('localhost', 80)) > 0, 0)\n",
    );
    let out = run("python", &code, &[]);
    assert_status(&out, Status::Ok);
    let allowed: Vec<i64> = policy::ALLOWED_SOCKET_FAMILIES
        .iter()
        .map(|f| f.family as i64)
        .collect();
    let errno = policy::SOCKET_FAMILY_ERRNO.to_string();
    for line in out.record.stdout.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        let (name, ret, err) = (parts[0], parts[1], parts[2]);
        if let Some(fam) = name.strip_prefix('f').and_then(|f| f.parse::<i64>().ok()) {
            if allowed.contains(&fam) {
                assert!(ret != "-1", "socket({fam}) failed with errno {err}");
            } else {
                assert_eq!((ret, err), ("-1", errno.as_str()), "socket({fam}) was not refused");
            }
        } else if let Some(fam) = name.strip_prefix('p').and_then(|f| f.parse::<i64>().ok()) {
            if !allowed.contains(&fam) {
                assert_eq!((ret, err), ("-1", errno.as_str()), "socketpair({fam}) was not refused");
            }
        }
    }
    assert!(out.record.stdout.contains("connected 0 0"), "{out:#?}");
    assert!(out.record.stdout.contains("getaddrinfo True 0"), "{out:#?}");
}

#[test]
fn personality_may_be_queried_but_not_changed() {
    let calls = vec![
        ("query".to_string(), libc::SYS_personality, vec![0xffff_ffff]),
        ("per_linux".to_string(), libc::SYS_personality, vec![0]),
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO: each works without the filter.
        ("addr_no_randomize".to_string(), libc::SYS_personality, vec![0x0040000]),
        ("read_implies_exec".to_string(), libc::SYS_personality, vec![0x0400000]),
        ("mmap_page_zero".to_string(), libc::SYS_personality, vec![0x0100000]),
    ];
    let results = probe(&calls);
    let by_name = |n: &str| results.iter().find(|r| r.0 == n).cloned().expect("probed");
    assert_ne!(by_name("query").1, -1, "{results:?}");
    assert_ne!(by_name("per_linux").1, -1, "{results:?}");
    for n in ["addr_no_randomize", "read_implies_exec", "mmap_page_zero"] {
        assert_eq!((by_name(n).1, by_name(n).2), (-1, libc::EPERM as i64), "{n}");
    }
}
