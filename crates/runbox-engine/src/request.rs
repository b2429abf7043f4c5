//! What a client asks the engine to execute. Plain data, validated by [`ExecuteRequest::validate`] into limits
//! and files the engine can trust.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use runbox_sandbox::DEFAULT_CPU_MILLICORES;

use crate::error::EngineError;

/// Least CPU bandwidth a request may ask for: a tenth of a core.
pub const MIN_REQUEST_CPU_MILLICORES: u32 = 100;

/// What a workspace path may be, as the OpenAPI `pattern` of every field and parameter naming one: relative, no
/// backslash or NUL, no `..` component, not only `.` and `/`, not in `.runbox` (see [`crate::paths::confined`];
/// lengths, at most 1024 bytes, 255 per name and 16 levels, are in bytes and said in words).
pub const WORKSPACE_PATH_PATTERN: &str =
    r"^(?!/)(?!(?:\./+)*\.runbox(?:/|$))(?!(?:[^/]*/)*\.\.(?:/|$))(?=[/.]*[^/.])[^\\\x00]+$";

/// A directory to list: the workspace itself (empty, `/` or `.`), or a path as [`WORKSPACE_PATH_PATTERN`].
pub const WORKSPACE_DIR_PATTERN: &str =
    r"^(?:/*|\.|(?!/)(?!(?:\./+)*\.runbox(?:/|$))(?!(?:[^/]*/)*\.\.(?:/|$))(?=[/.]*[^/.])[^\\\x00]+)$";

/// Deserializers for whole numbers that also take a JSON number written with a fraction of zero (`707.0`): JSON
/// Schema's `integer` includes those, and generated clients and testers send them.
pub mod whole {
    use serde::de::{Deserializer, Error, Visitor};
    use std::fmt;

    struct Whole;

    impl<'de> Visitor<'de> for Whole {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number that is not negative")
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("{v} is negative")))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
            // 2^64 is exactly representable; anything below it with no fraction converts exactly.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(Some(v as u64))
            } else {
                Err(E::custom(format!("{v} is not a whole number that is not negative")))
            }
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Whole)
        }
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_option(Whole)
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match opt_u64(d)? {
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{v} is too large"))),
            None => Ok(None),
        }
    }
}

/// How a file's `content` is encoded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// One file of a multi-file program.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Path inside the workspace (`src/util.py`).
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

impl SourceFile {
    pub fn bytes(&self, field: &str) -> Result<Vec<u8>, EngineError> {
        match self.encoding {
            Encoding::Utf8 => Ok(self.content.clone().into_bytes()),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(self.content.trim())
                .map_err(|e| EngineError::invalid(format!("{field}.content"), format!("invalid base64: {e}"))),
        }
    }
}

/// Limits a client may ask for. Absent fields take the language's defaults. The bounds below are those of the
/// default configuration: the operator sets the maxima (`limits.*` in the server's configuration), and a value
/// outside the server's own bounds is refused with 422 naming the field.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Wall time, milliseconds.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 60_000))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub timeout_ms: Option<u64>,
    /// CPU time, milliseconds.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 60_000))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub cpu_ms: Option<u64>,
    /// CPU bandwidth of the run stage (or the session) in thousandths of a core: 1000 (the default) is one
    /// core's worth of CPU per second of wall time however many threads run; 2500 is two and a half cores.
    /// At least 100, at most the server's maximum (`limits.cpu_millicores` of its configuration). The compile
    /// stage always gets the default.
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 1_000_000))]
    #[serde(default, deserialize_with = "whole::opt_u32")]
    pub cpu_millicores: Option<u32>,

    /// Memory, MiB.
    #[cfg_attr(feature = "openapi", schema(minimum = 16, maximum = 2048))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub memory_mb: Option<u64>,
    /// Processes and threads.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 512))]
    #[serde(default, deserialize_with = "whole::opt_u32")]
    pub processes: Option<u32>,
    /// Bytes of stdout, and of stderr, kept.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 16_777_216))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub output_bytes: Option<u64>,
    /// Largest file the program may write, MiB.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 256))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub file_size_mb: Option<u64>,
    /// Size of `/tmp`, MiB.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 512))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub tmp_mb: Option<u64>,
    /// Size of the workspace, MiB.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 512))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub workspace_mb: Option<u64>,
    /// Open file descriptors.
    #[cfg_attr(feature = "openapi", schema(minimum = 16, maximum = 4096))]
    #[serde(default, deserialize_with = "whole::opt_u64")]
    pub open_files: Option<u64>,
}

/// One judge test case: the program runs once per case with this input, and its stdout is compared.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub stdin: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Expected stdout; compared after trimming trailing whitespace on each line and trailing blank lines.
    pub expected_output: Option<String>,
}

/// An execution request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecuteRequest {
    pub language: String,
    /// Code of the entry file; written to the language's default file name unless `entry` says otherwise.
    pub code: Option<String>,
    pub files: Vec<SourceFile>,
    /// Which file to run; defaults to the code's file, else the first of `files`.
    pub entry: Option<String>,
    pub stdin: Vec<u8>,
    pub args: Vec<String>,
    /// The program's environment (run stage only: a compile stage gets the language's own, see
    /// `execute::compile_env`).
    pub env: BTreeMap<String, String>,
    pub limits: LimitOverrides,
    pub tests: Vec<TestCase>,
    /// Glob patterns (`*.png`, `out/**`) of files to return after the run.
    pub collect: Vec<String>,
    /// Who asks (the API key's name; empty for the command line). Set by the server, never by the client: what
    /// one tenant's runs leave behind (compile cache entries) is visible only to runs of the same tenant.
    pub tenant: String,
}

