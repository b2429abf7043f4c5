//! The one conversion of layered limits into a sandbox's [`Limits`]: the language file's stage defaults (whole
//! milliseconds and MiB), or a session's own defaults, then the request's overrides (the same units, already
//! checked against the server's caps by [`crate::ExecuteRequest::validate`]), into the sandbox's units (bytes).
//! Executions, sessions, the key ledger and the warm pools all read a sandbox's limits from here, so they cannot
//! disagree.

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
        apply(&mut l, o);
    }
    l
}

/// Sandbox limits of a session: its whole lifetime as wall time (CPU time up to four times that), the server's
/// default memory, `processes`, no output cap (each cell cuts its own output), then the request's overrides of
/// the rest. A session request's time and output limits are not the sandbox's: they apply to its cells.
pub(crate) fn session(lifetime_ms: u64, memory_mb: u64, processes: u32, request: &LimitOverrides) -> Limits {
    let mut l = Limits {
        wall_ms: lifetime_ms,
        cpu_ms: lifetime_ms.saturating_mul(4),
        memory_bytes: memory_mb * MIB,
        processes,
        output_bytes: u64::MAX,
        grace_ms: 200,
        ..Limits::default()
    };
    let sandbox_wide = LimitOverrides {
        timeout_ms: None,
        cpu_ms: None,
        output_bytes: None,
        ..request.clone()
    };
    apply(&mut l, &sandbox_wide);
    l
}

/// The request's overrides over `l`, in the sandbox's units.
fn apply(l: &mut Limits, o: &LimitOverrides) {
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

    #[test]
    fn a_session_takes_the_requests_resource_overrides_but_not_its_time_or_output_limits() {
        let defaults = session(3_600_000, 256, 64, &LimitOverrides::default());
        let expected = Limits {
            wall_ms: 3_600_000,
            cpu_ms: 14_400_000,
            memory_bytes: 256 * MIB,
            processes: 64,
            output_bytes: u64::MAX,
            grace_ms: 200,
            ..Limits::default()
        };
        assert_eq!(defaults, expected);
        let o = LimitOverrides {
            timeout_ms: Some(2000),
            cpu_ms: Some(1000),
            output_bytes: Some(10),
            cpu_millicores: Some(500),
            memory_mb: Some(128),
            processes: Some(8),
            file_size_mb: Some(2),
            tmp_mb: Some(3),
            open_files: Some(32),
            ..Default::default()
        };
        let l = session(3_600_000, 256, 64, &o);
        assert_eq!(
            l,
            Limits {
                cpu_millicores: 500,
                memory_bytes: 128 * MIB,
                processes: 8,
                file_size_bytes: 2 * MIB,
                tmp_bytes: 3 * MIB,
                open_files: 32,
                ..expected
            }
        );
    }
}
