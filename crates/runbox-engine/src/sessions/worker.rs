//! The language workers that run inside session sandboxes: which program each language uses, and the bits of
//! their line protocol the manager needs.

const PYTHON_WORKER: &str = include_str!("../../../../workers/python_worker.py");
const NODE_WORKER: &str = include_str!("../../../../workers/node_worker.js");
const BASH_WORKER: &str = include_str!("../../../../workers/bash_worker.sh");
const RUBY_WORKER: &str = include_str!("../../../../workers/ruby_worker.rb");
const R_WORKER: &str = include_str!("../../../../workers/r_worker.R");

/// How a language's sessions run: the worker file and its source, the interpreter argv before the worker's path,
/// and extra environment.
pub(super) struct Worker {
    pub(super) file: &'static str,
    pub(super) source: &'static str,
    pub(super) argv: &'static [&'static str],
    pub(super) env: &'static [(&'static str, &'static str)],
}

pub(super) fn worker_for(lang: &str) -> Option<Worker> {
    let (file, source, argv, env): (_, _, &'static [&'static str], &'static [(&'static str, &'static str)]) = match lang
    {
        "python" => ("python_worker.py", PYTHON_WORKER, &["/usr/bin/python3", "-u"], &[]),
        "javascript" => ("node_worker.js", NODE_WORKER, &["/usr/bin/node"], &[]),
        "typescript" => (
            "node_worker.js",
            NODE_WORKER,
            &["/usr/bin/node"],
            &[("RUNBOX_TYPESCRIPT", "1")],
        ),
        "bash" => ("bash_worker.sh", BASH_WORKER, &["/bin/bash"], &[]),
        "ruby" => ("ruby_worker.rb", RUBY_WORKER, &["/usr/bin/ruby"], &[]),
        "r" => ("r_worker.R", R_WORKER, &["/usr/bin/Rscript", "--vanilla"], &[]),
        _ => return None,
    };
    Some(Worker {
        file,
        source,
        argv,
        env,
    })
}

/// Languages with a session worker.
pub fn session_languages() -> &'static [&'static str] {
    &["python", "javascript", "typescript", "bash", "ruby", "r"]
}

/// End (exclusive) of the worker's `ready` line in `bytes`, if it is there.
pub(super) fn ready_line_end(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(pos) = bytes[start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[start..start + pos];
        if serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| v["event"] == "ready") {
            return Some(start + pos + 1);
        }
        start += pos + 1;
    }
    None
}
