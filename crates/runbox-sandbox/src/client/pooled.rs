//! A warm sandbox: a jail in pooled mode, built ahead of time, whose program waits for its go. Taking one costs a
//! few writes instead of namespaces, mounts and an interpreter's start-up. The go is a message on the jail's stdin
//! carrying the run's limits, which the jail acknowledges before the program runs (see [`protocol`]).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::frames::{next_event, JailEvent};
use crate::protocol;
use crate::{CancelToken, Jail, JailReport, Outcome, OutputStream, SandboxError, SandboxSpec};

enum Frame {
    /// The jail's acknowledgement of the go: the limits it applied.
    Started(Vec<u8>),
    Output(OutputStream, Vec<u8>),
    Report(Result<JailReport, String>),
}

pub struct PooledJail {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    frames: Receiver<Frame>,
    ready: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
    /// Signalled when `ready` or `ended` changes.
    changed: Arc<(Mutex<()>, Condvar)>,
}

impl Jail {
    /// Starts a pooled sandbox for `spec`; it becomes [`PooledJail::is_ready`] once built.
    pub fn spawn_pooled(&self, spec: &SandboxSpec) -> Result<PooledJail, SandboxError> {
        let mut spec = spec.clone();
        if !spec.mode.is_pooled() {
            spec.mode = crate::RunMode::Pooled { from_zygote: None };
        }
        let (child, stdin, mut stdout) = self.spawn_with_spec(&spec)?;
        let (tx, rx) = mpsc::channel();
        let ready = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicBool::new(false));
        let changed = Arc::new((Mutex::new(()), Condvar::new()));
        let (ready_flag, ended_flag, notify) = (ready.clone(), ended.clone(), changed.clone());
        let set = move |flag: &AtomicBool| {
            let _guard = notify.0.lock().unwrap_or_else(|e| e.into_inner());
            flag.store(true, Ordering::Release);
            notify.1.notify_all();
        };
        std::thread::Builder::new()
            .name("runbox-pooled-reader".into())
            .spawn(move || loop {
                let frame = match next_event(&mut stdout) {
                    Ok(JailEvent::Ready) => {
                        set(&ready_flag);
                        continue;
                    }
                    Ok(JailEvent::Stdout(d)) => Frame::Output(OutputStream::Stdout, d),
                    Ok(JailEvent::Stderr(d)) => Frame::Output(OutputStream::Stderr, d),
                    Ok(JailEvent::Worker(_)) => continue,
                    Ok(JailEvent::Started(d)) => Frame::Started(d),
                    Ok(JailEvent::Report(r)) => Frame::Report(Ok(r)),
                    Err(e) => Frame::Report(Err(e)),
                };
                let last = matches!(frame, Frame::Report(_));
                if last {
                    set(&ended_flag);
                }
                if tx.send(frame).is_err() || last {
                    return;
                }
            })
            .map_err(|e| SandboxError::Protocol(format!("start the reader thread: {e}")))?;
        Ok(PooledJail {
            child: Some(child),
            stdin: Some(stdin),
            frames: rx,
            ready,
            ended,
            changed,
        })
    }
}

impl PooledJail {
    /// Built and waiting for its go signal (and not dead meanwhile).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.ended.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for the sandbox to be built; whether it is ready.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.changed;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _unused = cv
            .wait_timeout_while(guard, timeout, |_| {
                !self.ready.load(Ordering::Acquire) && !self.ended.load(Ordering::Acquire)
            })
            .unwrap_or_else(|e| e.into_inner());
        self.is_ready()
    }

    /// It became ready at some point (even if it died since).
    pub fn was_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The sandbox died before it was used.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Starts the program with these wall and CPU limits, feeds it `stdin`, and returns its outcome.
    pub fn go(
        mut self,
        wall_ms: u64,
        cpu_ms: u64,
        stdin: Option<Box<dyn Read + Send>>,
        on_output: &mut dyn FnMut(OutputStream, &[u8]),
        cancel: &CancelToken,
    ) -> Result<Outcome, SandboxError> {
        let go = protocol::Go {
            wall_ms: wall_ms.max(1),
            cpu_ms: cpu_ms.max(1),
        };
        let child_id = self.child.as_ref().expect("present until go returns").id();
        let mut jail_stdin = self.stdin.take().expect("go is called once");
        // Nothing was written to this pipe before: the message (far below PIPE_BUF) goes in whole at once.
        jail_stdin
            .write_all(&protocol::encode_go(&go))
            .and_then(|_| jail_stdin.flush())
            .map_err(|e| SandboxError::Protocol(format!("start the pooled program: {e}")))?;
        cancel.watch(child_id);
        let writer = std::thread::spawn(move || {
            if let Some(mut input) = stdin {
                let _ = std::io::copy(&mut input, &mut jail_stdin);
            }
            let _ = jail_stdin.flush();
        });
        drop(writer);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut acknowledged = false;
        let report = loop {
            match self.frames.recv_timeout(Duration::from_secs(3600)) {
                Ok(Frame::Started(applied)) => {
                    if serde_json::from_slice::<protocol::Go>(&applied).ok() != Some(go) {
                        break Err(format!(
                            "the jail applied other limits than asked: {}",
                            String::from_utf8_lossy(&applied)
                        ));
                    }
                    acknowledged = true;
                }
                Ok(Frame::Output(..)) if !acknowledged => {
                    break Err("the program ran before the jail acknowledged its limits".into());
                }
                Ok(Frame::Output(stream, data)) => {
                    on_output(stream, &data);
                    match stream {
                        OutputStream::Stdout => stdout.extend_from_slice(&data),
                        OutputStream::Stderr => stderr.extend_from_slice(&data),
                    }
                }
                Ok(Frame::Report(r)) => break r,
                Err(_) => break Err("the jail stopped answering".into()),
            }
        };
        cancel.unwatch(child_id);
        if let Some(child) = self.child.take() {
            super::reap_in_background(child);
        }
        report
            .map(|r| Outcome::from_report(r, &stdout, &stderr))
            .map_err(SandboxError::Protocol)
    }
}

impl Drop for PooledJail {
    fn drop(&mut self) {
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
            super::reap_in_background(child);
        }
    }
}
