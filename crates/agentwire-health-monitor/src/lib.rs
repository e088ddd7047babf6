//! Health checks that prove the service works, not merely that it runs.
//!
//! Implement [`HealthCheck`] for each dependency; register checks on a [`HealthMonitor`]; the
//! server answers `/health` and `/health/ready` from its reports. [`CriticalPathCheck`] runs a
//! real synthetic agent run through the bridge and checks its five events arrive in order.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use agentwire_health_monitor::{HealthCheck, HealthMonitor, HealthStatus, async_trait};
//!
//! struct Broken;
//! #[async_trait]
//! impl HealthCheck for Broken {
//!     fn name(&self) -> &str { "broker" }
//!     async fn check(&self) -> Result<String, String> { Err("connection refused".into()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut monitor = HealthMonitor::new(Duration::from_secs(2));
//! monitor.register(Arc::new(Broken));
//! let report = monitor.run_checks().await;
//! assert_eq!(report.status, HealthStatus::Unhealthy);
//! assert!(!report.is_ready());
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broker;
mod check;
mod critical_path;
mod monitor;

pub use async_trait::async_trait;
pub use broker::BrokerCheck;
pub use check::{CheckReport, HealthCheck, HealthReport, HealthStatus};
pub use critical_path::{CriticalPathCheck, EXPECTED_EVENTS};
pub use monitor::HealthMonitor;
