//! `/health/live`, `/health/ready` and `/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agentwire_health_monitor::{HealthCheck, async_trait};
use agentwire_test::TestServer;
use serde_json::Value;

/// A critical check the test can break and mend.
struct Switch(Arc<AtomicBool>);

#[async_trait]
impl HealthCheck for Switch {
    fn name(&self) -> &str {
        "injected"
    }
    async fn check(&self) -> Result<String, String> {
        if self.0.load(Ordering::SeqCst) {
            Ok("fine".into())
        } else {
            Err("injected failure".into())
        }
    }
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let resp = reqwest::get(server.http_url(path)).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn healthy_server_reports_every_check_and_the_startup_phases() {
    let server = TestServer::start().await;
    assert_eq!(get(&server, "/health/live").await.0, 200);
    assert_eq!(
        get(&server, "/health/ready").await,
        (200, serde_json::json!({"ready": true}))
    );
    let (status, body) = get(&server, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(
        body["summary"],
        "Critical communication paths: All validated"
    );
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let phases: Vec<&str> = body["startup"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["Config", "Broker", "Bridge", "Agents", "Health", "Finalize"]
    );
    let check = &body["checks"][0];
    assert_eq!(check["name"], "critical_path");
    assert_eq!(check["ok"], true);
    assert!(check["latency_ms"].is_u64());
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("5 events in order")
    );
    server.stop().await;
}

#[tokio::test]
async fn readiness_follows_a_failing_critical_check() {
    let healthy = Arc::new(AtomicBool::new(false));
    let mut config = agentwire_test::test_config();
    config.health.cache = Duration::ZERO;
    let server = TestServer::start_with(config, vec![Arc::new(Switch(healthy.clone()))]).await;
    let (status, body) = get(&server, "/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["ready"], false);
    assert_eq!(body["failing"][0]["name"], "injected");
    let (status, body) = get(&server, "/health").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("unhealthy")));
    assert_eq!(
        get(&server, "/health/live").await.0,
        200,
        "liveness is not readiness"
    );

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(get(&server, "/health/ready").await.0, 200);
    server.stop().await;
}
