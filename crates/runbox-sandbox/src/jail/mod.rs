//! The jail: a small single-threaded program (the hidden `runbox jail` subcommand) that owns one run from start to
//! end. It reads a [`SandboxSpec`] from its stdin, creates the cgroup and the namespaces, clones the sandbox's
//! PID 1 (see [`init`]), relays the program's stdin and output, enforces the wall, CPU and output limits, kills the
//! whole tree when the run must end and writes one final [`JailReport`].
//!
//! It is its own process so that no `fork` or `clone` ever happens inside a multi-threaded server.

mod clock;
pub mod counters;
mod error;
mod events;
mod from_zygote;
pub mod host_view;
mod init;
mod live;
pub mod message;
mod plumbing;
mod poll;
mod start;
mod supervise;
mod sys;
mod verdict;

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

pub use error::JailError;

use crate::outcome::JailReport;
use crate::protocol::{self, FrameKind};
use crate::spec::SandboxSpec;

/// Runs the jail on this process's stdin and stdout. Returns the process exit code: 0 when a report was
/// written (whatever the program did), 1 when even that failed.
pub fn main() -> i32 {
    // First of all, hold the signals the supervisor handles (cancel, interrupt, go), so that one arriving while
    // the jail starts up waits for the supervisor instead of killing it without a report.
    let mut held = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGUSR2,
    ] {
        held.add(s);
    }
    let _ = held.thread_block();
    // SAFETY: fd 0 and 1 are open for the life of the process; ManuallyDrop keeps them from being closed here.
    // Raw, unbuffered files: a buffered reader would swallow the program's stdin that follows the spec.
    let mut input = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    // SAFETY: as above, for fd 1.
    let mut output = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });

    let (report, teardown) = match protocol::read_spec(&mut *input) {
        Err(e) => (
            JailReport::sandbox_error(format!("jail: cannot read the run's spec: {e}")),
            None,
        ),
        Ok(bytes) => match serde_json::from_slice::<SandboxSpec>(&bytes) {
            Err(e) => (JailReport::sandbox_error(format!("jail: invalid spec: {e}")), None),
            Ok(spec) => match spec.validate() {
                Err(e) => (JailReport::sandbox_error(format!("jail: invalid spec: {e}")), None),
                Ok(()) => supervise(&spec, &mut output),
            },
        },
    };
    let json = serde_json::to_vec(&report).expect("a report always serialises");
    let written = protocol::write_frame(&mut *output, FrameKind::Report, &json).and_then(|_| output.flush());
    // The caller has its answer; namespaces and cgroup are torn down after it (the caller reaps us later).
    drop(teardown);
    match written {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Runs the sandbox; a bug in the supervisor (a panic) still ends in a report that says so, after the unwinding
/// has killed the sandbox, rather than in a jail that vanishes without one.
fn supervise(spec: &SandboxSpec, output: &mut File) -> (JailReport, Option<live::Live>) {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(spec, output))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        (JailReport::sandbox_error(format!("jail: internal error: {what}")), None)
    })
}

/// Runs the sandbox to its end. The report is ready as soon as every process of the sandbox is dead; tearing
/// down the namespaces and the cgroup takes longer, so that is left to the returned guard, dropped after the
/// report is written.
fn run(spec: &SandboxSpec, out: &mut File) -> (JailReport, Option<live::Live>) {
    match start::start(spec) {
        Ok(mut live) => {
            let report = supervise::supervise(&mut live, spec, out);
            (report, Some(live))
        }
        Err(error) => (JailReport::sandbox_error(error.to_string()), None),
    }
}

/// Ignores SIGPIPE for the whole process: the jail learns about closed pipes from EPIPE instead of dying.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN; called before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Restores the default SIGPIPE disposition (the process ends on a write to a closed pipe).
pub fn default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL; called before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
