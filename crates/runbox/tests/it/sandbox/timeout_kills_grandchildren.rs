//! When a run ends, nothing it started is still alive: not background jobs, not double-forked `setsid` daemons.

use crate::common;
use common::*;

#[test]
fn daemons_do_not_outlive_a_run_that_exits() {
    let marker = "31415926";
    let code =
        format!("(setsid sleep {marker} &); (nohup sleep {marker} >/dev/null 2>&1 &); sleep {marker} & echo started");
    let out = run("bash", &code, &[]);
    assert_status(&out, Status::Ok);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        host_processes_matching(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
}

#[test]
fn double_forked_daemon_dies_on_timeout() {
    let marker = "27182818";
    let code = format!(
        r#"import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '{marker}'])
    os._exit(0)
time.sleep(1000)
"#
    );
    let out = run("python", &code, &["--timeout-ms", "500"]);
    assert_status(&out, Status::Timeout);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        host_processes_matching(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
}

#[test]
fn zombies_are_reaped_by_pid_1() {
    // Orphans are re-parented to the jail's PID 1, which reaps them while the program still runs.
    let code = "for i in 1 2 3 4 5; do (sleep 0.01 &) ; done; sleep 0.5; ps -eo stat= | grep -c Z || true";
    let out = run("bash", code, &[]);
    assert_status(&out, Status::Ok);
    assert_eq!(out.record.stdout.trim(), "0", "{out:#?}");
}
