//! What a cell shows besides text: matplotlib figures as PNG (on `plt.show()` and at the end of the cell),
//! DataFrames and `_repr_html_` objects as HTML, `display()` calls in order; and the streamed variant of execute,
//! whose output arrives while the cell still runs.

use crate::session_support;

use std::time::Duration;

use serde_json::{json, Value};
use session_support::*;

/// A cell result with long data cut short, for assertion messages.
fn outputs_brief(r: &Value) -> String {
    let mut r = r.clone();
    for o in r["outputs"].as_array_mut().into_iter().flatten() {
        let d = o["data"].as_str().unwrap_or("").to_string();
        o["data"] = json!(format!(
            "{}… ({} chars)",
            d.chars().take(40).collect::<String>(),
            d.len()
        ));
    }
    for (_, v) in r["result"].as_object_mut().into_iter().flatten() {
        if let Some(len) = v.as_str().map(str::len).filter(|&n| n > 200) {
            *v = json!(format!("({len} chars)"));
        }
    }
    format!("{r:#}")
}

/// Stream events with long data cut short, for assertion messages.
fn brief(events: &[(std::time::Instant, String, Value)]) -> String {
    let lines: Vec<String> = events
        .iter()
        .map(|(_, n, d)| {
            let d = d.to_string();
            format!("{n}: {}", d.chars().take(100).collect::<String>())
        })
        .collect();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matplotlib_figures_arrive_as_png() {
    let api = Api::plain();
    let id = api.create("python").await;
    // plt.show() sends the open figure at once.
    let r = api
        .exec_ok(
            &id,
            "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('shown')\nplt.show()\nprint('after show', len(plt.get_fignums()))",
        )
        .await;
    assert_eq!(
        r["stdout"],
        "after show 0\n",
        "plt.show() sent and closed the figure: {}",
        outputs_brief(&r)
    );
    let outputs = r["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "one figure, once: {}", outputs_brief(&r));
    assert_eq!(outputs[0]["mime_type"], "image/png");
    assert_png(outputs[0]["data"].as_str().unwrap());

    // A figure left open is sent when the cell ends; the trailing expression is still the result.
    let r = api.exec_ok(&id, "plt.figure()\nplt.bar(['a', 'b'], [3, 5])").await;
    assert!(
        r["result"]["text/plain"].as_str().unwrap().contains("BarContainer"),
        "{}",
        outputs_brief(&r)
    );
    let pngs: Vec<_> = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mime_type"] == "image/png")
        .collect();
    assert_eq!(pngs.len(), 1, "{}", outputs_brief(&r));
    assert_png(pngs[0]["data"].as_str().unwrap());

    // Figures are closed once sent: the next cell shows nothing.
    let r = api.exec_ok(&id, "len(plt.get_fignums())").await;
    assert_eq!(r["result"]["text/plain"], "0", "{r}");
    assert!(r["outputs"].as_array().unwrap().is_empty(), "{r}");

    // Two figures in one cell: two PNGs, in order.
    let r = api
        .exec_ok(
            &id,
            "fig1, ax1 = plt.subplots()\nax1.plot([1, 2])\nfig2, ax2 = plt.subplots()\nax2.scatter([1, 2], [2, 1])",
        )
        .await;
    let pngs = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mime_type"] == "image/png")
        .count();
    assert_eq!(pngs, 2, "{}", outputs_brief(&r));

    // A cell that fails after plotting still shows the plot.
    let r = api
        .exec(&id, "plt.plot([0, 1])\nraise RuntimeError('after the plot')")
        .await;
    assert_eq!(r["status"], "error", "{r}");
    assert_png(output_of(&r, "image/png").expect("the plot of a failed cell"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_figure_is_shown_once() {
    let api = Api::plain();
    let id = api.create("python").await;
    let r = api
        .exec_ok(
            &id,
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([2, 1, 2])\nfig",
        )
        .await;
    assert_png(r["result"]["image/png"].as_str().expect("the figure is the result"));
    let pngs = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mime_type"] == "image/png")
        .count();
    assert_eq!(
        pngs,
        1,
        "the figure is shown once, not also as an open figure: {}",
        outputs_brief(&r)
    );
    // Displaying a figure also shows it once; it can still be changed and displayed again.
    let r = api
        .exec_ok(
            &id,
            "fig2, ax2 = plt.subplots()\nax2.plot([1, 2])\ndisplay(fig2)\nax2.plot([2, 1])\ndisplay(fig2)",
        )
        .await;
    let pngs = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["mime_type"] == "image/png")
        .count();
    assert_eq!(pngs, 2, "two displays, no extra copy at the end: {}", outputs_brief(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataframes_and_repr_html_objects_arrive_as_html() {
    let api = Api::plain();
    let id = api.create("python").await;
    let r = api
        .exec_ok(
            &id,
            "import pandas as pd\ndf = pd.DataFrame({'name': ['a', 'b'], 'n': [1, 2]})\ndf",
        )
        .await;
    let html = r["result"]["text/html"].as_str().expect("a DataFrame has HTML");
    assert!(html.contains("<table") && html.contains("<td>b</td>"), "{html}");
    assert!(r["result"]["text/plain"].as_str().unwrap().contains("name"), "{r}");
    let shown = output_of(&r, "text/html").expect("the HTML is an output");
    assert!(shown.contains("<table"), "{shown}");

    // display() shows objects while the cell runs, in order, before the result.
    let r = api
        .exec_ok(
            &id,
            "class Card:\n    def __init__(self, t):\n        self.t = t\n    def _repr_html_(self):\n        return f'<b>{self.t}</b>'\n    def __repr__(self):\n        return f'Card({self.t!r})'\ndisplay(Card('one'))\nprint('between')\ndisplay(Card('two'), df.head(1))\n'end'",
        )
        .await;
    assert_eq!(r["stdout"], "between\n", "{r}");
    assert_eq!(r["result"]["text/plain"], "'end'", "{r}");
    let outputs = r["outputs"].as_array().unwrap();
    let shown: Vec<(&str, &str)> = outputs
        .iter()
        .map(|o| (o["mime_type"].as_str().unwrap(), o["data"].as_str().unwrap()))
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert_eq!(shown[0], ("text/html", "<b>one</b>"));
    assert_eq!(shown[1], ("text/html", "<b>two</b>"));
    assert!(shown[2].0 == "text/html" && shown[2].1.contains("<table"), "{shown:?}");

    // An object without rich forms is displayed as text.
    let r = api.exec_ok(&id, "display([1, 2])").await;
    assert_eq!(output_of(&r, "text/plain"), Some("[1, 2]"), "{r}");

    // JavaScript: display() and _repr_html_ too.
    let js = api.create("javascript").await;
    let r = api
        .exec_ok(
            &js,
            "display({ _repr_html_: () => '<i>js</i>' });\n({ _repr_html_() { return '<p>result</p>'; } })",
        )
        .await;
    assert_eq!(output_of(&r, "text/html"), Some("<i>js</i>"), "{r}");
    assert_eq!(r["result"]["text/html"], "<p>result</p>", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_output_arrives_before_the_cell_ends() {
    let api = Api::plain();
    let id = api.create("python").await;
    let (status, events) = api
        .post(
            &format!("/sessions/{id}/execute/stream"),
            json!({"code": "import time\nprint('before', flush=True)\ntime.sleep(1)\nprint('after')\n6 * 7"}),
        )
        .timeout(30)
        .stream_events()
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names.last(),
        Some(&"result"),
        "the stream ends with the result: {}",
        brief(&events)
    );
    let stdout: String = events
        .iter()
        .filter(|(_, n, _)| n == "stdout")
        .map(|(_, _, d)| d["data"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, "before\nafter\n");
    let (first_at, _, first) = events.iter().find(|(_, n, _)| n == "stdout").unwrap();
    assert!(first["data"].as_str().unwrap().starts_with("before"), "{first}");
    let (result_at, _, result) = events.last().unwrap();
    assert!(
        result_at.duration_since(*first_at) >= Duration::from_millis(700),
        "the first line arrived {:?} before the end, not while the cell slept",
        result_at.duration_since(*first_at)
    );
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["stdout"], "before\nafter\n", "{result}");
    assert_eq!(result["result"]["text/plain"], "42", "{result}");

    // plt.show() sends the figure as a display event at once, not when the cell ends.
    let (_, events) = api
        .post(
            &format!("/sessions/{id}/execute/stream"),
            json!({"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\ntime.sleep(0.5)\nprint('done')"}),
        )
        .timeout(30)
        .stream_events()
        .await;
    // One print may come as several stdout events (`done`, then the newline): what counts is their order.
    let mut names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    names.dedup();
    assert_eq!(names, ["display", "stdout", "result"], "{}", brief(&events));
    assert_eq!(events[0].2["mime_type"], "image/png");
    assert_png(events[0].2["data"].as_str().unwrap());
    assert!(
        events.last().unwrap().0.duration_since(events[0].0) >= Duration::from_millis(300),
        "the figure arrived when the cell ended, not at plt.show()"
    );

    // A dead session is a 409 and an unknown one a 404, both before any stream starts.
    api.exec(&id, "exit()").await;
    let r = api
        .post(&format!("/sessions/{id}/execute/stream"), json!({"code": "1"}))
        .send()
        .await;
    r.expect_error(409, "session_dead");
    let r = api
        .post("/sessions/sess_nope/execute/stream", json!({"code": "1"}))
        .send()
        .await;
    r.expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rich_outputs_are_capped_per_cell_in_count_and_bytes_and_say_so() {
    let api = Api::new(|c| {
        c.sessions.rich_outputs_per_cell = 10;
        c.sessions.rich_output_bytes = 256 << 10;
    });
    let id = api.create("python").await;
    let r = api.exec_ok(&id, "display([1, 2])").await;
    assert_eq!(r["outputs_truncated"], false, "{}", outputs_brief(&r));

    // More outputs than the count cap: the first ones are kept, in order, and the result says so.
    let r = api.exec_ok(&id, "for i in range(50):\n    display(i)\n'end'").await;
    let shown: Vec<&str> = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "{}",
        outputs_brief(&r)
    );
    assert_eq!(r["outputs_truncated"], true, "{}", outputs_brief(&r));
    assert_eq!(
        r["result"]["text/plain"],
        "'end'",
        "the result still arrives: {}",
        outputs_brief(&r)
    );

    // More bytes than the byte cap (6 MiB displayed, and a 1 MiB result; 256 KiB kept): the server keeps no more
    // than the cap. (Kept under the 8 MiB the session reader holds unread, so that a slow test host cannot end the
    // session for flooding instead.)
    let r = api
        .exec(&id, "s = 'x' * (1 << 20)\nfor i in range(6):\n    display(s)\ns")
        .await;
    assert_eq!(r["status"], "ok", "{}", outputs_brief(&r));
    let kept: usize = r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["data"].as_str().unwrap().len())
        .sum::<usize>()
        + r["result"]
            .as_object()
            .map_or(0, |m| m.values().map(|v| v.as_str().unwrap().len()).sum());
    assert!(kept <= 256 << 10, "{kept} bytes kept: {}", outputs_brief(&r));
    assert_eq!(r["outputs_truncated"], true, "{}", outputs_brief(&r));

    // The session lives on, and a small cell afterwards is complete again.
    let r = api.exec_ok(&id, "display('small')").await;
    assert_eq!(output_of(&r, "text/plain"), Some("'small'"), "{r}");
    assert_eq!(r["outputs_truncated"], false, "{r}");
}
