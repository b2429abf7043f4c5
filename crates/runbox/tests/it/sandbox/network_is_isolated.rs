//! The sandbox has its own network namespace with only a loopback device.

use crate::common;
use common::*;

#[test]
fn host_loopback_services_are_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        r#"import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')
except OSError as e:
    print('refused', e.errno)
"#
    );
    let out = run("python", &code, &[]);
    assert_status(&out, Status::Ok);
    assert!(out.record.stdout.starts_with("refused"), "{}", out.record.stdout);
}

#[test]
fn only_loopback_exists_and_no_route_leaves() {
    let code = r#"import socket, os
print(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys/class/net') else open('/proc/net/dev').read().count(':'))
try:
    socket.create_connection(('1.1.1.1', 80), timeout=2); print('CONNECTED')
except OSError as e:
    print('unreachable', e.errno)
"#;
    let out = run("python", code, &[]);
    assert_status(&out, Status::Ok);
    assert_eq!(out.record.stdout, "1\nunreachable 101\n");
}

#[test]
fn programs_can_use_their_own_loopback() {
    let code = r#"import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
c = socket.create_connection(s.getsockname()); a, _ = s.accept()
c.sendall(b'ping'); print(a.recv(4).decode())
"#;
    let out = run("python", code, &[]);
    assert_status(&out, Status::Ok);
    assert_eq!(out.record.stdout, "ping\n");
}
