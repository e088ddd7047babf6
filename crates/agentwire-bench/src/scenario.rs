//! The scenario runners: `runs`/`fanout` (one loop, different shapes), `idle`, `startup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Seen, Ws, classify, connect, now_us, us_at, user_message, user_message_at};
use crate::{BenchArgs, Report, Timing};

/// The shape of a `runs` or `fanout` load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) users: usize,
    pub(crate) per_user: usize,
    pub(crate) inflight: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) timing: Timing,
}

#[derive(Debug, Default)]
struct Counters {
    events: AtomicU64,
    runs: AtomicU64,
    errors: AtomicU64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

pub(crate) fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

/// `runs` (per_user = 1) and `fanout`.
pub(crate) async fn drive(args: &BenchArgs, name: &str, load: Load) -> Result<Report, String> {
    let tag = std::process::id();
    let mut conns = Vec::with_capacity(load.users * load.per_user);
    for u in 0..load.users {
        for k in 0..load.per_user {
            let ws = connect(args.addr, &format!("{name}{tag}x{u}"), None).await?;
            conns.push((k == 0, ws));
        }
    }
    let counters = Arc::new(Counters::default());
    let begin = Instant::now();
    let measure_from = begin + load.timing.warmup;
    let window = Window {
        begin,
        measure_from,
        end: measure_from + load.timing.duration,
    };
    let tasks = spawn_jobs(conns, &load, &counters, &window);
    let sample = watch(args, name, &load, &counters, &window).await;
    let mut latency = histogram();
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(h)) => latency.add(&h).map_err(|e| e.to_string())?,
            _ => failures += 1,
        }
    }
    Ok(drive_report(
        args, name, &load, &counters, &sample, &latency, failures,
    ))
}

/// When a `runs`/`fanout` load starts, starts counting (after the warm-up) and ends.
struct Window {
    begin: Instant,
    measure_from: Instant,
    end: Instant,
}

/// The counters at the start and the end of the measured window, and the server's CPU ticks.
struct Sample {
    measured_s: f64,
    events: (u64, u64),
    runs: (u64, u64),
    cpu_ticks: (Option<u64>, Option<u64>),
}

/// One task per connection; in an open loop, one pacer tells the drivers when to send (`pace`).
fn spawn_jobs(
    conns: Vec<(bool, Ws)>,
    load: &Load,
    counters: &Arc<Counters>,
    window: &Window,
) -> Vec<tokio::task::JoinHandle<Result<Histogram<u64>, String>>> {
    let measure_from_us =
        now_us() + window.measure_from.duration_since(window.begin).as_micros() as u64;
    let mut sends = Vec::new();
    let mut tasks = Vec::with_capacity(conns.len());
    for (driver, ws) in conns {
        let due = match (driver, load.rate) {
            (true, Some(_)) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                sends.push(tx);
                Some(rx)
            }
            _ => None,
        };
        let job = Job {
            driver,
            inflight: load.inflight,
            due,
            measure_from_us,
            end: window.end,
        };
        tasks.push(tokio::spawn(job.run(ws, counters.clone())));
    }
    if let Some(rate) = load.rate {
        tokio::spawn(pace(sends, rate, window.begin, window.end));
    }
    tasks
}

/// Shows progress until the window ends and samples the counters at its two edges.
async fn watch(
    args: &BenchArgs,
    name: &str,
    load: &Load,
    counters: &Counters,
    window: &Window,
) -> Sample {
    let total_ms = (load.timing.warmup + load.timing.duration).as_millis() as u64;
    let pb = bar(
        total_ms,
        &format!(
            "{} {name} [{{bar:30}}] {{pos}}/{{len}} ms {{msg}}",
            args.label
        ),
    );
    tokio::time::sleep_until(window.measure_from.into()).await;
    let cpu0 = args.server_pid.and_then(cpu_ticks);
    let (ev0, runs0) = (counters.events.load(Relaxed), counters.runs.load(Relaxed));
    let mut last = (Instant::now(), ev0);
    while Instant::now() < window.end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let ev = counters.events.load(Relaxed);
        let rate = (ev - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, ev);
        pb.set_position(now.duration_since(window.begin).as_millis() as u64);
        pb.set_message(format!("{rate:.0} events/s"));
    }
    let measured_s = Instant::now()
        .duration_since(window.measure_from)
        .as_secs_f64();
    let (ev1, runs1) = (counters.events.load(Relaxed), counters.runs.load(Relaxed));
    let cpu1 = args.server_pid.and_then(cpu_ticks);
    pb.finish_and_clear();
    Sample {
        measured_s,
        events: (ev0, ev1),
        runs: (runs0, runs1),
        cpu_ticks: (cpu0, cpu1),
    }
}

