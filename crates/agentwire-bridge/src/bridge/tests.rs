use std::sync::Arc;
use std::time::Duration;

use agentwire_core::{
    AgentStarted, AgentThinking, CloseCode, Configurable, EventKind, Frame, RunEvent, RunId,
    ThreadId, UserId,
};

use crate::{AgentWebSocketBridge, Batch, BridgeConfig, BridgeError, ConnectionQueue, ResumeFrom};

pub(super) fn bridge(max_events: usize) -> AgentWebSocketBridge {
    let mut config = BridgeConfig::default();
    config.history.max_events = max_events;
    AgentWebSocketBridge::builder().configure(config).unwrap()
}

pub(super) fn event(n: u32) -> RunEvent {
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

pub(super) fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub(super) fn queue() -> Arc<ConnectionQueue> {
    Arc::new(ConnectionQueue::new(1 << 20))
}

/// Receives exactly `n` frames (waiting for asynchronous replays), then checks nothing more is
/// queued.
pub(super) async fn recv(q: &ConnectionQueue, n: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    while out.len() < n {
        tokio::time::timeout(Duration::from_secs(5), q.next_batch(&mut out, 1024))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} frames arrived", out.len()));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(q.queued_bytes(), 0, "more frames than expected");
    out
}

pub(super) fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(Frame::seq).collect()
}

#[tokio::test(start_paused = true)]
async fn seqs_are_per_user_and_events_reach_only_their_user() {
    let b = bridge(100);
    let (qa, qb) = (queue(), queue());
    b.attach(&user("a"), qa.clone(), None).await.unwrap();
    b.attach(&user("b"), qb.clone(), None).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            b.publish_event(&user("a"), &event(i)).await.unwrap(),
            u64::from(i) + 1
        );
    }
    assert_eq!(b.publish_event(&user("b"), &event(0)).await.unwrap(), 1);
    assert_eq!(seqs(&recv(&qa, 3).await), vec![1, 2, 3]);
    assert_eq!(seqs(&recv(&qb, 1).await), vec![1]);
}

#[tokio::test(start_paused = true)]
async fn all_connections_of_a_user_share_one_serialization() {
    let b = bridge(100);
    let (q1, q2) = (queue(), queue());
    b.attach(&user("a"), q1.clone(), None).await.unwrap();
    b.attach(&user("a"), q2.clone(), None).await.unwrap();
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    let (f1, f2) = (recv(&q1, 1).await, recv(&q2, 1).await);
    assert_eq!(f1, f2);
    // Same allocation, not just equal bytes.
    assert_eq!(f1[0].bytes().as_ptr(), f2[0].bytes().as_ptr());
}

#[tokio::test(start_paused = true)]
async fn attach_with_resume_replays_then_goes_live_without_hole_or_duplicate() {
    let b = bridge(100);
    for i in 0..5 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let epoch = b.stream_head(&user("a")).await.unwrap().0;
    let q = queue();
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
    // Published while the replay may still be running: buffered, then delivered once.
    b.publish_event(&user("a"), &event(9)).await.unwrap();
    assert_eq!(seqs(&recv(&q, 4).await), vec![3, 4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn a_replay_larger_than_the_queue_is_paced_not_dropped() {
    let b = bridge(10_000);
    for i in 0..3000 {
        b.publish_event(&user("a"), &event(i % 50)).await.unwrap();
    }
    // Each frame is ~150 bytes: 3000 of them are far over a 16 KiB queue.
    let q = Arc::new(ConnectionQueue::new(16 * 1024));
    let att = b
        .attach(
            &user("a"),
            q.clone(),
            Some(ResumeFrom {
                last_seq: 0,
                epoch: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(att.resumed.unwrap().replayed, 3000);
    let writer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut got: Vec<u64> = Vec::new();
            while got.len() < 3010 {
                let mut batch = Vec::new();
                match tokio::time::timeout(Duration::from_secs(5), q.next_batch(&mut batch, 64))
                    .await
                {
                    Ok(Batch::Frames) => got.extend(batch.iter().map(Frame::seq)),
                    other => panic!("queue ended early after {} frames: {other:?}", got.len()),
                }
                tokio::time::sleep(Duration::from_micros(200)).await; // a slowish client
            }
            got
        })
    };
    for i in 0..10 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let got = writer.await.unwrap();
    assert_eq!(got, (1..=3010).collect::<Vec<u64>>());
    assert!(
        q.close_reason().is_none(),
        "a paced replay is not a slow consumer"
    );
}

#[tokio::test(start_paused = true)]
async fn overflowed_history_announces_a_gap_and_a_wrong_epoch_starts_over() {
    let b = bridge(3);
    for i in 0..6 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let q = queue();
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
    let frames = recv(&q, 4).await;
    assert!(frames[0].as_str().contains(r#""type":"replay_gap""#));
    assert!(frames[0].as_str().contains(r#""from_seq":2,"to_seq":3"#));
    assert_eq!(seqs(&frames[1..]), vec![4, 5, 6]);

    let q = queue();
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
    let frames = recv(&q, 4).await;
    assert!(frames[0].as_str().contains(r#""from_seq":1,"to_seq":3"#));
    assert_eq!(seqs(&frames[1..]), vec![4, 5, 6]);
}

#[tokio::test(start_paused = true)]
async fn resume_ahead_of_the_head_is_refused_and_leaves_nothing_attached() {
    let b = bridge(10);
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    let err = b
        .attach(
            &user("a"),
            queue(),
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
    assert_eq!(b.stats().users, 0);

    // attach_or_live: the same request starts live at the head and reports the refusal.
    let q = queue();
    let (att, ahead) = b
        .attach_or_live(
            &user("a"),
            q.clone(),
            Some(ResumeFrom {
                last_seq: 9,
                epoch: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        ahead,
        Some(BridgeError::ResumeAhead {
            last_seq: 9,
            head: 1
        })
    );
    assert_eq!((att.last_seq, att.resumed), (1, None));
    b.publish_event(&user("a"), &event(1)).await.unwrap();
    assert_eq!(seqs(&recv(&q, 1).await), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn resume_frame_replays_only_before_any_delivery() {
    let b = bridge(10);
    for i in 0..3 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    let q = queue();
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
    assert_eq!(seqs(&recv(&q, 3).await), vec![2, 3, 4]);
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

mod limits;
