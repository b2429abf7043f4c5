//! Splits a byte stream into JSON-safe text chunks without breaking a UTF-8 character across two chunks. Bytes
//! that are not UTF-8 at all are sent lossily as text plus exactly as base64.

use base64::Engine as _;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextChunk {
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

#[derive(Debug, Default)]
pub struct Utf8Chunker {
    carry: Vec<u8>,
}

impl Utf8Chunker {
    /// The text that can be emitted now; an incomplete character at the end waits for the next push.
    pub fn push(&mut self, data: &[u8]) -> Option<TextChunk> {
        self.carry.extend_from_slice(data);
        let buf = std::mem::take(&mut self.carry);
        match std::str::from_utf8(&buf) {
            Ok(text) => (!text.is_empty()).then(|| TextChunk {
                data: text.to_string(),
                base64: None,
            }),
            Err(e) if e.error_len().is_none() && buf.len() - e.valid_up_to() <= 3 => {
                let (head, tail) = buf.split_at(e.valid_up_to());
                self.carry = tail.to_vec();
                (!head.is_empty()).then(|| TextChunk {
                    data: String::from_utf8(head.to_vec()).expect("checked valid"),
                    base64: None,
                })
            }
            Err(_) => Some(TextChunk {
                data: String::from_utf8_lossy(&buf).into_owned(),
                base64: Some(base64::engine::general_purpose::STANDARD.encode(&buf)),
            }),
        }
    }

    /// Whatever is left at the end of the stream.
    pub fn finish(&mut self) -> Option<TextChunk> {
        if self.carry.is_empty() {
            return None;
        }
        let buf = std::mem::take(&mut self.carry);
        Some(TextChunk {
            data: String::from_utf8_lossy(&buf).into_owned(),
            base64: Some(base64::engine::general_purpose::STANDARD.encode(&buf)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_arrives_whole() {
        let mut c = Utf8Chunker::default();
        let bytes = "a✓b".as_bytes();
        assert_eq!(c.push(&bytes[..2]).unwrap().data, "a");
        assert!(c.push(&bytes[2..3]).is_none());
        assert_eq!(c.push(&bytes[3..]).unwrap().data, "✓b");
        assert!(c.finish().is_none());
    }

    #[test]
    fn invalid_bytes_come_with_base64() {
        let mut c = Utf8Chunker::default();
        let chunk = c.push(&[b'x', 0xff, b'y']).unwrap();
        assert_eq!(chunk.base64.as_deref(), Some("eP95"));
    }
}
