//! The host side of the jail: starts the jail process, hands it a spec and reads its frames, for a one-shot run
//! ([`Jail::run`]), a session ([`session`]) or a warm sandbox ([`pooled`]). Everything here runs in the caller's
//! (possibly multi-threaded) process; nothing here forks other than through `std::process::Command`.

mod frames;
pub mod pooled;
pub mod session;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::outcome::{JailReport, Outcome, Status};
use crate::protocol;
use crate::spec::SandboxSpec;

use frames::{next_event, JailEvent};

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot start the jail {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("lost contact with the jail: {0}")]
    Protocol(String),
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Cancels runs from another thread: the jails it watches get SIGTERM and report `killed` ("cancelled by the
/// caller"). Cancelling is sticky: runs started with a cancelled token end at once.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Mutex<CancelState>>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: bool,
    jails: Vec<u32>,
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.cancelled = true;
        for &pid in &state.jails {
            signal_jail(pid);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).cancelled
    }

    pub(crate) fn watch(&self, pid: u32) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.cancelled {
            signal_jail(pid);
        }
        state.jails.push(pid);
    }

    pub(crate) fn unwatch(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jails
            .retain(|&p| p != pid);
    }
}

/// Teardowns under way: jails that reported (or were told to stop), and workspaces being removed.
static TEARING_DOWN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn teardown_started() {
    TEARING_DOWN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

pub(crate) fn teardown_finished() {
    TEARING_DOWN.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
}

/// Waits for a finished jail on a thread of its own, so that its teardown never delays the caller.
pub(crate) fn reap_in_background(mut child: std::process::Child) {
    teardown_started();
    let spawned = std::thread::Builder::new().name("runbox-reaper".into()).spawn(move || {
        let _ = child.wait();
        teardown_finished();
    });
    if spawned.is_err() {
        teardown_finished();
    }
}

/// Waits (at most `timeout`) until every jail handed to the background reaper has exited and every workspace
/// disposed in the background is gone: a server or the CLI calls this before exiting, so that no sandbox or mount
/// outlives it. Returns whether all were done in time.
pub fn wait_for_teardowns(timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while TEARING_DOWN.load(std::sync::atomic::Ordering::SeqCst) > 0 {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

fn signal_jail(pid: u32) {
    // The jail turns SIGTERM into "kill the sandbox and report"; it is our own child, still unreaped (unwatch
    // happens before wait), so the pid cannot have been reused.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// How to start the jail process.
#[derive(Debug, Clone)]
pub struct Jail {
    program: PathBuf,
    args: Vec<String>,
}

impl Jail {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Jail {
        Jail {
            program: program.into(),
            args,
        }
    }

    /// The jail of the running binary: the small `runbox-jail` program beside it when it was built from the same
    /// sandbox sources (it starts faster and holds less memory per sandbox), else the hidden `jail` subcommand.
    pub fn current_exe() -> std::io::Result<Jail> {
        let exe = std::env::current_exe()?;
        let small = exe.with_file_name("runbox-jail");
        Ok(if crate::is_our_jail(&small) {
            Jail::new(small, Vec::new())
        } else {
            Jail::new(exe, vec!["jail".into()])
        })
    }

    /// Runs `spec` to completion. `stdin` is streamed to the program; each output chunk is passed to `on_output`
    /// as it arrives (already cut at the output limit) and also collected into the returned [`Outcome`].
    pub fn run(
        &self,
        spec: &SandboxSpec,
        stdin: Option<Box<dyn Read + Send>>,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<Outcome, SandboxError> {
        self.run_cancellable(spec, stdin, on_output, &CancelToken::new())
    }

    /// Starts the jail process with empty environment and piped stdin and stdout (stderr piped for diagnostics
    /// or discarded).
    pub(crate) fn spawn_process(&self, keep_stderr: bool) -> Result<std::process::Child, SandboxError> {
        Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if keep_stderr { Stdio::piped() } else { Stdio::null() })
            .spawn()
            .map_err(|source| SandboxError::Spawn {
                program: self.program.clone(),
                source,
            })
    }

    /// Starts a jail for a long-lived mode (session or pooled) and hands it the spec; returns the process with its
    /// stdin (the caller's channel to the program) and a buffered reader of its frames.
    pub(crate) fn spawn_with_spec(
        &self,
        spec: &SandboxSpec,
    ) -> Result<
        (
            std::process::Child,
            std::process::ChildStdin,
            std::io::BufReader<std::process::ChildStdout>,
        ),
        SandboxError,
    > {
        let mut child = self.spawn_process(false)?;
        let mut stdin = child.stdin.take().expect("piped");
        let spec_json = serde_json::to_vec(spec).expect("a spec always serialises");
        protocol::write_spec(&mut stdin, &spec_json).map_err(|e| SandboxError::Protocol(format!("send spec: {e}")))?;
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        Ok((child, stdin, stdout))
    }

    /// [`Jail::run`], ended early (status `killed`) when `cancel` is cancelled.
    pub fn run_cancellable(
        &self,
        spec: &SandboxSpec,
        stdin: Option<Box<dyn Read + Send>>,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
        cancel: &CancelToken,
    ) -> Result<Outcome, SandboxError> {
        let mut child = self.spawn_process(true)?;
        cancel.watch(child.id());
        let spec_json = serde_json::to_vec(spec).expect("a spec always serialises");
        let mut jail_stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            // A program that exits without reading its stdin closes the pipe: not an error.
            if protocol::write_spec(&mut jail_stdin, &spec_json).is_ok() {
                if let Some(mut input) = stdin {
                    let _ = std::io::copy(&mut input, &mut jail_stdin);
                }
            }
            let _ = jail_stdin.flush();
        });
        let mut jail_stderr = child.stderr.take().expect("piped");
        let diagnostics = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = (&mut jail_stderr).take(64 * 1024).read_to_end(&mut text);
            let _ = std::io::copy(&mut jail_stderr, &mut std::io::sink());
            String::from_utf8_lossy(&text).into_owned()
        });

        let mut jail_stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut report = None;
        let mut failure = None;
        loop {
            match next_event(&mut jail_stdout) {
                Ok(JailEvent::Stdout(data)) => {
                    on_output(OutputStream::Stdout, &data);
                    stdout.extend_from_slice(&data);
                }
                Ok(JailEvent::Stderr(data)) => {
                    on_output(OutputStream::Stderr, &data);
                    stderr.extend_from_slice(&data);
                }
                // Only session-mode jails send worker frames; a plain run has no worker.
                Ok(JailEvent::Worker(_)) | Ok(JailEvent::Ready) | Ok(JailEvent::Started(_)) => {}
                Ok(JailEvent::Report(r)) => {
                    report = Some(r);
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(jail_stdout);
        cancel.unwatch(child.id());
        if let Some(report) = report {
            // The jail still tears down the sandbox after reporting; reap it off the caller's path.
            reap_in_background(child);
            drop((writer, diagnostics));
            return Ok(Outcome::from_report(report, &stdout, &stderr));
        }
        let status = child.wait();
        // The writer may be blocked reading a caller's stdin that never ends; it finishes on its own when the
        // jail's pipe is gone, so it is not joined.
        drop(writer);
        let diagnostics = diagnostics.join().unwrap_or_default();
        let killed_by_signal = status
            .as_ref()
            .is_ok_and(|s| std::os::unix::process::ExitStatusExt::signal(s).is_some());
        match report {
            Some(report) => Ok(Outcome::from_report(report, &stdout, &stderr)),
            // Cancelled so early that the jail had not yet taken over its signals: it died before it could start
            // anything, which is what cancelling asked for.
            None if cancel.is_cancelled() && killed_by_signal => {
                let mut report = JailReport::sandbox_error("cancelled by the caller");
                report.status = Status::Killed;
                Ok(Outcome::from_report(report, &stdout, &stderr))
            }
            None => Err(SandboxError::Protocol(format!(
                "{} (jail exit: {}; jail said: {})",
                failure.unwrap_or_else(|| "the jail ended without a report".into()),
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                diagnostics.trim()
            ))),
        }
    }
}
