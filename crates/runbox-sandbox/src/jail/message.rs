//! The messages PID 1 sends the jail on the report pipe, typed, and encoded and parsed here only.
//!
//! Two programs write them: the jail's own PID 1 (`init.rs`) and the zygote's child (`workers/zygote.py`, which
//! cannot call this code: see `from_zygote.rs`). On the wire each is one line of UTF-8, far below PIPE_BUF so
//! that every write is atomic: `running`, `exit <code>`, `signal <number>`, `error <text>`, `reaped`. The
//! conformance tests below hold both writers to this one grammar.

/// One message from PID 1 to the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pid1Message {
    /// The sandbox is built and the program started (a warm one waits for its go).
    Running,
    /// The program exited with this code.
    Exit(i32),
    /// The program was killed by this signal.
    Signal(i32),
    /// Setting up the sandbox or starting the program failed; the text says which step and why.
    Error(String),
    /// Every process of the sandbox but PID 1 itself is dead and reaped.
    Reaped,
}

impl Pid1Message {
    /// The message as one line, newline included. An error's text is kept on its one line.
    pub fn encode(&self) -> String {
        match self {
            Pid1Message::Running => "running\n".into(),
            Pid1Message::Exit(code) => format!("exit {code}\n"),
            Pid1Message::Signal(signal) => format!("signal {signal}\n"),
            Pid1Message::Error(text) => format!("error {}\n", text.replace(['\n', '\r'], " ")),
            Pid1Message::Reaped => "reaped\n".into(),
        }
    }

    /// One line (without its newline); `None` for a line that is no message, which the jail ignores.
    pub fn parse(line: &str) -> Option<Pid1Message> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "running" => Some(Pid1Message::Running),
            "exit" => rest.parse().ok().map(Pid1Message::Exit),
            "signal" => rest.parse().ok().map(Pid1Message::Signal),
            "error" => Some(Pid1Message::Error(rest.to_string())),
            "reaped" => Some(Pid1Message::Reaped),
            _ => None,
        }
    }
}

/// Cuts the report pipe's bytes into messages, however the reads split them.
#[derive(Debug, Default)]
pub struct Pid1Reader {
    pending: Vec<u8>,
}

impl Pid1Reader {
    /// Adds bytes read from the pipe; returns the messages they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Pid1Message> {
        self.pending.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.pending[..pos]).into_owned();
            self.pending.drain(..=pos);
            messages.extend(Pid1Message::parse(&line));
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Pid1Message> {
        vec![
            Pid1Message::Running,
            Pid1Message::Exit(0),
            Pid1Message::Exit(255),
            Pid1Message::Exit(-1),
            Pid1Message::Signal(9),
            Pid1Message::Error("mount /proc: Operation not permitted".into()),
            Pid1Message::Error(String::new()),
            Pid1Message::Reaped,
        ]
    }

    #[test]
    fn every_pid1_message_round_trips_through_its_line() {
        for message in every_variant() {
            let line = message.encode();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
            assert_eq!(Pid1Message::parse(line.trim_end_matches('\n')), Some(message));
        }
    }

    #[test]
    fn an_error_text_with_newlines_stays_one_message() {
        let line = Pid1Message::Error("a\nb".into()).encode();
        assert_eq!(
            Pid1Reader::default().push(line.as_bytes()),
            vec![Pid1Message::Error("a b".into())]
        );
    }

    #[test]
    fn messages_split_across_reads_arrive_whole_and_in_order() {
        let all: String = every_variant().iter().map(Pid1Message::encode).collect();
        let bytes = all.as_bytes();
        for cut in 0..bytes.len() {
            let mut reader = Pid1Reader::default();
            let mut got = reader.push(&bytes[..cut]);
            got.extend(reader.push(&bytes[cut..]));
            assert_eq!(got, every_variant(), "cut at {cut}");
        }
    }

    #[test]
    fn a_line_that_is_no_message_is_ignored() {
        for line in ["", "exit", "exit x", "signal", "hello", "Running"] {
            assert_eq!(Pid1Message::parse(line), None, "{line:?}");
        }
    }

    /// The zygote's child speaks the same protocol from Python (`workers/zygote.py`): every line it writes to the
    /// report pipe must be one of these messages, with the payload this side parses.
    #[test]
    fn the_zygotes_report_lines_are_pid1_messages() {
        let zygote = include_str!("../../../../workers/zygote.py");
        let mut kinds = std::collections::HashSet::new();
        for (i, line) in zygote.lines().enumerate() {
            let line = line.trim();
            let Some(call) = line.strip_prefix("write_line(") else {
                continue;
            };
            let Some((fd, text)) = call.split_once(", ") else {
                continue;
            };
            if fd == "2" {
                continue; // the zygote's own diagnostics, on its stderr
            }
            assert!(
                fd == "report_w" || fd == "fds[4]",
                "line {}: unknown descriptor {fd}",
                i + 1
            );
            let text = text.trim_end_matches(')').trim_start_matches('f').trim_matches('"');
            // Each `{...}` placeholder stands for a value: a number after exit and signal, any text after error.
            let sample = match text.split_once(' ') {
                Some(("exit" | "signal", rest)) => {
                    assert!(rest.starts_with('{') && rest.ends_with('}'), "line {}: {text}", i + 1);
                    format!("{} 7", &text[..text.find(' ').unwrap()])
                }
                _ => text.replace(['{', '}'], ""),
            };
            let message =
                Pid1Message::parse(&sample).unwrap_or_else(|| panic!("line {}: {text:?} is no PID 1 message", i + 1));
            kinds.insert(std::mem::discriminant(&message));
        }
        assert_eq!(kinds.len(), 5, "the zygote sends every kind of message");
    }
}
