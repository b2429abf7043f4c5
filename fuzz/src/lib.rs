//! The fuzz targets, as plain functions of bytes: each feeds its input to one of runbox's parsers or decoders and
//! checks what must hold for every input (no panic, and the property named in its comment). The libFuzzer entry
//! points (`fuzz_targets/`, nightly) and the bounded seeded run on stable (`tests/bounded.rs`, what CI runs) both
//! call these, so the two kinds of fuzzing exercise exactly the same code.

use std::io::Cursor;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use runbox_engine::LimitCaps;
use runbox_sandbox::protocol::{self, FrameKind};

/// A fuzz target: takes any bytes, panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name, for the drivers.
pub const TARGETS: &[(&str, Target)] = &[
    ("execute_body", execute_body),
    ("jail_frames", jail_frames),
    ("worker_lines", worker_lines),
    ("path_confinement", path_confinement),
];

/// The request parser of `POST /execute` (and `/executions`, the WebSocket's `execute`): JSON into
/// `ExecuteBody`, then into an engine request under the default caps. Bad input is an error, never a panic; an
/// accepted request's limits are within the caps.
pub fn execute_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<runbox_server::api::ExecuteBody>(data) else {
        return;
    };
    let caps = LimitCaps::default();
    static CATALOGUE: OnceLock<runbox_engine::Catalogue> = OnceLock::new();
    let catalogue =
        CATALOGUE.get_or_init(|| runbox_engine::Catalogue::load(None).expect("the embedded catalogue loads"));
    if let Ok(req) = body.into_request(&caps, catalogue) {
        if let Some(t) = req.limits.timeout_ms {
            assert!(t <= caps.timeout_ms, "a timeout over the cap was accepted: {t}");
        }
        // What the engine checks before running (files, entry point) never panics either.
        for f in &req.files {
            let _ = runbox_engine::paths::confined("files[].path", &f.path);
        }
    }
}

/// The jail's decoders: frames (jail → host), the spec (host → jail, length-prefixed JSON), and the go message
/// of a pooled run. Truncated, oversized or unknown input is an error, never a panic or a huge allocation; a go
/// message says how many bytes it took, no more than it had; what is written is read back the same.
pub fn jail_frames(data: &[u8]) {
    let mut r = Cursor::new(data);
    let mut frames = 0;
    while let Ok(Some((_, payload))) = protocol::read_frame(&mut r) {
        assert!(payload.len() as u32 <= protocol::MAX_FRAME_BYTES);
        frames += 1;
        assert!(frames <= data.len(), "more frames than bytes");
    }
    if let Ok(spec) = protocol::read_spec(&mut Cursor::new(data)) {
        let _ = serde_json::from_slice::<runbox_sandbox::SandboxSpec>(&spec);
    }
    let _ = serde_json::from_slice::<runbox_sandbox::SandboxSpec>(data);
    if let Ok(Some((go, used))) = protocol::decode_go(data) {
        assert!(used <= data.len());
        assert!(go.wall_ms > 0 && go.cpu_ms > 0);
        // The same limits come back from their encoding (which may be shorter: the input may have spaces, or
        // spell the message as an array, which serde accepts for a struct).
        let again = protocol::decode_go(&protocol::encode_go(&go)).map(|g| g.map(|(g, _)| g));
        assert_eq!(again, Ok(Some(go)));
    }
    // Round trip: the input as a payload of each kind comes back whole (split into frames when long).
    let kind = match data.first().map(|b| b % 3) {
        Some(0) => FrameKind::Stdout,
        Some(1) => FrameKind::Stderr,
        _ => FrameKind::Worker,
    };
    let mut wire = Vec::new();
    protocol::write_frame(&mut wire, kind, data).expect("writing to memory");
    let mut back = Vec::new();
    let mut r = Cursor::new(&wire);
    while let Some((k, payload)) = protocol::read_frame(&mut r).expect("a frame just written") {
        assert_eq!(k as u8, kind as u8);
        back.extend_from_slice(&payload);
    }
    assert_eq!(back, data);
}

