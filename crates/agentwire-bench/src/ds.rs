//! `ds`: a Durable Streams server under append and live-tail load, through the protocol alone,
//! so agentwire's `/ds` and the reference Node server (`@durable-streams/server`) are measured
//! by the same generator (`benches/ds.sh`).
//!
//! S streams (`application/json`), each with one producer — its own connection, one `POST` in
//! flight, as fast as acknowledged (closed loop) or with `--rate` at a set total rate (open
//! loop) — and T live tailers (SSE or long-poll, each its own connection) that start at the
//! stream's tail before the first append. Every message is `{"t":<µs>,"p":"xx…"}`: `t` is when
//! the append was sent (open loop: when it was due, so a late send counts against it). Figures:
//! appends/s acknowledged, the append latency (`POST` sent → its answer), and the **tail
//! latency** (append sent → the message read by a tailer), for messages sent in the measured
//! window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use tokio::time::timeout_at;

use crate::conn::{now_us, us_at};
use crate::ds_http::{Base, Conn, message, send_times};
use crate::scenario::cpu_ticks;
use crate::{BenchArgs, Report, Timing};

/// How the tailers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Live {
    /// `live=sse`: one long response of SSE events.
    Sse,
    /// `live=long-poll`: one request per batch.
    LongPoll,
}

/// The `ds` scenario's settings.
#[derive(Debug, Clone)]
pub(crate) struct DsLoad {
    pub(crate) streams: usize,
    pub(crate) tailers: usize,
    pub(crate) live: Live,
    pub(crate) rate: Option<f64>,
    pub(crate) size: usize,
    pub(crate) timing: Timing,
}

#[derive(Debug, Default)]
struct Counters {
    appends: AtomicU64,
    /// Appends sent in the measured window and acknowledged.
    appended_in_window: AtomicU64,
    /// Messages of the measured window read by tailers.
    tailed_in_window: AtomicU64,
    errors: AtomicU64,
}

/// When the load starts, is measured from and to (µs on the generator's clock too), and when
/// tailers give up waiting for the window's last messages.
#[derive(Debug, Clone, Copy)]
struct Window {
    begin: Instant,
    from: Instant,
    end: Instant,
    tail_until: Instant,
}

