//! The byte protocol between a caller and the jail process.
//!
//! Caller → jail (jail's stdin): a 4-byte little-endian length, the [`SandboxSpec`](crate::SandboxSpec) as JSON,
//! then the program's stdin as raw bytes until EOF. Jail → caller (jail's stdout): frames of one tag byte, a
//! 4-byte little-endian length and the payload; output chunks as they happen, and exactly one final report.
//! Length prefixes keep the user's bytes from ever being parsed as protocol.
//!
//! Pooled mode adds one message each way: the caller starts a warm run by writing a [`Go`] (a 4-byte little-endian
//! length and the run's limits as JSON) before the program's stdin, and the jail answers with a `Started` frame
//! holding the limits it applied. A pipe loses nothing (a signal's payload can be dropped when the signal queue is
//! full), and the jail lets the program go only once the whole message arrived and parsed.

use std::io::{self, Read, Write};

/// Largest spec the jail accepts; a spec is small, this only bounds a malicious or broken caller.
pub const MAX_SPEC_BYTES: u32 = 4 << 20;
/// Largest frame payload either side writes or accepts.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Stdout = 1,
    Stderr = 2,
    /// The final [`JailReport`](crate::JailReport) as JSON; nothing follows it.
    Report = 3,
    /// Bytes a session worker wrote to its protocol descriptor (fd 4).
    Worker = 4,
    /// Pooled mode: the sandbox is built and its program waits for the go signal. Empty.
    Ready = 5,
    /// Pooled mode: the [`Go`] the jail applied, as JSON, written before the program is let go.
    Started = 6,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::Stdout),
            2 => Some(FrameKind::Stderr),
            3 => Some(FrameKind::Report),
            4 => Some(FrameKind::Worker),
            5 => Some(FrameKind::Ready),
            6 => Some(FrameKind::Started),
            _ => None,
        }
    }
}

pub fn write_frame(w: &mut impl Write, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    // An empty payload is still one frame (`chunks` of an empty slice yields none).
    let empty: [&[u8]; 1] = [&[]];
    let chunks: Box<dyn Iterator<Item = &[u8]>> = if payload.is_empty() {
        Box::new(empty.into_iter())
    } else {
        Box::new(payload.chunks(MAX_FRAME_BYTES as usize))
    };
    for chunk in chunks {
        let mut header = [0u8; 5];
        header[0] = kind as u8;
        header[1..].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        w.write_all(&header)?;
        w.write_all(chunk)?;
    }
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut header[1..])?;
    let kind = FrameKind::from_byte(header[0])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unknown frame tag {}", header[0])))?;
    let len = u32::from_le_bytes(header[1..].try_into().expect("4 bytes"));
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is too large"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

pub fn write_spec(w: &mut impl Write, spec_json: &[u8]) -> io::Result<()> {
    w.write_all(&(spec_json.len() as u32).to_le_bytes())?;
    w.write_all(spec_json)
}

pub fn read_spec(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_SPEC_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "spec too large"));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Largest go message the jail accepts.
pub const MAX_GO_BYTES: u32 = 4096;

/// Pooled mode: the limits of a warm run, which count from its arrival. Both must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Go {
    pub wall_ms: u64,
    pub cpu_ms: u64,
}

/// The go message as the caller writes it: one buffer, so one write of far less than PIPE_BUF (atomic).
pub fn encode_go(go: &Go) -> Vec<u8> {
    let json = serde_json::to_vec(go).expect("a go always serialises");
    let mut out = (json.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// Reads a go message from the start of `buf`: `Ok(None)` while it is incomplete, else the limits and how many
/// bytes they took (what follows is the program's stdin). An error for anything else.
pub fn decode_go(buf: &[u8]) -> Result<Option<(Go, usize)>, String> {
    let Some(len) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
    if len > MAX_GO_BYTES {
        return Err(format!("a go message of {len} bytes"));
    }
    let end = 4 + len as usize;
    let Some(json) = buf.get(4..end) else { return Ok(None) };
    let go: Go = serde_json::from_slice(json).map_err(|e| format!("invalid go message: {e}"))?;
    if go.wall_ms == 0 || go.cpu_ms == 0 {
        return Err("a go message without wall or CPU limit".into());
    }
    Ok(Some((go, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split_large_payloads() {
        let mut buf = Vec::new();
        let big = vec![7u8; MAX_FRAME_BYTES as usize + 10];
        write_frame(&mut buf, FrameKind::Stdout, &big).unwrap();
        write_frame(&mut buf, FrameKind::Report, b"{}").unwrap();
        let mut r = &buf[..];
        let (k1, p1) = read_frame(&mut r).unwrap().unwrap();
        let (k2, p2) = read_frame(&mut r).unwrap().unwrap();
        let (k3, p3) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((k1, p1.len()), (FrameKind::Stdout, MAX_FRAME_BYTES as usize));
        assert_eq!((k2, p2.len()), (FrameKind::Stdout, 10));
        assert_eq!((k3, p3), (FrameKind::Report, b"{}".to_vec()));
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn an_empty_payload_is_still_a_frame() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Ready, &[]).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((FrameKind::Ready, vec![])));
    }

    #[test]
    fn a_go_message_is_read_only_once_whole_and_leaves_what_follows() {
        let go = Go {
            wall_ms: 1500,
            cpu_ms: 700,
        };
        let mut bytes = encode_go(&go);
        let whole = bytes.len();
        for cut in 0..whole {
            assert_eq!(decode_go(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        bytes.extend_from_slice(b"stdin");
        assert_eq!(decode_go(&bytes), Ok(Some((go, whole))));
    }

    #[test]
    fn a_go_message_without_limits_or_too_long_is_refused() {
        let zero = encode_go(&Go { wall_ms: 0, cpu_ms: 5 });
        assert!(decode_go(&zero).is_err());
        let mut garbage = 8u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(b"not json");
        assert!(decode_go(&garbage).is_err());
        assert!(decode_go(&u32::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn bad_tag_is_an_error() {
        let mut r = &[9u8, 0, 0, 0, 0][..];
        assert!(read_frame(&mut r).is_err());
    }
}
