//! A jail in session mode, kept running: the caller writes to the worker's fd 3, and a reader thread turns the
//! jail's frames into [`SessionEvent`]s. Interrupts are SIGUSR1 to the jail; ending the session is SIGTERM.

use std::io::Write;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::frames::{next_event, JailEvent};
use crate::{Jail, JailReport, SandboxError, SandboxSpec};

#[derive(Debug)]
pub enum SessionEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// Bytes the worker wrote to its protocol descriptor.
    Worker(Vec<u8>),
    /// The sandbox is gone; nothing follows.
    Ended(Result<JailReport, String>),
    /// Worker messages were dropped because the caller left too much unread: the worker protocol is broken.
    Overflow,
}

impl SessionEvent {
    fn size(&self) -> usize {
        match self {
            SessionEvent::Stdout(d) | SessionEvent::Stderr(d) | SessionEvent::Worker(d) => d.len(),
            SessionEvent::Ended(_) | SessionEvent::Overflow => 0,
        }
    }
}

pub struct SessionProcess {
    child: Mutex<Child>,
    pid: u32,
    to_worker: Mutex<Option<ChildStdin>>,
    events: Mutex<Receiver<SessionEvent>>,
    /// Bytes of events read from the jail and not yet taken by the caller.
    queued: Arc<AtomicUsize>,
}

/// Most bytes of output and worker messages held for a caller that is not reading (between cells, say).
const MAX_QUEUED_BYTES: usize = 8 << 20;

impl Jail {
    /// Starts `spec` in session mode (a zygote stays a zygote) and returns at once; the worker boots inside.
    pub fn spawn_session(&self, spec: &SandboxSpec) -> Result<SessionProcess, SandboxError> {
        let mut spec = spec.clone();
        if !spec.mode.is_session() {
            spec.mode = crate::RunMode::Session;
        }
        let (child, stdin, mut stdout) = self.spawn_with_spec(&spec)?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        std::thread::Builder::new()
            .name("runbox-session-reader".into())
            .spawn(move || loop {
                let event = match next_event(&mut stdout) {
                    Ok(JailEvent::Stdout(d)) => SessionEvent::Stdout(d),
                    Ok(JailEvent::Stderr(d)) => SessionEvent::Stderr(d),
                    Ok(JailEvent::Worker(d)) => SessionEvent::Worker(d),
                    Ok(JailEvent::Ready) | Ok(JailEvent::Started(_)) => continue,
                    Ok(JailEvent::Report(r)) => {
                        let _ = tx.send(SessionEvent::Ended(Ok(r)));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(SessionEvent::Ended(Err(e)));
                        return;
                    }
                };
                // The jail is never slowed (it must keep enforcing limits), so the budget is kept here: output
                // nobody has taken yet beyond it is dropped rather than held in the server's memory.
                let size = event.size();
                if counter.load(Ordering::Acquire) + size > MAX_QUEUED_BYTES {
                    if matches!(event, SessionEvent::Worker(_)) {
                        let _ = tx.send(SessionEvent::Overflow);
                    }
                    continue;
                }
                counter.fetch_add(size, Ordering::AcqRel);
                if tx.send(event).is_err() {
                    // Nobody listens: drain until the jail ends so it never blocks on a full pipe.
                    let _ = std::io::copy(&mut stdout, &mut std::io::sink());
                    return;
                }
            })
            .map_err(|e| SandboxError::Protocol(format!("start the reader thread: {e}")))?;
        let pid = child.id();
        Ok(SessionProcess {
            child: Mutex::new(child),
            pid,
            to_worker: Mutex::new(Some(stdin)),
            events: Mutex::new(rx),
            queued,
        })
    }
}

impl SessionProcess {
    /// Host pid of the jail process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Writes bytes to the worker's fd 3.
    pub fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut guard = self.to_worker.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(w) => w.write_all(bytes).and_then(|_| w.flush()),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the session is closed",
            )),
        }
    }

    /// SIGINT to every process of the sandbox (through the jail's PID 1).
    pub fn interrupt(&self) {
        self.signal_jail(Signal::SIGUSR1);
    }

    /// Ends the sandbox: the jail kills it and reports.
    pub fn terminate(&self) {
        self.signal_jail(Signal::SIGTERM);
    }

    /// Signals the jail if it has not exited, holding the lock that reaping needs, so that its pid cannot be
    /// reaped (and reused) between the check and the signal.
    fn signal_jail(&self, signal: Signal) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid as i32), signal);
        }
    }

    /// Whether the jail has exited; collects its exit status, so that it does not linger as a zombie.
    pub fn has_exited(&self) -> bool {
        matches!(
            self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait(),
            Ok(Some(_))
        )
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<SessionEvent, RecvTimeoutError> {
        let event = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(timeout)?;
        self.queued.fetch_sub(event.size(), Ordering::AcqRel);
        Ok(event)
    }

    /// Resident memory of every process of the session (jail, PID 1, worker and children), from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let mut total = 0;
        let mut stack = vec![self.pid];
        while let Some(pid) = stack.pop() {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
                    total += kb.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0) * 1024;
                }
            }
            if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
                stack.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
        total
    }
}

impl Drop for SessionProcess {
    fn drop(&mut self) {
        self.to_worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        }
        let _ = child.wait();
    }
}