/// The report of a `runs`/`fanout` load.
fn drive_report(
    args: &BenchArgs,
    name: &str,
    load: &Load,
    counters: &Counters,
    sample: &Sample,
    latency: &Histogram<u64>,
    failures: u64,
) -> Report {
    let measured = sample.measured_s;
    let events = (sample.events.1 - sample.events.0) as f64;
    let mut report = Report::new(&args.label, name);
    report
        .param("users", load.users as u64)
        .param("connections_per_user", load.per_user as u64)
        .param("inflight_per_user", load.inflight as u64)
        .param(
            "rate_per_s",
            load.rate.map_or("max".into(), |r| format!("{r:.0}")),
        )
        .param("seconds", load.timing.duration.as_secs_f64());
    report
        .metric(
            "runs_per_s",
            (sample.runs.1 - sample.runs.0) as f64 / measured,
        )
        .metric("events_per_s", events / measured)
        .latency("latency", latency)
        .metric("error_frames", counters.errors.load(Relaxed))
        // Every event frame received, warm-up included: the denominator for a whole-run count
        // such as callgrind's instructions (benches/run.sh).
        .metric("events_total", counters.events.load(Relaxed))
        .metric("failed_connections", failures);
    if let (Some(a), Some(b)) = sample.cpu_ticks {
        // Linux reports CPU time in clock ticks of 10 ms (USER_HZ = 100).
        let cpu_s = b.saturating_sub(a) as f64 / 100.0;
        report
            .metric("server_cpu_pct", 100.0 * cpu_s / measured)
            .metric("events_per_server_cpu_s", events / cpu_s.max(0.01));
    }
    report
}

/// Open loop: the `k`th message of the run is due at `begin + k / rate`, sent by driver
/// `k % drivers.len()`: evenly spaced in time and over the connections. Each driver is told the
/// due time and sends it as the message's time, so a late send counts against the latency
/// (no coordinated omission).
///
/// tokio's timers fire on a 1 ms wheel, so per-connection intervals (as before) sent each
/// millisecond's messages in one burst: 65 of them at once at 65k runs/s, and the last of a burst
/// waited for the server to finish all the others. The pacer sleeps on the wheel only while the
/// next message is more than 2 ms away; closer than that it yields to the runtime between checks
/// of the clock, so the generator's core (which runs nothing else) polls its sockets and sends on
/// time, to within one pass of the scheduler.
async fn pace(
    drivers: Vec<tokio::sync::mpsc::UnboundedSender<u64>>,
    rate: f64,
    begin: Instant,
    end: Instant,
) {
    if drivers.is_empty() {
        return;
    }
    // At least a nanosecond apart: a zero interval would never let `next` pass `now`.
    let every_ns = (1e9 / rate.max(0.001)).max(1.0);
    let mut k: u64 = 0;
    let mut next = begin;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        while next <= now {
            let _ = drivers[(k % drivers.len() as u64) as usize].send(us_at(next));
            k += 1;
            next = begin + Duration::from_nanos((k as f64 * every_ns) as u64);
        }
        if next.saturating_duration_since(now) > Duration::from_millis(2) {
            tokio::time::sleep_until((next - Duration::from_millis(1)).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// One connection's part of a `runs`/`fanout` load.
struct Job {
    /// This connection sends the user's `user_message`s.
    driver: bool,
    inflight: usize,
    /// Open loop: a message is due for each time (µs, on `now_us`'s clock) the pacer sends.
    due: Option<tokio::sync::mpsc::UnboundedReceiver<u64>>,
    measure_from_us: u64,
    end: Instant,
}

impl Job {
    async fn run(self, mut ws: Ws, counters: Arc<Counters>) -> Result<Histogram<u64>, String> {
        let mut h = histogram();
        let mut n = 0u64;
        let closed_loop = self.driver && self.due.is_none();
        if closed_loop {
            for _ in 0..self.inflight {
                n += 1;
                ws.feed(user_message(n)).await.map_err(|e| e.to_string())?;
            }
            ws.flush().await.map_err(|e| e.to_string())?;
        }
        let mut due = self.due;
        let end = self.end.into();
        loop {
            let ticked = async {
                match due.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let msg = tokio::select! {
                () = tokio::time::sleep_until(end) => break,
                Some(due_us) = ticked => {
                    n += 1;
                    ws.send(user_message_at(n, due_us)).await.map_err(|e| e.to_string())?;
                    continue;
                }
                msg = ws.next() => msg,
            };
            let text = match msg {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("server closed the connection".into()),
            };
            match classify(&text) {
                Seen::Event(done) => {
                    counters.events.fetch_add(1, Relaxed);
                    if let Some(sent) = done {
                        if sent >= self.measure_from_us {
                            let _ = h.record(now_us().saturating_sub(sent).max(1));
                        }
                        if self.driver {
                            counters.runs.fetch_add(1, Relaxed);
                            if closed_loop {
                                n += 1;
                                ws.send(user_message(n)).await.map_err(|e| e.to_string())?;
                            }
                        }
                    }
                }
                Seen::Error => {
                    counters.errors.fetch_add(1, Relaxed);
                }
                Seen::Other => {}
            }
        }
        let _ = ws.close(None).await;
        Ok(h)
    }
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// `startup`: spawn the server command, time until it greets a WebSocket client, kill it.
pub(crate) async fn startup(
    args: &BenchArgs,
    repeat: usize,
    cmd: &[String],
) -> Result<Report, String> {
    let (program, rest) = cmd.split_first().ok_or("no server command given")?;
    let mut samples = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let t0 = Instant::now();
        let mut child = std::process::Command::new(program)
            .args(rest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let ready = loop {
            if connect(args.addr, "startup", None).await.is_ok() {
                break Some(t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break None;
            }
            tokio::time::sleep(Duration::from_micros(250)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        let ready = ready.ok_or_else(|| format!("{program} did not greet within 10 s"))?;
        samples.push(ready.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    samples.sort_by(f64::total_cmp);
    let mut report = Report::new(&args.label, "startup");
    report
        .param("repeat", samples.len() as u64)
        .param("command", cmd.join(" "));
    report
        .metric("ready_min_ms", samples[0])
        .metric("ready_median_ms", samples[samples.len() / 2])
        .metric("ready_max_ms", samples[samples.len() - 1]);
    Ok(report)
}
