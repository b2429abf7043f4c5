//! The one conversion of layered limits into a sandbox's [`Limits`]: the language file's stage defaults (whole
//! milliseconds and MiB), then the request's overrides (the same units, already checked against the server's caps
//! by [`crate::ExecuteRequest::validate`]), into the sandbox's units (bytes). Executions, the key ledger and the
//! warm pools all read a stage's limits from here, so they cannot disagree.

use runbox_sandbox::Limits;

use crate::request::LimitOverrides;

pub(crate) const MIB: u64 = 1 << 20;

/// Sandbox limits of a stage: the language's stage defaults, then the request's overrides (run stage only).
pub(crate) fn layered(language: runbox_lang::Limits, request: Option<&LimitOverrides>) -> Limits {
    let mut l = Limits::default();
    if let Some(t) = language.timeout_ms {
        l.wall_ms = t;
        l.cpu_ms = t;
    }
    if let Some(m) = language.memory_mb {
        l.memory_bytes = m * MIB;
    }
    if let Some(p) = language.processes {
        l.processes = u32::try_from(p).unwrap_or(u32::MAX);
    }
    if let Some(o) = request {
        if let Some(t) = o.timeout_ms {
            l.wall_ms = t;
            l.cpu_ms = o.cpu_ms.unwrap_or(t);
        }
        if let Some(c) = o.cpu_ms {
            l.cpu_ms = c;
        }
        if let Some(c) = o.cpu_millicores {
            l.cpu_millicores = c;
        }
        if let Some(m) = o.memory_mb {
            l.memory_bytes = m * MIB;
        }
        if let Some(p) = o.processes {
            l.processes = p;
        }
        if let Some(b) = o.output_bytes {
            l.output_bytes = b;
        }
        if let Some(f) = o.file_size_mb {
            l.file_size_bytes = f * MIB;
        }
        if let Some(t) = o.tmp_mb {
            l.tmp_bytes = t * MIB;
        }
        if let Some(n) = o.open_files {
            l.open_files = n;
        }
    }
    l
}

/// Bytes of a workspace the request asks for (64 MiB unless it says otherwise).
pub(crate) fn workspace_bytes(request: &LimitOverrides) -> u64 {
    request.workspace_mb.unwrap_or(64) * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_overrides_beat_language_defaults() {
        let lang = runbox_lang::Limits {
            timeout_ms: Some(15_000),
            memory_mb: Some(512),
            processes: Some(64),
        };
        let o = LimitOverrides {
            timeout_ms: Some(2000),
            memory_mb: Some(128),
            ..Default::default()
        };
        let l = layered(lang, Some(&o));
        assert_eq!(
            (l.wall_ms, l.cpu_ms, l.memory_bytes, l.processes),
            (2000, 2000, 128 * MIB, 64)
        );
        let l = layered(lang, None);
        assert_eq!((l.wall_ms, l.memory_bytes), (15_000, 512 * MIB));
    }
}
