//! The in-process publish path: events/s through `AgentWebSocketBridge::publish_event` to N
//! attached `ConnectionQueue` sinks that are drained, no sockets (history and seqs on).
//!
//! Run with: `cargo bench -p agentwire-bridge --bench publish`

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use agentwire_bridge::{AgentWebSocketBridge, BridgeConfig, ConnectionQueue};
use agentwire_core::{
    AgentThinking, Configurable, EventKind, Frame, RunEvent, RunId, ThreadId, UserId,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Events published per iteration (then every queue is drained).
const EVENTS: usize = 64;

fn publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let event = RunEvent::now(
        RunId::generate(),
        ThreadId::generate(),
        "echo".into(),
        EventKind::AgentThinking(AgentThinking {
            thought: "Echoing the input".into(),
            step: Some(1),
        }),
    );
    let mut group = c.benchmark_group("publish_event");
    for sinks in [1usize, 4, 16] {
        let bridge = AgentWebSocketBridge::builder()
            .configure(BridgeConfig::default())
            .expect("default config");
        let user = UserId::new("bench").expect("a user id");
        let queues: Vec<_> = (0..sinks)
            .map(|_| Arc::new(ConnectionQueue::new(1 << 24)))
            .collect();
        rt.block_on(async {
            for q in &queues {
                bridge.attach(&user, q.clone(), None).await.expect("attach");
            }
        });
        let mut out: Vec<Frame> = Vec::with_capacity(EVENTS + 8);
        group.throughput(Throughput::Elements((EVENTS * sinks) as u64));
        group.bench_with_input(BenchmarkId::new("sinks", sinks), &sinks, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    for _ in 0..EVENTS {
                        bridge.publish_event(&user, &event).await.expect("publish");
                    }
                    for q in &queues {
                        while q.queued_bytes() > 0 {
                            out.clear();
                            q.next_batch(&mut out, EVENTS + 8).await;
                        }
                    }
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = publish
}
criterion_main!(benches);
