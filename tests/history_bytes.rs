//! `history.max_bytes` on both brokers, through a real `agentwire` process: a user's history
//! holds the newest events whose bytes fit and not one more, a client resuming from a dropped seq
//! gets a `replay_gap` then exactly the held events, and `/v1/events` pages stay within
//! `limits.events_page_bytes` and continue exactly. The Redis trial uses the Redis at `REDIS_URL`
//! (or a private `redis-server`); without either it is reported as ignored with the reason, unless
//! `AGENTWIRE_REQUIRE_REDIS=1`. Runs on the `libtest-mimic` harness (`tests/harness`).

#[allow(dead_code)] // each suite uses part of the shared harness
mod harness;

use agentwire_test::WsClient;
use harness::node::Node;
use serde_json::{Value, json};

const HISTORY: usize = 64 * 1024;
const PAGE: usize = 40_000;

fn main() -> std::process::ExitCode {
    harness::run(vec![
        harness::trial_needing("memory_broker_caps_history_in_bytes", vec![], || {
            history_is_capped_in_bytes("memory".to_owned())
        }),
        harness::trial(
            "redis_broker_caps_history_in_bytes",
            harness::REQUIRE_REDIS,
            harness::shared_redis_ready,
            || history_is_capped_in_bytes(harness::shared_redis_url()),
        ),
    ])
}

/// A user name no other test run uses, so tests share one Redis safely.
fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        agentwire_core::RunId::generate().as_str()[2..10].to_owned()
    )
}

/// One `/v1/events` page: its events exactly as the body holds them, and its other fields.
struct Page {
    events: Vec<String>,
    gap: Value,
    head: u64,
    next_after: u64,
}

async fn page(node: &Node, user: &str, after: u64) -> Page {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        events: Vec<&'a serde_json::value::RawValue>,
        gap: Value,
        head: u64,
        next_after: u64,
    }
    let url = node.http(&format!("/v1/events?user={user}&after={after}"));
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    let raw: Raw<'_> = serde_json::from_str(&body).unwrap();
    Page {
        events: raw.events.iter().map(|e| e.get().to_owned()).collect(),
        gap: raw.gap,
        head: raw.head,
        next_after: raw.next_after,
    }
}

/// 10 echo runs, four events of each carrying 4,000 bytes: ~170 KB, 2.6 × the bound. Each
/// run's events are read back as stored right after it, while history still holds them.
async fn ten_big_runs(node: &Node, ws: &mut WsClient, user: &str) -> Vec<String> {
    let mut events: Vec<String> = Vec::new();
    for i in 0..10 {
        let id = format!("c{i}");
        let content = format!("{i}").repeat(4000);
        ws.send_json(
            json!({"type": "user_message", "id": id, "agent": "echo", "content": content}),
        )
        .await;
        let (_, run) = ws.until_run_ends(&id).await;
        assert_eq!(run.len(), 5);
        let after = events.len() as u64;
        let mut read = page(node, user, after).await;
        assert_eq!(read.head, after + 5);
        events.append(&mut read.events);
        assert_eq!(
            events.len() as u64,
            after + 5,
            "a run's events are held at first"
        );
    }
    events
}

async fn history_is_capped_in_bytes(broker: String) {
    let node = Node::start(
        &broker,
        &[
            ("AGENTWIRE_HISTORY__MAX_BYTES", &HISTORY.to_string()),
            ("AGENTWIRE_LIMITS__MAX_EVENT_BYTES", "32768"),
            ("AGENTWIRE_LIMITS__EVENTS_PAGE_BYTES", &PAGE.to_string()),
        ],
    );
    let user = unique("bytes");
    let mut ws = WsClient::connect(&node.ws(&format!("user={user}")))
        .await
        .unwrap();
    let events = ten_big_runs(&node, &mut ws, &user).await;
    let head = events.len() as u64;
    // The newest events whose bytes fit the bound, and not one more.
    let (mut held, mut bytes) = (0, 0);
    while held < events.len() && bytes + events[events.len() - 1 - held].len() <= HISTORY {
        bytes += events[events.len() - 1 - held].len();
        held += 1;
    }
    let first_held = head - held as u64 + 1;
    println!("{broker}: {held} of {head} events held, {bytes} bytes (bound {HISTORY})");
    assert!(first_held > 1);

    // Paged: a gap for what is gone, then every held event once, within the page bound.
    let mut after = 0;
    let mut listed: Vec<String> = Vec::new();
    loop {
        let p = page(&node, &user, after).await;
        let expected_gap = (after == 0).then(|| json!({"from_seq": 1, "to_seq": first_held - 1}));
        assert_eq!(p.gap, expected_gap.unwrap_or(Value::Null));
        let page_bytes: usize = p.events.iter().map(String::len).sum();
        assert!(page_bytes <= PAGE, "a page of {page_bytes} bytes");
        if p.next_after < head {
            let next = &events[p.next_after as usize];
            assert!(page_bytes + next.len() > PAGE, "the page stopped early");
        }
        listed.extend(p.events);
        after = p.next_after;
        if after == head {
            break;
        }
    }
    assert_eq!(listed, events[first_held as usize - 1..]);

    // Resumed from 0 on a WebSocket: the same gap, then exactly the held events.
    let mut resumed = WsClient::connect(&node.ws(&format!("user={user}&last_seq=0")))
        .await
        .unwrap();
    assert_eq!(resumed.hello["data"]["last_seq"], head);
    let gap = resumed.next_json().await.unwrap();
    assert_eq!(gap["type"], "replay_gap");
    assert_eq!(
        gap["data"],
        json!({"from_seq": 1, "to_seq": first_held - 1})
    );
    for want in &events[first_held as usize - 1..] {
        let want: Value = serde_json::from_str(want).unwrap();
        assert_eq!(resumed.next_json().await.unwrap(), want);
    }
}
