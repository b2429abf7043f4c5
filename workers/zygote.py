# The zygote of a warm pool (run as `python3 -u /workspace/.runbox/zygote.py [PRELUDE]` in a jail of its own, in
# zygote mode; files rather than `-c` so that process listings stay short): a pre-initialised interpreter that
# clones one child per sandbox, so that a sandbox costs a clone instead of an interpreter's start-up and a fresh
# root filesystem.
#
# It never runs user code. It accepts connections on /workspace/zygote.sock from the host's per-run jails; each
# brings one request (a JSON header and six descriptors: the run's workspace as a detached mount, the program's
# stdin, stdout and stderr, the report pipe and the go pipe) and gets one child, cloned straight into fresh user,
# mount, PID, network, IPC and UTS namespaces as PID 1 of the new PID namespace. The child maps its ids, mounts its
# own /tmp, /dev/shm, /proc and the workspace, tells the jail its pid over the connection (the kernel translates
# it) and waits until the jail has moved it into the run's cgroup. Then it drops every capability, applies Landlock
# (rules the jail's PID 1 wrote to fd 6, built here on the child's own mounts) and the seccomp filter (compiled by
# the jail, read from fd 5), and only then starts the program in a child of its own: the pooled Python prelude
# in-process (the file argv[1] of the zygote names), or `execve` of the request's argv for every other language.
# From there it behaves like the jail's own PID 1: it reports `running`, forwards SIGINT, reaps, reports how the
# program ended, kills what is left and reports `reaped`; and it ends the sandbox if its jail goes away.
#
# Kernel interfaces Python does not wrap are called through ctypes; every failure is reported to the jail as
# `error <message>` and ends the child.
#
# These steps repeat the jail's own PID 1 (crates/runbox-sandbox/src/jail/init.rs) in Python: why, and the tests
# that keep the two copies the same (report lines, and what a program sees from inside), are in
# crates/runbox-sandbox/src/jail/from_zygote.rs. A change to one copy is a change to both.


