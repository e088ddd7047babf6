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

pub(crate) async fn a_users_request_rate_is_bounded_on_reads_and_control_routes() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.requests_per_second = 1;
    config.durable_streams.request_burst = 3;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let url = |path: &str, user: &str| server.http_url(&format!("/ds/{path}?user={user}"));

    // The burst: a create and two reads (a HEAD and a GET).
    let created = http.put(url("notes", "ada")).send().await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        http.head(url("notes", "ada"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(url("notes", "ada")).send().await.unwrap().status(),
        200
    );

    let limited = http.get(url("notes", "ada")).send().await.unwrap();
    assert_eq!(limited.status(), 429, "a read past the burst");
    assert_eq!(limited.headers()["retry-after"], "1");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("durable_streams.requests_per_second"),
        "{body}"
    );
    // The subscription routes draw on the same budget.
    let sub = http
        .get(url("__ds/subscriptions/s1", "ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 429, "a control route past the burst");
    let body: serde_json::Value = sub.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");

    // The bound is per user.
    let bobs = http.put(url("bobs-notes", "bob")).send().await.unwrap();
    assert_eq!(bobs.status(), 201);
    // And the budget refills at the sustained rate.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        http.get(url("notes", "ada")).send().await.unwrap().status(),
        200
    );
    server.stop().await;
}

/// The first answer on `tcp`, head and body (by its `Content-Length`), within 10 s; a reset or a
/// close before it is complete fails the test.
async fn read_answer(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
            let n = tcp.read(&mut buf).await.expect("an answer, not a reset");
            assert!(n > 0, "closed before the answer was complete");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// A body over `max_append_bytes` is refused with 413, and the client that sends all of it
/// reads that answer: the server reads the refused body on instead of closing a socket with
/// unread bytes in it (which resets the connection and can destroy the 413 unread).
pub(crate) async fn an_oversized_append_is_answered_413_after_its_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let mut config = agentwire_test::test_config();
    config.durable_streams.max_append_bytes = 1 << 20;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let created = http
        .put(server.http_url("/ds/big?user=ada"))
        .header("content-type", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let body = vec![0u8; 8 << 20];
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /ds/big?user=ada HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body)
        .await
        .expect("the server reads the refused body instead of resetting the connection");
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // The same without a Content-Length (chunked): refused midway, read on all the same.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /ds/big?user=ada HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![0u8; 64 << 10];
    for _ in 0..128 {
        tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        tcp.write_all(&chunk)
            .await
            .expect("the server reads the refused chunked body on");
        tcp.write_all(b"\r\n").await.unwrap();
    }
    tcp.write_all(b"0\r\n\r\n").await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A client that waits for `100 Continue` is not invited to send the refused body: it gets
    // the 413 straight away.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /ds/big?user=ada HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    server.stop().await;
}

/// A body that stops arriving is a bad request (400, `limits.body_read_timeout`), not a 413.
pub(crate) async fn a_body_that_stops_arriving_is_a_bad_request() {
    use tokio::io::AsyncWriteExt;
    let mut config = agentwire_test::test_config();
    config.limits.body_read_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(config, Vec::new()).await;
    let created = reqwest::Client::new()
        .put(server.http_url("/ds/slow?user=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /ds/slow?user=ada HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("could not be read"), "{answer}");
    server.stop().await;
}

/// The wake-token routes (`callback`, `ack`, `release`) are authenticated by a signed token, not
/// an owner: forged tokens are charged to the peer address before their signature is checked.
pub(crate) async fn forged_wake_tokens_are_rate_limited_per_address() {
    let mut config = agentwire_test::test_config();
    config.durable_streams.requests_per_second = 1;
    config.durable_streams.request_burst = 3;
    let server = TestServer::start_with(config, Vec::new()).await;
    let http = reqwest::Client::new();
    let ack = || {
        http.post(server.http_url("/ds/__ds/subscriptions/s1/ack"))
            .bearer_auth("forged.token")
            .header("content-type", "application/json")
            .body(r#"{"wake_id":"w","generation":1}"#)
            .send()
    };
    for _ in 0..3 {
        let refused = ack().await.unwrap();
        assert_eq!(refused.status(), 401, "a forged token within the burst");
    }
    let limited = ack().await.unwrap();
    assert_eq!(
        limited.status(),
        429,
        "past the burst, before the signature check"
    );
    assert_eq!(limited.headers()["retry-after"], "1");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Owners' routes keep their own budget.
    let created = http
        .put(server.http_url("/ds/notes?user=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    server.stop().await;
}
