//! `runbox` starts its sandboxes with the small `runbox-jail` beside it only when both were built from the same
//! sandbox sources: a jail binary left from another build could misread the spec.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

// One test, not two: a script written here while another test thread forks could be briefly busy (ETXTBSY).
#[test]
fn only_the_jail_built_with_runbox_is_accepted() {
    assert!(runbox_sandbox::is_our_jail(Path::new(env!(
        "CARGO_BIN_EXE_runbox-jail"
    ))));

    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("runbox-jail");
    std::fs::write(&stale, "#!/bin/sh\necho 0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!runbox_sandbox::is_our_jail(&stale), "a jail from another build");
    std::fs::write(&stale, format!("#!/bin/sh\necho {}\n", runbox_sandbox::BUILD_ID)).unwrap();
    assert!(runbox_sandbox::is_our_jail(&stale), "the check compares the printed id");
    assert!(
        !runbox_sandbox::is_our_jail(&dir.path().join("missing")),
        "no jail binary at all"
    );
}
