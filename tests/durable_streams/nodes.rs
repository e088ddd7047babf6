//! The redis store across nodes: appended on A, tailed live and read by offset on B; a key
//! prefix of each test's own in the shared Redis.

use super::*;

pub(crate) async fn appended_on_node_a_is_tailed_live_and_by_offset_on_node_b() {
    let redis = TestRedis::new("cross-node");
    let a = TestServer::start_with(redis.config(), Vec::new()).await;
    let b = TestServer::start_with(redis.config(), Vec::new()).await;
    let http = reqwest::Client::new();
    let on = |node: &TestServer, query: &str| node.http_url(&format!("/ds/chat?user=ada{query}"));

    let created = http
        .put(on(&a, ""))
        .header("content-type", "application/json")
        .body(r#"{"n":0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let start = created.headers()["stream-next-offset"]
        .to_str()
        .unwrap()
        .to_owned();

    // B tails live (long-poll and SSE) at the tail before A appends.
    let poll = tokio::spawn(
        http.get(on(&b, &format!("&offset={start}&live=long-poll")))
            .send(),
    );
    let mut sse = http
        .get(on(&b, &format!("&offset={start}&live=sse")))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let first = sse.chunk().await.unwrap().expect("the first control event");
    assert!(
        String::from_utf8_lossy(&first).contains("upToDate"),
        "{first:?}"
    );

    let appended = http
        .post(on(&a, ""))
        .header("content-type", "application/json")
        .body(r#"[{"n":1},{"n":2}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 204);

    let polled = poll.await.unwrap().unwrap();
    assert_eq!(polled.status(), 200, "B's long-poll wakes on A's append");
    assert_eq!(polled.text().await.unwrap(), r#"[{"n":1},{"n":2}]"#);

    let mut events = String::new();
    while !events.contains("event: control") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .expect("B's SSE gets A's append")
            .unwrap()
            .expect("the stream stays open");
        events.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(events.contains(r#"data:[{"n":1},{"n":2}]"#), "{events}");

    let caught_up = http.get(on(&b, "&offset=-1")).send().await.unwrap();
    assert_eq!(
        caught_up.text().await.unwrap(),
        r#"[{"n":0},{"n":1},{"n":2}]"#
    );
    let from_offset = http
        .get(on(&b, &format!("&offset={start}")))
        .send()
        .await
        .unwrap();
    assert_eq!(from_offset.text().await.unwrap(), r#"[{"n":1},{"n":2}]"#);

    drop(sse);
    a.stop().await;
    b.stop().await;
}

/// A key prefix of this test's own in the shared Redis, removed afterwards.
pub(crate) struct TestRedis {
    prefix: String,
}

impl TestRedis {
    pub(crate) fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            prefix: format!("aw-test-ds:{name}:{}:{nanos}", std::process::id()),
        }
    }

    /// Dev auth, the Redis broker, and the redis store under this prefix.
    pub(crate) fn config(&self) -> agentwire_startup::AgentwireConfig {
        let mut config = agentwire_test::test_config();
        config.broker = redis_url();
        config.durable_streams.store = agentwire_durable_streams::StoreKind::Redis;
        config.durable_streams.redis_prefix = self.prefix.clone();
        config
    }
}

/// Removes the prefix's keys even when the test failed (a sync connection: this is `Drop`).
impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        // SCAN, not KEYS: the Redis is shared.
        let mut cursor = 0u64;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query::<(u64, Vec<String>)>(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(&keys).query::<()>(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
