//! The cold route of an execution: a workspace of its own with the request's files, the compile stage (or its
//! artefacts from the compile cache) in a fresh sandbox, then the run stage: in a fresh sandbox in the same
//! workspace, in a warm sandbox that gets the artefacts (`warm.rs`), or once per judge test case (`judge.rs`).

use std::io::Read;
use std::path::Path;

use runbox_sandbox::{CancelToken, Status, Workspace};

use super::prepare::Prepared;
use super::{request_stdin, ExecEvent, Ran, Stage};
use crate::limits::workspace_bytes;
use crate::paths::ARTEFACT_DIR_NAME;
use crate::result::ExecutionStatus;
use crate::{Engine, EngineError};

impl Engine {
    pub(super) fn run_cold(
        &self,
        p: &Prepared,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<Ran, EngineError> {
        let id = self.new_run_id();
        let owner = self.workspace_owner();
        let ws = Workspace::create(&self.runs_dir(), &id, Some(workspace_bytes(&p.req.limits)), owner)?;
        for (path, content) in &p.files {
            ws.write_file(path, content)?;
        }
        ws.create_dir(Path::new(ARTEFACT_DIR_NAME))?;

        let mut compile_cached = false;
        let compile = match &p.compile {
            Some(step) => 'compile: {
                let artefacts = ws.path().join(ARTEFACT_DIR_NAME);
                if let Some(hit) = step
                    .cache_key
                    .as_ref()
                    .and_then(|k| self.compile_cache.restore(k, &artefacts, owner))
                {
                    compile_cached = true;
                    break 'compile Some(hit);
                }
                on_event(ExecEvent::StageStarted(Stage::Compile));
                let mut spec = p.spec(
                    self,
                    format!("{id}-c"),
                    ws.path(),
                    step.argv.clone(),
                    step.limits.clone(),
                );
                spec.env = step.env.clone();
                let outcome = self.config.jail.run_cancellable(
                    &spec,
                    None,
                    &mut |stream, data| {
                        on_event(ExecEvent::Output {
                            stage: Stage::Compile,
                            stream,
                            data,
                        })
                    },
                    cancel,
                )?;
                if outcome.status != Status::Ok {
                    let status = if outcome.status == Status::Killed && cancel.is_cancelled() {
                        ExecutionStatus::Killed
                    } else {
                        ExecutionStatus::CompileError
                    };
                    let mut decisive = outcome.clone();
                    decisive
                        .record
                        .message
                        .get_or_insert_with(|| match outcome.record.exit_code {
                            Some(code) => format!("compilation failed: the compiler exited with code {code}"),
                            None => "compilation failed".to_string(),
                        });
                    return Ok(Ran {
                        status,
                        decisive,
                        compile: Some(outcome),
                        compile_cached: false,
                        run: None,
                        judged: None,
                        ran_in: None,
                    });
                }
                if let Some(key) = &step.cache_key {
                    self.compile_cache.store(key, &artefacts, &outcome);
                }
                Some(outcome)
            }
            None => None,
        };

        let mut ran = if !p.req.tests.is_empty() {
            let mut ran = self.judge(p, &id, &ws, cancel, on_event)?;
            ran.compile = compile;
            ran
        } else {
            // The run stage of a compiled program takes a warm sandbox too when one fits; it gets the artefacts.
            let warm = compile.is_some().then(|| self.warm_sandbox(p)).flatten();
            match warm {
                Some(taken) => {
                    let (outcome, warm_ws) = self.go_warm(p, taken, Some(&ws), stdin, cancel, on_event)?;
                    Ran::compiled(compile, outcome, Some(warm_ws))
                }
                None => {
                    on_event(ExecEvent::StageStarted(Stage::Run));
                    let argv = p.lang.run_argv(&p.plan);
                    let spec = p.spec(self, format!("{id}-r"), ws.path(), argv, p.run_limits.clone());
                    let outcome = self.config.jail.run_cancellable(
                        &spec,
                        request_stdin(&p.req, stdin),
                        &mut |stream, data| {
                            on_event(ExecEvent::Output {
                                stage: Stage::Run,
                                stream,
                                data,
                            })
                        },
                        cancel,
                    )?;
                    // The program ran in this workspace: `finish` collects from it and disposes of it.
                    return Ok(Ran {
                        compile_cached,
                        ..Ran::compiled(compile, outcome, Some(ws))
                    });
                }
            }
        };
        ran.compile_cached = compile_cached;
        ws.dispose_in_background();
        Ok(ran)
    }
}
