//! The wire-level helpers of the corpus runner: a whole HTTP/1.1 response parsed from raw bytes, paths mapped to
//! the OpenAPI document's templates, the result of an SSE stream, and the host services (TCP, UDP, an abstract Unix
//! socket on the host's loopback) that no sandbox may reach.

use std::collections::HashMap;

use serde_json::Value;

pub fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Listeners {
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    unix: std::os::unix::net::UnixListener,
}

impl Listeners {
    pub fn open(vars: &mut HashMap<String, String>) -> Listeners {
        use std::os::linux::net::SocketAddrExt;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("a host TCP listener");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a host UDP socket");
        let name = format!("hostile-abstract-{}", random_hex());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let unix = std::os::unix::net::UnixListener::bind_addr(&addr).expect("a host abstract socket");
        tcp.set_nonblocking(true).unwrap();
        udp.set_nonblocking(true).unwrap();
        unix.set_nonblocking(true).unwrap();
        vars.insert("HOST_TCP_PORT".into(), tcp.local_addr().unwrap().port().to_string());
        vars.insert("HOST_UDP_PORT".into(), udp.local_addr().unwrap().port().to_string());
        vars.insert("HOST_ABSTRACT".into(), name);
        Listeners { tcp, udp, unix }
    }

    /// Whether anything reached a host service since the last look.
    pub fn reached(&self) -> Option<&'static str> {
        if self.tcp.accept().is_ok() {
            return Some("the host's TCP listener accepted a connection");
        }
        if self.udp.recv_from(&mut [0u8; 64]).is_ok() {
            return Some("the host's UDP socket received a datagram");
        }
        if self.unix.accept().is_ok() {
            return Some("the host's abstract Unix socket accepted a connection");
        }
        None
    }
}

pub type Headers = Vec<(String, String)>;

/// Status, headers and (de-chunked) body of a whole HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Option<(u16, Headers, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if !chunked {
        return Some((status, headers, rest.to_vec()));
    }
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some((status, headers, body));
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The path as the document's templates see it: a session file path of several segments is one `{path}`.
pub fn doc_path(path: &str) -> String {
    if path.starts_with("/execute_async") {
        return "/executions".into();
    }
    let parts: Vec<&str> = path.splitn(5, '/').collect();
    match parts.as_slice() {
        ["", "sessions", id, "files", rest] if !rest.is_empty() => {
            format!("/sessions/{id}/files/{}", rest.replace('/', "_"))
        }
        _ => path.to_string(),
    }
}

/// The `status` of the `result` event of an SSE stream.
pub fn stream_status(text: &str) -> Value {
    let mut last = Value::Null;
    for block in text.split("\n\n") {
        if block.lines().any(|l| l.trim() == "event: result") {
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            last = serde_json::from_str::<Value>(&data)
                .map(|v| v["status"].clone())
                .unwrap_or(Value::Null);
        }
    }
    last
}
