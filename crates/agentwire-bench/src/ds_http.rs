//! The HTTP side of the `ds` scenario: a base URL, one HTTP/1.1 connection per task (hyper's
//! low-level client: no pool, no TLS, nothing between the generator and the socket), and
//! scanning a tail's bytes for the send times the messages carry.

use std::net::SocketAddr;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A Durable Streams base URL, `http://host:port/prefix`, and a query for every request.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub(crate) addr: SocketAddr,
    host: String,
    prefix: String,
    query: String,
}

impl Base {
    /// Parses `http://<ip>:<port>[/prefix]`; `query` (`user=bench`, or empty) goes on every
    /// request.
    pub(crate) fn parse(url: &str, query: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs"))?;
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let addr = host
            .parse()
            .map_err(|e| format!("{url}: the host must be <ip>:<port> ({e})"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            prefix: prefix.to_owned(),
            query: query.trim_start_matches(['?', '&']).to_owned(),
        })
    }

    /// The request target of stream `name` with the query pairs `extra` (`offset=…&live=sse`).
    pub(crate) fn target(&self, name: &str, extra: &str) -> String {
        let query = match (self.query.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("?{}", self.query),
            (true, false) => format!("?{extra}"),
            (false, false) => format!("?{}&{extra}", self.query),
        };
        format!("{}/{name}{query}", self.prefix)
    }
}

/// One HTTP/1.1 connection (keep-alive), one request at a time.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub(crate) async fn open(base: &Base) -> Result<Self, String> {
        let stream = TcpStream::connect(base.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", base.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {}: {e}", base.addr))?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            host: base.host.clone(),
        })
    }

    /// Sends one request; the response's body is left to the caller.
    pub(crate) async fn send(
        &mut self,
        method: &str,
        target: &str,
        body: Option<Bytes>,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header("host", &self.host);
        if method != "GET" {
            // Every stream is created, and appended to, as `application/json`.
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|e| e.to_string())?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {target}: {e}"))
    }

    /// Sends one request and reads the whole answer: status, `Stream-Next-Offset`, body.
    pub(crate) async fn call(
        &mut self,
        method: &str,
        target: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Option<String>, Bytes), String> {
        let response = self.send(method, target, body).await?;
        let status = response.status();
        let next = response
            .headers()
            .get("stream-next-offset")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {target}: body: {e}"))?
            .to_bytes();
        Ok((status, next, body))
    }
}

/// A message of `size` bytes (at least its fields) carrying `sent_us`:
/// `{"t":<sent_us>,"p":"xxx…"}`.
pub(crate) fn message(sent_us: u64, size: usize) -> Bytes {
    let head = format!("{{\"t\":{sent_us},\"p\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut text = head;
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    Bytes::from(text)
}

/// Calls `seen` with the send time of every message in `text` (each `"t":<digits>`). The
/// protocol's control events carry no `"t"` key, so whole SSE events and JSON bodies can be
/// scanned alike; the caller passes only complete lines (a time cut in two is never read).
pub(crate) fn send_times(text: &[u8], mut seen: impl FnMut(u64)) {
    const KEY: &[u8] = b"\"t\":";
    let mut at = 0;
    while let Some(i) = find(&text[at..], KEY) {
        let digits = &text[at + i + KEY.len()..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let value = digits[..len]
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        if len > 0 {
            seen(value);
        }
        at += i + KEY.len() + len;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_base_url() {
        let base = Base::parse("http://127.0.0.1:8080/ds/", "user=bench").unwrap();
        assert_eq!(base.target("s1", ""), "/ds/s1?user=bench");
        assert_eq!(
            base.target("s1", "offset=-1&live=sse"),
            "/ds/s1?user=bench&offset=-1&live=sse"
        );
        let bare = Base::parse("http://127.0.0.1:4437", "").unwrap();
        assert_eq!(bare.target("s1", "live=sse"), "/s1?live=sse");
        assert!(Base::parse("https://127.0.0.1:1", "").is_err());
    }

    #[test]
    fn messages_carry_their_send_time() {
        let m = message(1234, 64);
        assert_eq!(m.len(), 64);
        let mut times = Vec::new();
        let sse = format!(
            "event: data\ndata:[{},{}]\n\nevent: control\ndata:{{\"streamNextOffset\":\"1\",\"upToDate\":true}}\n\n",
            String::from_utf8_lossy(&m),
            String::from_utf8_lossy(&message(99, 10)),
        );
        send_times(sse.as_bytes(), |t| times.push(t));
        assert_eq!(times, vec![1234, 99]);
    }
}