/// The host's side of the session worker protocol: whatever the worker writes, cut into chunks anywhere (the
/// first byte chooses the chunk sizes), gives the same messages as the whole read at once; nothing more than the
/// longest line allowed is ever held.
pub fn worker_lines(data: &[u8]) {
    let Some((&seed, data)) = data.split_first() else {
        return;
    };
    let whole = runbox_engine::sessions::split_worker_lines(&mut Vec::new(), data, usize::MAX);
    let mut pending = Vec::new();
    let mut chunked = Vec::new();
    let mut rest = data;
    let mut step = seed as usize;
    while !rest.is_empty() {
        step = (step * 31 + 7) % 97;
        let n = (step % 13 + 1).min(rest.len());
        chunked.extend(runbox_engine::sessions::split_worker_lines(
            &mut pending,
            &rest[..n],
            usize::MAX,
        ));
        rest = &rest[n..];
    }
    assert_eq!(whole, chunked, "chunking changed the messages");
    // A small bound: whatever arrives, the held bytes stay within it.
    let max_line = 16 + seed as usize % 48;
    let mut pending = Vec::new();
    for chunk in data.chunks(7) {
        runbox_engine::sessions::split_worker_lines(&mut pending, chunk, max_line);
        assert!(
            pending.len() <= max_line,
            "{} bytes held past the {max_line} limit",
            pending.len()
        );
    }
}

/// A workspace with a way out planted in it (a symlink to a directory outside, as a session's program could
/// make), and a secret outside.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

const SECRET: &[u8] = b"the host's secret";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("workspace");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), SECRET).unwrap();
        std::fs::write(root.join("sub/file.txt"), b"inside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("secret-link")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("sub/up")).unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
        }
    })
}

/// Path confinement: a path the engine accepts is relative, without `..`, root or the `.runbox` directory, and
/// bounded; and the session file API (read, list, write), given any path, never reads or writes outside the
/// workspace, whatever symlinks are planted in it.
pub fn path_confinement(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    if let Ok(p) = runbox_engine::paths::confined("path", &raw) {
        assert!(p.is_relative() && !p.as_os_str().is_empty(), "{p:?}");
        assert!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{raw:?} gave {p:?}"
        );
        assert!(!p.starts_with(runbox_engine::paths::ARTEFACT_DIR_NAME), "{p:?}");
        assert!(p.as_os_str().len() <= raw.len() && !p.to_string_lossy().contains('\0'));
    }
    let f = fixture();
    if let Ok(content) = runbox_engine::files::read(&f.root, &raw, 1 << 20) {
        assert_ne!(content, SECRET, "{raw:?} read the secret outside the workspace");
    }
    if runbox_engine::files::list(&f.root, &raw).is_ok() {
        // The directory listed is the workspace or one inside it (through no symlink out). (Names alone prove
        // nothing: earlier inputs may have created any name inside the workspace.)
        if let Ok(rel) = runbox_engine::paths::confined("path", &raw) {
            assert!(
                is_inside(&f.root, &f.root.join(rel)),
                "{raw:?} listed a directory outside"
            );
        }
    }
    if runbox_engine::files::write(&f.root, &raw, b"fuzz", None).is_ok() {
        assert_eq!(
            std::fs::read(f.outside.join("secret")).unwrap(),
            SECRET,
            "{raw:?} wrote outside"
        );
        let outside: Vec<_> = std::fs::read_dir(&f.outside).unwrap().flatten().collect();
        assert_eq!(outside.len(), 1, "{raw:?} created a file outside the workspace");
        // The file it wrote is inside the workspace, and not through a symlink.
        let written = f.root.join(runbox_engine::paths::confined("path", &raw).unwrap());
        assert!(is_inside(&f.root, &written), "{raw:?} wrote {written:?}");
        let _ = std::fs::remove_file(&written);
    }
}

/// Whether `path`, with its symlinks resolved, lies under `root`.
fn is_inside(root: &Path, path: &Path) -> bool {
    match (root.canonicalize(), path.canonicalize()) {
        (Ok(root), Ok(path)) => path.starts_with(root),
        _ => true, // gone already: nothing outside to check
    }
}
