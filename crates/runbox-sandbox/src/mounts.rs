//! The sandbox's filesystem: a fresh tmpfs root holding read-only bind mounts of an allow-list of host paths, a
//! private /tmp, a fresh /proc, a minimal /dev and the run's workspace, entered with pivot_root so that nothing
//! else of the host stays reachable.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("mount: {what}: {reason}")]
pub struct MountError {
    what: String,
    reason: String,
}

fn err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> MountError {
    let what = what.into();
    move |e| MountError {
        what,
        reason: e.desc().to_string(),
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MountError {
    let what = what.into();
    move |e| MountError {
        what,
        reason: e.to_string(),
    }
}

/// Host paths visible (read-only) in every sandbox when they exist on the host. Symlinks (e.g. `/bin -> usr/bin`
/// on merged-/usr systems) are recreated as symlinks.
pub const DEFAULT_HOST_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
];

/// Files written fresh into the sandbox's /etc instead of being taken from the host.
const PASSWD: &str = "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n\
runbox:x:1000:1000:runbox:/workspace:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nrunbox:x:1000:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost runbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// How PID 1 reaches the run's workspace.
pub enum WorkspaceSource {
    /// A detached clone of the workspace's mount, made by the privileged jail before the sandbox's user namespace
    /// exists ([`detached_clone`]). PID 1 attaches it without any path lookup, so the workspace works wherever the
    /// data directory lives: the sandbox's ids need no access to its parents (a 0700 home or `mktemp -d`).
    Detached(RawFd),
    /// Unprivileged mode (no `open_tree` without CAP_SYS_ADMIN): PID 1 opens the host directory itself, with the
    /// invoking user's ids, which own the data directory.
    Path(PathBuf),
}

/// What to build; everything is decided before the namespaces exist.
pub struct RootPlan {
    pub host_paths: Vec<PathBuf>,
    /// What is mounted at /workspace.
    pub workspace: WorkspaceSource,
    pub tmp_bytes: u64,
    /// Mount over the /proc files that describe the host (`jail::host_view`); not in a zygote, whose children
    /// mount a /proc of their own (which the kernel refuses where /proc has files mounted over).
    pub mask_proc: bool,
}

/// A detached clone (`open_tree(OPEN_TREE_CLONE)`, not recursive, like a plain bind) of the mount at `path`, opened
/// with the caller's privileges and without following a symlink in the last component. Files written through
/// either mount are the same files. The sandbox attaches it with [`attach_detached`] in its own mount namespace.
pub fn detached_clone(path: &Path) -> Result<OwnedFd, MountError> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let what = || format!("clone the workspace mount {}", path.display());
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| MountError {
        what: what(),
        reason: "the path contains a NUL byte".into(),
    })?;
    // SAFETY: open_tree reads the NUL-terminated path and returns a new descriptor, which we own.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(MountError {
            what: what(),
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    // SAFETY: the descriptor was just returned by open_tree and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a detached mount (from [`detached_clone`]) at `dest` in this mount namespace.
fn attach_detached(fd: RawFd, dest: &Path) -> Result<(), MountError> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let what = "attach the workspace";
    let c_dest = CString::new(dest.as_os_str().as_encoded_bytes()).map_err(|_| MountError {
        what: what.into(),
        reason: "the path contains a NUL byte".into(),
    })?;
    // SAFETY: move_mount reads the two NUL-terminated strings and the descriptor; it changes only mounts.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_dest.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(MountError {
            what: what.into(),
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

/// Where the new root is assembled: a tmpfs mounted over /tmp in the private mount namespace (invisible to the host).
const STAGING: &str = "/tmp";

fn target(path: &Path) -> PathBuf {
    Path::new(STAGING).join(path.strip_prefix("/").unwrap_or(path))
}

fn mkdir_all(path: &Path) -> Result<(), MountError> {
    fs::create_dir_all(path).map_err(io(format!("create {}", path.display())))
}

fn touch(path: &Path) -> Result<(), MountError> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    fs::write(path, b"").map_err(io(format!("create {}", path.display())))
}

