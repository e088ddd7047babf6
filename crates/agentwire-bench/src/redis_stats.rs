//! Redis's own counters around a scenario (`--redis host:port[,host:port…]`): CPU seconds
//! (`INFO cpu`) and command calls (`INFO commandstats`), summed over the servers given — one
//! Redis, or the primaries of a cluster — so a report can say what one event costs Redis.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Counters of the given servers at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RedisCounters {
    /// `used_cpu_sys + used_cpu_user`, seconds.
    pub(crate) cpu_s: f64,
    /// Calls of the commands the broker issues (probes such as `INFO` and `PING` excluded).
    pub(crate) calls: u64,
}

/// Commands that are not the broker's work on the event path.
const NOT_COUNTED: &[&str] = &[
    "info",
    "ping",
    "hello",
    "client|setinfo",
    "client|setname",
    "cluster|slots",
    "cluster|nodes",
    "cluster|shards",
    "subscribe",
    "ssubscribe",
    "unsubscribe",
    "sunsubscribe",
    "config|get",
    "config|resetstat",
    "command|docs",
    "select",
];

/// One `INFO <section>` over a plain TCP connection (a bulk string reply).
fn info(addr: &str, section: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("INFO {section} from {addr}: {e}");
    let mut s = TcpStream::connect(addr).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(fail)?;
    let cmd = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    s.write_all(cmd.as_bytes()).map_err(fail)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).map_err(fail)?;
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        let complete = text.split_once("\r\n").is_some_and(|(len, rest)| {
            len.trim_start_matches('$')
                .parse::<usize>()
                .is_ok_and(|len| rest.len() >= len)
        });
        if n == 0 || complete {
            return Ok(text.into_owned());
        }
    }
}

/// Reads the counters of every server in `addrs`.
pub(crate) fn read(addrs: &[String]) -> Result<RedisCounters, String> {
    let mut total = RedisCounters::default();
    for addr in addrs {
        for line in info(addr, "cpu")?.lines() {
            if let Some((key, value)) = line.split_once(':')
                && matches!(key, "used_cpu_sys" | "used_cpu_user")
            {
                total.cpu_s += value.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
        for line in info(addr, "commandstats")?.lines() {
            let Some((name, stats)) = line
                .strip_prefix("cmdstat_")
                .and_then(|rest| rest.split_once(':'))
            else {
                continue;
            };
            let calls = stats
                .strip_prefix("calls=")
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(calls) = calls
                && !NOT_COUNTED.contains(&name)
            {
                total.calls += calls;
            }
        }
    }
    Ok(total)
}
