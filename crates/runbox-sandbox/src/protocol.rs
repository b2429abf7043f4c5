//! The byte protocol between a caller and the jail process.
//!
//! Caller → jail (jail's stdin): a 4-byte little-endian length, the [`SandboxSpec`](crate::SandboxSpec) as JSON,
//! then the program's stdin as raw bytes until EOF. Jail → caller (jail's stdout): frames of one tag byte, a
//! 4-byte little-endian length and the payload; output chunks as they happen, and exactly one final report.
//! Length prefixes keep the user's bytes from ever being parsed as protocol.

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
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::Stdout),
            2 => Some(FrameKind::Stderr),
            3 => Some(FrameKind::Report),
            4 => Some(FrameKind::Worker),
            5 => Some(FrameKind::Ready),
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
    fn bad_tag_is_an_error() {
        let mut r = &[9u8, 0, 0, 0, 0][..];
        assert!(read_frame(&mut r).is_err());
    }
}
