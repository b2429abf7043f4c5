//! The engine's life on a host (`runbox_engine::host`) is one for every command: `runbox run`, `runbox mcp` and
//! `runbox serve` each sweep what a `runbox` killed outright (`kill -9`) left in their data directory — its
//! sandbox's processes, cgroups and workspace — before they run anything; and a host started with every background
//! duty (trial sandboxes, warm pools and their zygotes, warm sessions, the reaper) leaves no sandbox process once
//! shut down.

use crate::common::runbox;
use crate::live_server::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbox_engine::host::{Background, Host, HostConfig};
use runbox_engine::sessions::{CreateSession, SessionLimits};
use runbox_engine::{EngineConfig, Jail};
use runbox_testkit::procs::{cmdline, is_live, named, processes, still_running};

/// Polls `cond` every 20 ms until it holds, failing the test after `secs` seconds.
fn poll_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} took longer than {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started or found and checked; no memory is passed.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "signal {pid}");
}

fn parent_of(pid: u32) -> Option<u32> {
    processes().into_iter().find(|p| p.0 == pid).map(|p| p.1)
}

fn start_time(pid: u32) -> Option<u64> {
    processes().into_iter().find(|p| p.0 == pid).map(|p| p.2)
}

/// What a `runbox run` killed outright left: a sandbox still running (its jail stopped, so that nothing of the
/// run's own ends it, as with a hung jail or one of an older runbox), its cgroups and its workspace.
struct Leftover {
    marker: String,
    sleeper: (u32, u64),
    jail: u32,
    workspaces: Vec<PathBuf>,
}

