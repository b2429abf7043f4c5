//! How results look to a language model: an execution's or a cell's outcome, files and listings turned into MCP
//! content (text with the streams cut to a readable length, figures as images). The tools in [`crate::tools`]
//! only choose what to render.

use base64::Engine as _;
use rmcp::model::ContentBlock;

use runbox_engine::sessions::{CellResult, CellStatus};
use runbox_engine::ExecutionResult;

use crate::tools::MAX_SHOWN_CHARS;

/// A stream's text as shown to the model: at most [`MAX_SHOWN_CHARS`], saying what was cut.
pub(crate) fn shown(label: &str, text: &str, truncated: bool, out: &mut String) {
    if text.is_empty() && !truncated {
        return;
    }
    out.push_str(&format!("\n--- {label} ---\n"));
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => {
            out.push_str(&text[..cut]);
            out.push_str(&format!("\n[… {} more bytes not shown]", text.len() - cut));
        }
        None => out.push_str(text),
    }
    if truncated {
        out.push_str("\n[output limit reached: the program's later output was dropped]");
    }
}

pub fn execution_text(r: &ExecutionResult) -> String {
    let mut out = format!("status: {}", r.status.as_str());
    let (language, r) = (&r.language, &r.record);
    if let Some(code) = r.exit_code {
        out.push_str(&format!("\nexit code: {code}"));
    }
    if let Some(signal) = r.signal {
        out.push_str(&format!("\nsignal: {signal}"));
    }
    out.push_str(&format!("\nlanguage: {}\nwall time: {} ms", language, r.wall_ms));
    if let Some(message) = &r.message {
        out.push_str(&format!("\nmessage: {message}"));
    }
    shown("stdout", &r.stdout, r.stdout_truncated, &mut out);
    shown("stderr", &r.stderr, r.stderr_truncated, &mut out);
    out
}

pub(crate) fn cell_status(s: CellStatus) -> &'static str {
    match s {
        CellStatus::Ok => "ok",
        CellStatus::Error => "error",
        CellStatus::Interrupted => "interrupted",
        CellStatus::Timeout => "timeout",
        CellStatus::Exit => "exit",
        CellStatus::MemoryLimit => "memory_limit",
    }
}

/// A cell's result: one text block, then each figure as an image.
pub fn cell_content(r: &CellResult) -> Vec<ContentBlock> {
    let mut text = format!(
        "status: {}\nexecution count: {}",
        cell_status(r.status),
        r.execution_count
    );
    if let Some(code) = r.exit_code {
        text.push_str(&format!("\nexit code: {code}"));
    }
    shown("stdout", &r.stdout, r.stdout_truncated, &mut text);
    shown("stderr", &r.stderr, r.stderr_truncated, &mut text);
    if let Some(value) = r.result.as_ref().and_then(|m| m.get("text/plain")) {
        shown("result", value, false, &mut text);
    }
    if let Some(e) = &r.error {
        let detail = if e.traceback.is_empty() {
            format!("{}: {}", e.name, e.value)
        } else {
            e.traceback.clone()
        };
        shown("error", &detail, false, &mut text);
    }
    let mut images = Vec::new();
    for o in &r.outputs {
        if is_image(&o.mime_type) {
            images.push(ContentBlock::image(o.data.clone(), o.mime_type.clone()));
        } else {
            text.push_str(&format!("\n[display output: {}, {} bytes]", o.mime_type, o.data.len()));
        }
    }
    if !images.is_empty() {
        text.push_str(&format!("\n[{} image(s) follow]", images.len()));
    }
    if r.outputs_truncated {
        text.push_str("\n[more display outputs were produced than a cell keeps; the rest were dropped]");
    }
    let mut content = vec![ContentBlock::text(text)];
    content.extend(images);
    content
}

pub(crate) fn is_image(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// A file's bytes as content: an image, text, or base64.
pub(crate) fn file_content(path: &str, bytes: Vec<u8>) -> Vec<ContentBlock> {
    let mime = runbox_engine::files::content_type(path);
    let b64 = || base64::engine::general_purpose::STANDARD.encode(&bytes);
    if is_image(mime) {
        return vec![ContentBlock::image(b64(), mime)];
    }
    match std::str::from_utf8(&bytes) {
        Ok(text) => vec![ContentBlock::text(text.to_string())],
        Err(_) => vec![ContentBlock::text(format!(
            "{path} is binary ({} bytes, {mime}); base64:\n{}",
            bytes.len(),
            b64()
        ))],
    }
}

pub(crate) fn languages_text(langs: &[runbox_engine::CatalogueEntry]) -> String {
    let mut out = String::from("id | name | version | available | sessions | aliases");
    for l in langs {
        out.push_str(&format!(
            "\n{} | {} | {} | {} | {} | {}",
            l.id,
            l.name,
            l.version.as_deref().unwrap_or("-"),
            if l.available { "yes" } else { "no" },
            if l.sessions { "yes" } else { "no" },
            l.aliases.join(", ")
        ));
    }
    out
}

pub(crate) fn files_text(entries: &[runbox_engine::files::FileEntry]) -> String {
    if entries.is_empty() {
        return "(empty directory)".into();
    }
    entries
        .iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/ (directory)", e.name)
            } else {
                format!("{} ({} bytes)", e.name, e.size)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_is_cut_on_a_character_boundary_and_says_so() {
        let mut out = String::new();
        shown("stdout", &"é".repeat(MAX_SHOWN_CHARS + 5), false, &mut out);
        assert!(
            out.ends_with("[… 10 more bytes not shown]"),
            "{}",
            &out[out.len() - 60..]
        );
    }

    #[test]
    fn figures_become_images_and_other_displays_are_named() {
        use runbox_engine::sessions::RichOutput;
        let cell = CellResult {
            status: CellStatus::Ok,
            stdout: "hi\n".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            outputs_truncated: false,
            result: Some([("text/plain".to_string(), "42".to_string())].into()),
            outputs: vec![
                RichOutput {
                    mime_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                },
                RichOutput {
                    mime_type: "text/html".into(),
                    data: "<b>x</b>".into(),
                },
            ],
            error: None,
            exit_code: None,
            execution_count: 3,
            duration_ms: 5,
        };
        let content = cell_content(&cell);
        assert_eq!(content.len(), 2);
        let ContentBlock::Text(text) = &content[0] else {
            panic!("text first: {content:?}")
        };
        for part in [
            "status: ok",
            "hi",
            "--- result ---\n42",
            "[display output: text/html, 8 bytes]",
        ] {
            assert!(text.text.contains(part), "{part} in {}", text.text);
        }
        let ContentBlock::Image(image) = &content[1] else {
            panic!("then the image: {content:?}")
        };
        assert_eq!(
            (image.data.as_str(), image.mime_type.as_str()),
            ("iVBORw0KGgo=", "image/png")
        );
    }

    #[test]
    fn files_come_back_as_text_images_or_base64() {
        assert!(matches!(&file_content("a.png", vec![1, 2])[0], ContentBlock::Image(i) if i.data == "AQI="));
        assert!(matches!(&file_content("a.txt", b"hi".to_vec())[0], ContentBlock::Text(t) if t.text == "hi"));
        assert!(
            matches!(&file_content("a.bin", vec![0xff])[0], ContentBlock::Text(t) if t.text.ends_with("base64:\n/w=="))
        );
    }
}