/// The engine's maxima on client-chosen limits, and defaults where a language says nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitCaps {
    pub timeout_ms: u64,
    pub cpu_ms: u64,
    /// Most CPU bandwidth a request may ask for, in thousandths of a core; at least 1000 (a run's default is one
    /// core). Defaults to every core of the machine.
    pub cpu_millicores: u32,
    pub memory_mb: u64,
    pub processes: u32,
    pub output_bytes: u64,
    pub file_size_mb: u64,
    pub tmp_mb: u64,
    pub workspace_mb: u64,
    pub open_files: u64,
    /// Most files and total bytes of files in one request.
    pub max_files: usize,
    pub max_file_bytes: usize,
    pub max_test_cases: usize,
}

impl Default for LimitCaps {
    fn default() -> Self {
        LimitCaps {
            timeout_ms: 60_000,
            cpu_ms: 60_000,
            cpu_millicores: crate::machine::cores().saturating_mul(1000).max(DEFAULT_CPU_MILLICORES),
            memory_mb: 2048,
            processes: 512,
            output_bytes: 16 << 20,
            file_size_mb: 256,
            tmp_mb: 512,
            workspace_mb: 512,
            open_files: 4096,
            max_files: 256,
            max_file_bytes: 32 << 20,
            max_test_cases: 256,
        }
    }
}

const MAX_ENV_VARS: usize = 256;
const MAX_ARGS: usize = 1024;

impl ExecuteRequest {
    /// Checks fields that need no language knowledge. Each error names the field.
    pub fn validate(&self, caps: &LimitCaps) -> Result<(), EngineError> {
        if self.code.is_none() && self.files.is_empty() {
            return Err(EngineError::invalid(
                "code",
                "give `code` or at least one entry in `files`",
            ));
        }
        if self.files.len() > caps.max_files {
            return Err(EngineError::invalid(
                "files",
                format!("at most {} files", caps.max_files),
            ));
        }
        let total: usize =
            self.files.iter().map(|f| f.content.len()).sum::<usize>() + self.code.as_ref().map_or(0, |c| c.len());
        if total > caps.max_file_bytes {
            return Err(EngineError::invalid(
                "files",
                format!("files total more than {} bytes", caps.max_file_bytes),
            ));
        }
        if self.args.len() > MAX_ARGS || self.args.iter().any(|a| a.contains('\0')) {
            return Err(EngineError::invalid(
                "args",
                format!("at most {MAX_ARGS} arguments, without NUL bytes"),
            ));
        }
        if self.env.len() > MAX_ENV_VARS {
            return Err(EngineError::invalid("env", format!("at most {MAX_ENV_VARS} variables")));
        }
        for (k, v) in &self.env {
            let valid_name = !k.is_empty()
                && !k.as_bytes()[0].is_ascii_digit()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name || v.contains('\0') {
                return Err(EngineError::invalid(
                    format!("env.{k}"),
                    "names are letters, digits and _; no NUL in values",
                ));
            }
        }
        if self.collect.len() > 64
            || self
                .collect
                .iter()
                .any(|p| p.is_empty() || p.starts_with('/') || p.contains(".."))
        {
            return Err(EngineError::invalid(
                "collect",
                "at most 64 relative glob patterns, without `..`",
            ));
        }
        if self.tests.len() > caps.max_test_cases {
            return Err(EngineError::invalid(
                "tests",
                format!("at most {} test cases", caps.max_test_cases),
            ));
        }
        let l = &self.limits;
        let checks: [(&str, Option<u64>, u64, u64); 10] = [
            ("limits.timeout_ms", l.timeout_ms, 1, caps.timeout_ms),
            ("limits.cpu_ms", l.cpu_ms, 1, caps.cpu_ms),
            (
                "limits.cpu_millicores",
                l.cpu_millicores.map(u64::from),
                u64::from(MIN_REQUEST_CPU_MILLICORES),
                u64::from(caps.cpu_millicores),
            ),
            ("limits.memory_mb", l.memory_mb, 16, caps.memory_mb),
            (
                "limits.processes",
                l.processes.map(u64::from),
                1,
                u64::from(caps.processes),
            ),
            ("limits.output_bytes", l.output_bytes, 0, caps.output_bytes),
            ("limits.file_size_mb", l.file_size_mb, 1, caps.file_size_mb),
            ("limits.tmp_mb", l.tmp_mb, 1, caps.tmp_mb),
            ("limits.workspace_mb", l.workspace_mb, 1, caps.workspace_mb),
            ("limits.open_files", l.open_files, 16, caps.open_files),
        ];
        for (field, value, min, max) in checks {
            if let Some(v) = value {
                if v < min || v > max {
                    return Err(EngineError::invalid(
                        field,
                        format!("must be between {min} and {max}, got {v}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking_cpu(millicores: u32) -> ExecuteRequest {
        ExecuteRequest {
            language: "python".into(),
            code: Some("print(1)".into()),
            limits: LimitOverrides {
                cpu_millicores: Some(millicores),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn cpu_millicores_must_lie_between_a_tenth_of_a_core_and_the_servers_maximum() {
        let caps = LimitCaps {
            cpu_millicores: 2000,
            ..LimitCaps::default()
        };
        for ok in [100, 1000, 2000] {
            assert!(asking_cpu(ok).validate(&caps).is_ok(), "{ok}");
        }
        for bad in [0, 99, 2001, u32::MAX] {
            let err = asking_cpu(bad).validate(&caps).unwrap_err().to_string();
            assert!(err.contains("limits.cpu_millicores"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_default_ceiling_of_cpu_millicores_is_every_core_and_at_least_one() {
        let caps = LimitCaps::default();
        assert!(caps.cpu_millicores >= DEFAULT_CPU_MILLICORES);
        assert_eq!(caps.cpu_millicores % 1000, 0);
    }
}
