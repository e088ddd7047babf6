//! Events reach exactly their user.

use agentwire_test::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_users_times_ten_runs_see_only_their_own_events() {
    const USERS: usize = 100;
    const RUNS: usize = 10;
    let mut config = agentwire_test::test_config();
    config.limits.max_runs_per_user = RUNS;
    config.limits.messages_per_second = 1000;
    config.limits.burst = 1000;
    let server = TestServer::start_with(config, Vec::new()).await;
    let mut tasks = Vec::new();
    for u in 0..USERS {
        let mut client = server.connect(&format!("user{u}")).await;
        tasks.push(tokio::spawn(async move {
            for r in 0..RUNS {
                client
                    .send_json(
                        json!({"type": "user_message", "id": format!("{u}-{r}"), "agent": "echo",
                        "content": format!("user{u} run{r}")}),
                    )
                    .await;
            }
            let mut run_ids = std::collections::HashSet::new();
            let mut acks = std::collections::HashSet::new();
            let mut completed = 0;
            let mut last_seq = 0;
            while completed < RUNS {
                let f = client.next_json().await.expect("connection open");
                if f["type"] == "ack" {
                    acks.insert(f["run_id"].as_str().unwrap().to_owned());
                    continue;
                }
                let seq = f["seq"].as_u64().expect("event frame");
                assert_eq!(seq, last_seq + 1, "user{u}: no hole, no duplicate");
                last_seq = seq;
                run_ids.insert(f["run_id"].as_str().unwrap().to_owned());
                if f["type"] == "agent_started" {
                    assert_eq!(
                        f["data"]["input"].as_str().unwrap().split(' ').next(),
                        Some(format!("user{u}").as_str()),
                        "user{u} received another user's run: {f}"
                    );
                }
                if f["type"] == "agent_completed" {
                    let result = f["data"]["result"].as_str().unwrap();
                    assert!(
                        result.starts_with(&format!("user{u} ")),
                        "user{u} got {result}"
                    );
                    completed += 1;
                }
            }
            assert_eq!(last_seq, (RUNS * 5) as u64);
            // Every run seen was acknowledged on this connection: nothing foreign slipped in.
            while acks.len() < run_ids.len() {
                let f = client.next_json().await.unwrap();
                if f["type"] == "ack" {
                    acks.insert(f["run_id"].as_str().unwrap().to_owned());
                }
            }
            assert!(
                run_ids.is_subset(&acks),
                "user{u} saw runs it did not start"
            );
            client.close().await;
        }));
    }
    for t in tasks {
        t.await.expect("user task passed");
    }
    let bridge = server.state.ready().bridge();
    for u in 0..USERS {
        let user = agentwire_core::UserId::new(format!("user{u}")).unwrap();
        assert_eq!(
            bridge.stream_head(&user).await.unwrap().1,
            (RUNS * 5) as u64,
            "user{u}'s stream head"
        );
    }
    server.stop().await;
}