impl Window {
    fn measures(&self, sent_us: u64) -> bool {
        (us_at(self.from)..us_at(self.end)).contains(&sent_us)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// Each stream's name and its producer's connection.
type Streams = Vec<(String, Conn)>;
/// Each tailer's stream name, start offset and connection.
type Tails = Vec<(String, String, Conn)>;

/// Runs the scenario against `base`.
pub(crate) async fn run(args: &BenchArgs, base: Base, load: DsLoad) -> Result<Report, String> {
    let (names, tails) = create_streams(&base, &load).await?;
    let begin = Instant::now() + Duration::from_millis(100);
    let from = begin + load.timing.warmup;
    let end = from + load.timing.duration;
    let window = Window {
        begin,
        from,
        end,
        tail_until: end + Duration::from_secs(2),
    };
    let counters = Arc::new(Counters::default());
    let tailers: Vec<_> = tails
        .into_iter()
        .map(|(name, offset, conn)| {
            let tail = Tail {
                base: base.clone(),
                name,
                offset,
                live: load.live,
                window,
                counters: counters.clone(),
            };
            tokio::spawn(tail.run(conn))
        })
        .collect();
    let producers: Vec<_> = names
        .into_iter()
        .enumerate()
        .map(|(k, (name, conn))| {
            let producer = Producer {
                target: base.target(&name, ""),
                size: load.size,
                due: load.rate.map(|rate| {
                    let period = load.streams as f64 / rate.max(0.001);
                    (period * k as f64 / load.streams as f64, period)
                }),
                window,
                counters: counters.clone(),
            };
            tokio::spawn(producer.run(conn))
        })
        .collect();
    let sample = sample(args, &window, &counters).await;
    let mut failures = 0u64;
    let append_latency = merged(producers, &mut failures).await?;
    let tail_latency = merged(tailers, &mut failures).await?;
    Ok(report(
        args,
        &load,
        &sample,
        &counters,
        [&append_latency, &tail_latency],
        failures,
    ))
}

/// A stream per producer (created with `PUT`), and a connection per tailer of each stream at the
/// offset the `PUT` returned.
async fn create_streams(base: &Base, load: &DsLoad) -> Result<(Streams, Tails), String> {
    let tag = std::process::id();
    let mut tails = Vec::new();
    let mut names = Vec::new();
    for i in 0..load.streams {
        let name = format!("bench-{tag}-{i}");
        let mut conn = Conn::open(base).await?;
        let (status, next, _) = conn.call("PUT", &base.target(&name, ""), None).await?;
        let next = next
            .filter(|_| status.is_success())
            .ok_or_else(|| format!("PUT {name}: {status} (raise the server's stream limits?)"))?;
        for _ in 0..load.tailers {
            tails.push((name.clone(), next.clone(), Conn::open(base).await?));
        }
        names.push((name, conn));
    }
    Ok((names, tails))
}

/// The tasks' histograms merged; a task that failed counts in `failures`.
async fn merged(
    tasks: Vec<tokio::task::JoinHandle<Result<Histogram<u64>, String>>>,
    failures: &mut u64,
) -> Result<Histogram<u64>, String> {
    let mut into = histogram();
    for task in tasks {
        match task.await {
            Ok(Ok(h)) => into.add(&h).map_err(|e| e.to_string())?,
            Ok(Err(e)) => {
                eprintln!("agentwire-bench ds: {e}");
                *failures += 1;
            }
            Err(_) => *failures += 1,
        }
    }
    Ok(into)
}

fn report(
    args: &BenchArgs,
    load: &DsLoad,
    sample: &Sample,
    counters: &Counters,
    [append_latency, tail_latency]: [&Histogram<u64>; 2],
    failures: u64,
) -> Report {
    let mut report = Report::new(&args.label, "ds");
    report
        .param("streams", load.streams as u64)
        .param("tailers_per_stream", load.tailers as u64)
        .param(
            "live",
            if load.live == Live::Sse {
                "sse"
            } else {
                "long-poll"
            },
        )
        .param(
            "rate",
            load.rate.map_or("max".to_owned(), |r| r.to_string()),
        )
        .param("message_bytes", load.size as u64)
        .param("seconds", load.timing.duration.as_secs_f64());
    let appended = counters.appended_in_window.load(Relaxed);
    let expected = appended * load.tailers as u64;
    report
        .metric("appends_per_s", sample.appends as f64 / sample.seconds)
        .latency("append_latency", append_latency)
        .metric(
            "tailed_per_s",
            counters.tailed_in_window.load(Relaxed) as f64 / sample.seconds,
        )
        .latency("tail_latency", tail_latency)
        .metric(
            "not_tailed",
            expected.saturating_sub(counters.tailed_in_window.load(Relaxed)),
        )
        .metric("errors", counters.errors.load(Relaxed))
        .metric("failed_tasks", failures);
    if let Some(cpu_s) = sample.server_cpu_s {
        report
            .metric("server_cpu_pct", 100.0 * cpu_s / sample.seconds)
            .metric(
                "appends_per_server_cpu_s",
                sample.appends as f64 / cpu_s.max(0.01),
            );
    }
    report
}

/// Appends acknowledged and server CPU seconds over the measured window.
struct Sample {
    seconds: f64,
    appends: u64,
    server_cpu_s: Option<f64>,
}

async fn sample(args: &BenchArgs, window: &Window, counters: &Counters) -> Sample {
    tokio::time::sleep_until(window.from.into()).await;
    let (at, appends, cpu) = (
        Instant::now(),
        counters.appends.load(Relaxed),
        args.server_pid.and_then(cpu_ticks),
    );
    tokio::time::sleep_until(window.end.into()).await;
    let seconds = at.elapsed().as_secs_f64();
    let appends = counters.appends.load(Relaxed) - appends;
    // USER_HZ = 100: ticks of 10 ms.
    let server_cpu_s = match (cpu, args.server_pid.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0),
        _ => None,
    };
    Sample {
        seconds,
        appends,
        server_cpu_s,
    }
}

struct Producer {
    target: String,
    size: usize,
    /// Open loop: (first due time after `begin`, period) in seconds.
    due: Option<(f64, f64)>,
    window: Window,
    counters: Arc<Counters>,
}

impl Producer {
    /// Appends until the window ends; returns the append latencies of the window's appends.
    async fn run(self, mut conn: Conn) -> Result<Histogram<u64>, String> {
        let mut latency = histogram();
        let mut n = 0u64;
        loop {
            let sent_us = match self.due {
                Some((first, period)) => {
                    let due =
                        self.window.begin + Duration::from_secs_f64(first + period * n as f64);
                    if due >= self.window.end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    us_at(due)
                }
                None if Instant::now() >= self.window.end => break,
                None => now_us(),
            };
            n += 1;
            let body = message(sent_us, self.size);
            let (status, _, _) = conn.call("POST", &self.target, Some(body)).await?;
            if !status.is_success() {
                if self.counters.errors.fetch_add(1, Relaxed) == 0 {
                    eprintln!("agentwire-bench ds: POST {}: {status}", self.target);
                }
                continue;
            }
            self.counters.appends.fetch_add(1, Relaxed);
            if self.window.measures(sent_us) {
                self.counters.appended_in_window.fetch_add(1, Relaxed);
                let _ = latency.record(now_us().saturating_sub(sent_us).max(1));
            }
        }
        Ok(latency)
    }
}

struct Tail {
    base: Base,
    name: String,
    offset: String,
    live: Live,
    window: Window,
    counters: Arc<Counters>,
}

impl Tail {
    /// Reads live until `tail_until`; returns the tail latencies of the window's messages.
    async fn run(mut self, mut conn: Conn) -> Result<Histogram<u64>, String> {
        let mut latency = histogram();
        let until = self.window.tail_until.into();
        loop {
            let read = async {
                match self.live {
                    Live::Sse => self.sse(&mut conn, &mut latency).await,
                    Live::LongPoll => self.long_poll(&mut conn, &mut latency).await,
                }
            };
            match timeout_at(until, read).await {
                Err(_) => return Ok(latency),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {} // the response ended: read on from the offset reached
            }
        }
    }

