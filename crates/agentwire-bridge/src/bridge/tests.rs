use std::sync::Arc;

use agentwire_core::{
    AgentStarted, AgentThinking, CloseCode, Configurable, EventKind, Frame, RunEvent, RunId,
    ThreadId, UserId,
};

use crate::{AgentWebSocketBridge, Batch, BridgeConfig, BridgeError, ConnectionQueue, ResumeFrom};

fn bridge(max_events: usize) -> AgentWebSocketBridge {
    let mut config = BridgeConfig::default();
    config.history.max_events = max_events;
    AgentWebSocketBridge::builder().configure(config).unwrap()
}

fn event(n: u32) -> RunEvent {
    RunEvent::now(
        RunId::new("r_1").unwrap(),
        ThreadId::new("t_1").unwrap(),
        "demo".into(),
        if n == 0 {
            EventKind::AgentStarted(AgentStarted { input: None })
        } else {
            EventKind::AgentThinking(AgentThinking {
                thought: format!("step {n}"),
                step: Some(n),
            })
        },
    )
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

async fn drain(q: &ConnectionQueue) -> Vec<Frame> {
    let mut out = Vec::new();
    while q.queued_bytes() > 0 {
        q.next_batch(&mut out, 1024).await;
    }
    out
}

fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(Frame::seq).collect()
}

#[tokio::test]
async fn seqs_are_per_user_and_events_reach_only_their_user() {
    let b = bridge(100);
    let (qa, qb) = (
        Arc::new(ConnectionQueue::new(1 << 20)),
        Arc::new(ConnectionQueue::new(1 << 20)),
    );
    b.attach(&user("a"), qa.clone(), None).await.unwrap();
    b.attach(&user("b"), qb.clone(), None).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            b.publish_event(&user("a"), &event(i)).await.unwrap(),
            u64::from(i) + 1
        );
    }
    assert_eq!(b.publish_event(&user("b"), &event(0)).await.unwrap(), 1);
    assert_eq!(seqs(&drain(&qa).await), vec![1, 2, 3]);
    assert_eq!(seqs(&drain(&qb).await), vec![1]);
}

#[tokio::test]
async fn all_connections_of_a_user_share_one_serialization() {
    let b = bridge(100);
    let (q1, q2) = (
        Arc::new(ConnectionQueue::new(1 << 20)),
        Arc::new(ConnectionQueue::new(1 << 20)),
    );
    b.attach(&user("a"), q1.clone(), None).await.unwrap();
    b.attach(&user("a"), q2.clone(), None).await.unwrap();
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    let (f1, f2) = (drain(&q1).await, drain(&q2).await);
    assert_eq!(f1, f2);
    // Same allocation, not just equal bytes.
    assert_eq!(f1[0].bytes().as_ptr(), f2[0].bytes().as_ptr());
}

#[tokio::test]
async fn attach_with_resume_replays_then_goes_live_without_hole_or_duplicate() {
    let b = bridge(100);
    for i in 0..5 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let epoch = b.stream_head(&user("a")).await.unwrap().0;
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    let att = b
        .attach(
            &user("a"),
            q.clone(),
            Some(ResumeFrom {
                last_seq: 2,
                epoch: Some(epoch),
            }),
        )
        .await
        .unwrap();
    assert_eq!(att.resumed.map(|r| (r.from_seq, r.replayed)), Some((3, 3)));
    b.publish_event(&user("a"), &event(9)).await.unwrap();
    assert_eq!(seqs(&drain(&q).await), vec![3, 4, 5, 6]);
}

