//! The reviewed list of syscalls a sandboxed program never needs.
//!
//! This file is data: each family names why it is denied. Denied calls fail with EPERM (not a kill) so that
//! runtimes that probe for features degrade gracefully. Every family has an integration test
//! (`tests/it/sandbox/seccomp_denies_each_family.rs` in the `runbox` crate) that calls it from inside a sandbox and expects EPERM.
//! To change this list, change the test too.

/// A group of syscalls denied for one reason.
pub struct Family {
    pub name: &'static str,
    pub why: &'static str,
    pub syscalls: &'static [(&'static str, i64)],
}

macro_rules! sys {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), libc::$name)),*] };
}

/// Syscalls denied outright, whatever their arguments.
pub const DENIED: &[Family] = &[
    Family {
        name: "mount",
        why: "the filesystem view is fixed before the program starts",
        syscalls: sys![
            SYS_mount,
            SYS_umount2,
            SYS_pivot_root,
            SYS_chroot,
            SYS_move_mount,
            SYS_open_tree,
            SYS_fsopen,
            SYS_fsconfig,
            SYS_fsmount,
            SYS_fspick,
            SYS_mount_setattr,
        ],
    },
    Family {
        name: "namespaces",
        why: "new namespaces would give the program a fresh set of capabilities to attack the kernel with",
        syscalls: sys![SYS_unshare, SYS_setns],
    },
    Family {
        name: "ptrace",
        why: "reading or steering other processes' memory",
        syscalls: sys![
            SYS_ptrace,
            SYS_process_vm_readv,
            SYS_process_vm_writev,
            SYS_kcmp,
            SYS_pidfd_getfd,
            SYS_process_madvise,
        ],
    },
    Family {
        name: "bpf",
        why: "loading programs into the kernel",
        syscalls: sys![SYS_bpf],
    },
    Family {
        name: "perf",
        why: "kernel profiling leaks addresses and timing",
        syscalls: sys![SYS_perf_event_open],
    },
    Family {
        name: "keyring",
        why: "the kernel keyring is not namespaced",
        syscalls: sys![SYS_add_key, SYS_request_key, SYS_keyctl],
    },
    Family {
        name: "kexec",
        why: "replacing the running kernel",
        syscalls: sys![SYS_kexec_load, SYS_kexec_file_load],
    },
    Family {
        name: "modules",
        why: "loading kernel code",
        syscalls: sys![SYS_init_module, SYS_finit_module, SYS_delete_module],
    },
    Family {
        name: "reboot",
        why: "host power state",
        syscalls: sys![SYS_reboot],
    },
    Family {
        name: "swap",
        why: "host memory configuration",
        syscalls: sys![SYS_swapon, SYS_swapoff],
    },
    Family {
        name: "clock",
        why: "the clock is shared with the host",
        syscalls: sys![SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex],
    },
    Family {
        name: "io_uring",
        why: "a large, often-exploited attack surface that also bypasses seccomp for the calls it carries",
        syscalls: sys![SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register],
    },
    Family {
        name: "userfaultfd",
        why: "a classic primitive for kernel race exploits",
        syscalls: sys![SYS_userfaultfd],
    },
    Family {
        name: "file_handles",
        why: "opening files by handle bypasses the mount view",
        syscalls: sys![SYS_open_by_handle_at, SYS_name_to_handle_at],
    },
    Family {
        name: "host_admin",
        why: "host-wide administration that has no meaning inside a sandbox",
        syscalls: sys![
            SYS_acct,
            SYS_quotactl,
            SYS_quotactl_fd,
            SYS_syslog,
            SYS_vhangup,
            SYS_sethostname,
            SYS_setdomainname,
            SYS_iopl,
            SYS_ioperm,
            SYS_uselib,
            SYS_ustat,
            SYS_sysfs,
            SYS__sysctl,
            SYS_lookup_dcookie,
            SYS_nfsservctl,
            SYS_fanotify_init,
            SYS_migrate_pages,
            SYS_move_pages,
        ],
    },
    Family {
        name: "numa",
        why: "NUMA placement is the host's decision (Docker's default profile grants it only with CAP_SYS_NICE); no \
              runtime we ship sets a memory policy unless asked (the JVM only with -XX:+UseNUMA), and a refused \
              call leaves the default policy in place. get_mempolicy (a read) stays open",
        syscalls: sys![SYS_mbind, SYS_set_mempolicy, SYS_set_mempolicy_home_node],
    },
    Family {
        name: "memfd_secret",
        why: "memory removed from the kernel's direct map: no runtime uses it, and it fragments the host's direct \
              map (the reason it is off by default); a program has nothing in a sandbox to hide from the kernel",
        syscalls: sys![SYS_memfd_secret],
    },
];

