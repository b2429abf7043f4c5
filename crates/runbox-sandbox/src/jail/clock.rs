//! The supervision loop's clocks: when the sandbox was launched, built and let go, which deadline comes next, and
//! how often the cgroup's CPU counter is read. Pure: the caller passes the time and what the cgroup said, so each
//! rule has its own test.

use std::time::{Duration, Instant};

use super::verdict::StopReason;

/// Longest time PID 1 may take to build the sandbox before the run is abandoned.
pub(super) const SETUP_DEADLINE: Duration = Duration::from_secs(10);
/// How often the cgroup's CPU counter is read when a CPU limit applies.
pub(super) const CPU_POLL: Duration = Duration::from_millis(20);
/// The slowest pace of those reads in a session that uses no CPU (the per-process RLIMIT_CPU stays a backstop).
pub(super) const IDLE_CPU_POLL: Duration = Duration::from_millis(640);
/// How long output may keep flowing after PID 1 is gone (only already-buffered bytes remain by then).
pub(super) const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

pub(super) struct Clocks {
    launched: Instant,
    /// PID 1 built the sandbox.
    pub(super) running: Option<Instant>,
    /// The limits count from here: when the sandbox was built, or for a warm sandbox its go.
    pub(super) started: Option<Instant>,
    /// The cgroup's CPU time before the go, which the run is not charged.
    pub(super) cpu_baseline: Duration,
    next_cpu_check: Instant,
    cpu_poll: Duration,
    last_cpu_used: Duration,
    /// After a timeout's SIGINT: when SIGKILL follows.
    pub(super) grace: Option<Instant>,
    /// Once the program is over: how long its remaining output may take.
    pub(super) drain: Option<Instant>,
}

impl Clocks {
    /// The clocks of a sandbox launched now.
    pub(super) fn new() -> Clocks {
        Clocks {
            launched: Instant::now(),
            running: None,
            started: None,
            cpu_baseline: Duration::ZERO,
            next_cpu_check: Instant::now() + CPU_POLL,
            cpu_poll: CPU_POLL,
            last_cpu_used: Duration::ZERO,
            grace: None,
            drain: None,
        }
    }

    /// A warm sandbox's go: the limits count from now, and CPU time used so far (`baseline`) is not charged.
    pub(super) fn go(&mut self, baseline: Duration) {
        self.cpu_baseline = baseline;
        self.started = Some(Instant::now());
        self.next_cpu_check = Instant::now() + CPU_POLL;
    }

    /// The deadline that ends the run if it passes: the sandbox's setup while it is not built, else the wall
    /// limit once the limits count. A warm sandbox waiting for its go has none.
    pub(super) fn limit_passed(&self, now: Instant, wall: Duration) -> Option<StopReason> {
        if self.running.is_none() && now >= self.launched + SETUP_DEADLINE {
            return Some(StopReason::SetupTimeout);
        }
        match self.started {
            Some(t) if now >= t + wall => Some(StopReason::Timeout),
            _ => None,
        }
    }

    /// Whether the cgroup's CPU counter is due to be read.
    pub(super) fn cpu_check_due(&self, now: Instant) -> bool {
        self.started.is_some() && now >= self.next_cpu_check
    }

    /// Takes a read of the cgroup's CPU counter (`None`: it could not be read) and schedules the next. True when
    /// the run has used more than `limit` since its go.
    pub(super) fn cpu_read(&mut self, now: Instant, used: Option<Duration>, session: bool, limit: Duration) -> bool {
        let mut over = false;
        if let Some(used) = used {
            over = used.saturating_sub(self.cpu_baseline) > limit;
            // An idle session is looked at less and less often (a thousand of them must not wake the host fifty
            // thousand times a second); any CPU use brings the pace back.
            self.cpu_poll = if session && used == self.last_cpu_used {
                (self.cpu_poll * 2).min(IDLE_CPU_POLL)
            } else {
                CPU_POLL
            };
            self.last_cpu_used = used;
        }
        self.next_cpu_check = now + self.cpu_poll;
        over
    }

