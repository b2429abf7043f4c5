//! A session keeps its interpreter between cells: variables, imports, functions and files written to the workspace
//! persist in Python, JavaScript, TypeScript and Bash; a trailing expression is the cell's result; errors show the
//! user's frames only; output of subprocesses is captured in order with the cell's own.

use crate::session_support;

use session_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_keeps_variables_imports_functions_and_files() {
    let api = Api::plain();
    let id = api.create("python").await;
    let r = api
        .exec_ok(
            &id,
            "import json as j\nx = 41\ndef bump(v):\n    return v + 1\nwith open('state.txt', 'w') as f:\n    f.write('kept')",
        )
        .await;
    assert_eq!(r["result"], serde_json::Value::Null, "assignments have no result: {r}");
    assert_eq!(r["execution_count"], 1);
    let r = api
        .exec_ok(&id, "print(j.dumps({'v': bump(x)}), open('state.txt').read())")
        .await;
    assert_eq!(r["stdout"], "{\"v\": 42} kept\n", "{r}");
    assert_eq!(r["execution_count"], 2);
    // The trailing expression is the result; `_` holds the last one.
    let r = api.exec_ok(&id, "x = bump(x)\nx").await;
    assert_eq!(r["result"]["text/plain"], "42", "{r}");
    let r = api.exec_ok(&id, "_ * 2").await;
    assert_eq!(r["result"]["text/plain"], "84", "{r}");
    // A statement at the end gives no result; an expression of None neither.
    let r = api.exec_ok(&id, "y = 1").await;
    assert!(r["result"].is_null(), "{r}");
    let r = api.exec_ok(&id, "None").await;
    assert!(r["result"].is_null(), "{r}");
    let r = api.exec_ok(&id, "'text'").await;
    assert_eq!(r["result"]["text/plain"], "'text'", "{r}");
    assert!(
        r["outputs"].as_array().unwrap().is_empty(),
        "plain text is not a rich output: {r}"
    );
    // Class instances, modules and state changed in place survive too.
    api.exec_ok(&id, "import collections\nseen = collections.Counter()\nseen['a'] += 1")
        .await;
    let r = api.exec_ok(&id, "seen['a'] += 1\nseen['a']").await;
    assert_eq!(r["result"]["text/plain"], "2", "{r}");
    let info = api.info(&id).await;
    assert_eq!(info["executions"], 9, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_keeps_let_const_functions_and_files_and_awaits_at_top_level() {
    let api = Api::plain();
    let id = api.create("javascript").await;
    api.exec_ok(
        &id,
        "let a = 1;\nconst b = 2;\nvar c = 3;\nfunction add(x, y) { return x + y; }\nclass Box { constructor(v) { this.v = v; } }\nconst fs = require('fs');\nfs.writeFileSync('state.txt', 'kept');",
    )
    .await;
    let r = api
        .exec_ok(
            &id,
            "a += 10;\nconsole.log(fs.readFileSync('state.txt', 'utf8'));\nadd(a, b) + c + new Box(100).v",
        )
        .await;
    assert_eq!(r["stdout"], "kept\n", "{r}");
    assert_eq!(r["result"]["text/plain"], "116", "{r}");
    // Redeclaring a `const` in a later cell is the language's error, not a crash.
    let r = api.exec(&id, "const b = 5;").await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["error"]["name"], "SyntaxError", "{r}");
    // Top-level await: the value is the result, and declarations made around it persist.
    let r = api
        .exec_ok(
            &id,
            "const later = await new Promise((resolve) => setTimeout(() => resolve(21), 50));\nlater * 2",
        )
        .await;
    assert_eq!(r["result"]["text/plain"], "42", "{r}");
    let r = api.exec_ok(&id, "later + a").await;
    assert_eq!(r["result"]["text/plain"], "32", "{r}");
    let r = api.exec_ok(&id, "await Promise.resolve('done')").await;
    assert_eq!(r["result"]["text/plain"], "'done'", "{r}");
    let r = api.exec_ok(&id, "({ n: [1, 2], s: 'x' })").await;
    assert_eq!(r["result"]["text/plain"], "{ n: [ 1, 2 ], s: 'x' }", "{r}");
    // A statement at the end gives no result.
    let r = api.exec_ok(&id, "let unused = 5;").await;
    assert!(r["result"].is_null(), "{r}");
    assert_eq!(r["execution_count"], 8, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_keeps_typed_declarations() {
    let api = Api::plain();
    let id = api.create("typescript").await;
    api.exec_ok(
        &id,
        "interface Point { x: number; y: number }\nconst origin: Point = { x: 3, y: 4 };\nfunction norm(p: Point): number { return Math.sqrt(p.x * p.x + p.y * p.y); }\nlet total: number = 0;\nrequire('fs').writeFileSync('ts.txt', 'typed');",
    )
    .await;
    let r = api
        .exec_ok(
            &id,
            "total += norm(origin);\nconsole.log(require('fs').readFileSync('ts.txt', 'utf8'));\ntotal",
        )
        .await;
    assert_eq!(r["stdout"], "typed\n", "{r}");
    assert_eq!(r["result"]["text/plain"], "5", "{r}");
    let r = api
        .exec_ok(&id, "const v: number = await Promise.resolve(total * 2);\nv")
        .await;
    assert_eq!(r["result"]["text/plain"], "10", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_keeps_variables_functions_directory_and_files() {
    let api = Api::plain();
    let id = api.create("bash").await;
    api.exec_ok(
        &id,
        "GREETING=hello\ndouble() { echo $(( $1 * 2 )); }\nmkdir -p sub/dir && cd sub\necho kept > state.txt\nexport EXPORTED=yes",
    )
    .await;
    let r = api
        .exec_ok(
            &id,
            "echo $GREETING $(double 21) $(basename \"$PWD\") $(cat state.txt) $(printenv EXPORTED)",
        )
        .await;
    assert_eq!(r["stdout"], "hello 42 sub kept yes\n", "{r}");
    let r = api.exec(&id, "false").await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["exit_code"], 1, "{r}");
    let r = api.exec_ok(&id, "echo still $GREETING; echo err >&2").await;
    assert_eq!(
        (r["stdout"].as_str(), r["stderr"].as_str()),
        (Some("still hello\n"), Some("err\n"))
    );
    // The file is in the workspace, where the file API finds it.
    let bytes = api
        .get(&format!("/sessions/{id}/files/sub/state.txt"))
        .send()
        .await
        .expect_bytes(200);
    assert_eq!(bytes, b"kept\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tracebacks_show_only_the_users_cells() {
    let api = Api::plain();
    let id = api.create("python").await;
    api.exec_ok(&id, "def inner(v):\n    raise ValueError(f'bad value {v}')")
        .await;
    let r = api.exec(&id, "def outer():\n    inner(7)\n\nouter()").await;
    assert_eq!(r["status"], "error", "{r}");
    let error = &r["error"];
    assert_eq!(
        (error["name"].as_str(), error["value"].as_str()),
        (Some("ValueError"), Some("bad value 7")),
        "{r}"
    );
    let tb = error["traceback"].as_str().unwrap();
    assert!(tb.starts_with("Traceback (most recent call last):"), "{tb}");
    assert!(tb.contains("File \"<cell 2>\", line 4, in <module>"), "{tb}");
    assert!(tb.contains("File \"<cell 2>\", line 2, in outer"), "{tb}");
    assert!(tb.contains("File \"<cell 1>\", line 2, in inner"), "{tb}");
    assert!(
        tb.contains("raise ValueError(f'bad value {v}')"),
        "the cell's line is quoted: {tb}"
    );
    assert!(tb.trim_end().ends_with("ValueError: bad value 7"), "{tb}");
    assert!(!tb.contains("python_worker"), "no worker frames: {tb}");
    assert!(!tb.contains(".runbox"), "no worker frames: {tb}");

    // Errors from the standard library keep their frames but never the worker's.
    let r = api.exec(&id, "import json\njson.loads('{')").await;
    let tb = r["error"]["traceback"].as_str().unwrap();
    assert_eq!(r["error"]["name"], "JSONDecodeError", "{r}");
    assert!(tb.contains("<cell 3>") && tb.contains("json"), "{tb}");
    assert!(!tb.contains("python_worker"), "{tb}");

    // A syntax error names the cell and the line.
    let r = api.exec(&id, "x = 1\ny = (").await;
    assert_eq!(r["error"]["name"], "SyntaxError", "{r}");
    let tb = r["error"]["traceback"].as_str().unwrap();
    assert!(tb.contains("<cell 4>") && tb.contains("line 2"), "{tb}");
    assert!(!tb.contains("python_worker"), "{tb}");

    // The error is the cell's, not the session's: the session goes on.
    let r = api.exec_ok(&id, "1 + 1").await;
    assert_eq!(r["result"]["text/plain"], "2");
    assert_eq!(r["execution_count"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_errors_show_no_worker_frames() {
    let api = Api::plain();
    let id = api.create("javascript").await;
    api.exec_ok(&id, "function boom(n) { throw new TypeError('nope ' + n); }")
        .await;
    let r = api.exec(&id, "function caller() { boom(3); }\ncaller();").await;
    assert_eq!(r["status"], "error", "{r}");
    let error = &r["error"];
    assert_eq!(
        (error["name"].as_str(), error["value"].as_str()),
        (Some("TypeError"), Some("nope 3")),
        "{r}"
    );
    let tb = error["traceback"].as_str().unwrap();
    // Node quotes the offending line above the stack, as Python quotes it in the frame.
    assert!(tb.contains("TypeError: nope 3\n    at boom"), "{tb}");
    assert!(tb.contains("at boom (cell1.js:1"), "{tb}");
    assert!(tb.contains("at caller (cell2.js:1"), "{tb}");
    assert!(!tb.contains("node_worker"), "no worker frames: {tb}");
    assert!(!tb.contains("node:"), "no Node internals: {tb}");
    // A rejected await and a thrown non-error are errors of the cell too.
    let r = api.exec(&id, "await Promise.reject(new RangeError('far'))").await;
    assert_eq!(
        (r["error"]["name"].as_str(), r["error"]["value"].as_str()),
        (Some("RangeError"), Some("far")),
        "{r}"
    );
    assert!(
        !r["error"]["traceback"].as_str().unwrap().contains("node_worker"),
        "{r}"
    );
    let r = api.exec(&id, "throw 'plain'").await;
    assert_eq!(r["status"], "error", "{r}");
    let r = api.exec_ok(&id, "typeof boom").await;
    assert_eq!(r["result"]["text/plain"], "'function'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprocess_output_is_captured_in_order() {
    let api = Api::plain();
    let py = api.create("python").await;
    let r = api
        .exec_ok(
            &py,
            "import os, subprocess, sys\nprint('first')\nos.system('echo hi')\nprint('second')\nsubprocess.run(['echo', 'x'])\nprint('third')\nsubprocess.run('echo to-err >&2', shell=True)\nprint('fourth', file=sys.stderr)",
        )
        .await;
    assert_eq!(r["stdout"], "first\nhi\nsecond\nx\nthird\n", "{r}");
    assert_eq!(r["stderr"], "to-err\nfourth\n", "{r}");
    // Output captured with check_output goes to the program, not the cell.
    let r = api
        .exec_ok(&py, "out = subprocess.check_output(['echo', 'captured']).decode()\nout")
        .await;
    assert_eq!(r["stdout"], "", "{r}");
    assert_eq!(r["result"]["text/plain"], "'captured\\n'", "{r}");

    let js = api.create("javascript").await;
    let r = api
        .exec_ok(
            &js,
            "const { execSync } = require('child_process');\nconsole.log('first');\nexecSync('echo hi', { stdio: 'inherit' });\nconsole.log('second');\nexecSync('echo x; echo e >&2', { stdio: 'inherit' });\nconsole.error('third');",
        )
        .await;
    assert_eq!(r["stdout"], "first\nhi\nsecond\nx\n", "{r}");
    assert_eq!(r["stderr"], "e\nthird\n", "{r}");

    let sh = api.create("bash").await;
    let r = api
        .exec_ok(&sh, "echo one; (echo two); python3 -c 'print(\"three\")'; echo four")
        .await;
    assert_eq!(r["stdout"], "one\ntwo\nthree\nfour\n", "{r}");
}
