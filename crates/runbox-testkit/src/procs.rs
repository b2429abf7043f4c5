//! Scans of the host's `/proc`: which processes there are, who their parent is, what they run and carry. Tests find
//! their own sandboxes by a mark of their own (a marker in a command line, a variable in an environment), never by
//! counting everything: other tests run in the same process and on the same host.

/// Every process of the host as (pid, parent pid, start time in clock ticks); the start time tells a reused pid
/// from the process that had it.
pub fn processes() -> Vec<(u32, u32, u64)> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain anything: fields count from the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): ppid is field 4, starttime field 22.
        if let (Some(ppid), Some(start)) = (fields.get(1), fields.get(19)) {
            if let (Ok(ppid), Ok(start)) = (ppid.parse(), start.parse()) {
                procs.push((pid, ppid, start));
            }
        }
    }
    procs
}

/// The state letter of a process (`R`, `S`, `Z`, ...), None once it is gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may contain anything.
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Whether the process is there and not a zombie.
pub fn is_live(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// The command line, arguments joined by spaces (empty once the process is gone).
pub fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

/// The command line's arguments.
pub fn args(pid: u32) -> Vec<Vec<u8>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Whether the environment of the process holds exactly this `NAME=value`.
pub fn has_env(pid: u32, var: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == var.as_bytes()))
}

/// Processes whose command line contains `marker`.
pub fn named(marker: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|&pid| cmdline(pid).contains(marker))
        .collect()
}

/// Processes whose command line or environment carries `marker`.
pub fn carrying(marker: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|pid| {
            ["cmdline", "environ"].iter().any(|f| {
                std::fs::read(format!("/proc/{pid}/{f}"))
                    .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker.as_bytes()))
            })
        })
        .collect()
}

/// Children of `parent` (zombies included).
pub fn children_of(parent: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|&(_, ppid, _)| ppid == parent)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Which of `before` (pid, start time) are still there (zombies included).
pub fn still_running(before: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let now = processes();
    before
        .iter()
        .copied()
        .filter(|&(pid, start)| now.iter().any(|&(p, _, s)| p == pid && s == start))
        .collect()
}
