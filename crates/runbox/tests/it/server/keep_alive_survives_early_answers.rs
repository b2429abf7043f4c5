//! An answer given before the request's body was read (a missing key, a foreign page, a body over the limit) must
//! leave an HTTP/1.1 client a connection it can use, or tell it not to. Without that, the client's next request on
//! the kept-alive connection ends in "server disconnected" (the MCP client test met it in CI): hyper closes such a
//! connection after the answer without saying so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::live_server::*;

/// One HTTP/1.1 answer read off the connection: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn read_answer(conn: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends a request's head, waits, then its body: as clients that write the two separately do.
fn send_in_two_writes(conn: &mut TcpStream, head: &str, body: &[u8]) {
    conn.write_all(head.as_bytes()).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The server may already have hung up; the answer to the next request tells.
    let _ = conn.write_all(body);
}

fn connect(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let reader = BufReader::new(conn.try_clone().unwrap());
    (conn, reader)
}

fn post_head(path: &str, extra: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: \
         {length}\r\n\r\n"
    )
}

#[test]
fn a_request_refused_before_its_body_was_read_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[&two_keys_setting()]);
    let (mut conn, mut reader) = connect(&server);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

    // No key: 401, then the same connection carries a refusal from a foreign page, then a plain GET.
    send_in_two_writes(&mut conn, &post_head("/mcp", "", body.len()), body);
    let first = read_answer(&mut reader).unwrap();
    assert_eq!(first.status, 401, "{}", first.body);
    assert_eq!(
        first.header("connection"),
        None,
        "a small body is read, the connection kept"
    );

    let origin = format!("Authorization: Bearer {KEY_A}\r\nOrigin: https://evil.example\r\n");
    send_in_two_writes(&mut conn, &post_head("/mcp", &origin, 2), b"{}");
    let second = read_answer(&mut reader)
        .unwrap_or_else(|e| panic!("the connection kept after a 401 did not answer the next request: {e}"));
    assert_eq!(second.status, 403, "{}", second.body);
    assert!(second.body.contains("origin_not_allowed"), "{}", second.body);

    conn.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let third = read_answer(&mut reader)
        .unwrap_or_else(|e| panic!("the connection kept after a 403 did not answer the next request: {e}"));
    assert_eq!(third.status, 200, "{}", third.body);
}

#[test]
fn a_large_body_left_unread_is_answered_with_connection_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[&two_keys_setting()]);
    let (mut conn, mut reader) = connect(&server);
    // 8 MiB announced, none of it sent: the server must not wait for it, and must say it will not read on.
    conn.write_all(post_head("/execute", "", 8 << 20).as_bytes()).unwrap();
    let answer = read_answer(&mut reader).unwrap();
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.header("connection"),
        Some("close"),
        "headers: {:?}",
        answer.headers
    );
}
