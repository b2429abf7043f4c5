//! Faults from outside, against the real binary: a session's worker or a zygote killed outright, the data
//! directory's disk full, the SQLite store damaged or locked at start, the cgroup hierarchy missing. Each time the
//! other users keep being served, the fault is reported clearly (a JSON error with a stable code, a log line), no
//! finished async result is lost, and after a restart nothing of the fault is left. (The server itself killed
//! mid-run, and a run's jail killed, are in `async_executions_survive_restarts.rs`.)

use crate::live_server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live_server::*;
use runbox_testkit::procs::cmdline;
use serde_json::{json, Value};

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test found among the server's descendants; no memory is passed.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "signal {pid}");
}

fn parent_of(pid: u32) -> Option<u32> {
    processes().into_iter().find(|p| p.0 == pid).map(|p| p.1)
}

/// The server's descendants whose environment holds `var=value`.
fn descendants_with_env(server: &Server, var: &str, value: &str) -> Vec<u32> {
    let needle = format!("{var}={value}");
    server
        .descendants()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

async fn run_python(server: &Server, code: &str) -> Value {
    server
        .post("/execute", json!({"language": "python", "code": code}))
        .await
        .expect(200)
}

async fn submit(server: &Server, body: Value) -> String {
    let r = server.post("/executions", body).await;
    r.expect(202);
    r.header("location").expect("a Location").to_string()
}

async fn wait_for(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_worker_killed_outright_leaves_its_session_dead_and_everyone_else_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let finished = submit(&server, json!({"language": "bash", "code": "echo kept"})).await;
    let finished_view = server.poll_job(&finished, None, 20, |v| v["status"] == "done").await;
    let mark = format!("worker-{}", std::process::id());
    let create = |env: Value| server.post("/sessions", json!({"language": "python", "env": env}));
    let victim = create(json!({"FAULT_MARK": mark})).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = create(json!({})).await.expect(201)["id"].as_str().unwrap().to_string();
    for id in [&victim, &other] {
        let cell = server
            .post(&format!("/sessions/{id}/execute"), json!({"code": "x = 41"}))
            .await;
        assert_eq!(cell.expect(200)["status"], "ok");
    }
    let worker = descendants_with_env(&server, "FAULT_MARK", &mark)
        .into_iter()
        .find(|&p| cmdline(p).contains("python_worker"))
        .expect("the victim session's worker");
    signal(worker, libc::SIGKILL);

    // The session says it is dead without a cell having to find out, and the server logs it.
    let info_path = format!("/sessions/{victim}");
    wait_for(5, "the session reporting dead", async || {
        server.get(&info_path).await.expect(200)["state"] == "dead"
    })
    .await;
    let info = server.get(&info_path).await.expect(200);
    assert!(
        info["dead_reason"].as_str().is_some_and(|r| r.starts_with("killed")),
        "{info}"
    );
    server.expect_log("a session's worker ended between cells", 5).await;
    server
        .post(&format!("/sessions/{victim}/execute"), json!({"code": "x"}))
        .await
        .expect_error(409, "session_dead");
    wait_for(5, "the dead session's processes ending", async || {
        descendants_with_env(&server, "FAULT_MARK", &mark).is_empty()
    })
    .await;

    // Everyone else is served: the other session keeps its state, stateless runs and async jobs work.
    let cell = server
        .post(&format!("/sessions/{other}/execute"), json!({"code": "print(x + 1)"}))
        .await
        .expect(200);
    assert_eq!(cell["stdout"], "42\n", "{cell}");
    assert_eq!(run_python(&server, "print(6 * 7)").await["stdout"], "42\n");
    assert_eq!(server.get(&finished).await.expect(200), finished_view);

    // After a restart nothing of the session is left, and the finished result is.
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert_eq!(entries(&dir.path().join("sessions")), Vec::<String>::new());
    let server = Server::start(dir.path(), &[]);
    server.get(&info_path).await.expect_error(404, "not_found");
    assert_eq!(server.get(&finished).await.expect(200), finished_view);
}

/// The Python zygote's own process (not one of the sandboxes it forked): a `zygote.py` whose parent is not one.
fn python_zygote(server: &Server) -> Option<u32> {
    server.descendants().into_iter().map(|(p, _)| p).find(|&p| {
        cmdline(p).contains("zygote.py /workspace/.runbox/python_pooled.py")
            && parent_of(p).is_some_and(|pp| !cmdline(pp).contains("zygote.py"))
    })
}

async fn python_zygote_running(server: &Server) -> bool {
    let health = server.get("/health").await.expect(200);
    let pools = health["pools"].as_array().cloned().unwrap_or_default();
    pools
        .iter()
        .any(|p| p["language"] == "python" && p["zygote"] == "running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zygote_killed_outright_is_replaced_and_every_run_still_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    run_python(&server, "print(1)").await;
    wait_for(20, "the Python zygote starting", async || {
        python_zygote_running(&server).await && python_zygote(&server).is_some()
    })
    .await;
    let zygote = python_zygote(&server).unwrap();
    signal(zygote, libc::SIGKILL);
    // The kill lands between runs (a run taking a sandbox the zygote forked at the very instant it dies may fail).
    wait_for(5, "the zygote ending", async || python_zygote(&server) != Some(zygote)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Not one run fails: sandboxes the dead zygote had forked, or would have, are replaced.
    for i in 0..20 {
        let r = run_python(&server, &format!("print({i})")).await;
        assert_eq!(
            (r["status"].as_str(), r["stdout"].as_str()),
            (Some("ok"), Some(&*format!("{i}\n"))),
            "{r}"
        );
    }
    wait_for(20, "a new Python zygote", async || {
        python_zygote_running(&server).await && python_zygote(&server).is_some_and(|z| z != zygote)
    })
    .await;
    wait_for(5, "the log line", async || {
        server.log().contains("a zygote ended unexpectedly")
    })
    .await;
    // The dead zygote's workspace went with it: one `z…` workspace per running zygote.
    let health = server.get("/health").await.expect(200);
    let running = health["pools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["zygote"] == "running")
        .count();
    let zygote_workspaces = entries(&dir.path().join("runs"))
        .iter()
        .filter(|n| n.starts_with('z'))
        .count();
    assert_eq!(zygote_workspaces, running, "{health}");

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert_eq!(entries(&dir.path().join("runs")), Vec::<String>::new());
}

/// A tmpfs of `mb` MiB mounted for the test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, mb: u64) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m,mode=0700"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        SmallDisk(at.to_path_buf())
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![7u8; 64 << 10];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_refuses_async_jobs_with_storage_full_loses_no_result_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("data"), 16);
    let data = disk.0.clone();
    let mut server = Server::start(&data, &[]);
    let before = submit(&server, json!({"language": "bash", "code": "echo before"})).await;
    let before_view = server.poll_job(&before, None, 20, |v| v["status"] == "done").await;
    // A job whose result (300 kB) needs new pages in the store, finishing while the disk is full.
    let big = "sleep 2; head -c 300000 /dev/zero | tr '\\0' a";
    let during = submit(&server, json!({"language": "bash", "code": big})).await;
    server.poll_job(&during, None, 20, |v| v["status"] == "running").await;
    let filler = disk.fill();

    let refused = server
        .post("/executions", json!({"language": "bash", "code": "echo refused"}))
        .await;
    refused.expect_error(503, "storage_full");
    assert!(refused.header("retry-after").is_some());
    wait_for(5, "the log line", async || {
        server.log().contains("the data directory is full")
    })
    .await;
    // Runs that need no record are served meanwhile, and finished records can be read.
    let r = run_python(&server, "print(6 * 7)").await;
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("42\n")),
        "{r}"
    );
    assert_eq!(server.get(&before).await.expect(200), before_view);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(server.get(&during).await.expect(200)["status"], "queued");

    // Space comes back: the result that finished meanwhile is stored whole, and new jobs are taken again.
    std::fs::remove_file(&filler).unwrap();
    let view = server.poll_job(&during, None, 20, |v| v["status"] == "done").await;
    assert_eq!(
        view["result"]["stdout"].as_str().map(str::len),
        Some(300000),
        "{}",
        server.log()
    );
    let after = submit(&server, json!({"language": "bash", "code": "echo after"})).await;
    let after_view = server.poll_job(&after, None, 20, |v| v["status"] == "done").await;
    assert_eq!(after_view["result"]["stdout"], "after\n");

    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let server = Server::start(&data, &[]);
    assert_eq!(server.get(&before).await.expect(200), before_view);
    assert_eq!(server.get(&during).await.expect(200), view);
    drop(server);
    drop(disk);
}