    fn record(&self, text: &[u8], latency: &mut Histogram<u64>) {
        let now = now_us();
        send_times(text, |sent| {
            if self.window.measures(sent) {
                self.counters.tailed_in_window.fetch_add(1, Relaxed);
                let _ = latency.record(now.saturating_sub(sent).max(1));
            }
        });
    }

    /// One `live=sse` response, to its end; keeps the offset of its last control event.
    async fn sse(&mut self, conn: &mut Conn, latency: &mut Histogram<u64>) -> Result<(), String> {
        let target = self
            .base
            .target(&self.name, &format!("offset={}&live=sse", self.offset));
        let response = conn.send("GET", &target, None).await?;
        if !response.status().is_success() {
            return Err(format!("GET {target}: {}", response.status()));
        }
        let mut body = response.into_body();
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("GET {target}: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            // Only whole lines: a send time or an offset is never read in two pieces.
            let Some(cut) = pending.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let lines: Vec<u8> = pending.drain(..=cut).collect();
            self.record(&lines, latency);
            if let Some(offset) = last_offset(&lines) {
                self.offset = offset;
            }
        }
        Ok(())
    }

    /// One `live=long-poll` request.
    async fn long_poll(
        &mut self,
        conn: &mut Conn,
        latency: &mut Histogram<u64>,
    ) -> Result<(), String> {
        let target = self.base.target(
            &self.name,
            &format!("offset={}&live=long-poll", self.offset),
        );
        let (status, next, body) = conn.call("GET", &target, None).await?;
        match status.as_u16() {
            200 => self.record(&body, latency),
            204 => {}
            _ => return Err(format!("GET {target}: {status}")),
        }
        if let Some(next) = next {
            self.offset = next;
        }
        Ok(())
    }
}

/// The `streamNextOffset` of the last control event in `lines`.
fn last_offset(lines: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"streamNextOffset\":\"";
    let at = lines.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let len = lines[at..].iter().position(|&b| b == b'"')?;
    String::from_utf8(lines[at..at + len].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_offset_of_the_last_control_event() {
        let lines = b"event: control\ndata:{\"streamNextOffset\":\"0_1\"}\n\nevent: control\ndata:{\"streamNextOffset\":\"0_2\",\"upToDate\":true}\n";
        assert_eq!(last_offset(lines).as_deref(), Some("0_2"));
        assert_eq!(last_offset(b"event: data\n"), None);
    }
}