    /// The soonest moment the loop must wake up at even if nothing happens; `grace_pending` while the SIGKILL of
    /// a timeout is still to come. `None`: sleep until something happens (a warm sandbox waiting for its go).
    pub(super) fn next_deadline(&self, wall: Duration, grace_pending: bool) -> Option<Instant> {
        let mut deadlines = Vec::with_capacity(4);
        if self.started.is_some() {
            deadlines.push(self.next_cpu_check);
        }
        match (self.running, self.started) {
            (None, _) => deadlines.push(self.launched + SETUP_DEADLINE),
            (_, Some(t)) => deadlines.push(t + wall),
            _ => {}
        }
        deadlines.extend(self.grace.filter(|_| grace_pending));
        deadlines.extend(self.drain);
        deadlines.into_iter().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: Duration = Duration::from_secs(3);

    fn built(at: Instant) -> Clocks {
        let mut c = Clocks::new();
        c.launched = at;
        c.running = Some(at);
        c.started = Some(at);
        c.next_cpu_check = at + CPU_POLL;
        c
    }

    #[test]
    fn a_sandbox_not_built_in_time_is_a_setup_timeout() {
        let c = Clocks::new();
        assert_eq!(c.limit_passed(c.launched, WALL), None);
        assert_eq!(
            c.limit_passed(c.launched + SETUP_DEADLINE, WALL),
            Some(StopReason::SetupTimeout)
        );
        assert_eq!(c.next_deadline(WALL, false), Some(c.launched + SETUP_DEADLINE));
    }

    #[test]
    fn the_wall_limit_counts_from_the_start() {
        let t0 = Instant::now();
        let c = built(t0);
        assert_eq!(c.limit_passed(t0 + WALL - Duration::from_millis(1), WALL), None);
        assert_eq!(c.limit_passed(t0 + WALL, WALL), Some(StopReason::Timeout));
        // A built sandbox is past its setup deadline without it mattering.
        assert_eq!(c.limit_passed(t0 + SETUP_DEADLINE, Duration::from_secs(60)), None);
    }

    #[test]
    fn a_warm_sandbox_waiting_for_its_go_has_no_deadline() {
        let mut c = Clocks::new();
        c.running = Some(c.launched);
        assert_eq!(c.limit_passed(c.launched + Duration::from_secs(3600), WALL), None);
        assert!(!c.cpu_check_due(c.launched + Duration::from_secs(3600)));
        assert_eq!(c.next_deadline(WALL, false), None);
    }

    #[test]
    fn the_go_restarts_the_clocks_and_the_cpu_baseline() {
        let mut c = Clocks::new();
        c.running = Some(c.launched);
        c.go(Duration::from_millis(700));
        let t = c.started.expect("started");
        assert_eq!(c.limit_passed(t + WALL, WALL), Some(StopReason::Timeout));
        // Only CPU time after the go counts.
        let limit = Duration::from_millis(100);
        assert!(!c.cpu_read(t, Some(Duration::from_millis(800)), false, limit));
        assert!(c.cpu_read(t, Some(Duration::from_millis(801)), false, limit));
    }

    #[test]
    fn the_cpu_counter_is_read_every_poll_and_over_the_limit_is_reported() {
        let t0 = Instant::now();
        let mut c = built(t0);
        assert!(!c.cpu_check_due(t0));
        assert!(c.cpu_check_due(t0 + CPU_POLL));
        let limit = Duration::from_millis(50);
        assert!(!c.cpu_read(t0 + CPU_POLL, Some(Duration::from_millis(50)), false, limit));
        assert!(!c.cpu_check_due(t0 + CPU_POLL));
        assert!(c.cpu_check_due(t0 + CPU_POLL * 2));
        assert!(c.cpu_read(t0 + CPU_POLL * 2, Some(Duration::from_millis(51)), false, limit));
        // A counter that cannot be read decides nothing but is tried again at the same pace.
        assert!(!c.cpu_read(t0 + CPU_POLL * 3, None, false, limit));
        assert!(c.cpu_check_due(t0 + CPU_POLL * 4));
    }

    #[test]
    fn an_idle_session_is_polled_less_and_less_often_until_it_uses_cpu() {
        let t0 = Instant::now();
        let mut c = built(t0);
        let limit = Duration::from_secs(60);
        let used = Some(Duration::from_millis(5));
        let mut now = t0;
        let mut paces = Vec::new();
        for _ in 0..8 {
            c.cpu_read(now, used, true, limit);
            paces.push(c.cpu_poll.as_millis());
            now += c.cpu_poll;
        }
        // The first read sees new CPU use; from then on the pace doubles up to its cap.
        assert_eq!(paces, [20, 40, 80, 160, 320, 640, 640, 640]);
        c.cpu_read(now, Some(Duration::from_millis(6)), true, limit);
        assert_eq!(c.cpu_poll, CPU_POLL);
        // A one-shot run is never slowed down.
        let mut c = built(t0);
        c.cpu_read(t0, used, false, limit);
        c.cpu_read(t0, used, false, limit);
        assert_eq!(c.cpu_poll, CPU_POLL);
    }

    #[test]
    fn the_next_deadline_is_the_soonest_that_still_matters() {
        let t0 = Instant::now();
        let mut c = built(t0);
        assert_eq!(c.next_deadline(WALL, false), Some(t0 + CPU_POLL));
        c.grace = Some(t0 + Duration::from_millis(5));
        assert_eq!(c.next_deadline(WALL, true), Some(t0 + Duration::from_millis(5)));
        // Once SIGKILL was sent, the grace deadline no longer wakes the loop.
        assert_eq!(c.next_deadline(WALL, false), Some(t0 + CPU_POLL));
        c.drain = Some(t0 + Duration::from_millis(1));
        assert_eq!(c.next_deadline(WALL, false), Some(t0 + Duration::from_millis(1)));
    }
}
