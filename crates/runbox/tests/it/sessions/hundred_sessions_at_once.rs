//! A hundred Python sessions open at once on one machine: all start, all answer, all stay alive; what they cost
//! in memory is printed (no timing or size assertions beyond sanity); deleting them leaves no process behind.
//! Other tests run in the same process: this one counts only its own sandboxes, the jails whose workers carry one
//! of its sessions' marks (recorded by pid and start time, so that a jail left behind is still found).

use crate::session_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use session_support::*;
use tokio::sync::Semaphore;

const SESSIONS: usize = 100;
const AT_ONCE: usize = 8;

/// A field of /proc/meminfo or of a process's smaps_rollup, in bytes.
fn kb_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The process and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        all.push(pid);
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            stack.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    all
}

/// The live jails of this process whose sandbox holds a process carrying one of `marks` (the sessions' workers),
/// as (pid, start time): the sandboxes of this test, not those of tests running beside it.
fn jails_of(marks: &[String]) -> Vec<(u32, u64)> {
    let jails: HashSet<u32> = my_jails().iter().filter_map(|p| p.parse().ok()).collect();
    let procs = runbox_testkit::procs::processes();
    let parent: HashMap<u32, u32> = procs.iter().map(|&(pid, ppid, _)| (pid, ppid)).collect();
    let mut found = HashSet::new();
    for mark in marks {
        for line in processes_with_mark(mark) {
            let Some(mut pid) = line.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            // Up from the worker to the jail that holds it.
            while let Some(&ppid) = parent.get(&pid) {
                if jails.contains(&ppid) {
                    found.insert(ppid);
                    break;
                }
                pid = ppid;
            }
        }
    }
    procs
        .iter()
        .filter(|(pid, _, _)| found.contains(pid))
        .map(|&(pid, _, start)| (pid, start))
        .collect()
}

/// Of these jails (pid, start time), the ones still there: live ones, and zombies (`Z`) never waited for.
fn still_there(jails: &[(u32, u64)]) -> (Vec<u32>, Vec<u32>) {
    let now = runbox_testkit::procs::still_running(jails);
    now.iter()
        .map(|&(pid, _)| pid)
        .partition(|&pid| runbox_testkit::procs::is_live(pid))
}

/// Proportional set size of every session process (this test's jails and everything under them): memory shared
/// between sessions is divided among them instead of counted a hundred times.
fn sessions_pss(jails: &[(u32, u64)]) -> u64 {
    jails
        .iter()
        .map(|&(pid, _)| pid)
        .flat_map(tree)
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .map(|s| kb_field(&s, "Pss:"))
                .unwrap_or(0)
        })
        .sum()
}

fn mem_available() -> u64 {
    kb_field(&std::fs::read_to_string("/proc/meminfo").unwrap(), "MemAvailable:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_python_sessions_run_at_once_and_leave_nothing_behind() {
    let api = Arc::new(Api::new(|c| {
        c.sessions.max_per_owner = SESSIONS + 10;
    }));
    let available_before = mem_available();
    let started = Instant::now();

    let gate = Arc::new(Semaphore::new(AT_ONCE));
    let mut creating = Vec::new();
    for _ in 0..SESSIONS {
        let (api, gate) = (api.clone(), gate.clone());
        creating.push(tokio::spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let (id, mark) = api.create_marked(None, json!({"language": "python"})).await;
            let r = api.exec_ok(&id, "1 + 1").await;
            assert_eq!(r["result"]["text/plain"], "2", "{r}");
            (id, mark)
        }));
    }
    let mut sessions = Vec::new();
    for c in creating {
        sessions.push(within(300, "creating the sessions", c).await.expect("a session starts"));
    }
    let created_in = started.elapsed();
    assert_eq!(api.state.sessions.count(), SESSIONS);
    let marks: Vec<String> = sessions.iter().map(|(_, mark)| mark.clone()).collect();
    let jails = jails_of(&marks);
    assert_eq!(jails.len(), SESSIONS, "one sandbox per session");

    // All alive, all still answering, each with its own state.
    let mut rss_total = 0;
    for (i, (id, _)) in sessions.iter().enumerate() {
        let info = api.info(id).await;
        assert_eq!(info["state"], "idle", "{info}");
        assert_eq!(info["executions"], 1, "{info}");
        let rss = info["memory_bytes"].as_u64().unwrap();
        assert!(rss > 0, "{info}");
        rss_total += rss;
        api.exec_ok(id, &format!("mine = {i}")).await;
    }
    let listed = api.get("/sessions").send().await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), SESSIONS);
    for (i, (id, _)) in sessions.iter().enumerate().step_by(7) {
        let r = api.exec_ok(id, "mine").await;
        assert_eq!(r["result"]["text/plain"], i.to_string(), "sessions do not share state");
    }
    let pss_total = sessions_pss(&jails);
    let available_after = mem_available();
    const MIB: f64 = (1 << 20) as f64;
    eprintln!(
        "{SESSIONS} Python sessions created ({AT_ONCE} at a time) in {:.1} s",
        created_in.as_secs_f64()
    );
    eprintln!(
        "memory per idle Python session: {:.1} MiB RSS (memory_bytes: jail + init + worker), {:.1} MiB PSS, \
         {:.1} MiB less MemAvailable",
        rss_total as f64 / SESSIONS as f64 / MIB,
        pss_total as f64 / SESSIONS as f64 / MIB,
        available_before.saturating_sub(available_after) as f64 / SESSIONS as f64 / MIB
    );

    // Delete them all (concurrently too): no sandbox, no worker, no workspace remains.
    let mut deleting = Vec::new();
    for (id, _) in sessions.clone() {
        let api = api.clone();
        deleting.push(tokio::spawn(async move {
            api.delete(&format!("/sessions/{id}")).send().await.expect_bytes(204);
        }));
    }
    for d in deleting {
        within(60, "deleting the sessions", d).await.unwrap();
    }
    assert_eq!(api.state.sessions.count(), 0);
    assert!(api
        .get("/sessions")
        .send()
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (live, _) = still_there(&jails);
        let workers: Vec<String> = sessions
            .iter()
            .flat_map(|(_, mark)| processes_with_mark(mark))
            .collect();
        if live.is_empty() && workers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {} sandboxes, workers {workers:?}",
            live.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, zombies) = still_there(&jails);
    assert!(zombies.is_empty(), "every sandbox was collected: {zombies:?}");
    let sessions_dir = api.data_dir().join("sessions");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = std::fs::read_dir(&sessions_dir).map(|d| d.count()).unwrap_or(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} workspaces left in {}",
            sessions_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
