//! The cgroup v2 code path, exercised as far as this host allows: on a hybrid host the unified hierarchy has no
//! memory or pids controllers, so this test covers creating a group, moving a process into it, reading it back,
//! killing everything in it and removing it. (The v1 path is exercised by every sandbox run on such a host.)

use std::path::PathBuf;
use std::process::Command;

use runbox_sandbox::cgroup::{self, CgroupV2};

fn v2_mount() -> Option<PathBuf> {
    let mount = cgroup::detect().v2_mount;
    if mount.is_none() && std::env::var_os("CI").is_some() {
        panic!("CI must have a cgroup v2 hierarchy mounted");
    }
    mount
}

#[test]
fn a_v2_group_holds_and_kills_a_process_tree() {
    if !nix_is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let Some(root) = v2_mount() else { return };
    let name = format!("test-{}", std::process::id());
    let group = CgroupV2::create(&root, "runbox-test", &name, None, None).expect("create a v2 group");
    let dir = group.path().to_path_buf();
    assert!(dir.exists());
    let mut child = Command::new("/bin/sh")
        .args(["-c", "sleep 100 & sleep 100; wait"])
        .spawn()
        .unwrap();
    group.add_process(child.id() as i32).unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l.trim() == child.id().to_string()), "{procs}");
    std::thread::sleep(std::time::Duration::from_millis(100)); // let the shell start its sleeps inside the group
    group.kill_all();
    assert!(group.is_empty());
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    drop(group);
    assert!(!dir.exists(), "the group is removed on drop");
}

fn nix_is_root() -> bool {
    runbox_sandbox::probe::is_root()
}
