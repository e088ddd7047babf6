//! Subscriptions (PROTOCOL.md §6, §7) as agentwire adds to them: ownership, bounds, SSRF, and
//! (redis) state shared by every node.

use super::*;

/// Without webhook_dev_loopback, a loopback webhook is refused (after `s` is deleted, so the
/// bound of one subscription does not answer first).
async fn a_loopback_webhook_is_refused(http: &reqwest::Client, server: &TestServer) {
    let url = |path: &str| server.http_url(&format!("/ds/{path}?user=ada"));
    http.delete(url("__ds/subscriptions/s"))
        .send()
        .await
        .unwrap();
    let hook = http
        .put(url("__ds/subscriptions/h"))
        .body(
            r#"{"type":"webhook","pattern":"jobs/*","webhook":{"url":"http://127.0.0.1:9/hook"}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&hook.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "WEBHOOK_URL_REJECTED");
}

/// A subscription is its creator's: its pattern matches only their streams, other users do
/// not see it, the bound per user holds, and webhook URLs are checked (no loopback exception).
pub(crate) async fn a_subscription_belongs_to_its_creator() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.max_subscriptions_per_user = 1;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let url = |path: &str, user: &str| server.http_url(&format!("/ds/{path}?user={user}"));
    let pull = r#"{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake"}"#;

    let anonymous = http
        .put(server.http_url("/ds/__ds/subscriptions/s"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wake = http
        .put(url("wake", "ada"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(wake.status(), 201);
    let created = http
        .put(url("__ds/subscriptions/s", "ada"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let second = http
        .put(url("__ds/subscriptions/t", "ada"))
        .body(pull)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429, "max_subscriptions_per_user = 1");
    let bobs_view = http
        .get(url("__ds/subscriptions/s", "bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bobs_view.status(),
        404,
        "another user's subscription is not found"
    );
    let bobs_claim = http
        .post(url("__ds/subscriptions/s/claim", "bob"))
        .body(r#"{"worker":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bobs_claim.status(), 404);

    // Bob's stream matches the pattern but is not Ada's: no wake.
    let jobs = |path: &str, user: &str| {
        http.put(url(path, user))
            .header("content-type", "application/json")
            .body(r#"{"job":1}"#)
            .send()
    };
    assert_eq!(jobs("jobs/bob", "bob").await.unwrap().status(), 201);
    let events: serde_json::Value = get_json(&http, url("wake", "ada")).await;
    assert_eq!(events, serde_json::json!([]));
    // Ada's is: the wake event is written before her write is answered.
    assert_eq!(jobs("jobs/ada", "ada").await.unwrap().status(), 201);
    let events: serde_json::Value = get_json(&http, url("wake", "ada")).await;
    assert_eq!(events[0]["subscription_id"], "s");
    assert_eq!(events[0]["stream"], "jobs/ada");
    assert_eq!(events.as_array().unwrap().len(), 1);

    a_loopback_webhook_is_refused(&http, &server).await;
    server.stop().await;
}

/// Both nodes publish the same signing key (`/ds/__ds/jwks.json`).
async fn same_signing_key(http: &reqwest::Client, a: &TestServer, b: &TestServer) {
    let jwks = |node: &TestServer| http.get(node.http_url("/ds/__ds/jwks.json")).send();
    let (ka, kb) = (jwks(a).await.unwrap(), jwks(b).await.unwrap());
    assert_eq!(ka.text().await.unwrap(), kb.text().await.unwrap());
}

/// The wake is claimed on A; on B the lease holds, a stale generation is fenced, and A's token
/// acks it.
async fn claim_on_a_then_fence_and_ack_on_b(
    http: &reqwest::Client,
    a: &TestServer,
    b: &TestServer,
) {
    let on = |node: &TestServer, path: &str| node.http_url(&format!("/ds/{path}?user=ada"));
    let json = |v: &str| -> serde_json::Value { serde_json::from_str(v).unwrap() };
    let claim = http
        .post(on(a, "__ds/subscriptions/s/claim"))
        .body(r#"{"worker":"w"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 200);
    let claimed = json(&claim.text().await.unwrap());
    let busy = http
        .post(on(b, "__ds/subscriptions/s/claim"))
        .body(r#"{"worker":"v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 409, "the lease taken on A holds on B");
    let tail = claimed["streams"][0]["tail_offset"].clone();
    let ack = |generation: &serde_json::Value| {
        let body = serde_json::json!({
            "wake_id": claimed["wake_id"], "generation": generation,
            "acks": [{"stream": "jobs/1", "offset": tail}], "done": true,
        });
        http.post(b.http_url("/ds/__ds/subscriptions/s/ack"))
            .bearer_auth(claimed["token"].as_str().unwrap())
            .body(body.to_string())
            .send()
    };
    let stale = ack(&serde_json::json!(
        claimed["generation"].as_u64().unwrap() + 1
    ))
    .await
    .unwrap();
    assert_eq!(stale.status(), 409);
    assert_eq!(
        json(&stale.text().await.unwrap())["error"]["code"],
        "FENCED"
    );
    let acked = ack(&claimed["generation"]).await.unwrap();
    assert_eq!(acked.status(), 200, "A's token is valid on B");
    let view: serde_json::Value = get_json(http, on(b, "__ds/subscriptions/s")).await;
    assert_eq!(view["streams"][0]["acked_offset"], tail);
}

/// Redis store: subscription state and the signing key are shared, so a pull-wake subscription
/// created on A is woken by a write on B, claimed on A, fenced and acked on B with A's token,
/// and both nodes publish the same key.
pub(crate) async fn a_subscription_made_on_node_a_wakes_and_is_acked_on_node_b() {
    let redis = TestRedis::new("subs-cross-node");
    let a = TestServer::start_with(redis.config(), Vec::new()).await;
    let b = TestServer::start_with(redis.config(), Vec::new()).await;
    let http = reqwest::Client::new();
    let on = |node: &TestServer, path: &str| node.http_url(&format!("/ds/{path}?user=ada"));
    let put_json = |url: String, body: &'static str| {
        http.put(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    assert_eq!(put_json(on(&a, "wake"), "").await.unwrap().status(), 201);
    let sub = r#"{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake"}"#;
    let created = put_json(on(&a, "__ds/subscriptions/s"), sub).await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        put_json(on(&b, "__ds/subscriptions/s"), sub)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        put_json(on(&b, "jobs/1"), r#"{"n":1}"#)
            .await
            .unwrap()
            .status(),
        201
    );
    let events: serde_json::Value = get_json(&http, on(&a, "wake")).await;
    assert_eq!(
        events[0]["subscription_id"], "s",
        "B's write woke the subscription: {events}"
    );

    claim_on_a_then_fence_and_ack_on_b(&http, &a, &b).await;
    same_signing_key(&http, &a, &b).await;
    a.stop().await;
    b.stop().await;
    drop(redis);
}
