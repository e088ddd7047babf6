//! The broker's fail-stop rule on the real Redis.

use agentwire_bridge::{BridgeError, Broker, HistoryConfig};
use agentwire_core::{RunId, UserId};
use agentwire_redis::{RedisBroker, RedisOptions};

use crate::harness::shared_redis_url as redis_url;
use crate::support::*;

/// One command on `conn`, which must succeed.
async fn command(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let _: redis::Value = redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(conn)
        .await
        .unwrap();
}

/// The fail-stop rule on the real Redis: the stream key is made the wrong type, so the append
/// script fails. The run's events queued behind the failed one fail too and its later appends
/// are refused at once, until the failure is acknowledged; another run of the same user goes on.
/// The stream holds no event of the run after the lost ones.
pub(crate) async fn a_failed_append_stops_its_runs_later_events_until_acknowledged() {
    let prefix = unique("failstop");
    let options = RedisOptions::new(HistoryConfig::default()).prefix(&prefix);
    let broker = RedisBroker::connect_with(&redis_url(), options, recorder())
        .await
        .unwrap();
    let user = UserId::new(unique("u")).unwrap();
    let (a, b) = (RunId::generate(), RunId::generate());
    let of = |run: &RunId, tag: &str| {
        let mut event = delta(tag);
        event.run_id = run.clone();
        event
    };
    assert_eq!(broker.append(&user, &of(&a, "a1"), MAX_EVENT).await, Ok(1));

    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{prefix}:{{{user}}}:h");
    let kept = format!("{prefix}:{{{user}}}:kept");
    command(&mut conn, &["RENAME", &stream, &kept]).await;
    command(&mut conn, &["SET", &stream, "not a stream"]).await;

    let a2 = broker.append(&user, &of(&a, "a2"), MAX_EVENT);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    // Behind a2: in its batch or queued after it, it fails with it.
    let a3 = broker.append(&user, &of(&a, "a3"), MAX_EVENT);
    assert!(matches!(
        a2.await,
        Err(BridgeError::BrokerUnavailable { .. })
    ));
    assert!(matches!(
        a3.await,
        Err(BridgeError::BrokerUnavailable { .. })
    ));

    command(&mut conn, &["DEL", &stream]).await;
    command(&mut conn, &["RENAME", &kept, &stream]).await;
    // Redis works again, but run a stays stopped until its failure is acknowledged.
    let refused = broker.append(&user, &of(&a, "a4"), MAX_EVENT).await;
    assert!(
        matches!(&refused, Err(BridgeError::BrokerUnavailable { cause, .. }) if cause.contains("earlier event")),
        "{refused:?}"
    );
    assert_eq!(broker.append(&user, &of(&b, "b1"), MAX_EVENT).await, Ok(2));
    broker.acknowledge_failure(&user, &a);
    assert_eq!(broker.append(&user, &of(&a, "a5"), MAX_EVENT).await, Ok(3));

    let slice = broker.read_after(&user, 0, None, 10.into()).await.unwrap();
    let tags: Vec<_> = slice
        .frames
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(f.as_str()).unwrap();
            v["data"]["delta"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(tags, ["a1", "b1", "a5"]);
}
