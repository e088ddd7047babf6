//! Slow consumers, connection and user limits, sweeping, settings and metrics.

use super::*;

/// User `a` with a slow connection (a 600-byte queue, too small for 20 events) and a fast one,
/// after 20 events.
async fn slow_and_fast_after_20_events(
    b: &AgentWebSocketBridge,
) -> (Arc<ConnectionQueue>, Arc<ConnectionQueue>) {
    let slow = Arc::new(ConnectionQueue::new(600));
    let fast = queue();
    b.attach(&user("a"), slow.clone(), None).await.unwrap();
    b.attach(&user("a"), fast.clone(), None).await.unwrap();
    for i in 0..20 {
        b.publish_event(&user("a"), &event(i)).await.unwrap();
    }
    (slow, fast)
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_is_closed_as_slow_consumer_and_others_keep_receiving() {
    let b = bridge(1000);
    let (slow, fast) = slow_and_fast_after_20_events(&b).await;
    assert_eq!(
        slow.close_reason().map(|c| c.0),
        Some(CloseCode::SLOW_CONSUMER)
    );
    assert_eq!(b.stats().connections, 1);
    assert_eq!(recv(&fast, 20).await.len(), 20);
    let mut out = Vec::new();
    assert!(matches!(
        slow.next_batch(&mut out, 10).await,
        Batch::Close(CloseCode::SLOW_CONSUMER, _)
    ));
}

#[tokio::test(start_paused = true)]
async fn limits_connections_per_user_and_users() {
    let config = BridgeConfig {
        max_connections_per_user: 1,
        max_users: 1,
        ..BridgeConfig::default()
    };
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    b.attach(&user("a"), queue(), None).await.unwrap();
    assert!(matches!(
        b.attach(&user("a"), queue(), None).await,
        Err(BridgeError::TooManyConnections { max: 1 })
    ));
    assert!(matches!(
        b.attach(&user("b"), queue(), None).await,
        Err(BridgeError::TooManyUsers { max: 1 })
    ));
    assert!(matches!(
        b.publish_event(&user("b"), &event(0)).await,
        Err(BridgeError::TooManyUsers { max: 1 })
    ));
}

#[tokio::test(start_paused = true)]
async fn reads_do_not_take_a_stream_and_open_stream_does() {
    let config = BridgeConfig {
        max_users: 1,
        ..BridgeConfig::default()
    };
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    for i in 0..100 {
        let page = b
            .history_after(&user(&format!("r{i}")), 0, None, 10)
            .await
            .unwrap();
        assert_eq!((page.head, page.frames.len()), (0, 0));
        assert_eq!(page.epoch, crate::NO_STREAM_EPOCH);
        b.stream_head(&user(&format!("h{i}"))).await.unwrap();
    }
    assert_eq!(b.stats().streams, Some(0), "reads made no stream");
    b.open_stream(&user("a")).await.unwrap();
    b.open_stream(&user("a")).await.unwrap();
    assert_eq!(b.stats().streams, Some(1));
    assert!(matches!(
        b.open_stream(&user("b")).await,
        Err(BridgeError::TooManyUsers { max: 1 })
    ));
    // The opened stream takes the run's events; its epoch is its own.
    assert_eq!(b.publish_event(&user("a"), &event(0)).await.unwrap(), 1);
    let page = b.history_after(&user("a"), 0, None, 10).await.unwrap();
    assert_ne!(page.epoch, crate::NO_STREAM_EPOCH);
    assert_eq!(page.frames.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn detach_unsubscribes_and_removed_or_idle_streams_leave_nothing_behind() {
    let mut config = BridgeConfig::default();
    config.history.ttl = Duration::from_secs(1);
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    let q = queue();
    let att = b.attach(&user("a"), q.clone(), None).await.unwrap();
    b.publish_event(&user("b"), &event(0)).await.unwrap();
    b.remove_stream(&user("a")).await;
    assert_eq!(q.close_reason().map(|c| c.0), Some(CloseCode::NORMAL));
    b.detach(&user("a"), att.connection_id).await;
    assert_eq!(
        (b.stats().users, b.stats().connections, b.stats().streams),
        (0, 0, Some(1))
    );
    assert_eq!(b.broker().sweep().await, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.broker().sweep().await, 1);
    assert_eq!(b.stats().streams, Some(0));
    // A new stream has a new epoch and starts at seq 1 again.
    assert_eq!(b.publish_event(&user("b"), &event(0)).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_subscribed_stream_is_not_swept_while_its_connection_lives() {
    let mut config = BridgeConfig::default();
    config.history.ttl = Duration::from_secs(1);
    let b = AgentWebSocketBridge::builder().configure(config).unwrap();
    let q = queue();
    b.attach(&user("a"), q.clone(), None).await.unwrap();
    b.publish_event(&user("a"), &event(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.broker().sweep().await, 0);
    assert_eq!(b.publish_event(&user("a"), &event(1)).await.unwrap(), 2);
    assert_eq!(seqs(&recv(&q, 2).await), vec![1, 2]);
}

#[test]
fn rejects_invalid_settings() {
    let mut config = BridgeConfig::default();
    config.history.ttl = Duration::ZERO;
    assert!(matches!(
        AgentWebSocketBridge::builder().configure(config),
        Err(BridgeError::InvalidConfig {
            key: "history.ttl",
            ..
        })
    ));
    // A largest event too small for the run's own closing `agent_error`.
    let config = BridgeConfig {
        max_event_bytes: agentwire_core::MIN_EVENT_BYTES - 1,
        ..BridgeConfig::default()
    };
    assert!(matches!(
        AgentWebSocketBridge::builder().configure(config),
        Err(BridgeError::InvalidConfig {
            key: "limits.max_event_bytes",
            ..
        })
    ));
}

/// The value of one metric series (name and every label of `labels`), summed; 0 when absent.
fn metric(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        metrics_util::debugging::DebugValue,
    )],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    use metrics_util::debugging::DebugValue;
    snapshot
        .iter()
        .filter(|(k, ..)| {
            let key = k.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(n, v)| key.labels().any(|l| l.key() == *n && l.value() == *v))
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => *c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn metrics_count_events_slow_consumers_replays_gaps_and_broker_ops() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Current-thread runtime: the replay tasks record on this thread too.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let b = bridge(4);
    let (_slow, _fast) = slow_and_fast_after_20_events(&b).await;
    // Resuming from 0 with 4 events held: a replay_gap (1..=16), then 17..=20 replayed.
    let late = queue();
    b.attach(&user("a"), late.clone(), Some(ResumeFrom::default()))
        .await
        .unwrap();
    let replayed = recv(&late, 5).await;
    assert_eq!(
        replayed[0].event_type(),
        None,
        "the replay_gap control frame"
    );
    assert!(replayed[1..].iter().all(|f| f.accepted().is_none()));

    let s = snapshotter.snapshot().into_vec();
    assert_eq!(metric(&s, "agentwire_events_accepted_total", &[]), 20.0);
    assert_eq!(
        metric(
            &s,
            "agentwire_events_accepted_total",
            &[("type", "agent_started")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s,
            "agentwire_connection_closes_total",
            &[("reason", "slow_consumer")]
        ),
        1.0
    );
    assert_eq!(metric(&s, "agentwire_replays_total", &[]), 1.0);
    assert_eq!(metric(&s, "agentwire_replay_gaps_total", &[]), 1.0);
    assert_eq!(metric(&s, "agentwire_replayed_events_total", &[]), 4.0);
    assert_eq!(
        metric(
            &s,
            "agentwire_broker_operations_total",
            &[("broker", "memory"), ("op", "append")]
        ),
        20.0
    );
    assert_eq!(metric(&s, "agentwire_broker_errors_total", &[]), 0.0);
}

/// The size bound on the memory broker, measured on the frame it writes (its seq counted at the
/// largest): an event exactly at `max_event_bytes` is stored and delivered; one byte more is
/// refused with `EventTooLarge`, takes no seq and reaches no one.
#[tokio::test(start_paused = true)]
async fn an_event_over_max_event_bytes_is_refused_and_takes_no_seq() {
    let thought = |n: usize| {
        let mut e = event(1);
        e.kind = EventKind::AgentThinking(AgentThinking {
            thought: "x".repeat(n),
            step: None,
        });
        e
    };
    let max = thought(40_000).envelope_len(u64::MAX);
    let b = AgentWebSocketBridge::builder()
        .configure(BridgeConfig {
            max_event_bytes: max,
            ..BridgeConfig::default()
        })
        .unwrap();
    let q = queue();
    b.attach(&user("a"), q.clone(), None).await.unwrap();
    assert_eq!(b.publish_event(&user("a"), &thought(40_000)).await, Ok(1));
    assert_eq!(
        b.publish_event(&user("a"), &thought(40_001)).await,
        Err(BridgeError::EventTooLarge { size: max + 1, max })
    );
    assert_eq!(b.publish_event(&user("a"), &event(2)).await, Ok(2));
    let seqs: Vec<u64> = recv(&q, 2).await.iter().map(|f| f.seq()).collect();
    assert_eq!(seqs, [1, 2]);
    let page = b.history_after(&user("a"), 0, None, 10).await.unwrap();
    assert_eq!(page.frames.len(), 2);
}
