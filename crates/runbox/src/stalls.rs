//! Host-wide stalls over a stretch of time, from the kernel's pressure-stall totals (`/proc/pressure`) and the
//! steal time in `/proc/stat`. A soak that fails with runs starved for seconds can then be matched to a stall of
//! the whole machine (memory reclaim, I/O, a hypervisor taking the CPU) rather than blamed on runbox.

use serde::Serialize;

/// Cumulative totals at one moment, in microseconds (steal in clock ticks turned into microseconds).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stalls {
    /// Time every non-idle task waited for memory at once.
    pub memory_full_us: u64,
    /// Time every non-idle task waited for I/O at once.
    pub io_full_us: u64,
    /// Time some task waited for a CPU.
    pub cpu_some_us: u64,
    /// Time the hypervisor ran something else on this machine's virtual CPUs.
    pub steal_us: u64,
}

impl Stalls {
    /// The totals now; a counter the kernel does not offer reads as zero.
    pub fn now() -> Stalls {
        let pressure = |file: &str, line: &str| {
            std::fs::read_to_string(format!("/proc/pressure/{file}"))
                .ok()
                .and_then(|text| total_of(&text, line))
                .unwrap_or(0)
        };
        Stalls {
            memory_full_us: pressure("memory", "full"),
            io_full_us: pressure("io", "full"),
            cpu_some_us: pressure("cpu", "some"),
            steal_us: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| steal_us(&s))
                .unwrap_or(0),
        }
    }

    /// What accrued between `earlier` and `self`.
    pub fn since(&self, earlier: &Stalls) -> Stalls {
        Stalls {
            memory_full_us: self.memory_full_us.saturating_sub(earlier.memory_full_us),
            io_full_us: self.io_full_us.saturating_sub(earlier.io_full_us),
            cpu_some_us: self.cpu_some_us.saturating_sub(earlier.cpu_some_us),
            steal_us: self.steal_us.saturating_sub(earlier.steal_us),
        }
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        let ms = |us: u64| us / 1000;
        format!(
            "memory (all tasks) {} ms, I/O (all tasks) {} ms, CPU (some task) {} ms, steal {} ms",
            ms(self.memory_full_us),
            ms(self.io_full_us),
            ms(self.cpu_some_us),
            ms(self.steal_us)
        )
    }
}

/// `total=` of the `some` or `full` line of a pressure file.
fn total_of(text: &str, which: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(which))?;
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("total=")?.parse().ok())
}

/// The steal column (the eighth number) of `/proc/stat`'s `cpu` line, in microseconds.
fn steal_us(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    Some(ticks * 1_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_totals_and_steal_are_read_from_the_kernels_text() {
        let memory = "some avg10=0.02 avg60=0.04 avg300=0.06 total=303347932\n\
                      full avg10=0.00 avg60=0.00 avg300=0.00 total=53588997\n";
        assert_eq!(total_of(memory, "full"), Some(53_588_997));
        assert_eq!(total_of(memory, "some"), Some(303_347_932));
        assert_eq!(total_of("some avg10=0.00 total=5\n", "full"), None);
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        let stat = format!("cpu  2722024 180578 988150 1140326 16952 0 7264 {ticks} 0 0\ncpu0 1 2 3\n");
        assert_eq!(steal_us(&stat), Some(1_000_000));
    }

    #[test]
    fn a_stretch_is_the_difference_of_two_readings() {
        let a = Stalls {
            memory_full_us: 10,
            io_full_us: 20,
            cpu_some_us: 30,
            steal_us: 40,
        };
        let b = Stalls {
            memory_full_us: 2_010,
            io_full_us: 20,
            cpu_some_us: 3_030,
            steal_us: 41,
        };
        let d = b.since(&a);
        assert_eq!(
            (d.memory_full_us, d.io_full_us, d.cpu_some_us, d.steal_us),
            (2_000, 0, 3_000, 1)
        );
        assert!(d.describe().starts_with("memory (all tasks) 2 ms"), "{}", d.describe());
    }
}
