//! What this machine has (memory, process ids), read once, so that defaults of aggregate caps can be sized from it
//! rather than fixed numbers that are too large on a small host and too small on a big one.

use std::sync::OnceLock;

/// Physical memory in bytes (`MemTotal`), or 4 GiB when /proc cannot be read.
pub fn memory_bytes() -> u64 {
    static MEMORY: OnceLock<u64> = OnceLock::new();
    *MEMORY.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(4 << 30)
    })
}

/// Processes (threads) the kernel allows at once: the smaller of `pid_max` and `threads-max`.
pub fn max_processes() -> u64 {
    static PROCS: OnceLock<u64> = OnceLock::new();
    *PROCS.get_or_init(|| {
        let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok();
        match (read("/proc/sys/kernel/pid_max"), read("/proc/sys/kernel/threads-max")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => 32_768,
        }
    })
}

/// CPU cores this process may run on (1 when that cannot be told): the default ceiling of a run's CPU bandwidth.
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_machine_is_read() {
        assert!(super::memory_bytes() >= 64 << 20);
        assert!(super::max_processes() >= 100);
    }
}
