//! Request bodies of the API and their translation into engine requests. Responses are the engine's types.

use std::collections::BTreeMap;

use runbox_engine::{Catalogue, ExecuteRequest, LimitCaps, LimitOverrides, SourceFile, TestCase};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

fn default_language() -> String {
    "python".into()
}

/// A request to run code once.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// Language id or alias (`GET /languages`). A first line `%%bash` or `%%javascript` in `code` selects the
    /// language too.
    #[serde(default = "default_language")]
    #[schema(example = "python")]
    pub language: String,
    /// Code of the entry file.
    #[serde(default)]
    #[schema(example = "print('hello')")]
    pub code: Option<String>,
    /// Alias of `code` (the name some clients use); give one or the other, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Further files (or all of them, without `code`).
    #[serde(default)]
    pub files: Vec<SourceFile>,
    /// Which file to run; defaults to the code's file, else the first file.
    #[serde(default)]
    pub entry: Option<String>,
    /// Text given to the program on stdin.
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables of the program (the run stage), over the language's own. Names are letters, digits
    /// and `_`, at most 256 variables. They never reach a compile stage: a compiler sees only the language's
    /// environment, so `LD_PRELOAD`, `LD_LIBRARY_PATH`, `GCONV_PATH`, `JAVA_TOOL_OPTIONS` and the like cannot run
    /// the request's code in the compiler or change what it builds.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Wall time limit in milliseconds (shorthand for `limits.timeout_ms`; same bounds, which the operator sets).
    #[serde(default, deserialize_with = "runbox_engine::whole::opt_u64")]
    #[schema(minimum = 1, maximum = 60_000)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Judge mode: compile once, run once per case, give a verdict per case.
    #[serde(default)]
    pub tests: Vec<TestCase>,
    /// Glob patterns (`*.png`, `out/**`) of files the program produced to return, base64, within a size budget.
    #[serde(default)]
    pub collect: Vec<String>,
    /// Async executions only: receives the finished record by POST.
    #[serde(default)]
    pub callback_url: Option<String>,
}

impl ExecuteBody {
    /// `timeout_ms` overrides `limits.timeout_ms`; a value it shadows must still be one the server accepts, so
    /// that a request the document calls invalid is never run.
    pub fn check_shadowed(&self, caps: &LimitCaps) -> Result<(), ApiError> {
        match (self.timeout_ms, self.limits.timeout_ms) {
            (Some(_), Some(t)) if t == 0 || t > caps.timeout_ms => Err(ApiError::invalid_field(
                "limits.timeout_ms",
                format!("must be between 1 and {}, got {t}", caps.timeout_ms),
            )),
            _ => Ok(()),
        }
    }

    /// The engine request this body asks for. The `timeout_ms` shorthand is checked here, against `caps`, so that
    /// an error names the field the client sent rather than the `limits.timeout_ms` it stands for.
    /// A first line `%%magic` of `code` selects the language whose file lists that magic (`magics`).
    pub fn into_request(self, caps: &LimitCaps, catalogue: &Catalogue) -> Result<ExecuteRequest, ApiError> {
        if let Some(t) = self.timeout_ms {
            if t == 0 || t > caps.timeout_ms {
                return Err(ApiError::invalid_field(
                    "timeout_ms",
                    format!("must be between 1 and {}, got {t}", caps.timeout_ms),
                ));
            }
        }
        self.check_shadowed(caps)?;
        let mut language = self.language;
        let mut code = match (self.code, self.command) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_field(
                    "command",
                    "`command` is an alias of `code`: give one or the other",
                ))
            }
            (code, command) => code.or(command),
        };
        if let Some(c) = &code {
            if let Some(rest) = c.strip_prefix("%%") {
                let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
                let magic = first.trim();
                let lang = catalogue
                    .by_magic(magic)
                    .ok_or_else(|| ApiError::invalid_field("code", format!("unknown cell magic %%{magic}")))?;
                language = lang.id().to_string();
                code = Some(body.to_string());
            }
        }
        let mut limits = self.limits;
        if self.timeout_ms.is_some() {
            limits.timeout_ms = self.timeout_ms;
        }
        Ok(ExecuteRequest {
            language,
            code,
            files: self.files,
            entry: self.entry,
            stdin: self.stdin.unwrap_or_default().into_bytes(),
            args: self.args,
            env: self.env,
            limits,
            tests: self.tests,
            collect: self.collect,
            ..Default::default()
        })
    }
}

/// Body of the Jupyter-server-style compatibility route. Unknown fields are refused, as on `/execute`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterpreterBody {
    pub code: String,
    /// Wall time limit in seconds: more than 0, at most 60 (the default maximum, which the operator sets).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 60)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterpreterError {
    pub name: String,
    pub value: String,
    pub traceback: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterpreterResponse {
    /// `ok`, `error`, `interrupted` or `exit`.
    pub status: String,
    pub stdout: String,
    pub stderr: String,
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
    pub error: Option<InterpreterError>,
    /// The program's exit code (also for `exit`); null when it was killed by a signal or never ran.
    #[serde(rename = "exitCode")]
    pub exit_code: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        Catalogue::load(None).unwrap()
    }

    fn body(json: &str) -> ExecuteBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn language_defaults_to_python_and_command_is_an_alias() {
        let r = body(r#"{"command": "print(1)"}"#)
            .into_request(&LimitCaps::default(), &catalogue())
            .unwrap();
        assert_eq!((r.language.as_str(), r.code.as_deref()), ("python", Some("print(1)")));
        let both =
            body(r#"{"command": "print(1)", "code": "print(2)"}"#).into_request(&LimitCaps::default(), &catalogue());
        assert!(both.is_err(), "code and its alias together are refused");
    }

    #[test]
    fn cell_magics_select_the_language() {
        let r = body(r#"{"code": "%%bash\necho hi"}"#)
            .into_request(&LimitCaps::default(), &catalogue())
            .unwrap();
        assert_eq!((r.language.as_str(), r.code.as_deref()), ("bash", Some("echo hi")));
        let r = body(r#"{"code": "%%javascript\nconsole.log(1)"}"#)
            .into_request(&LimitCaps::default(), &catalogue())
            .unwrap();
        assert_eq!(r.language, "javascript");
        assert!(body(r#"{"code": "%%fortran\nx"}"#)
            .into_request(&LimitCaps::default(), &catalogue())
            .is_err());
    }

    #[test]
    fn a_bad_timeout_shorthand_is_named_as_sent() {
        let caps = LimitCaps::default();
        for t in [0, caps.timeout_ms + 1] {
            let e = body(&format!(r#"{{"code": "1", "timeout_ms": {t}}}"#))
                .into_request(&caps, &catalogue())
                .unwrap_err();
            assert_eq!(e.details.unwrap()["field"], "timeout_ms", "{t}");
        }
        let r = body(r#"{"code": "1", "timeout_ms": 5}"#)
            .into_request(&caps, &catalogue())
            .unwrap();
        assert_eq!(r.limits.timeout_ms, Some(5));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<ExecuteBody>(r#"{"code": "1", "langauge": "py"}"#).is_err());
    }
}
