//! `runbox doctor`: what the host offers, what a run gets under the chosen policy, and a trial run that proves it.

use clap::Args;
use runbox_engine::host::{self, Background};
use runbox_sandbox::probe::Mode;

use crate::run::{policy_from_flags, CatalogueFlags, PolicyFlags};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    policy: PolicyFlags,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

pub fn main(args: DoctorArgs) -> anyhow::Result<i32> {
    let mut policy = policy_from_flags(&args.policy)?;
    let host::Assessment {
        report: host,
        protections: decision,
    } = host::assess(&mut policy);
    let trial = decision.as_ref().ok().map(|_| trial_run(policy));
    let ok = matches!(&trial, Some(Ok(())));

    if args.json {
        let report = serde_json::json!({
            "host": host,
            "in_force": decision.as_ref().ok(),
            "problem": decision.as_ref().err(),
            "trial_run": trial.as_ref().map(|t| t.as_ref().err().cloned().unwrap_or_else(|| "ok".into())),
            "ok": ok,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if ok { 0 } else { 1 });
    }

    println!("runbox doctor");
    println!("  kernel               {}", host.kernel);
    println!(
        "  mode                 {}",
        match host.mode {
            Mode::Root => "root (sandbox user maps to a dedicated host uid; runbox manages cgroups)",
            Mode::Unprivileged => "unprivileged (sandbox user maps to your own uid)",
        }
    );
    println!("available on this host");
    println!("  namespaces           {}", host.namespaces.join(" "));
    println!("  user namespaces      {}", yes(host.user_namespaces_enabled));
    println!("  seccomp              {}", yes(host.seccomp));
    println!(
        "  landlock             {}",
        host.landlock_abi
            .map(|v| format!("ABI {v}"))
            .unwrap_or_else(|| "NO".into())
    );
    let cg = &host.cgroups;
    println!(
        "  cgroup v2            {}",
        match &cg.v2_mount {
            None => "not mounted".to_string(),
            Some(m) => format!(
                "{} (controllers: {})",
                m.display(),
                if cg.v2_controllers.is_empty() {
                    "none".into()
                } else {
                    cg.v2_controllers.join(" ")
                }
            ),
        }
    );
    let v1: Vec<String> = [
        ("memory", &cg.v1_memory),
        ("pids", &cg.v1_pids),
        ("cpuacct", &cg.v1_cpuacct),
        ("cpu", &cg.v1_cpu),
    ]
    .iter()
    .filter_map(|(name, p)| p.as_ref().map(|p| format!("{name}={}", p.display())))
    .collect();
    println!(
        "  cgroup v1            {}",
        if v1.is_empty() {
            "not mounted".into()
        } else {
            v1.join(" ")
        }
    );
    match &decision {
        Ok(f) => {
            println!("in force for every run");
            println!("  namespaces           {}", f.namespaces.join(" "));
            println!(
                "  root filesystem      pivot_root into read-only binds of an allow-list; private /tmp, /proc, /dev"
            );
            println!("  network              loopback only");
            println!("  capabilities         all dropped; no_new_privs");
            println!(
                "  seccomp              {}",
                if f.seccomp {
                    "deny list (EPERM)"
                } else {
                    "OFF (degraded)"
                }
            );
            println!(
                "  landlock             {}",
                if f.landlock {
                    format!("on (kernel ABI {})", f.landlock_abi.unwrap_or(0))
                } else {
                    "OFF (degraded)".into()
                }
            );
            println!(
                "  cgroup               {}",
                match f.cgroup {
                    Some(v) => format!("{v:?} (memory, pids, cpu accounting)").to_lowercase(),
                    None => "OFF (degraded: no memory or process limits)".into(),
                }
            );
            println!(
                "  cpu bandwidth        {}",
                if f.cpu_cap {
                    "capped per run (default one core; limits.cpu_millicores)"
                } else {
                    "NOT capped (degraded)"
                }
            );
            if !f.degraded.is_empty() {
                println!("  degraded modes       {}", f.degraded.join(", "));
            }
        }
        Err(problem) => println!("cannot run sandboxes: {problem}"),
    }
    match &trial {
        Some(Ok(())) => println!("trial run              ok"),
        Some(Err(e)) => println!("trial run              FAILED: {e}"),
        None => {}
    }
    Ok(if ok { 0 } else { 1 })
}

/// Runs `/bin/true` in a full sandbox, with a workspace where runs get theirs: the engine started on this host
/// as `runbox run` starts it, one trial sandbox, and the engine's end. An engine that cannot start fails the trial.
fn trial_run(policy: runbox_sandbox::HostPolicy) -> Result<(), String> {
    let host = crate::run::host(policy, &CatalogueFlags::default(), Background::NONE).map_err(|e| e.to_string())?;
    let result = host.run_trial();
    host.shutdown();
    result
}