def _runbox_zygote():
    import ctypes
    import json
    import os
    import resource
    import signal
    import socket
    import struct
    import sys
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # The same library through PyDLL, which keeps the GIL held across the call: the clone's child must start
    # in the state its parent was in.
    pylibc = ctypes.PyDLL(None, use_errno=True)
    pylibc.syscall.restype = ctypes.c_long

    CLONE_NEWNS = 0x00020000
    CLONE_NEWCGROUP = 0x02000000
    CLONE_NEWUTS = 0x04000000
    CLONE_NEWIPC = 0x08000000
    CLONE_NEWUSER = 0x10000000
    CLONE_NEWPID = 0x20000000
    CLONE_NEWNET = 0x40000000
    MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
    MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
    CLONE_NEWTIME = 0x80
    PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_SECCOMP = 4, 8, 22
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 24, 38, 47
    PR_CAP_AMBIENT_CLEAR_ALL = 4
    SECCOMP_MODE_FILTER = 2
    # The two older syscalls differ by architecture; the newer ones (move_mount, landlock_*) do not.
    SYS_CLONE, SYS_CAPSET = {"x86_64": (56, 126), "aarch64": (220, 91)}[os.uname().machine]
    SYS_MOVE_MOUNT = 429
    SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
    MOVE_MOUNT_F_EMPTY_PATH = 4
    AT_FDCWD = -100
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
    SANDBOX_ID = 1000

    class Failed(Exception):
        pass

    def check(ret, what):
        if ret < 0:
            raise Failed(f"{what}: {os.strerror(ctypes.get_errno())}")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    def read_all(fd):
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    # The seccomp programs, as the jail compiled them: (u32 count, count * 8-byte instructions) repeated.
    filters = []
    try:
        blob = read_all(5)
        os.close(5)
    except OSError:
        blob = b""
    while blob:
        (count,) = struct.unpack_from("=I", blob)
        insns = ctypes.create_string_buffer(blob[4 : 4 + count * 8], count * 8)
        filters.append((SockFprog(count, ctypes.addressof(insns)), insns))
        blob = blob[4 + count * 8 :]
    # The Landlock rules, as the jail wrote them: `handled <mask>`, then `rule <mask> <path>` lines.
    try:
        landlock = read_all(6).decode().split("\n")
        os.close(6)
    except OSError:
        landlock = None
    # The in-process prelude, from the file argv[1] names; compiled as `<string>`, the name it filters from
    # tracebacks.
    inproc_prelude = None
    if len(sys.argv) > 1:
        with open(sys.argv[1], "rb") as f:
            inproc_prelude = compile(f.read(), "<string>", "exec")
    main = sys.modules["__main__"].__dict__

    def write_line(fd, text):
        try:
            os.write(fd, (text + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    def mount(source, target, fstype, flags, data):
        enc = lambda s: None if s is None else s.encode()
        check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")

    def loopback_up():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            import fcntl

            req = struct.pack("16sH22x", b"lo", 0)  # struct ifreq: the name, then the flags
            flags = struct.unpack_from("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
        finally:
            s.close()

    def drop_privileges():
        for cap in range(64):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() == 22:
                break  # EINVAL: past the last capability this kernel knows
        check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
        data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): all empty
        check(libc.syscall(SYS_CAPSET, header, data), "capset")
        check(libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "PR_SET_KEEPCAPS")
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")

    def restrict_with_landlock():
        ruleset = -1
        for line in landlock:
            words = line.split(" ", 2)
            if words[0] == "handled":
                attr = ctypes.c_uint64(int(words[1]))
                ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), 8, 0)
                check(ruleset, "landlock_create_ruleset")
            elif words[0] == "rule":
                parent = os.open(words[2], os.O_PATH | os.O_CLOEXEC)
                attr = ctypes.create_string_buffer(struct.pack("=Qi", int(words[1]), parent), 12)
                check(libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, attr, 0), f"landlock rule for {words[2]}")
                os.close(parent)
        if ruleset < 0:
            raise Failed("landlock: no ruleset in the zygote's kit")
        check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
        os.close(ruleset)

    def place_descriptors(fds):
        # Moved high first so that placing one cannot overwrite another source.
        high = [(fcntl_dup_high(fd), to) for fd, to in fds]
        for fd, to in high:
            os.dup2(fd, to, inheritable=True)
            os.close(fd)

    def fcntl_dup_high(fd):
        import fcntl

        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 16)

    def find_program(name, path):
        if "/" in name:
            return name
        for directory in path.split(":"):
            candidate = os.path.join(directory, name)
            if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    def program(request, fds):
        """The program's process: its descriptors, directory and limits, then the program itself."""
        ws, stdin_r, stdout_w, stderr_w, report_w, go_r = fds
        report_w = fcntl_dup_high(report_w)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        place_descriptors([(stdin_r, 0), (stdout_w, 1), (stderr_w, 2), (go_r, 3)])
        os.chdir("/workspace")
        set_program_limits(request["rlimits"])
        argv = request.get("argv")
        if argv is None:
            # The Python prelude, in this already-started interpreter. Nothing of the jail's may stay open.
            os.closerange(4, 1 << 20)
            random = sys.modules.get("random")
            if random is not None:
                random.seed()
            del main["_runbox_zygote"]
            exec(inproc_prelude, main)
            os._exit(1)  # the prelude ends the process itself
        os.closerange(4, report_w)
        os.closerange(report_w + 1, 1 << 20)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        env = dict(item.split("=", 1) for item in request["env"])
        path = find_program(argv[0], env.get("PATH", ""))
        if path is None:
            write_line(report_w, f"error cannot execute {argv[0]}: not found in PATH")
            os._exit(127)
        try:
            os.execve(path, argv, env)
        except OSError as e:
            write_line(report_w, f"error cannot execute {path}: {e.strerror}")
            os._exit(127)

    def set_program_limits(limits):
        for resource_id, value in [
            (resource.RLIMIT_FSIZE, limits["file_size"]),
            (resource.RLIMIT_NOFILE, limits["open_files"]),
            (resource.RLIMIT_CORE, 0),
        ]:
            resource.setrlimit(resource_id, (value, value))
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))

    def hide_the_host(request):
        """The program's clocks start at a fixed value (a time namespace for our children, its offsets reckoned
        from the host's clocks, which the zygote shares) and the /proc files that describe the host are masked:
        the jail's choices (crates/runbox-sandbox/src/jail/host_view.rs), sent in the request."""
        start = request["clock_start_s"]
        if start is not None:
            check(libc.unshare(CLONE_NEWTIME), "unshare time namespace")
            monotonic = int(time.clock_gettime(time.CLOCK_MONOTONIC))
            boottime = int(time.clock_gettime(time.CLOCK_BOOTTIME))
            # /proc/self is ours to write only while we are dumpable; drop_privileges() clears it again.
            check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")
            with open("/proc/self/timens_offsets", "w") as f:
                f.write(f"monotonic {start - monotonic} 0\nboottime {start - boottime} 0\n")
        source = "/tmp/.proc-mask"
        for name, content in request["proc_masks"]:
            with open(source, "w") as f:
                f.write(content)
            mount(source, f"/proc/{name}", None, MS_BIND, None)
            mount(None, f"/proc/{name}", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
            os.unlink(source)

    def pid1(conn, request, fds):
        """PID 1 of the new namespaces: finish the sandbox, start the program, reap, report."""
        report_w = fds[4]
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        socket.sethostname("runbox")
        loopback_up()
        # With SO_PASSCRED on the jail's side, the kernel attaches our pid, translated into the jail's namespace.
        conn.sendmsg([b"pid"])
        if conn.recv(1) != b"\x01":
            os._exit(1)  # the jail went away before the sandbox was in its cgroup
        # The jail keeps its end of the connection for its whole life, and this sandbox must not outlive it: we are
        # not its child, so no parent-death signal can say it ended. The kernel sends SIGIO (waited for below with
        # the other signals) when the connection changes; a hung-up connection means the jail is gone.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGIO])
        import fcntl
        import select

        lifeline = conn.detach()
        fcntl.fcntl(lifeline, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(lifeline, fcntl.F_SETFL, fcntl.fcntl(lifeline, fcntl.F_GETFL) | os.O_ASYNC)
        watch = select.poll()
        watch.register(lifeline, select.POLLRDHUP)

        def jail_gone():
            return any(ev & (select.POLLHUP | select.POLLRDHUP | select.POLLERR) for _, ev in watch.poll(0))

        if jail_gone():
            os._exit(1)
        check(libc.unshare(CLONE_NEWCGROUP), "unshare cgroup namespace")
        hide_the_host(request)
        # Caps on the kernel's per-user counters in this sandbox's own user namespace, and the queue limits of
        # every process of the sandbox (the values are the jail's: crates/runbox-sandbox/src/jail/counters.rs).
        for name, value in request["counters"]:
            with open(f"/proc/sys/user/{name}", "w") as f:
                f.write(str(value))
        for resource_id, key in ((resource.RLIMIT_SIGPENDING, "sigpending"), (resource.RLIMIT_MSGQUEUE, "msgqueue")):
            value, hard = request["rlimits"][key], resource.getrlimit(resource_id)[1]
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)  # lowered, never raised
            resource.setrlimit(resource_id, (value, value))
        os.setsid()
        drop_privileges()
        if landlock is not None:
            restrict_with_landlock()
        for fprog, _ in filters:
            check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD, signal.SIGINT])
        child = os.fork()
        if child == 0:
            try:
                program(request, fds)
            except BaseException as e:
                write_line(report_w, f"error program setup: {e}")
            os._exit(127)
        for fd in fds[:4] + fds[5:]:
            os.close(fd)
        write_line(report_w, "running")
        status = None
        while status is None:
            sig = signal.sigwait([signal.SIGCHLD, signal.SIGINT, signal.SIGIO])
            if sig == signal.SIGIO:
                if jail_gone():
                    # Ending PID 1 ends every process of its namespace.
                    os._exit(1)
                continue
            if sig == signal.SIGINT:
                try:
                    os.kill(-1, signal.SIGINT)
                except OSError:
                    pass
                continue
            while True:
                try:
                    pid, st = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid == child:
                    status = st
        if os.WIFEXITED(status):
            write_line(report_w, f"exit {os.WEXITSTATUS(status)}")
        elif os.WIFSIGNALED(status):
            write_line(report_w, f"signal {os.WTERMSIG(status)}")
        # Nothing the program started may outlive it.
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        write_line(report_w, "reaped")
        os._exit(0)

    def clone_sandbox():
        """A child in fresh user, mount, PID, network, IPC and UTS namespaces, as PID 1 of the new PID namespace.
        A raw clone rather than fork-then-unshare: one copy of the interpreter per sandbox instead of two.
        Returns 0 in the child, like fork."""
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        # The child writes its own id maps through /proc/self, which only a dumpable process owns.
        check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "PR_SET_DUMPABLE")
        pid = pylibc.syscall(SYS_CLONE, flags | signal.SIGCHLD, 0, 0, 0, 0)
        if pid != 0:
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        if pid < 0:
            raise Failed(f"clone the sandbox's namespaces: {os.strerror(ctypes.get_errno())}")
        return pid

    def sandbox(conn, listener, request, fds):
        """The zygote's child, PID 1 of its namespaces: its ids and mounts, then the rest of the sandbox."""
        report_w = fds[4]
        try:
            # Built at low priority, like every warm sandbox; the jail restores normal priority at the go signal.
            os.nice(10)
            listener.close()
            for fd in (3, 4):
                os.close(fd)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            with open("/proc/self/setgroups", "w") as f:
                f.write("deny")
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(f"{SANDBOX_ID} {SANDBOX_ID} 1\n")
            check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
            tmp = f"size={request['tmp_bytes']},mode=1777"
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp)
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, tmp)
            check(
                libc.syscall(SYS_MOVE_MOUNT, fds[0], b"", AT_FDCWD, b"/workspace", MOVE_MOUNT_F_EMPTY_PATH),
                "move the workspace into place",
            )
            os.close(fds[0])
            # Out of the zygote's own workspace (which holds its socket): nothing here may keep a way back to it.
            os.chdir("/workspace")
            fds[0] = os.open("/dev/null", os.O_RDONLY)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            pid1(conn, request, fds)
        except BaseException as e:
            write_line(report_w, f"error zygote child: {e}")
        os._exit(1)

    path = "/workspace/zygote.sock"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    # Children are reaped by the kernel: the zygote waits for no one.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Every object alive now moves to the collector's permanent generation: a collection in a child never walks
    # (and so never writes to, and copies) the pages the child shares with the zygote.
    import gc

    gc.collect()
    gc.freeze()
    os.write(4, b'{"ready": true}\n')
    while True:
        conn, _ = listener.accept()
        try:
            data, fds, _, _ = socket.recv_fds(conn, 65536, 6)
            if len(fds) != 6:
                raise ValueError(f"expected 6 descriptors, got {len(fds)}")
            request = json.loads(data)
        except (OSError, ValueError) as e:
            write_line(2, f"zygote: bad request: {e}")
            conn.close()
            continue
        try:
            if clone_sandbox() == 0:
                sandbox(conn, listener, request, list(fds))
        except Failed as e:
            write_line(fds[4], f"error {e}")
        conn.close()
        for fd in fds:
            os.close(fd)


_runbox_zygote()
