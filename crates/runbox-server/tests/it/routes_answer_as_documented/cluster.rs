//! A cluster node routes ids by the node they name, and never forwards a request twice.

use super::*;

/// A cluster node (`n1`, with a peer `n2` whose address answers nothing) routes by the node an id names: a gone
/// owner is `410 session_lost` at once, an unknown node or a request already forwarded once is 404 (never sent on),
/// an unauthenticated request goes nowhere, and a session id of an earlier life of this node is lost too.
#[tokio::test]
async fn a_cluster_node_routes_ids_by_their_node_and_never_forwards_twice() {
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::new(no_jail(), |c| {
        two_keys(c);
        c.node_id = "n1".into();
        c.cluster.peers.insert("n2".into(), format!("http://{closed}"));
    });
    let hex = "0123456789abcdef0123456789abcdef";
    let started = std::time::Instant::now();
    let lost = app.get(&format!("/sessions/sess_{hex}_n2")).key(KEY_A).send().await;
    let v = lost.expect(410);
    assert_eq!(v["code"], "session_lost", "{v}");
    assert_eq!(
        (v["details"]["node"].as_str(), v["details"]["reason"].as_str()),
        (Some("n2"), Some("node_unreachable"))
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let cell = app
        .post(&format!("/sessions/sess_{hex}_n2/execute"), json!({"code": "1"}))
        .key(KEY_A)
        .send()
        .await;
    assert_eq!(cell.expect(410)["code"], "session_lost");
    app.get(&format!("/sessions/sess_{hex}_n2"))
        .key(KEY_A)
        .header("x-runbox-forwarded-by", "n3")
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&format!("/sessions/sess_{hex}_n9"))
        .key(KEY_A)
        .send()
        .await
        .expect_error(404, "not_found");
    app.get(&format!("/sessions/sess_{hex}_n2"))
        .send()
        .await
        .expect_error(401, "unauthorized");
    let job = app.get(&format!("/executions/exec_{hex}_n2")).key(KEY_A).send().await;
    assert_eq!(job.expect(503)["code"], "node_unreachable");
    // This node's id with another boot id: a session of an earlier life, which ended with it.
    let earlier = app.get(&format!("/sessions/sess_{hex}_n1")).key(KEY_A).send().await;
    assert_eq!(earlier.expect(410)["details"]["reason"], "node_restarted");
    // A session made here carries this node and this life; it is served here.
    assert!(app.state.cluster.owner_of(&format!("sess_{hex}")) == runbox_server::cluster::Owner::Local);
}
