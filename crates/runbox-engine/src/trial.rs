//! A trial sandbox: `/bin/true` run in a full sandbox with a workspace where runs get theirs. It proves what a
//! probe of the host cannot (that the jail, the cgroup, the namespaces and the data directory work together), so
//! `runbox doctor` runs one, and the server runs one at start-up and again now and then for its readiness.

use std::path::Path;

use runbox_sandbox::probe;
use runbox_sandbox::{HostPolicy, Jail, Limits, SandboxSpec, Status, Workspace};

/// Runs `/bin/true` in a sandbox whose workspace is created under `runs_dir`; `Err` says what failed.
pub fn trial_sandbox(jail: &Jail, policy: &HostPolicy, runs_dir: &Path) -> Result<(), String> {
    let id = crate::random_id("trial-");
    let owner = probe::is_root().then_some(policy.host_uid);
    let workspace = Workspace::create(runs_dir, &id, Some(1 << 20), owner).map_err(|e| e.to_string())?;
    let spec = SandboxSpec {
        limits: Limits {
            wall_ms: 5000,
            ..Limits::default()
        },
        policy: policy.clone(),
        ..SandboxSpec::new(id, vec!["/bin/true".into()], workspace.path())
    };
    let outcome = jail.run(&spec, None, &mut |_, _| {}).map_err(|e| e.to_string())?;
    match outcome.status {
        Status::Ok => Ok(()),
        other => Err(format!(
            "{}: {}",
            other.as_str(),
            outcome.record.message.unwrap_or_default()
        )),
    }
}

impl crate::Engine {
    /// A trial sandbox with this engine's jail, policy and data directory (see [`trial_sandbox`]).
    pub fn trial_sandbox(&self) -> Result<(), String> {
        trial_sandbox(&self.config.jail, &self.config.policy, &self.runs_dir())
    }

    /// Why warm pools cannot serve, when there are pools and every one of them is failing.
    pub fn pools_unavailable(&self) -> Option<String> {
        self.pools.all_failing()
    }
}