impl Leftover {
    /// Starts `runbox run` on `data_dir` with a program that sleeps, stops its jail and kills it with SIGKILL.
    fn left_by_a_killed_run(data_dir: &Path, name: &str) -> Leftover {
        let marker = format!("runbox-killed-run-{name}-{}", std::process::id());
        let code = format!("exec {{'sleep'}} '{marker}', '300';");
        let mut run: Child = runbox()
            .args(["run", "--lang", "perl", "--timeout-ms", "60000", "--code", &code])
            .env("RUNBOX_DATA_DIR", data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start runbox run");
        let mut sleeper = None;
        // The program names itself by the marker (the command line of `runbox run` carries it too).
        poll_until(20, "the program of runbox run starts", || {
            sleeper = named(&marker).into_iter().find(|&p| cmdline(p).starts_with(&marker));
            sleeper.is_some()
        });
        let sleeper = sleeper.unwrap();
        // The jail: the ancestor of the program that `runbox run` started itself.
        let mut jail = sleeper;
        while let Some(parent) = parent_of(jail) {
            if parent == run.id() {
                break;
            }
            assert!(parent > 1, "the program {sleeper} does not descend from runbox run");
            jail = parent;
        }
        let workspaces: Vec<PathBuf> = std::fs::read_dir(data_dir.join("runs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(!workspaces.is_empty(), "the run has a workspace");
        signal(jail, libc::SIGSTOP);
        run.kill().expect("SIGKILL runbox run");
        run.wait().expect("reap runbox run");
        std::thread::sleep(Duration::from_millis(300));
        let sleeper = (
            sleeper,
            start_time(sleeper).expect("the program outlives its runbox run"),
        );
        Leftover {
            marker,
            sleeper,
            jail,
            workspaces,
        }
    }

    /// Whether the program, the workspaces and the run's cgroups are all gone.
    fn swept(&self) -> bool {
        still_running(&[self.sleeper]).iter().all(|&(pid, _)| !is_live(pid))
            && self.workspaces.iter().all(|w| !w.exists())
            && self.cgroups().is_empty()
    }

    /// The run's cgroups still there.
    fn cgroups(&self) -> Vec<PathBuf> {
        crate::common::run_cgroups_left(&self.workspaces)
    }

    fn describe(&self) -> String {
        format!(
            "program {:?} live: {}; workspaces left: {:?}; cgroups left: {:?}",
            self.sleeper,
            is_live(self.sleeper.0),
            self.workspaces.iter().filter(|w| w.exists()).collect::<Vec<_>>(),
            self.cgroups()
        )
    }
}

impl Drop for Leftover {
    fn drop(&mut self) {
        // Let the stopped jail go (it ends at once: its caller is gone), and end the program should it be left.
        // SAFETY: kill(2) on the jail this test stopped; no memory is passed.
        unsafe { libc::kill(self.jail as libc::pid_t, libc::SIGCONT) };
        for pid in named(&self.marker) {
            // SAFETY: kill(2) on a process carrying this test's marker; no memory is passed.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

#[test]
fn runbox_run_sweeps_what_a_killed_runbox_run_left_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let left = Leftover::left_by_a_killed_run(dir.path(), "run");
    assert!(
        !left.swept(),
        "the killed run left nothing to sweep: the test proves nothing"
    );
    let out = runbox()
        .args(["run", "--lang", "bash", "--code", "echo next"])
        .env("RUNBOX_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "next\n", "{out:?}");
    assert!(left.swept(), "after the next runbox run: {}", left.describe());
    assert!(
        std::fs::read_dir(dir.path().join("runs")).unwrap().next().is_none(),
        "the next run's own workspace is gone too"
    );
}

#[test]
fn runbox_mcp_sweeps_what_a_killed_runbox_run_left_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let left = Leftover::left_by_a_killed_run(dir.path(), "mcp");
    assert!(
        !left.swept(),
        "the killed run left nothing to sweep: the test proves nothing"
    );
    let mut mcp = Command::new(env!("CARGO_BIN_EXE_runbox"))
        .arg("mcp")
        .env("RUNBOX_DATA_DIR", dir.path())
        .env_remove("RUNBOX_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start runbox mcp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left.swept() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let swept = left.swept();
    let described = left.describe();
    drop(mcp.stdin.take()); // the client goes: the stdio server ends
    let exited = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        mcp.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = mcp.kill();
        let _ = mcp.wait();
    }
    assert!(swept, "runbox mcp did not sweep: {described}");
    assert!(exited, "runbox mcp did not end when its client went");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbox_serve_sweeps_what_a_killed_runbox_run_left_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let left = Leftover::left_by_a_killed_run(dir.path(), "serve");
    assert!(
        !left.swept(),
        "the killed run left nothing to sweep: the test proves nothing"
    );
    let mut server = Server::start(dir.path(), &["pools.enabled=false"]);
    assert!(left.swept(), "by the time runbox serve listens: {}", left.describe());
    assert!(server.terminate().await.success());
}

/// Processes of the jails this process started whose sandboxes carry `marker`, with every descendant of those
/// jails, as (pid, start time).
fn sandboxes_carrying(marker: &str) -> Vec<(u32, u64)> {
    let me = std::process::id();
    let procs = processes();
    let parent = |pid: u32| procs.iter().find(|p| p.0 == pid).map(|p| p.1);
    let mut jails: Vec<u32> = Vec::new();
    for pid in named(marker) {
        let mut at = pid;
        while let Some(up) = parent(at) {
            if up == me {
                if !jails.contains(&at) {
                    jails.push(at);
                }
                break;
            }
            if up <= 1 {
                break;
            }
            at = up;
        }
    }
    let mut found: Vec<(u32, u64)> = procs
        .iter()
        .filter(|p| jails.contains(&p.0))
        .map(|p| (p.0, p.2))
        .collect();
    let mut frontier = jails;
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &procs {
            if ppid == parent {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

/// A host with every background duty: a trial sandbox, a warm Python pool (a zygote as root), a warm Python session
/// and one in use. Its shutdown ends every sandbox it started. The Python of this host (a language file override)
/// carries a marker on its command line, by which the test tells its sandboxes from every other test's.
#[test]
fn a_host_started_with_every_duty_leaves_no_sandbox_process_once_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("lifecycle{}", std::process::id());
    let langs = dir.path().join("languages");
    std::fs::create_dir(&langs).unwrap();
    let python = include_str!("../../../../../languages/python.toml").replace(
        "\"/usr/bin/python3\", \"-u\"",
        &format!("\"/usr/bin/python3\", \"-u\", \"-X\", \"runbox={marker}\""),
    );
    assert!(python.contains(&marker));
    std::fs::write(langs.join("python.toml"), python).unwrap();
    let host = Arc::new(
        Host::start(HostConfig {
            engine: EngineConfig {
                languages_dir: Some(langs),
                data_dir: dir.path().join("data"),
                policy: Default::default(),
                caps: Default::default(),
                jail: Jail::new(env!("CARGO_BIN_EXE_runbox"), vec!["jail".into()]),
                compile_cache_bytes: 0,
                pools: runbox_engine::pools::PoolConfig {
                    min: [("python".to_string(), 1)].into(),
                    ..Default::default()
                },
            },
            sessions: SessionLimits {
                warm: [("python".to_string(), 1)].into(),
                ..Default::default()
            },
            aggregate: None,
            key_caps: None,
            background: Background::SERVER,
        })
        .expect("start the host"),
    );
    assert!(host.protections().is_ok(), "{:?}", host.protections());
    host.first_trial();
    assert!(
        matches!(host.latest_trial(), Some((Ok(()), _))),
        "{:?}",
        host.latest_trial()
    );
    host.start_background();
    let session = host
        .sessions()
        .create(
            "me",
            &CreateSession {
                language: "python".into(),
                ..Default::default()
            },
        )
        .expect("a session");
    poll_until(60, "a warm pool sandbox and a warm session", || {
        let pooled = host
            .engine()
            .pool_stats()
            .iter()
            .any(|p| p.language == "python" && p.ready > 0);
        pooled && host.sessions().warm_count() > 0
    });
    let sandboxes = sandboxes_carrying(&marker);
    // A jail and its sandbox for the session, the warm session and the warm pool (as root, its zygote too).
    assert!(sandboxes.len() >= 6, "{sandboxes:?}");

    host.shutdown();
    // The jails end their sandboxes on SIGTERM, a moment after the shutdown asked them to.
    let ours = || -> Vec<(u32, Option<char>, String)> {
        let mut pids: Vec<u32> = still_running(&sandboxes).into_iter().map(|(pid, _)| pid).collect();
        pids.extend(named(&marker));
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter()
            .filter(|&p| is_live(p))
            .map(|p| (p, runbox_testkit::procs::state(p), cmdline(p)))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ours().is_empty() {
        assert!(Instant::now() < deadline, "outlived the host's shutdown: {:?}", ours());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        host.sessions().info("me", &session.id).err().map(|e| e.code()),
        Some("not_found"),
        "the session ended"
    );
}
