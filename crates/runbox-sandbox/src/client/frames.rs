//! The one reader of the jail's frames on the caller's side: each frame becomes a typed [`JailEvent`], and the
//! end of the stream (a report, or none) is decided here, so that one-shot runs, sessions and warm sandboxes read
//! the jail the same way.

use std::io::Read;

use crate::outcome::JailReport;
use crate::protocol::{self, FrameKind};

/// What the jail said, one frame at a time.
#[derive(Debug)]
pub(crate) enum JailEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// Bytes a session's worker wrote to its protocol descriptor.
    Worker(Vec<u8>),
    /// A warm sandbox is built and waits for its go.
    Ready,
    /// A warm sandbox's acknowledgement of its go: the limits the jail applied, as JSON.
    Started(Vec<u8>),
    /// The final report; nothing follows it.
    Report(JailReport),
}

/// The next event; `Err` (saying why) when the stream ended without a report or broke. After a
/// [`JailEvent::Report`] or an error there is nothing more to read.
pub(crate) fn next_event(r: &mut impl Read) -> Result<JailEvent, String> {
    match protocol::read_frame(r) {
        Ok(Some((kind, data))) => Ok(match kind {
            FrameKind::Stdout => JailEvent::Stdout(data),
            FrameKind::Stderr => JailEvent::Stderr(data),
            FrameKind::Worker => JailEvent::Worker(data),
            FrameKind::Ready => JailEvent::Ready,
            FrameKind::Started => JailEvent::Started(data),
            FrameKind::Report => JailEvent::Report(
                serde_json::from_slice::<JailReport>(&data).map_err(|e| format!("invalid report: {e}"))?,
            ),
        }),
        Ok(None) => Err("the jail ended without a report".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_events_until_the_report() {
        let mut bytes = Vec::new();
        protocol::write_frame(&mut bytes, FrameKind::Ready, &[]).unwrap();
        protocol::write_frame(&mut bytes, FrameKind::Stdout, b"out").unwrap();
        protocol::write_frame(&mut bytes, FrameKind::Worker, b"w").unwrap();
        let report = serde_json::to_vec(&JailReport::sandbox_error("x")).unwrap();
        protocol::write_frame(&mut bytes, FrameKind::Report, &report).unwrap();
        let mut r = &bytes[..];
        assert!(matches!(next_event(&mut r), Ok(JailEvent::Ready)));
        assert!(matches!(next_event(&mut r), Ok(JailEvent::Stdout(d)) if d == b"out"));
        assert!(matches!(next_event(&mut r), Ok(JailEvent::Worker(d)) if d == b"w"));
        assert!(matches!(next_event(&mut r), Ok(JailEvent::Report(_))));
        assert_eq!(next_event(&mut r).unwrap_err(), "the jail ended without a report");
    }

    #[test]
    fn a_report_that_does_not_parse_is_an_error() {
        let mut bytes = Vec::new();
        protocol::write_frame(&mut bytes, FrameKind::Report, b"{").unwrap();
        assert!(next_event(&mut &bytes[..]).unwrap_err().starts_with("invalid report: "));
    }
}
