//! Judge mode: a program compiled once, then run once per test case. Each case runs in a fresh workspace of its
//! own: the request's files written anew, and the compiled artefacts copied from the compile's workspace and, as
//! root, owned by the host's root and read-only (a uid the sandbox does not map, and it has no capabilities), so
//! one case can neither read what another case was given or wrote, nor replace the compiled program for the cases
//! after it. Copying costs a little per case; the judges runbox is for need cases that cannot see each other.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use runbox_lang::Plan;
use runbox_sandbox::{probe, CancelToken, Workspace};

use super::prepare::Prepared;
use super::{ExecEvent, Ran, Stage};
use crate::limits::workspace_bytes;
use crate::paths::ARTEFACT_DIR_NAME;
use crate::result::{outputs_match, ExecutionStatus, TestCaseResult, TestSummary, Verdict};
use crate::{Engine, EngineError};

/// Makes a tree readable by everyone and writable by no one: directories and executables 0555, other files 0444
/// (whatever umask the compiler ran with: the program now reads them as "others"). Directories are changed after
/// their contents.
fn make_read_only(path: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            make_read_only(&entry?.path())?;
        }
    }
    if !meta.file_type().is_symlink() {
        let mode = if meta.is_dir() || meta.permissions().mode() & 0o111 != 0 {
            0o555
        } else {
            0o444
        };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

impl Engine {
    /// A fresh workspace for test case `index`: the request's files, and the compiled artefacts read-only.
    fn case_workspace(
        &self,
        p: &Prepared,
        run_id: &str,
        index: usize,
        compiled: &Workspace,
    ) -> Result<Workspace, EngineError> {
        let root = probe::is_root();
        let owner = root.then_some(self.config.policy.host_uid);
        let ws = Workspace::create(
            &self.runs_dir(),
            &format!("{run_id}-t{index}"),
            Some(workspace_bytes(&p.req.limits)),
            owner,
        )?;
        for (path, content) in &p.files {
            ws.write_file(path, content)?;
        }
        let artefacts = Path::new(ARTEFACT_DIR_NAME);
        let placed = ws.path().join(artefacts);
        let placing = crate::compile_cache::copy_tree(&compiled.path().join(artefacts), &placed, None).and_then(|()| {
            // Without root the sandbox's user owns the copy anyway (and could make it writable again), and a
            // read-only directory would outlive its workspace: the fresh copy is the protection then.
            if root {
                make_read_only(&placed)
            } else {
                Ok(())
            }
        });
        placing.map_err(|e| runbox_sandbox::workspace::WorkspaceError::Io {
            action: "place the compiled program in",
            path: placed.clone(),
            reason: e.to_string(),
        })?;
        Ok(ws)
    }

    /// Runs every test case, each in a workspace of its own (see the module comment). The last case's workspace
    /// goes with the result (what `collect` looks at); the others are disposed of as soon as their case ends.
    pub(super) fn judge(
        &self,
        p: &Prepared,
        run_id: &str,
        compiled: &Workspace,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<Ran, EngineError> {
        let req = &p.req;
        let mut cases = Vec::with_capacity(req.tests.len());
        let mut decisive = None;
        let mut last_ws: Option<Workspace> = None;
        for (index, case) in req.tests.iter().enumerate() {
            if let Some(previous) = last_ws.take() {
                previous.dispose_in_background();
            }
            let case_ws = self.case_workspace(p, run_id, index, compiled)?;
            let case_plan = Plan {
                args: case.args.clone(),
                ..p.plan.clone()
            };
            let spec = p.spec(
                self,
                format!("{run_id}-t{index}"),
                case_ws.path(),
                p.lang.run_argv(&case_plan),
                p.run_limits.clone(),
            );
            last_ws = Some(case_ws);
            on_event(ExecEvent::StageStarted(Stage::Run));
            let stdin: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(case.stdin.clone().into_bytes()));
            let outcome = self
                .config
                .jail
                .run_cancellable(&spec, Some(stdin), &mut |_, _| {}, cancel)?;
            let status: ExecutionStatus = outcome.status.into();
            let verdict = match (status, &case.expected_output) {
                (ExecutionStatus::Ok, Some(expected)) if outputs_match(&outcome.record.stdout, expected) => {
                    Verdict::Passed
                }
                (ExecutionStatus::Ok, Some(_)) => Verdict::WrongOutput,
                (ExecutionStatus::Ok, None) => Verdict::Ran,
                _ => Verdict::Failed,
            };
            // A case lists only part of the record (no signal, base64 or truncation flags).
            let record = &outcome.record;
            let case_result = TestCaseResult {
                index,
                verdict,
                status,
                stdout: record.stdout.clone(),
                stderr: record.stderr.clone(),
                exit_code: record.exit_code,
                wall_ms: record.wall_ms,
                cpu_ms: record.cpu_ms,
                memory_peak_bytes: record.memory_peak_bytes,
                message: record.message.clone(),
            };
            on_event(ExecEvent::TestCase(&case_result));
            if decisive.is_none() && !matches!(verdict, Verdict::Passed | Verdict::Ran) {
                decisive = Some(outcome.clone());
            }
            let last = outcome;
            cases.push(case_result);
            if cancel.is_cancelled() {
                decisive.get_or_insert(last);
                break;
            }
            if index + 1 == req.tests.len() {
                decisive.get_or_insert(last);
            }
        }
        let decisive = decisive.expect("at least one case ran");
        let passed = cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Passed | Verdict::Ran))
            .count();
        let first_bad = cases
            .iter()
            .find(|c| !matches!(c.verdict, Verdict::Passed | Verdict::Ran));
        let summary = TestSummary {
            total: req.tests.len(),
            passed,
            failed: cases.len() - passed,
            verdict: match first_bad {
                None => "passed".into(),
                Some(c) if c.verdict == Verdict::WrongOutput => "wrong_output".into(),
                Some(c) => c.status.as_str().into(),
            },
        };
        Ok(Ran {
            judged: Some((cases, summary)),
            ..Ran::single(decisive, last_ws)
        })
    }
}