/// Flags of the mount holding `path` that a remount inside a user namespace must keep (the kernel locks them).
fn locked_flags(path: &Path) -> MsFlags {
    let mut flags = MsFlags::empty();
    if let Ok(st) = statvfs(path) {
        let f = st.flags();
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs_flag) {
                flags |= ms_flag;
            }
        }
    }
    flags
}

fn bind_read_only(source: &Path, dest: &Path) -> Result<(), MountError> {
    let what = format!("bind {} read-only", source.display());
    mount(Some(source), dest, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(err(what.clone()))?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | locked_flags(dest);
    mount(None::<&str>, dest, None::<&str>, flags, None::<&str>).map_err(err(what))
}

fn mount_tmpfs(dest: &Path, options: &str, flags: MsFlags) -> Result<(), MountError> {
    mount(Some("tmpfs"), dest, Some("tmpfs"), flags, Some(options)).map_err(err(format!("tmpfs on {}", dest.display())))
}

/// Places one host path (file, directory or symlink) into the staging root.
fn add_host_path(host: &Path) -> Result<(), MountError> {
    let Ok(meta) = fs::symlink_metadata(host) else {
        return Ok(());
    };
    let dest = target(host);
    if fs::symlink_metadata(&dest).is_ok() {
        return Ok(()); // already present (listed twice, or under an earlier bind)
    }
    if meta.file_type().is_symlink() {
        let link = fs::read_link(host).map_err(io(format!("read link {}", host.display())))?;
        if let Some(parent) = dest.parent() {
            mkdir_all(parent)?;
        }
        return symlink(&link, &dest).map_err(io(format!("symlink {}", dest.display())));
    }
    if meta.is_dir() {
        mkdir_all(&dest)?;
    } else {
        touch(&dest)?;
    }
    bind_read_only(host, &dest)
}

fn build_dev() -> Result<(), MountError> {
    let dev = target(Path::new("/dev"));
    mkdir_all(&dev)?;
    mount_tmpfs(&dev, "size=64k,mode=755", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let dest = dev.join(name);
        touch(&dest)?;
        mount(Some(&host), &dest, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(err(format!("bind {}", host.display())))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).map_err(io(format!("symlink /dev/{link}")))?;
    }
    let shm = dev.join("shm");
    mkdir_all(&shm)?;
    Ok(())
}

/// The workspace as PID 1 holds it between the start of the setup and its mount.
enum Reached {
    Detached(RawFd),
    Opened(OwnedFd),
}

/// Mounts a file of the sandbox's own over each /proc file that describes the host, read-only. The source file
/// is made in the sandbox's /tmp and removed once mounted: only the mount holds it. (Not in the staging root, which
/// cannot become read-only while it holds a removed file still in use.)
fn mask_proc_files(proc_dir: &Path) -> Result<(), MountError> {
    let source = target(Path::new("/tmp/.proc-mask"));
    for (file, content) in crate::jail::host_view::proc_masks() {
        let dest = proc_dir.join(file);
        fs::write(&source, content).map_err(io("write a /proc mask"))?;
        mount(Some(&source), &dest, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(err(format!("mask /proc/{file}")))?;
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(None::<&str>, &dest, None::<&str>, flags, None::<&str>)
            .map_err(err(format!("make the mask of /proc/{file} read-only")))?;
        fs::remove_file(&source).map_err(io("remove a /proc mask's source"))?;
    }
    Ok(())
}

/// Builds the new root and pivots into it. Runs as PID 1 of the new namespaces, with capabilities in the new user
/// namespace. Afterwards the host's root is detached and gone from this mount namespace.
pub fn enter_new_root(plan: &RootPlan) -> Result<(), MountError> {
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("make / private"))?;
    let workspace = reach_workspace(&plan.workspace)?;
    mount_tmpfs(
        Path::new(STAGING),
        "size=1m,mode=755",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    for host in &plan.host_paths {
        add_host_path(host)?;
    }
    write_etc()?;
    mount_workspace(workspace)?;
    mount_scratch_and_proc(plan)?;
    pivot_into_staging()
}

/// A path is opened before the staging tmpfs can hide it (the workspace may live under /tmp), without following a
/// symlink in its last component; bound later through the descriptor.
fn reach_workspace(source: &WorkspaceSource) -> Result<Reached, MountError> {
    Ok(match source {
        WorkspaceSource::Detached(fd) => Reached::Detached(*fd),
        WorkspaceSource::Path(path) => Reached::Opened(
            nix::fcntl::open(
                path,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(err(format!("open the workspace {}", path.display())))?,
        ),
    })
}

/// The sandbox's own /etc files, unless a host path already put one there.
fn write_etc() -> Result<(), MountError> {
    let etc = target(Path::new("/etc"));
    mkdir_all(&etc)?;
    for (name, content) in [
        ("passwd", PASSWD),
        ("group", GROUP),
        ("hosts", HOSTS),
        ("hostname", "runbox\n"),
    ] {
        let path = etc.join(name);
        if fs::symlink_metadata(&path).is_err() {
            fs::write(&path, content).map_err(io(format!("write /etc/{name}")))?;
        }
    }
    Ok(())
}

/// Mounts the workspace at /workspace, without setuid or devices.
fn mount_workspace(source: Reached) -> Result<(), MountError> {
    let workspace = target(Path::new("/workspace"));
    mkdir_all(&workspace)?;
    match source {
        Reached::Detached(fd) => {
            attach_detached(fd, &workspace)?;
            // SAFETY: closing the detached mount's descriptor, which PID 1 owns and no longer needs (the mount
            // stays attached).
            unsafe { libc::close(fd) };
            // A clone of a shared mount joins its peer group: cut it off, like the rest of this namespace.
            mount(
                None::<&str>,
                &workspace,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(err("make the workspace private"))?;
        }
        Reached::Opened(fd) => {
            let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            mount(Some(&source), &workspace, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(err("bind the workspace"))?;
        }
    }
    let ws_flags =
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | locked_flags(&workspace);
    mount(None::<&str>, &workspace, None::<&str>, ws_flags, None::<&str>).map_err(err("remount the workspace"))?;
    Ok(())
}

/// The private /tmp, /proc (its host-describing files masked), /dev and /dev/shm; then the modes of /workspace and
/// /tmp.
fn mount_scratch_and_proc(plan: &RootPlan) -> Result<(), MountError> {
    let tmp = target(Path::new("/tmp"));
    mkdir_all(&tmp)?;
    let tmp_opts = format!("size={},mode=1777", plan.tmp_bytes);
    mount_tmpfs(&tmp, &tmp_opts, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;

    let proc_dir = target(Path::new("/proc"));
    mkdir_all(&proc_dir)?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("mount /proc"))?;
    if plan.mask_proc {
        mask_proc_files(&proc_dir)?;
    }

    build_dev()?;
    let shm = target(Path::new("/dev/shm"));
    mount_tmpfs(&shm, &tmp_opts, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;

    for dir in ["/workspace", "/tmp"] {
        let _ = fs::set_permissions(
            target(Path::new(dir)),
            fs::Permissions::from_mode(if dir == "/tmp" { 0o1777 } else { 0o755 }),
        );
    }
    Ok(())
}

/// Makes the staging tmpfs the root, drops the host's, and makes the new root and /dev read-only.
fn pivot_into_staging() -> Result<(), MountError> {
    // pivot_root(".", ".") stacks the old root under the new one; detaching "." then drops the old root.
    std::env::set_current_dir(STAGING).map_err(io("enter the new root"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach the old root"))?;
    std::env::set_current_dir("/").map_err(io("chdir /"))?;

    // The staging tmpfs itself becomes read-only; /tmp, /workspace and /dev/shm are separate mounts.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(err("make / read-only"))?;
    mount(
        None::<&str>,
        "/dev",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("make /dev read-only"))?;
    Ok(())
}

/// Resolves a program name against a PATH value inside the sandbox (after pivot_root).
pub fn find_in_path(program: &str, path_var: &str) -> Option<CString> {
    if program.contains('/') {
        return CString::new(program).ok();
    }
    path_var.split(':').filter(|d| !d.is_empty()).find_map(|dir| {
        let candidate = Path::new(dir).join(program);
        let meta = fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .then(|| CString::new(candidate.into_os_string().into_encoded_bytes()).ok())
            .flatten()
    })
}
