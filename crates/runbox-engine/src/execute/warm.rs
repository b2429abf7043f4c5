//! The warm routes of an execution: a run stage served by a sandbox from the pools, for interpreted programs
//! ([`Route::Warm`](super::Route)), for compiled programs whose artefacts are cached, with no workspace of their own
//! and no compile ([`Route::CachedWarm`](super::Route)), and for compiled programs after their compile (the cold
//! route's run stage).

use std::io::Read;
use std::path::Path;

use runbox_sandbox::{probe, CancelToken, Outcome, Workspace};

use super::prepare::Prepared;
use super::{request_stdin, ExecEvent, Ran, Stage};
use crate::paths::ARTEFACT_DIR_NAME;
use crate::pools::Taken;
use crate::{Engine, EngineError};

impl Engine {
    /// A warm sandbox for this request, if it fits one (see [`Prepared::fits_warm`]) and one is waiting.
    pub(super) fn warm_sandbox(&self, p: &Prepared) -> Option<Taken> {
        if !p.fits_warm {
            return None;
        }
        self.pools().take(p.lang.id())
    }

    /// An interpreted language's whole execution in a warm sandbox.
    pub(super) fn run_warm(
        &self,
        p: &Prepared,
        taken: Taken,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<Ran, EngineError> {
        let (outcome, ws) = self.go_warm(p, taken, None, stdin, cancel, on_event)?;
        Ok(Ran::single(outcome, Some(ws)))
    }

    /// A compiled program whose artefacts the route placed from the cache into `taken`'s workspace: no compile.
    pub(super) fn run_cached_warm(
        &self,
        p: &Prepared,
        taken: Taken,
        compiled: Outcome,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<Ran, EngineError> {
        let (outcome, ws) = self.go_warm(p, taken, None, stdin, cancel, on_event)?;
        let mut ran = Ran::compiled(Some(compiled), outcome, Some(ws));
        ran.compile_cached = true;
        Ok(ran)
    }

    /// Runs the prepared plan in a warm sandbox taken from a pool: the request's files (and, for compiled
    /// languages, the artefacts of `compiled`) are placed in its workspace, with the argument and environment lists
    /// its prelude reads.
    pub(super) fn go_warm(
        &self,
        p: &Prepared,
        taken: Taken,
        compiled: Option<&Workspace>,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<(Outcome, Workspace), EngineError> {
        let Taken { jail, workspace, .. } = taken;
        for (path, content) in &p.files {
            workspace.write_file(path, content)?;
        }
        if let Some(compiled) = compiled {
            let artefacts = Path::new(ARTEFACT_DIR_NAME);
            crate::compile_cache::copy_tree(
                &compiled.path().join(artefacts),
                &workspace.path().join(artefacts),
                self.workspace_owner(),
            )
            .map_err(|e| EngineError::invalid("files", format!("cannot place the compiled program: {e}")))?;
        }
        // NUL-separated lists: the preludes read them without parsing JSON.
        let nul_list = |items: Vec<String>| {
            items
                .into_iter()
                .flat_map(|s| s.into_bytes().into_iter().chain([0u8]))
                .collect::<Vec<u8>>()
        };
        let args = nul_list(
            std::iter::once(p.plan.entry.clone())
                .chain(p.req.args.iter().cloned())
                .collect(),
        );
        let argv = nul_list(p.lang.run_argv(&p.plan));
        let env = nul_list(p.req.env.iter().map(|(k, v)| format!("{k}={v}")).collect());
        for (name, content) in [("args", &args), ("argv", &argv), ("env", &env)] {
            workspace.write_file(&Path::new(ARTEFACT_DIR_NAME).join(name), content)?;
        }
        let stdin = request_stdin(&p.req, stdin);
        on_event(ExecEvent::StageStarted(Stage::Run));
        let outcome = jail.go(
            p.run_limits.wall_ms,
            p.run_limits.cpu_ms,
            stdin,
            &mut |stream, data| {
                on_event(ExecEvent::Output {
                    stage: Stage::Run,
                    stream,
                    data,
                })
            },
            cancel,
        );
        self.pools().refill();
        Ok((outcome?, workspace))
    }

    /// Who owns the files the engine places in a workspace: the host's user the sandbox maps, as root.
    pub(super) fn workspace_owner(&self) -> Option<u32> {
        probe::is_root().then_some(self.config.policy.host_uid)
    }
}
