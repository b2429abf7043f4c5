//! The staged pipeline of one execution. [`Engine::prepare`] checks a request and computes everything its run
//! needs, once (`prepare.rs`); [`Engine::run`] chooses its route once: a warm sandbox from the pools
//! ([`Route::Warm`], `warm.rs`), a warm sandbox with cached compile artefacts ([`Route::CachedWarm`], `warm.rs`),
//! or a workspace of its own with a compile stage and a run stage, each in a fresh sandbox ([`Route::Cold`],
//! `cold.rs`; once per judge test case, `judge.rs`). Every route ends in the same [`Prepared::finish`].

mod cold;
mod judge;
mod prepare;
mod warm;

use std::io::Read;
use std::time::Instant;

use runbox_sandbox::{CancelToken, Outcome, OutputStream, Workspace};

pub use prepare::Prepared;

use crate::pools::Taken;
use crate::request::ExecuteRequest;
use crate::result::{ExecutionResult, ExecutionStatus, TestCaseResult, TestSummary};
use crate::{Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Compile,
    Run,
}

/// What happens during an execution, as it happens.
#[derive(Debug)]
pub enum ExecEvent<'a> {
    StageStarted(Stage),
    Output {
        stage: Stage,
        stream: OutputStream,
        data: &'a [u8],
    },
    /// A judge test case finished.
    TestCase(&'a TestCaseResult),
}

/// The way a prepared request runs, chosen once before anything runs.
enum Route {
    /// An interpreted program, whole, in a warm sandbox.
    Warm(Taken),
    /// A compiled program whose artefacts were cached: placed in a warm sandbox's workspace, no compile.
    CachedWarm { taken: Taken, compiled: Outcome },
    /// A workspace of its own: compile (or restore the artefacts), then run or judge.
    Cold,
}

/// What a route hands to [`Prepared::finish`]: the stage that decides the result, and the others.
pub(super) struct Ran {
    status: ExecutionStatus,
    decisive: Outcome,
    compile: Option<Outcome>,
    compile_cached: bool,
    /// The run stage listed apart from the compile stage (languages that compile).
    run: Option<Outcome>,
    judged: Option<(Vec<TestCaseResult>, TestSummary)>,
    /// The workspace the program ran in: `collect` looks at it, then it is disposed of. None when nothing ran.
    ran_in: Option<Workspace>,
}

impl Ran {
    /// One run stage decided it all.
    fn single(outcome: Outcome, ran_in: Option<Workspace>) -> Ran {
        Ran {
            status: outcome.status.into(),
            decisive: outcome,
            compile: None,
            compile_cached: false,
            run: None,
            judged: None,
            ran_in,
        }
    }

    /// A run stage after `compile` (listed apart when there was one).
    fn compiled(compile: Option<Outcome>, run: Outcome, ran_in: Option<Workspace>) -> Ran {
        Ran {
            run: compile.is_some().then(|| run.clone()),
            compile,
            ..Ran::single(run, ran_in)
        }
    }
}

/// The run stage's stdin: a streamed one when the caller gives it, else the request's bytes (none when empty).
fn request_stdin(req: &ExecuteRequest, streamed: Option<Box<dyn Read + Send>>) -> Option<Box<dyn Read + Send>> {
    streamed.or_else(|| {
        (!req.stdin.is_empty()).then(|| Box::new(std::io::Cursor::new(req.stdin.clone())) as Box<dyn Read + Send>)
    })
}

impl Prepared {
    /// The one way a route's stages become the execution's result: the decisive stage's record on top, the
    /// others beside it, the files `collect` asks for (leaving out unchanged inputs), and the time it all took.
    fn finish(&self, ran: Ran, started: Instant) -> ExecutionResult {
        let mut result =
            ExecutionResult::from_stage(self.lang.id(), self.version.clone(), ran.status, ran.decisive.record);
        result.compile = ran.compile;
        result.compile_cached = ran.compile_cached;
        result.run = ran.run;
        if let Some((cases, summary)) = ran.judged {
            result.tests = Some(cases);
            result.summary = Some(summary);
        }
        if let Some(ws) = ran.ran_in {
            if !self.req.collect.is_empty() {
                let unchanged =
                    |path: &str, bytes: &[u8]| self.files.iter().any(|(p, c)| p.to_str() == Some(path) && c == bytes);
                result.files = Some(crate::collect::collect(ws.path(), &self.req.collect, &unchanged));
            }
            ws.dispose_in_background();
        }
        result.duration_ms = started.elapsed().as_millis() as u64;
        result
    }
}

impl Engine {
    /// Everything that can be checked about a request without running it: fields, language, files and entry.
    pub fn check(&self, req: &ExecuteRequest) -> Result<(), EngineError> {
        self.prepare(req.clone()).map(drop)
    }

    /// Prepares and runs one request (see [`Engine::prepare`] and [`Engine::run`]).
    pub fn execute(
        &self,
        req: &ExecuteRequest,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<ExecutionResult, EngineError> {
        let prepared = self.prepare(req.clone())?;
        self.run(&prepared, stdin, cancel, on_event)
    }

    /// Runs a prepared request to completion. `stdin`, when given, replaces the request's stdin for the run stage
    /// (streamed input, e.g. from a WebSocket). `on_event` sees stage starts and output chunks as they happen.
    pub fn run(
        &self,
        p: &Prepared,
        stdin: Option<Box<dyn Read + Send>>,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(ExecEvent<'_>),
    ) -> Result<ExecutionResult, EngineError> {
        let started = Instant::now();
        let ran = match self.route(p) {
            Route::Warm(taken) => self.run_warm(p, taken, stdin, cancel, on_event)?,
            Route::CachedWarm { taken, compiled } => {
                self.run_cached_warm(p, taken, compiled, stdin, cancel, on_event)?
            }
            Route::Cold => self.run_cold(p, stdin, cancel, on_event)?,
        };
        Ok(p.finish(ran, started))
    }

    /// Chooses the route (see [`Route`]); a warm sandbox it takes goes with the route.
    fn route(&self, p: &Prepared) -> Route {
        let Some(compile) = &p.compile else {
            return self.warm_sandbox(p).map_or(Route::Cold, Route::Warm);
        };
        let Some(key) = &compile.cache_key else {
            return Route::Cold;
        };
        if !p.fits_warm || !self.compile_cache.contains(key) {
            return Route::Cold;
        }
        let Some(taken) = self.warm_sandbox(p) else {
            return Route::Cold;
        };
        let artefacts = taken.workspace.path().join(crate::paths::ARTEFACT_DIR_NAME);
        match self.compile_cache.restore(key, &artefacts, self.workspace_owner()) {
            Some(compiled) => Route::CachedWarm { taken, compiled },
            None => Route::Cold, // evicted meanwhile: the warm sandbox is dropped, the usual way compiles
        }
    }
}