/// Starts `runbox serve` on `data` expecting it to refuse: its exit status and what it printed.
fn serve_refusing(data: &Path) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUNBOX_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the server did not refuse to start: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_locked_job_store_stops_the_start_naming_the_file_and_is_never_replaced() {
    // Not a database at all.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runbox.sqlite3");
    let garbage: Vec<u8> = (0..16384u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&store, &garbage).unwrap();
    let (status, said) = serve_refusing(dir.path());
    assert!(!status.success());
    assert!(
        said.contains(&store.display().to_string()) && said.contains("damaged"),
        "{said}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), garbage, "the damaged store was changed");

    // A real store with a record, its table's pages then overwritten.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runbox.sqlite3");
    let mut server = Server::start(dir.path(), &[]);
    let kept = submit(&server, json!({"language": "bash", "code": "echo kept"})).await;
    let kept_view = server.poll_job(&kept, None, 20, |v| v["status"] == "done").await;
    server.terminate().await;
    let good = std::fs::read(&store).unwrap();
    assert!(good.len() >= 8192, "a store of {} bytes", good.len());
    let mut damaged = good.clone();
    for b in &mut damaged[4096..8192] {
        *b = 0x5a;
    }
    std::fs::write(&store, &damaged).unwrap();
    let (status, said) = serve_refusing(dir.path());
    assert!(!status.success());
    assert!(
        said.contains(&store.display().to_string()) && said.contains("damaged"),
        "{said}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), damaged, "the damaged store was changed");

    // Restored, it serves its records again.
    std::fs::write(&store, &good).unwrap();
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(server.get(&kept).await.expect(200), kept_view);
    server.terminate().await;

    // Locked by another process: refused, naming the file and the lock; served again once the lock is gone.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(&store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let (status, said) = serve_refusing(dir.path());
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(!status.success());
    assert!(
        said.contains(&store.display().to_string()) && said.contains("locked"),
        "{said}"
    );
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.get(&kept).await.expect(200), kept_view);
}

/// The server in a mount namespace of its own where `/sys/fs/cgroup` is gone.
const WITHOUT_CGROUPS: &[&str] = &[
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    "umount -l /sys/fs/cgroup && exec \"$@\"",
    "sh",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cgroup_hierarchy_fails_closed_with_the_reason_unless_degraded_mode_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_wrapped(dir.path(), &[], WITHOUT_CGROUPS);
    server.expect_log("no usable cgroups", 5).await;
    let ready = server.get("/health/ready").await.expect(503);
    assert!(
        ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no usable cgroups")),
        "{ready}"
    );
    // No run starts without its limits: each says why.
    let r = server
        .post("/execute", json!({"language": "python", "code": "print(1)"}))
        .await
        .expect(200);
    assert_eq!(r["status"], "sandbox_error", "{r}");
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains("no usable cgroups")),
        "{r}"
    );
    let refused = server.post("/sessions", json!({"language": "python"})).await;
    let body = refused.expect_error(503, "session_start_failed");
    assert!(
        body["message"].as_str().unwrap().contains("no usable cgroups"),
        "{body}"
    );
    let job = submit(&server, json!({"language": "bash", "code": "echo never"})).await;
    let view = server.poll_job(&job, None, 20, |v| v["status"] == "done").await;
    assert_eq!(view["result"]["status"], "sandbox_error", "{view}");
    drop(server);

    // The operator may allow running without cgroup limits: then runs succeed, and the degradation is shown.
    let server = Server::start_wrapped(dir.path(), &["allow_degraded=[\"no-cgroups\"]"], WITHOUT_CGROUPS);
    let r = run_python(&server, "print(6 * 7)").await;
    assert_eq!(
        (r["status"].as_str(), r["stdout"].as_str()),
        (Some("ok"), Some("42\n")),
        "{r}"
    );
    let health = server.get("/health").await.expect(200);
    assert!(
        health["sandbox"]["degraded"].to_string().contains("no-cgroups"),
        "{health}"
    );
}
