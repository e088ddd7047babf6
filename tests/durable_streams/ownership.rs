//! Auth on `/ds`: a stream is its creator's; `insecure_no_auth` only on loopback.

use super::*;

pub(crate) async fn a_stream_belongs_to_its_creator() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.max_streams_per_user = 2;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let url = |path: &str, user: &str| server.http_url(&format!("/ds/{path}?user={user}"));

    let anonymous = http.put(server.http_url("/ds/a")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let created = http
        .put(url("notes", "ada"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let read = http.get(url("notes", "ada")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "hello");

    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let other = http
            .request(method.clone(), url("notes", "bob"))
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 403, "{method} by another user");
    }

    let second = http.put(url("second", "ada")).send().await.unwrap();
    assert_eq!(second.status(), 201);
    let third = http.put(url("third", "ada")).send().await.unwrap();
    assert_eq!(
        third.status(),
        429,
        "the third stream passes max_streams_per_user = 2"
    );
    let bobs = http.put(url("third", "bob")).send().await.unwrap();
    assert_eq!(bobs.status(), 201, "the bound is per user");
    // The reserved control prefix is never a stream: a body-less PUT there is a malformed
    // subscription, not a new stream.
    let reserved = http
        .put(url("__ds/subscriptions/s1", "ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 400);
    let body: serde_json::Value = reserved.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    server.stop().await;
}

pub(crate) fn insecure_no_auth_is_refused_off_loopback() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.insecure_no_auth = true;
    config.listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    config.allow_insecure_dev = true; // so the dev-auth check does not answer first
    let err = config.validate().expect_err("refused off loopback");
    assert!(err.to_string().contains("insecure_no_auth"), "{err}");
    config.listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    config.validate().expect("allowed on loopback");

    // Likewise the loopback-webhook development exception, and a mount must not shadow routes.
    config.durable_streams.webhook_dev_loopback = true;
    config.validate().expect("allowed on loopback");
    config.listen = SocketAddr::from(([0, 0, 0, 0], 8080));
    config.durable_streams.insecure_no_auth = false;
    let err = config.validate().expect_err("refused off loopback");
    assert!(err.to_string().contains("webhook_dev_loopback"), "{err}");
    config.durable_streams.webhook_dev_loopback = false;
    config.durable_streams.mount = "/v1/stream".into();
    let err = config
        .validate()
        .expect_err("a mount over the server's routes");
    assert!(err.to_string().contains("durable_streams.mount"), "{err}");
}
