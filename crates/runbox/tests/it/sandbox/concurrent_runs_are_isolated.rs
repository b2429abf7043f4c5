//! Runs at the same time share nothing, and many of them at once all complete.

use crate::common;
use common::*;

#[test]
fn a_run_cannot_read_another_runs_workspace() {
    // The first run writes a secret into its workspace and waits; the second looks for it everywhere it can.
    let writer = std::thread::spawn(|| {
        run(
            "bash",
            "echo secret-4711 > /workspace/secret; sleep 2; cat /workspace/secret",
            &[],
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let reader = run(
        "bash",
        "grep -rs secret-47\"\"11 /workspace /tmp /dev /etc 2>/dev/null; \
         find / -name secret -not -path '/proc/*' 2>/dev/null; \
         ls /proc/*/root/workspace/secret /var/lib/runbox 2>/dev/null; echo searched",
        &["--timeout-ms", "20000"],
    );
    assert_status(&reader, Status::Ok);
    assert_eq!(reader.record.stdout, "searched\n");
    let writer = writer.join().unwrap();
    assert_eq!(writer.record.stdout, "secret-4711\n");
}

#[test]
fn fifty_concurrent_runs_all_complete() {
    let handles: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || run("python", &format!("import time; time.sleep(0.2); print({i} * 2)"), &[]))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_status(&out, Status::Ok);
        assert_eq!(out.record.stdout, format!("{}\n", i * 2));
    }
}
