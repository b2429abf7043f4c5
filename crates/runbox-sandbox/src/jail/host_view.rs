//! What a sandbox may not learn about its host: how long the host has been up (a time namespace whose monotonic
//! and boot clocks start at [`CLOCK_START_S`], which also shifts `/proc/uptime` and the boot time in `/proc/stat`)
//! and the host's load and boot id (files of /proc masked by [`PROC_MASKS`]).
//!
//! The jail's PID 1 applies both to the program (a zygote's own PID 1 applies neither: its children must mount
//! a /proc of their own, which the kernel refuses where /proc has files mounted over, and must reckon their clock
//! offsets from the host's clocks); a zygote's children apply them to themselves (`workers/zygote.py`) from the
//! same values, sent in their request.

use super::error::JailError;

/// Where a sandbox's monotonic and boot clocks start, in seconds (never 0: some runtimes take a zero clock for an
/// error).
pub const CLOCK_START_S: i64 = 100;

/// Files of /proc (relative to it) and what a sandbox reads there instead.
pub fn proc_masks() -> Vec<(&'static str, String)> {
    vec![
        ("loadavg", "0.00 0.00 0.00 1/1 1\n".to_string()),
        ("sys/kernel/random/boot_id", format!("{}\n", random_uuid())),
    ]
}

/// A random UUID (version 4) in its usual text form: a boot id of the sandbox's own.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom fills the buffer we pass, of the length we pass.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // No entropy to be had: a fixed id still hides the host's.
        b = [0x11; 16];
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether this kernel has time namespaces (Linux 5.6+, CONFIG_TIME_NS).
pub fn time_namespaces_available() -> bool {
    std::path::Path::new("/proc/self/ns/time").exists()
}

/// Puts this process's future children in a new time namespace whose clocks start at [`CLOCK_START_S`]. Must run
/// in the host's time namespace (the offsets are reckoned from its clocks), with CAP_SYS_ADMIN in the process's
/// user namespace, before any child exists.
pub fn time_namespace_for_children() -> Result<(), JailError> {
    const CLONE_NEWTIME: libc::c_int = 0x80;
    // SAFETY: unshare with a flag only; it affects the children this process creates from now on.
    if unsafe { libc::unshare(CLONE_NEWTIME) } != 0 {
        return Err(JailError::last_os("unshare time namespace"));
    }
    let now = |clock| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime fills the struct we pass.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec
    };
    // /proc/self belongs to the process only while it is dumpable (changing uids cleared that); dropping the
    // privileges later makes it undumpable again.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    let offsets = format!(
        "monotonic {} 0\nboottime {} 0\n",
        CLOCK_START_S - now(libc::CLOCK_MONOTONIC),
        CLOCK_START_S - now(libc::CLOCK_BOOTTIME)
    );
    std::fs::write("/proc/self/timens_offsets", offsets).map_err(JailError::TimeOffsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_boot_id_looks_like_one_and_differs_each_time() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(&a[14..15], "4");
    }
}
