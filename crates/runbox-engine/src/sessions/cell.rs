//! Running one cell: sending it to the worker, relaying its output and rich outputs, enforcing its time limit with
//! repeated interrupts and a grace period, and turning the worker's reply (or the sandbox's end) into a result.

use crate::sync::LockOrRecover;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use runbox_sandbox::{SessionEvent, Status};

use super::worker::WorkerMessage;
use super::{CellError, CellEvent, CellResult, CellStatus, RichOutput, Session, SessionError, Sessions};

impl Sessions {
    /// The time limit a cell asking for `timeout_ms` gets, or why it cannot have it.
    fn cell_timeout_ms(&self, timeout_ms: Option<u64>) -> Result<u64, SessionError> {
        let timeout_ms = timeout_ms.unwrap_or(self.limits.default_timeout_ms);
        let cap = self.engine.config().caps.timeout_ms.max(self.limits.default_timeout_ms);
        if timeout_ms == 0 || timeout_ms > cap {
            return Err(SessionError::invalid(
                "timeout_ms",
                format!("must be between 1 and {cap}"),
            ));
        }
        Ok(timeout_ms)
    }

    /// Checks, without running anything, what [`Sessions::execute`] would refuse at once: an unknown session, a
    /// dead one, a time limit out of bounds. Lets a streaming route answer with an error status before it starts.
    pub fn check_cell(&self, owner: &str, id: &str, timeout_ms: Option<u64>) -> Result<(), SessionError> {
        let session = self.lookup(owner, id)?;
        self.cell_timeout_ms(timeout_ms)?;
        match session.dead_reason() {
            Some(reason) => Err(SessionError::Dead(reason)),
            None => Ok(()),
        }
    }

