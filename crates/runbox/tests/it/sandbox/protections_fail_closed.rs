//! `runbox doctor` reports what is in force, and a missing protection stops runs unless the operator names the
//! degradation: security fails closed.

use crate::common;
use common::*;

#[test]
fn doctor_reports_every_protection_in_force_on_this_host() {
    let out = runbox().args(["doctor", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let f = &report["in_force"];
    assert_eq!(f["seccomp"], true);
    assert_eq!(f["landlock"], true);
    assert_eq!(f["no_new_privs"], true);
    assert!(f["cgroup"] == "v1" || f["cgroup"] == "v2", "{f}");
    assert_eq!(f["cpu_cap"], true, "every run's CPU bandwidth is capped: {f}");
    assert_eq!(f["degraded"], serde_json::json!([]));
    assert_eq!(f["namespaces"].as_array().unwrap().len(), 7);
}

#[test]
fn an_unavailable_cgroup_version_is_refused_not_skipped() {
    let host = runbox_sandbox::cgroup::detect();
    if host.v2_usable() {
        return; // on a pure cgroup v2 host, v2 is available and this case cannot be shown
    }
    let out = runbox()
        .args(["run", "--json", "--cgroup", "v2", "--lang", "bash", "--code", "echo hi"])
        .output()
        .unwrap();
    let outcome = parse(&out);
    assert_status(&outcome, Status::SandboxError);
    assert!(
        outcome.record.message.as_deref().unwrap_or("").contains("cgroup v2"),
        "{outcome:#?}"
    );
    assert_eq!(outcome.record.stdout, "");
    let doctor = runbox().args(["doctor", "--cgroup", "v2"]).output().unwrap();
    assert!(!doctor.status.success(), "doctor must fail when the sandbox cannot run");
}

/// As an ordinary user runbox cannot create cgroups: it refuses unless `no-cgroups` is named, and then runs with
/// every other protection.
#[test]
fn unprivileged_mode_needs_the_named_degradation() {
    if !runbox_sandbox::probe::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: this test must not be skipped there"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let binary = dir.path().join("runbox");
    std::fs::copy(env!("CARGO_BIN_EXE_runbox"), &binary).unwrap();
    let as_nobody = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .args([
                "run",
                "--json",
                "--lang",
                "python",
                "--code",
                "import os; print(os.getuid())",
            ])
            .args(extra)
            .env("RUNBOX_DATA_DIR", dir.path().join("data"));
        cmd.output().expect("setpriv (util-linux) is installed")
    };
    let refused = parse(&as_nobody(&[]));
    assert_status(&refused, Status::SandboxError);
    assert!(
        refused.record.message.as_deref().unwrap_or("").contains("no-cgroups"),
        "{refused:#?}"
    );
    let ran = parse(&as_nobody(&["--allow-degraded", "no-cgroups"]));
    assert_status(&ran, Status::Ok);
    assert_eq!(ran.record.stdout, "1000\n");
}
