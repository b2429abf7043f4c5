//! A session's files through the API: upload, download, list and delete round trips (binary data, nested paths,
//! content types from the extension), shared with the code running in the session both ways; and every attempt
//! to reach outside the workspace refused with 400 — `..` (also percent-encoded), absolute paths, and symlinks the
//! sandboxed code planted — with nothing outside changed.

use crate::session_support;

use serde_json::Value;
use session_support::*;

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

fn names(listing: &Value) -> Vec<(String, bool)> {
    listing
        .as_array()
        .expect("a listing is an array")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["is_dir"].as_bool().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_and_are_shared_with_the_code() {
    let api = Api::plain();
    let id = api.create("python").await;
    let files = format!("/sessions/{id}/files");

    // Upload: binary data, parents created.
    let entry = api
        .put(&format!("{files}/data/x.bin"), all_bytes())
        .send()
        .await
        .expect(201);
    assert_eq!(entry["name"], "data/x.bin", "{entry}");
    assert_eq!(entry["size"], 256, "{entry}");
    assert_eq!(entry["is_dir"], false, "{entry}");
    api.put(&format!("{files}/a/b/c/deep.txt"), b"deep\n".to_vec())
        .send()
        .await
        .expect(201);
    api.put(&format!("{files}/empty"), Vec::new()).send().await.expect(201);
    api.put(&format!("{files}/with%20space.txt"), b"spaced".to_vec())
        .send()
        .await
        .expect(201);

    // Download: the same bytes, with a content type from the extension.
    let r = api.get(&format!("{files}/data/x.bin")).send().await;
    assert_eq!(r.expect_bytes(200), all_bytes());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = api.get(&format!("{files}/a/b/c/deep.txt")).send().await;
    assert_eq!(r.expect_bytes(200), b"deep\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(api
        .get(&format!("{files}/empty"))
        .send()
        .await
        .expect_bytes(200)
        .is_empty());

    // Listing: the workspace (without the engine's own directory), then a directory.
    let top = api.get(&files).send().await.expect(200);
    assert_eq!(
        names(&top),
        [
            ("a".to_string(), true),
            ("data".to_string(), true),
            ("empty".to_string(), false),
            ("with space.txt".to_string(), false)
        ],
        "{top}"
    );
    let data = api.get(&format!("{files}?path=data")).send().await.expect(200);
    assert_eq!(names(&data), [("x.bin".to_string(), false)], "{data}");
    assert_eq!(data[0]["size"], 256);
    assert!(data[0]["modified"].as_i64().unwrap() > 1_600_000_000, "{data}");
    let deep = api.get(&format!("{files}?path=a/b")).send().await.expect(200);
    assert_eq!(names(&deep), [("c".to_string(), true)], "{deep}");

    // The code sees what was uploaded...
    let r = api
        .exec_ok(
            &id,
            "data = open('data/x.bin', 'rb').read()\nprint(data == bytes(range(256)), open('a/b/c/deep.txt').read().strip(), open('with space.txt').read())",
        )
        .await;
    assert_eq!(r["stdout"], "True deep spaced\n", "{r}");
    // ...and what it writes can be downloaded, typed by extension.
    api.exec_ok(
        &id,
        "import os, json, csv\nos.makedirs('out/nested', exist_ok=True)\nopen('out/nested/table.csv', 'w').write('a,b\\n1,2\\n')\njson.dump({'ok': True}, open('out/r.json', 'w'))\nopen('out/blob.bin', 'wb').write(bytes(range(255, -1, -1)))\nopen('out/page.HTML', 'w').write('<p>hi</p>')\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('out/plot.png')\nplt.close('all')",
    )
    .await;
    for (path, content_type) in [
        ("out/nested/table.csv", "text/csv; charset=utf-8"),
        ("out/r.json", "application/json"),
        ("out/blob.bin", "application/octet-stream"),
        ("out/page.HTML", "text/html; charset=utf-8"),
        ("out/plot.png", "image/png"),
    ] {
        let r = api.get(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
    }
    let blob = api.get(&format!("{files}/out/blob.bin")).send().await.expect_bytes(200);
    assert_eq!(blob, (0..=255u8).rev().collect::<Vec<u8>>());
    assert_eq!(
        api.get(&format!("{files}/out/nested/table.csv"))
            .send()
            .await
            .expect_bytes(200),
        b"a,b\n1,2\n"
    );
    let png = api.get(&format!("{files}/out/plot.png")).send().await.expect_bytes(200);
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000,
        "{} bytes",
        png.len()
    );

    // Overwrite, then a larger file.
    api.put(&format!("{files}/data/x.bin"), b"replaced".to_vec())
        .send()
        .await
        .expect(201);
    let big: Vec<u8> = (0..3 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    api.put(&format!("{files}/data/big.bin"), big.clone())
        .send()
        .await
        .expect(201);
    let r = api
        .exec_ok(
            &id,
            "import hashlib\n(open('data/x.bin').read(), len(open('data/big.bin', 'rb').read()))",
        )
        .await;
    assert_eq!(r["result"]["text/plain"], "('replaced', 3145728)", "{r}");
    assert_eq!(
        api.get(&format!("{files}/data/big.bin")).send().await.expect_bytes(200),
        big
    );

    // Delete a file, then a directory with everything in it.
    api.delete(&format!("{files}/data/x.bin"))
        .send()
        .await
        .expect_bytes(204);
    api.get(&format!("{files}/data/x.bin"))
        .send()
        .await
        .expect_error(404, "not_found");
    api.delete(&format!("{files}/a")).send().await.expect_bytes(204);
    let r = api
        .exec_ok(&id, "import os\n(os.path.exists('a'), os.path.exists('data/big.bin'))")
        .await;
    assert_eq!(r["result"]["text/plain"], "(False, True)", "{r}");

    // Missing files and directories used as files.
    api.get(&format!("{files}/nope.txt"))
        .send()
        .await
        .expect_error(404, "not_found");
    api.delete(&format!("{files}/nope.txt"))
        .send()
        .await
        .expect_error(404, "not_found");
    api.get(&format!("{files}?path=nope"))
        .send()
        .await
        .expect_error(404, "not_found");
    api.get(&format!("{files}/out"))
        .send()
        .await
        .expect_error(409, "file_conflict");
    api.put(&format!("{files}/out"), b"x".to_vec())
        .send()
        .await
        .expect_error(409, "file_conflict");
    // A file used as a directory.
    let r = api.put(&format!("{files}/empty/below"), b"x".to_vec()).send().await;
    assert!(matches!(r.status.as_u16(), 400 | 409), "{} {}", r.status, r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_attachments_a_browser_never_renders_as_pages_of_the_api() {
    let api = Api::plain();
    let id = api.create("python").await;
    let page = format!("/sessions/{id}/files/page.html");
    let html = b"<script>fetch('/sessions').then(r => r.text()).then(alert)</script>".to_vec();
    api.put(&page, html.clone()).send().await.expect(201);
    let r = api.get(&page).send().await;
    assert_eq!(r.expect_bytes(200), html);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"page.html\"")
    );
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("sandbox")),
        "{:?}",
        r.header("content-security-policy")
    );
    // A name that would need escaping is left out rather than quoted wrongly.
    let odd = format!("/sessions/{id}/files/we%22ird.html");
    api.put(&odd, html.clone()).send().await.expect(201);
    assert_eq!(
        api.get(&odd).send().await.header("content-disposition"),
        Some("attachment")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_leave_the_workspace_are_refused() {
    let api = Api::plain();
    let id = api.create("python").await;
    let files = format!("/sessions/{id}/files");
    let sessions_dir = api.data_dir().join("sessions");
    for path in [
        "..",
        "../escaped.txt",
        "../../escaped.txt",
        "a/../../escaped.txt",
        "a/b/../../../escaped.txt",
        "%2e%2e/escaped.txt",
        "%2E%2E/%2E%2E/escaped.txt",
        "a/%2e%2e/%2e%2e/escaped.txt",
        "..%2fescaped.txt",
        "%2e%2e%2fescaped.txt",
        "//etc/passwd",
        "%2Fetc%2Fpasswd",
        "%2fetc/passwd",
        "/tmp/escaped.txt",
        ".runbox/python_worker.py",
    ] {
        let r = api.get(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "GET {path}: {}", r.text());
        assert_eq!(r.json()["code"], "invalid_path", "GET {path}");
        let r = api.put(&format!("{files}/{path}"), b"escaped".to_vec()).send().await;
        assert_eq!(r.status, 400, "PUT {path}: {}", r.text());
        let r = api.delete(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "DELETE {path}: {}", r.text());
    }
    for query in ["..", "../..", "%2e%2e", "/etc", "a/../.."] {
        let r = api.get(&format!("{files}?path={query}")).send().await;
        assert_eq!(r.status, 400, "list {query}: {}", r.text());
    }
    // Nothing was written next to the workspace, nor above it; /etc/passwd is intact.
    for dir in [sessions_dir.clone(), api.data_dir().to_path_buf()] {
        assert!(!dir.join("escaped.txt").exists(), "{}", dir.display());
    }
    assert!(!std::path::Path::new("/tmp/escaped.txt").exists());
    assert!(std::fs::read_to_string("/etc/passwd").unwrap().starts_with("root:"));
    // The worker is untouched and the session still works.
    let r = api.exec_ok(&id, "6 * 7").await;
    assert_eq!(r["result"]["text/plain"], "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_longer_than_a_file_system_allows_are_refused_not_server_errors() {
    let api = Api::plain();
    let id = api.create("python").await;
    let files = format!("/sessions/{id}/files");
    let long = "x".repeat(256);
    for path in [long.clone(), format!("dir/{long}.txt")] {
        let r = api.put(&format!("{files}/{path}"), b"x".to_vec()).send().await;
        assert_eq!(r.status, 400, "PUT {path}: {}", r.text());
        assert_eq!(r.json()["code"], "invalid_path", "PUT {path}");
        let r = api.get(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "GET {path}: {}", r.text());
        let r = api.delete(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "DELETE {path}: {}", r.text());
    }
    // The longest name a file system takes still works.
    let longest = "y".repeat(255);
    api.put(&format!("{files}/{longest}"), b"y".to_vec())
        .send()
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_planted_by_the_code_are_not_followed() {
    let api = Api::plain();
    let id = api.create("python").await;
    let files = format!("/sessions/{id}/files");
    let mark = unique_mark();
    let host_probe = format!("/tmp/runbox-escape-{mark}");
    let shadow_before = std::fs::read("/etc/shadow").ok();
    let r = api
        .exec_ok(
            &id,
            "import os\nos.symlink('/etc/shadow', 'link')\nos.symlink('/', 'root')\nos.makedirs('data')\nos.symlink('/etc', 'data/etc')\nos.symlink('data', 'inside')\nopen('data/real.txt', 'w').write('real')\nsorted(n for n in os.listdir('.') if not n.startswith('.'))",
        )
        .await;
    assert_eq!(r["result"]["text/plain"], "['data', 'inside', 'link', 'root']", "{r}");

    for path in [
        "link",
        "root/etc/passwd",
        "root/etc/shadow",
        "data/etc/passwd",
        "inside/real.txt",
    ] {
        let r = api.get(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "GET {path}: {}", r.text());
        assert_eq!(r.json()["code"], "invalid_path");
    }
    for path in [
        "link".to_string(),
        format!("root{host_probe}"),
        format!("root/tmp/runbox-escape-{mark}-2"),
        "data/etc/runbox-escape".to_string(),
    ] {
        let r = api.put(&format!("{files}/{path}"), b"escaped".to_vec()).send().await;
        assert_eq!(r.status, 400, "PUT {path}: {}", r.text());
    }
    for path in ["root/tmp", "root/etc/hostname", "data/etc/hostname", "inside/real.txt"] {
        let r = api.delete(&format!("{files}/{path}")).send().await;
        assert_eq!(r.status, 400, "DELETE {path}: {}", r.text());
    }
    for path in ["root", "root/etc", "data/etc", "inside"] {
        let r = api.get(&format!("{files}?path={path}")).send().await;
        assert_eq!(r.status, 400, "list {path}: {}", r.text());
    }

    // Nothing outside changed.
    assert!(!std::path::Path::new(&host_probe).exists(), "{host_probe} was created");
    assert!(!std::path::Path::new(&format!("/tmp/runbox-escape-{mark}-2")).exists());
    assert!(!std::path::Path::new("/etc/runbox-escape").exists());
    assert!(std::path::Path::new("/tmp").is_dir());
    assert!(std::path::Path::new("/etc/hostname").exists());
    assert_eq!(std::fs::read("/etc/shadow").ok(), shadow_before, "/etc/shadow changed");

    // The links are listed as what they are (not directories), and the real file is still reachable directly.
    let top = api.get(&files).send().await.expect(200);
    assert_eq!(
        names(&top),
        [
            ("data".to_string(), true),
            ("inside".to_string(), false),
            ("link".to_string(), false),
            ("root".to_string(), false)
        ],
        "{top}"
    );
    assert_eq!(
        api.get(&format!("{files}/data/real.txt"))
            .send()
            .await
            .expect_bytes(200),
        b"real"
    );
    // Removing a link removes the link only.
    api.delete(&format!("{files}/link")).send().await.expect_bytes(204);
    assert_eq!(std::fs::read("/etc/shadow").ok(), shadow_before);
    let r = api.exec_ok(&id, "import os\nos.path.lexists('link')").await;
    assert_eq!(r["result"]["text/plain"], "False");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_dead_or_unknown_sessions_are_refused() {
    let api = Api::plain();
    api.get("/sessions/sess_unknown/files")
        .send()
        .await
        .expect_error(404, "not_found");
    api.put("/sessions/sess_unknown/files/x.txt", b"x".to_vec())
        .send()
        .await
        .expect_error(404, "not_found");
    let id = api.create("bash").await;
    api.put(&format!("/sessions/{id}/files/x.txt"), b"x".to_vec())
        .send()
        .await
        .expect(201);
    api.exec(&id, "exit 0").await;
    for r in [
        api.get(&format!("/sessions/{id}/files")).send().await,
        api.get(&format!("/sessions/{id}/files/x.txt")).send().await,
        api.put(&format!("/sessions/{id}/files/y.txt"), b"y".to_vec())
            .send()
            .await,
        api.delete(&format!("/sessions/{id}/files/x.txt")).send().await,
    ] {
        r.expect_error(409, "session_dead");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_workspace_quota_are_refused() {
    let api = Api::plain();
    let (id, _) = api
        .create_marked(
            None,
            serde_json::json!({"language": "python", "limits": {"workspace_mb": 2}}),
        )
        .await;
    let files = format!("/sessions/{id}/files");
    api.put(&format!("{files}/fits.bin"), vec![7; 1 << 20])
        .send()
        .await
        .expect(201);
    api.put(&format!("{files}/too-big.bin"), vec![7; 4 << 20])
        .send()
        .await
        .expect_error(409, "file_conflict");
    let r = api
        .exec_ok(
            &id,
            "import os\n(os.path.getsize('fits.bin'), os.path.exists('too-big.bin'))",
        )
        .await;
    assert_eq!(
        r["result"]["text/plain"], "(1048576, False)",
        "no partial file is left: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_charged_to_the_session_memory_its_key_and_the_server() {
    // A 32 MiB session cannot be handed more files than its memory: 12 + 12 MiB fit, a third 12 MiB does not.
    let api = Api::plain();
    let (id, _) = api
        .create_marked(
            None,
            serde_json::json!({"language": "python", "limits": {"memory_mb": 32}}),
        )
        .await;
    let files = format!("/sessions/{id}/files");
    for name in ["a.bin", "b.bin"] {
        api.put(&format!("{files}/{name}"), vec![1; 12 << 20])
            .send()
            .await
            .expect(201);
    }
    api.put(&format!("{files}/c.bin"), vec![1; 12 << 20])
        .send()
        .await
        .expect_error(413, "workspace_quota_exceeded");
    // Replacing a file counts the old one as freed.
    api.put(&format!("{files}/a.bin"), vec![2; 14 << 20])
        .send()
        .await
        .expect(201);
    let r = api.exec_ok(&id, "import os\nsorted(os.listdir('.'))").await;
    assert_eq!(r["result"]["text/plain"], "['.runbox', 'a.bin', 'b.bin']", "{r}");

    // Per key and in total: key a may hold 8 MiB across its sessions, the server 12 MiB.
    let api = Api::with_two_keys(|c| {
        c.sessions.files_per_key_mb = 8;
        c.sessions.files_total_mb = 12;
    });
    let (a1, _) = api.create_marked(None, serde_json::json!({"language": "bash"})).await;
    let (a2, _) = api.create_marked(None, serde_json::json!({"language": "bash"})).await;
    let (b1, _) = api
        .create_marked(Some(KEY_B), serde_json::json!({"language": "bash"}))
        .await;
    api.put(&format!("/sessions/{a1}/files/x.bin"), vec![1; 5 << 20])
        .send()
        .await
        .expect(201);
    let r = api
        .put(&format!("/sessions/{a2}/files/x.bin"), vec![1; 5 << 20])
        .send()
        .await;
    r.expect_error(413, "workspace_quota_exceeded");
    api.put(&format!("/sessions/{b1}/files/x.bin"), vec![1; 5 << 20])
        .key(KEY_B)
        .send()
        .await
        .expect(201);
    // Key b is within its own 8 MiB, but the server's 12 MiB would be passed.
    let r = api
        .put(&format!("/sessions/{b1}/files/y.bin"), vec![1; 3 << 20])
        .key(KEY_B)
        .send()
        .await;
    r.expect_error(413, "workspace_quota_exceeded");
    // Deleting files frees the quota.
    let r = api.delete(&format!("/sessions/{a1}/files/x.bin")).send().await;
    assert_eq!(r.status, 204, "{}", r.text());
    api.put(&format!("/sessions/{a2}/files/x.bin"), vec![1; 5 << 20])
        .send()
        .await
        .expect(201);
}