    /// Runs one cell. Blocking; cells of one session run one at a time, in arrival order.
    pub fn execute(
        &self,
        owner: &str,
        id: &str,
        code: &str,
        timeout_ms: Option<u64>,
        on_event: &mut dyn FnMut(CellEvent<'_>),
    ) -> Result<CellResult, SessionError> {
        let session = self.lookup(owner, id)?;
        let timeout_ms = self.cell_timeout_ms(timeout_ms)?;
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        // Executions already in: the running one and those queued behind it.
        let waiting = session.waiting.fetch_add(1, Ordering::SeqCst);
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&session.waiting);
        if waiting > self.limits.max_queued {
            return Err(SessionError::Busy(waiting - 1));
        }
        let _turn = session.exec_lock.lock_or_recover();
        if let Some(reason) = session.dead_reason() {
            return Err(SessionError::Dead(reason));
        }
        session.touch();
        // The cell now holds the session: from here an interrupt is kept for it (it was idle until now, so no
        // earlier interrupt is pending).
        session.interrupt.lock_or_recover().claim();
        /// Ends the cell's interrupt state however execute returns.
        struct CellEnd<'a>(&'a Session);
        impl Drop for CellEnd<'_> {
            fn drop(&mut self) {
                self.0.interrupt.lock_or_recover().release();
            }
        }
        let _cell_end = CellEnd(&session);
        let started = Instant::now();
        // Output that background processes wrote between cells belongs to no cell.
        while let Ok(ev) = session.process.recv_timeout(Duration::ZERO) {
            if let SessionEvent::Ended(report) = ev {
                let (_, reason, _) = end_reason(&report);
                tracing::warn!(session = %session.id, reason = %reason, "a session's worker ended between cells");
                session.mark_dead(reason.clone());
                return Err(SessionError::Dead(reason));
            }
        }
        let cell = session.next_cell.fetch_add(1, Ordering::Relaxed);
        let mut message = format!("EXEC {cell} {}\n", code.len()).into_bytes();
        message.extend_from_slice(code.as_bytes());
        if session.process.send(&message).is_err() {
            session.mark_dead("the worker stopped reading");
            return Err(SessionError::Dead("the worker stopped reading".into()));
        }
        session.interrupt.lock_or_recover().cell_sent = Some(Instant::now());
        session.executions.fetch_add(1, Ordering::Relaxed);

        let cap = self.limits.output_bytes;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let (mut out_cut, mut err_cut) = (false, false);
        let mut outputs = RichOutputs::new(self.limits.rich_outputs_per_cell, self.limits.rich_output_bytes);
        let deadline = started + Duration::from_millis(timeout_ms);
        let grace = Duration::from_millis(self.limits.interrupt_grace_ms);
        let mut timed_out = false;
        let mut killed_at: Option<Instant> = None;
        let resend = (grace / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
        let finish = |status,
                      result: Option<BTreeMap<String, String>>,
                      error,
                      exit_code,
                      count,
                      outputs: RichOutputs,
                      stdout: &[u8],
                      stderr: &[u8],
                      out_cut,
                      err_cut| CellResult {
            status,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            result,
            outputs_truncated: outputs.truncated,
            outputs: outputs.kept,
            error,
            exit_code,
            execution_count: count,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        loop {
            let now = Instant::now();
            if !timed_out && now >= deadline {
                timed_out = true;
                let mut st = session.interrupt.lock_or_recover();
                st.requested.get_or_insert(now);
            }
            let requested = session.interrupt.lock_or_recover().requested;
            let mut next_signal = None;
            if let Some(at) = requested {
                if killed_at.is_none() && now >= at + grace {
                    session.mark_dead(if timed_out {
                        "timeout: the cell ran past its time limit and did not stop after SIGINT"
                    } else {
                        "interrupt: the cell did not stop after SIGINT"
                    });
                    session.process.terminate();
                    killed_at = Some(now);
                } else if killed_at.is_none() {
                    next_signal = session.signal_if_due(now, resend);
                }
            }
            if killed_at.is_some_and(|k| now >= k + Duration::from_secs(5)) {
                let count = session.executions.load(Ordering::Relaxed);
                let status = if timed_out {
                    CellStatus::Timeout
                } else {
                    CellStatus::Interrupted
                };
                return Ok(finish(
                    status, None, None, None, count, outputs, &stdout, &stderr, out_cut, err_cut,
                ));
            }
            let mut wait = Duration::from_millis(100);
            if !timed_out {
                wait = wait.min(deadline.saturating_duration_since(now));
            }
            if let Some(next) = next_signal {
                wait = wait.min(next.saturating_duration_since(now));
            }
            match session.process.recv_timeout(wait) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    session.mark_dead("lost contact with the sandbox");
                    return Err(SessionError::Dead("lost contact with the sandbox".into()));
                }
                // A stream's output is forwarded as far as it is kept: past the cap neither the result nor a slow
                // streaming client holds more of it.
                Ok(SessionEvent::Stdout(b)) => {
                    let kept = push_capped(&mut stdout, &b, cap, &mut out_cut);
                    if !kept.is_empty() {
                        on_event(CellEvent::Stdout(kept));
                    }
                }
                Ok(SessionEvent::Stderr(b)) => {
                    let kept = push_capped(&mut stderr, &b, cap, &mut err_cut);
                    if !kept.is_empty() {
                        on_event(CellEvent::Stderr(kept));
                    }
                }
                Ok(SessionEvent::Overflow) => {
                    session.mark_dead("protocol: the worker wrote more than the session keeps unread");
                    session.process.terminate();
                    killed_at.get_or_insert(Instant::now());
                }
                Ok(SessionEvent::Ended(report)) => {
                    let (status, reason, exit_code) = end_reason(&report);
                    session.mark_dead(reason);
                    let reason = session.dead_reason().unwrap_or_default();
                    let status = match status {
                        CellStatus::MemoryLimit => CellStatus::MemoryLimit,
                        _ if killed_at.is_some() && timed_out => CellStatus::Timeout,
                        _ if killed_at.is_some() => CellStatus::Interrupted,
                        other => other,
                    };
                    let error = (status != CellStatus::Exit).then(|| CellError {
                        name: "SessionDied".into(),
                        value: reason.clone(),
                        traceback: String::new(),
                    });
                    let count = session.executions.load(Ordering::Relaxed);
                    return Ok(finish(
                        status, None, error, exit_code, count, outputs, &stdout, &stderr, out_cut, err_cut,
                    ));
                }
                Ok(SessionEvent::Worker(bytes)) => {
                    for msg in session.worker_lines(&bytes).into_iter().map(WorkerMessage::from_line) {
                        match msg {
                            WorkerMessage::Display { data } => {
                                if let Some(bundle) = bundle_of(&data) {
                                    for out in outputs_of(&bundle) {
                                        if let Some(kept) = outputs.push(out) {
                                            on_event(CellEvent::Display(kept));
                                        }
                                    }
                                }
                            }
                            WorkerMessage::Dropped => outputs.truncated = true,
                            WorkerMessage::Done(done) if done.id() == Some(cell) => {
                                let result = bundle_of(&done.result).map(|b| outputs.charge_bundle(b));
                                if let Some(bundle) = &result {
                                    for out in outputs_of(bundle).into_iter().filter(|o| o.mime_type != "text/plain") {
                                        outputs.push(out);
                                    }
                                }
                                let error: Option<CellError> = serde_json::from_value(done.error.clone()).ok();
                                let exit_code = done.exit_code();
                                let status = match done.status() {
                                    Some("ok") => CellStatus::Ok,
                                    Some("interrupted") if timed_out => CellStatus::Timeout,
                                    Some("interrupted") => CellStatus::Interrupted,
                                    Some("exit") => {
                                        session.mark_dead(format!(
                                            "exit: the code ended the session (exit code {})",
                                            exit_code.unwrap_or(0)
                                        ));
                                        CellStatus::Exit
                                    }
                                    _ => CellStatus::Error,
                                };
                                let count = done.execution_count().unwrap_or(cell);
                                session.touch();
                                return Ok(finish(
                                    status, result, error, exit_code, count, outputs, &stdout, &stderr, out_cut,
                                    err_cut,
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

/// Why a session ended, from the jail's report.
pub(super) fn end_reason(report: &Result<runbox_sandbox::JailReport, String>) -> (CellStatus, String, Option<i32>) {
    match report {
        Ok(r) => match r.status {
            Status::MemoryLimit => (
                CellStatus::MemoryLimit,
                "memory_limit: the session used more memory than allowed".into(),
                None,
            ),
            Status::Ok | Status::ExitedNonzero => (
                CellStatus::Exit,
                format!("exit: the worker exited with code {}", r.exit_code.unwrap_or(0)),
                r.exit_code,
            ),
            Status::Timeout | Status::CpuLimit => (
                CellStatus::Exit,
                "the session reached its maximum lifetime".into(),
                None,
            ),
            Status::Killed => (
                CellStatus::Exit,
                format!("killed: {}", r.message.clone().unwrap_or_default()),
                None,
            ),
            _ => (
                CellStatus::Exit,
                format!("sandbox error: {}", r.message.clone().unwrap_or_default()),
                None,
            ),
        },
        Err(e) => (CellStatus::Exit, format!("lost contact with the sandbox: {e}"), None),
    }
}

/// Appends what fits under `cap` and returns that part.
fn push_capped<'a>(buf: &mut Vec<u8>, data: &'a [u8], cap: usize, truncated: &mut bool) -> &'a [u8] {
    let room = cap.saturating_sub(buf.len());
    if data.len() > room {
        *truncated = true;
    }
    let kept = &data[..data.len().min(room)];
    buf.extend_from_slice(kept);
    kept
}

/// The rich outputs of one cell, kept up to a count and a number of bytes: past either, outputs are dropped (not
/// held, not streamed) and `truncated` says so.
struct RichOutputs {
    kept: Vec<RichOutput>,
    count_left: usize,
    bytes_left: usize,
    truncated: bool,
}

impl RichOutputs {
    fn new(count: usize, bytes: usize) -> RichOutputs {
        RichOutputs {
            kept: Vec::new(),
            count_left: count,
            bytes_left: bytes,
            truncated: false,
        }
    }

    /// Keeps `out` if it fits and returns it as kept.
    fn push(&mut self, out: RichOutput) -> Option<&RichOutput> {
        let size = out.data.len() + out.mime_type.len();
        if self.count_left == 0 || size > self.bytes_left {
            self.truncated = true;
            return None;
        }
        self.count_left -= 1;
        self.bytes_left -= size;
        self.kept.push(out);
        self.kept.last()
    }

    /// Charges the forms of the cell's result against the byte budget, dropping those that do not fit.
    fn charge_bundle(&mut self, bundle: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut kept = BTreeMap::new();
        for (mime, data) in bundle {
            let size = mime.len() + data.len();
            if size > self.bytes_left {
                self.truncated = true;
                continue;
            }
            self.bytes_left -= size;
            kept.insert(mime, data);
        }
        kept
    }
}

fn bundle_of(value: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    value.as_object().map(|o| {
        o.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    })
}

/// The richest form first, `text/plain` last: what a notebook shows.
fn outputs_of(bundle: &BTreeMap<String, String>) -> Vec<RichOutput> {
    let order = [
        "image/png",
        "image/jpeg",
        "image/svg+xml",
        "text/html",
        "text/markdown",
        "application/json",
        "text/latex",
    ];
    let mut out: Vec<RichOutput> = order
        .iter()
        .filter_map(|m| {
            bundle.get(*m).map(|d| RichOutput {
                mime_type: m.to_string(),
                data: d.clone(),
            })
        })
        .collect();
    if out.is_empty() {
        if let Some(text) = bundle.get("text/plain") {
            out.push(RichOutput {
                mime_type: "text/plain".into(),
                data: text.clone(),
            });
        }
    }
    out
}