/// A socket address family and why a program may (or may not) open it.
pub struct SocketFamily {
    pub name: &'static str,
    pub family: i32,
    pub why: &'static str,
}

/// The only address families `socket` and `socketpair` accept; every other family fails with
/// [`SOCKET_FAMILY_ERRNO`]. Namespaces do not cover every family (vsock reaches the hypervisor whatever the network
/// namespace), so an allow-list, not a deny-list: a family added to a future kernel stays closed.
pub const ALLOWED_SOCKET_FAMILIES: &[SocketFamily] = &[
    SocketFamily {
        name: "AF_UNIX",
        family: libc::AF_UNIX,
        why: "local IPC inside the sandbox: multiprocessing, socketpair, language servers, test frameworks",
    },
    SocketFamily {
        name: "AF_INET",
        family: libc::AF_INET,
        why: "TCP/UDP on the sandbox's own loopback (its network namespace has nothing else)",
    },
    SocketFamily {
        name: "AF_INET6",
        family: libc::AF_INET6,
        why: "the same over IPv6; runtimes probe it at start-up (Go, Java) and want a socket or EAFNOSUPPORT",
    },
];

/// Families refused although a program might try them, each with the reason; every one has its own test
/// (`socket_family_*` in `tests/it/sandbox/seccomp_denies_each_family.rs`). Families not listed here are refused all the same.
pub const REFUSED_SOCKET_FAMILIES: &[SocketFamily] = &[
    SocketFamily {
        name: "AF_VSOCK",
        family: libc::AF_VSOCK,
        why: "vsock ignores network namespaces: on a VM host it reaches the hypervisor and other guests",
    },
    SocketFamily {
        name: "AF_PACKET",
        family: libc::AF_PACKET,
        why: "raw link-layer frames; a frequent source of kernel exploits",
    },
    SocketFamily {
        name: "AF_NETLINK",
        family: libc::AF_NETLINK,
        why: "talks to the kernel's subsystems (routing, netfilter, audit, ...), a large attack surface; no runtime \
              needs it to run: glibc's getaddrinfo assumes IPv4 and IPv6 when it is refused, only interface \
              listings (getifaddrs, os.networkInterfaces) fail, and the sandbox has only loopback to list",
    },
    SocketFamily {
        name: "AF_ALG",
        family: libc::AF_ALG,
        why: "the kernel's crypto API, a repeated source of kernel bugs; programs have their own crypto libraries",
    },
    SocketFamily {
        name: "AF_KEY",
        family: libc::AF_KEY,
        why: "IPsec key management of the host's kernel",
    },
    SocketFamily {
        name: "AF_BLUETOOTH",
        family: libc::AF_BLUETOOTH,
        why: "host hardware",
    },
    SocketFamily {
        name: "AF_XDP",
        family: libc::AF_XDP,
        why: "raw packet I/O bypassing the network stack",
    },
    SocketFamily {
        name: "AF_RDS",
        family: libc::AF_RDS,
        why: "a rarely used protocol with a history of exploits",
    },
    SocketFamily {
        name: "AF_TIPC",
        family: libc::AF_TIPC,
        why: "cluster IPC with a history of exploits",
    },
];

/// What `socket`/`socketpair` return for a refused family: the kernel's own answer for a family it lacks, which
/// runtimes already handle.
pub const SOCKET_FAMILY_ERRNO: i32 = libc::EAFNOSUPPORT;

/// `personality` values a program may set; any other fails with EPERM. 0 is the normal Linux personality (what
/// `personality(PER_LINUX)` restores), 0xffffffff only queries. Refused flags such as `ADDR_NO_RANDOMIZE`,
/// `READ_IMPLIES_EXEC` and `MMAP_PAGE_ZERO` switch off ASLR, make data executable or map page zero: they help
/// exploits, and no runtime sets them.
pub const ALLOWED_PERSONALITIES: &[(&str, u64)] = &[("PER_LINUX", 0), ("query", 0xffff_ffff)];

/// Namespace flags whose presence makes `clone` fail: the program may start processes and threads, never
/// namespaces.
pub const CLONE_NAMESPACE_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
    ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
    ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
    ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC as u64),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ("CLONE_NEWTIME", 0x80), // not exported by every libc version
];

/// ioctl requests denied because they push input into, or reprogram, a terminal the program does not own.
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", libc::TIOCSTI), ("TIOCLINUX", libc::TIOCLINUX)];

/// `clone3` passes its flags in memory that seccomp cannot inspect, so it fails with ENOSYS: C libraries then fall
/// back to `clone`, whose flags the filter can check.
pub const CLONE3_ERRNO: i32 = libc::ENOSYS;
