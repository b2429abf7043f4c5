//! Landlock: a second wall behind the mount namespace. Even if a bind mount were writable by mistake, the program
//! may only write beneath /workspace, /tmp and /dev/shm, and to the few character devices it needs.

use landlock::{path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI};

/// The newest ABI this build knows; the kernel may offer less (best effort) or more.
const TARGET_ABI: ABI = ABI::V5;

/// Writable trees inside the sandbox.
const WRITABLE_DIRS: &[&str] = &["/workspace", "/tmp", "/dev/shm"];
/// Devices a program may write to.
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Restricts the calling thread (and its future children) to reading everywhere it can see and writing only
/// the sandbox's writable places. Returns whether the kernel enforced the rules.
pub fn restrict_self() -> Result<bool, String> {
    let abi = TARGET_ABI;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(WRITABLE_DIRS, AccessFs::from_all(abi))))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                WRITABLE_DEVICES,
                AccessFs::WriteFile | AccessFs::ReadFile,
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(status.ruleset != RulesetStatus::NotEnforced)
}

/// The same rules as text, for a zygote's children to build and enforce after they have mounted their own
/// /workspace, /tmp and /dev/shm (a rule names an inode, and a directory hidden under a mount grants nothing
/// to what is mounted on it, so the zygote's own ruleset would not do). One `handled <mask>` line, then one
/// `rule <mask> <path>` line per rule; masks are the kernel's `LANDLOCK_ACCESS_FS_*` bits for the ABI in use.
/// `None` when the kernel has no Landlock.
pub fn rules_for_zygote() -> Option<String> {
    let kernel = kernel_abi()?;
    // What best effort does with TARGET_ABI: the rights of the older of the two ABIs.
    let abi = if kernel >= TARGET_ABI as u32 {
        TARGET_ABI
    } else {
        ABI::from(kernel as i32)
    };
    let all = AccessFs::from_all(abi);
    let mut text = format!("handled {}\nrule {} /\n", all.bits(), AccessFs::from_read(abi).bits());
    for dir in WRITABLE_DIRS {
        text.push_str(&format!("rule {} {dir}\n", all.bits()));
    }
    let device = (AccessFs::WriteFile | AccessFs::ReadFile) & all;
    for device_path in WRITABLE_DEVICES {
        text.push_str(&format!("rule {} {device_path}\n", device.bits()));
    }
    Some(text)
}

/// The Landlock ABI version the running kernel supports, or `None` when Landlock is off or absent.
pub fn kernel_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the syscall only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}
