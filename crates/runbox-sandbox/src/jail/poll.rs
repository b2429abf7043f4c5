//! The one `poll(2)` the supervision loop sleeps in, wrapped so that the loop names what it watches instead of
//! counting slots in an array of `pollfd`s.

use std::os::fd::RawFd;
use std::time::Duration;

/// Where one descriptor sits in a [`PollSet`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot(usize);

/// The descriptors of one wait, and afterwards which of them are ready.
#[derive(Default)]
pub(super) struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// Watches `fd` for `events` (0: only for an error or a hang-up, which poll always reports).
    pub(super) fn watch(&mut self, fd: RawFd, events: libc::c_short) -> Slot {
        self.fds.push(libc::pollfd { fd, events, revents: 0 });
        Slot(self.fds.len() - 1)
    }

    /// Watches `fd` if there is one to watch.
    pub(super) fn watch_some(&mut self, fd: Option<RawFd>, events: libc::c_short) -> Option<Slot> {
        fd.map(|fd| self.watch(fd, events))
    }

    /// Sleeps until a descriptor is ready or `wait` has passed (`None`: no time limit). False when the call
    /// failed (a signal interrupted it): nothing is ready then.
    pub(super) fn wait(&mut self, wait: Option<Duration>) -> bool {
        // SAFETY: `fds` is a valid array of pollfd structs for the duration of the call.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, timeout_ms(wait)) };
        n >= 0
    }

    /// Whether the descriptor in `slot` (if it was watched) reported anything.
    pub(super) fn ready(&self, slot: Option<Slot>) -> bool {
        slot.is_some_and(|Slot(i)| self.fds[i].revents != 0)
    }
}

/// `poll`'s timeout for a wait of `wait`: whole milliseconds, rounded up so that a deadline is never woken for
/// early; -1 (forever) without one.
fn timeout_ms(wait: Option<Duration>) -> i32 {
    match wait {
        Some(w) => w.as_millis().min(i32::MAX as u128) as i32 + i32::from(w.subsec_micros() % 1000 > 0),
        None => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_without_a_deadline_is_forever() {
        assert_eq!(timeout_ms(None), -1);
    }

    #[test]
    fn a_wait_is_rounded_up_to_the_millisecond() {
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_millis(20))), 20);
        assert_eq!(timeout_ms(Some(Duration::from_micros(20_001))), 21);
        assert_eq!(timeout_ms(Some(Duration::from_micros(999))), 1);
        // Below a microsecond is not counted.
        assert_eq!(timeout_ms(Some(Duration::from_nanos(20_000_999))), 20);
    }

    #[test]
    fn a_pipe_with_data_is_ready_and_an_unwatched_slot_never_is() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let mut set = PollSet::default();
        let read_end = set.watch(std::os::fd::AsRawFd::as_raw_fd(&r), libc::POLLIN);
        let nothing = set.watch_some(None, libc::POLLIN);
        assert!(set.wait(Some(Duration::ZERO)));
        assert!(!set.ready(Some(read_end)));
        assert!(!set.ready(nothing));

        nix::unistd::write(&w, b"x").expect("write");
        let mut set = PollSet::default();
        let read_end = set.watch(std::os::fd::AsRawFd::as_raw_fd(&r), libc::POLLIN);
        assert!(set.wait(Some(Duration::from_secs(5))));
        assert!(set.ready(Some(read_end)));
    }
}