#[tokio::test]
async fn overflowed_history_announces_a_gap_and_a_wrong_epoch_starts_over() {
    let b = bridge(3);
    for i in 0..6 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    b.attach(
        &user("a"),
        q.clone(),
        Some(ResumeFrom {
            last_seq: 1,
            epoch: None,
        }),
    )
    .await
    .unwrap();
    let frames = drain(&q).await;
    assert!(frames[0].as_str().contains(r#""type":"replay_gap""#));
    assert!(frames[0].as_str().contains(r#""from_seq":2,"to_seq":3"#));
    assert_eq!(seqs(&frames[1..]), vec![4, 5, 6]);

    let q = Arc::new(ConnectionQueue::new(1 << 20));
    let att = b
        .attach(
            &user("a"),
            q.clone(),
            Some(ResumeFrom {
                last_seq: 5,
                epoch: Some("old".into()),
            }),
        )
        .await
        .unwrap();
    assert_eq!(att.resumed.unwrap().from_seq, 1);
    let frames = drain(&q).await;
    assert!(frames[0].as_str().contains(r#""from_seq":1,"to_seq":3"#));
    assert_eq!(seqs(&frames[1..]), vec![4, 5, 6]);
}

#[tokio::test]
async fn resume_ahead_of_the_head_is_refused() {
    let b = bridge(10);
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    let err = b
        .attach(
            &user("a"),
            q,
            Some(ResumeFrom {
                last_seq: 9,
                epoch: None,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BridgeError::ResumeAhead {
            last_seq: 9,
            head: 1
        }
    );
    assert_eq!(b.stats().connections, 0);
}

#[tokio::test]
async fn resume_frame_replays_only_before_any_delivery() {
    let b = bridge(10);
    for i in 0..3 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let q = Arc::new(ConnectionQueue::new(1 << 20));
    let att = b.attach(&user("a"), q.clone(), None).await.unwrap();
    let r = b
        .resume(
            &user("a"),
            att.connection_id,
            &ResumeFrom {
                last_seq: 1,
                epoch: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((r.from_seq, r.replayed), (2, 2));
    b.publish_event(&user("a"), &event(5)).await.unwrap();
    assert_eq!(seqs(&drain(&q).await), vec![2, 3, 4]);
    let err = b
        .resume(
            &user("a"),
            att.connection_id,
            &ResumeFrom {
                last_seq: 0,
                epoch: None,
            },
        )
        .await;
    assert!(matches!(
        err,
        Err(BridgeError::ResumeAfterDelivery { delivered: 4, .. })
    ));
}

#[tokio::test]
async fn a_full_queue_is_closed_as_slow_consumer_and_others_keep_receiving() {
    let b = bridge(1000);
    let slow = Arc::new(ConnectionQueue::new(600));
    let fast = Arc::new(ConnectionQueue::new(1 << 20));
    b.attach(&user("a"), slow.clone(), None).await.unwrap();
    b.attach(&user("a"), fast.clone(), None).await.unwrap();
    for i in 0..20 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    assert_eq!(
        slow.close_reason().map(|c| c.0),
        Some(CloseCode::SLOW_CONSUMER)
    );
    assert_eq!(b.stats().connections, 1);
    assert_eq!(drain(&fast).await.len(), 20);
    let mut out = Vec::new();
    assert!(matches!(
        slow.next_batch(&mut out, 10).await,
        Batch::Close(CloseCode::SLOW_CONSUMER, _)
    ));
}

#[tokio::test]
async fn limits_connections_per_user_and_users() {
    let config = BridgeConfig {
        max_connections_per_user: 1,
        max_users: 1,
        ..BridgeConfig::default()
    };
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    b.attach(&user("a"), Arc::new(ConnectionQueue::new(100)), None)
        .await
        .unwrap();
    assert!(matches!(
        b.attach(&user("a"), Arc::new(ConnectionQueue::new(100)), None)
            .await,
        Err(BridgeError::TooManyConnections { max: 1 })
    ));
    assert!(matches!(
        b.publish_event(&user("b"), &event(0)).await,
        Err(BridgeError::TooManyUsers { max: 1 })
    ));
}

#[tokio::test]
async fn removed_and_swept_streams_leave_nothing_behind() {
    let mut config = BridgeConfig::default();
    config.history.ttl = std::time::Duration::from_secs(1);
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    b.publish_event(&user("b"), &event(0)).await.unwrap();
    b.remove_stream(&user("a")).await;
    assert_eq!(b.stats().users, 1);
    assert_eq!(b.sweep_idle(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(b.sweep_idle(), 1);
    assert_eq!(b.stats().users, 0);
    // A new stream has a new epoch and starts at seq 1 again.
    assert_eq!(b.publish_event(&user("b"), &event(0)).await.unwrap(), 1);
}

#[test]
fn rejects_invalid_settings() {
    let mut config = BridgeConfig::default();
    config.history.ttl = std::time::Duration::ZERO;
    assert!(matches!(
        AgentWebSocketBridge::builder().configure(config),
        Err(BridgeError::InvalidConfig {
            key: "history.ttl",
            ..
        })
    ));
}
