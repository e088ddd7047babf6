//! The `idle` scenario: many idle connections, and the server's memory per connection.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::conn::connect;
use crate::scenario::bar;
use crate::{BenchArgs, Report};

/// Idle connections are spread round-robin over this many loopback source addresses
/// (127.0.1.1 …): one address has ~28k ephemeral ports, and the TIME_WAIT sockets a previous run
/// left on it would otherwise make `bind` fail long before 50,000 connections.
const SOURCE_IPS: usize = 64;

/// Kibibytes of VmRSS of a process.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `idle`: open N connections from rotating 127.0.0.x addresses and hold them.
pub(crate) async fn idle(
    args: &BenchArgs,
    n: usize,
    server_pid: Option<u32>,
    parallel: usize,
    hold: Duration,
) -> Result<Report, String> {
    let before = server_pid.and_then(rss_kib);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let holders = IdleHolders {
        gate: Arc::new(tokio::sync::Semaphore::new(parallel.max(1))),
        opened: Arc::new(AtomicU64::new(0)),
        first_error: Arc::new(std::sync::Mutex::new(None::<String>)),
    };
    let began = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| holders.spawn(args.addr, i, stop_rx.clone()))
        .collect();
    let pb = bar(
        n as u64,
        &format!(
            "{} idle [{{bar:30}}] {{pos}}/{{len}} connections",
            args.label
        ),
    );
    while (holders.opened.load(Relaxed) as usize) < n {
        pb.set_position(holders.opened.load(Relaxed));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = began.elapsed().as_secs_f64();
    pb.finish_and_clear();
    tokio::time::sleep(hold).await;
    let after = server_pid.and_then(rss_kib);
    let _ = stop_tx.send(true);
    let mut held = 0u64;
    for t in tasks {
        if matches!(t.await, Ok(true)) {
            held += 1;
        }
    }
    let mut report = Report::new(&args.label, "idle");
    report
        .param("connections", n as u64)
        .param("source_addresses", n.min(SOURCE_IPS) as u64)
        .param("hold_seconds", hold.as_secs_f64());
    report
        .metric("held", held)
        .metric("connect_per_s", n as f64 / connect_secs);
    if let (Some(b), Some(a)) = (before, after) {
        report
            .metric("rss_before_kib", b)
            .metric("rss_after_kib", a)
            .metric(
                "rss_per_conn_bytes",
                a.saturating_sub(b) as f64 * 1024.0 / held.max(1) as f64,
            );
    }
    let first_error = holders.first_error.lock();
    if let Some(e) = first_error.unwrap_or_else(|e| e.into_inner()).take() {
        report.metric("first_error", e);
    }
    Ok(report)
}

/// What the idle connections share: the gate on parallel connects, how many have finished
/// connecting, and the first connect error.
struct IdleHolders {
    gate: Arc<tokio::sync::Semaphore>,
    opened: Arc<AtomicU64>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl IdleHolders {
    /// Opens idle connection `i` and holds it until `stop`; true if it was held to the end.
    fn spawn(
        &self,
        addr: std::net::SocketAddr,
        i: usize,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<bool> {
        let (gate, opened, first_error) = (
            self.gate.clone(),
            self.opened.clone(),
            self.first_error.clone(),
        );
        let tag = std::process::id();
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (i % SOURCE_IPS) as u8));
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let ws = connect(addr, &format!("idle{tag}x{i}"), Some(source)).await;
            drop(permit);
            opened.fetch_add(1, Relaxed);
            let mut ws = match ws {
                Ok(ws) => ws,
                Err(e) => {
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    return false;
                }
            };
            loop {
                tokio::select! {
                    _ = stop.changed() => return true,
                    msg = ws.next() => if !matches!(msg, Some(Ok(_))) { return false },
                }
            }
        })
    }
}
