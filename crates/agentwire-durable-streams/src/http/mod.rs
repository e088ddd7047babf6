//! The protocol over HTTP: one catch-all route; the method picks the operation.

mod control;
mod headers;
mod rate;
mod read;
mod sse;
mod write;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::model::{Caller, Owner};
use crate::offset::Offset;
use crate::subscription::{Engine, MemorySubscriptions, SubscriptionStore};
use crate::{DsError, DurableStreamsConfig, StreamStore};
use rate::KeyedRate;

pub(crate) const STREAM_NEXT_OFFSET: HeaderName = HeaderName::from_static("stream-next-offset");
pub(crate) const STREAM_CLOSED: HeaderName = HeaderName::from_static("stream-closed");
pub(crate) const STREAM_UP_TO_DATE: HeaderName = HeaderName::from_static("stream-up-to-date");
pub(crate) const STREAM_CURSOR: HeaderName = HeaderName::from_static("stream-cursor");
pub(crate) const STREAM_TTL: HeaderName = HeaderName::from_static("stream-ttl");
pub(crate) const STREAM_EXPIRES_AT: HeaderName = HeaderName::from_static("stream-expires-at");
pub(crate) const STREAM_SEQ: HeaderName = HeaderName::from_static("stream-seq");
pub(crate) const STREAM_FORKED_FROM: HeaderName = HeaderName::from_static("stream-forked-from");
pub(crate) const STREAM_FORK_OFFSET: HeaderName = HeaderName::from_static("stream-fork-offset");
pub(crate) const STREAM_FORK_SUB_OFFSET: HeaderName =
    HeaderName::from_static("stream-fork-sub-offset");
pub(crate) const SSE_DATA_ENCODING: HeaderName =
    HeaderName::from_static("stream-sse-data-encoding");
pub(crate) const PRODUCER_ID: HeaderName = HeaderName::from_static("producer-id");
pub(crate) const PRODUCER_EPOCH: HeaderName = HeaderName::from_static("producer-epoch");
pub(crate) const PRODUCER_SEQ: HeaderName = HeaderName::from_static("producer-seq");
pub(crate) const PRODUCER_EXPECTED_SEQ: HeaderName =
    HeaderName::from_static("producer-expected-seq");
pub(crate) const PRODUCER_RECEIVED_SEQ: HeaderName =
    HeaderName::from_static("producer-received-seq");

/// Response headers browsers may read (CORS).
const EXPOSED: &str = "stream-next-offset, stream-closed, stream-up-to-date, stream-cursor, \
    stream-ttl, stream-expires-at, stream-sse-data-encoding, producer-epoch, producer-seq, \
    producer-expected-seq, producer-received-seq, etag, location, content-type";

/// Decides who a request is from its headers and query string, and until when (an SSE read
/// ends at [`Caller::expires_at`]). agentwire's server passes its own authentication here;
/// [`no_auth`] is the loopback conformance setting.
pub type Authenticate = Arc<dyn Fn(&HeaderMap, &str) -> Result<Caller, DsError> + Send + Sync>;

/// Every request is the anonymous owner (`durable_streams.insecure_no_auth`, loopback only).
pub fn no_auth() -> Authenticate {
    Arc::new(|_, _| Ok(Owner::anonymous().into()))
}

/// What the handlers share.
#[derive(Clone)]
pub struct DurableStreams {
    pub(crate) store: Arc<dyn StreamStore>,
    pub(crate) auth: Authenticate,
    pub(crate) config: Arc<DurableStreamsConfig>,
    /// Subscriptions (PROTOCOL.md §6, §7) over `store`.
    pub(crate) subscriptions: Arc<Engine>,
    /// The request rate per owner (`requests_per_second`, `request_burst`).
    requests: Arc<KeyedRate<Owner>>,
    /// The same rate per peer address, on the routes a wake token authenticates (no owner is
    /// known before the token's signature is checked, which is the work to bound).
    token_requests: Arc<KeyedRate<IpAddr>>,
    /// The append rate per owner (`appends_per_second`, `append_burst`).
    appends: Arc<KeyedRate<Owner>>,
}

impl std::fmt::Debug for DurableStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStreams")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DurableStreams {
    /// The protocol over `store`, authenticating with `auth`; subscriptions live in memory
    /// (see [`with_subscriptions`](Self::with_subscriptions)).
    pub fn new(
        store: Arc<dyn StreamStore>,
        auth: Authenticate,
        config: DurableStreamsConfig,
    ) -> Self {
        let subscriptions = Arc::new(Engine::new(
            store.clone(),
            Arc::new(MemorySubscriptions::default()),
            config.webhook_dev_loopback,
            config.max_subscriptions_per_user,
        ));
        Self {
            store,
            auth,
            subscriptions,
            requests: Arc::new(KeyedRate::new(
                config.requests_per_second,
                config.request_burst,
            )),
            token_requests: Arc::new(KeyedRate::new(
                config.requests_per_second,
                config.request_burst,
            )),
            appends: Arc::new(KeyedRate::new(
                config.appends_per_second,
                config.append_burst,
            )),
            config: Arc::new(config),
        }
    }

    /// Keeps subscription state in `subs` instead of this process's memory (with several
    /// nodes, pass the store every node shares, e.g. the [`RedisStore`](crate::RedisStore)).
    pub fn with_subscriptions(mut self, subs: Arc<dyn SubscriptionStore>) -> Self {
        self.subscriptions = Arc::new(Engine::new(
            self.store.clone(),
            subs,
            self.config.webhook_dev_loopback,
            self.config.max_subscriptions_per_user,
        ));
        self
    }

    /// After `owner` wrote to the stream at `path` (whose tail was `from` before the write):
    /// links and wakes the owner's matching subscriptions.
    pub(crate) async fn written(&self, owner: &Owner, path: &str, from: Offset) {
        self.subscriptions
            .on_write(owner, path.trim_start_matches('/'), from)
            .await;
    }

    /// After `owner` deleted the stream at `path`: unlinks it from the owner's subscriptions.
    pub(crate) async fn deleted(&self, owner: &Owner, path: &str) {
        self.subscriptions
            .on_delete(owner, path.trim_start_matches('/'))
            .await;
    }

    /// The routes: mount them with `Router::nest("/ds", …)`. A stream's URL is the mount
    /// point followed by any path, e.g. `/ds/v1/stream/chat-1`.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let limit = self.config.max_append_bytes;
        Router::new()
            .route("/{*path}", axum::routing::any(dispatch))
            .layer(DefaultBodyLimit::max(limit))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self)
    }

    /// The caller, charged one request of its owner's budget (`requests_per_second`,
    /// `request_burst`): every request authenticated as an owner passes here.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, query: &str) -> Result<Caller, DsError> {
        let caller = (self.auth)(headers, query)?;
        if !self.requests.check(&caller.owner) {
            return Err(DsError::TooMany(format!(
                "request rate limit: {} requests per second per user \
                 (durable_streams.requests_per_second)",
                self.config.requests_per_second
            )));
        }
        Ok(caller)
    }

    /// Charges one wake-token request to the peer address the server recorded
    /// (`ConnectInfo<SocketAddr>`; not limited where there is none, as when the router is served
    /// without `into_make_service_with_connect_info`).
    pub(crate) fn charge_token_request(&self, extensions: &Extensions) -> Result<(), DsError> {
        let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Ok(());
        };
        if self.token_requests.check(&peer.ip()) {
            return Ok(());
        }
        Err(DsError::TooMany(format!(
            "request rate limit: {} wake-token requests per second per address \
             (durable_streams.requests_per_second)",
            self.config.requests_per_second
        )))
    }

    /// Takes one append from `owner`'s budget (`appends_per_second`, `append_burst`).
    pub(crate) fn charge_append(&self, owner: &Owner) -> Result<(), DsError> {
        if self.appends.check(owner) {
            return Ok(());
        }
        Err(DsError::TooMany(format!(
            "append rate limit: {} appends per second per user (durable_streams.appends_per_second)",
            self.config.appends_per_second
        )))
    }
}

async fn dispatch(State(ds): State<DurableStreams>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::OPTIONS {
        return preflight(&parts.headers);
    }
    let path = parts.uri.path().to_owned();
    if path == "/__ds" || path.starts_with("/__ds/") {
        // PROTOCOL.md §6: the reserved control prefix is routed before streams, never a stream.
        return control::dispatch(&ds, parts, body, &path).await;
    }
    let location = absolute_url(&parts);
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let Caller { owner, expires_at } = match ds.authenticate(&parts.headers, &query) {
        Ok(caller) => caller,
        Err(e) => {
            refuse_unread(&parts.headers, body).await;
            return e.into_response();
        }
    };
    let result = match parts.method {
        Method::GET => read::get(&ds, &path, &query, &parts.headers, owner, expires_at).await,
        Method::HEAD => write::head(&ds, &path, owner).await,
        Method::DELETE => write::delete(&ds, &path, owner).await,
        Method::PUT | Method::POST => {
            match body_bytes(body, &parts.headers, ds.config.max_append_bytes).await {
                Err(e) => Err(e),
                Ok(bytes) if parts.method == Method::PUT => {
                    write::put(&ds, &path, &location, &parts.headers, bytes, owner).await
                }
                Ok(bytes) => write::post(&ds, &path, &parts.headers, bytes, owner).await,
            }
        }
        _ => Err(DsError::MethodNotAllowed(
            "use GET, HEAD, PUT, POST or DELETE",
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Most bytes, and longest time, a refused request's body is read on and discarded for.
const DRAIN_BYTES: usize = 32 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The request body, at most `max` bytes. A larger one is refused without being stored — but
/// read on first ([`discard`]): closing a socket with unread bytes in it makes the kernel reset
/// the connection, which can destroy the 413 before the client reads it.
///
/// # Errors
/// [`DsError::TooLarge`] past `max`; [`DsError::BadRequest`] when the body cannot be read (the
/// client went away, or took longer than `limits.body_read_timeout`).
async fn body_bytes(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, DsError> {
    let too_large = || {
        DsError::TooLarge(format!(
            "the body exceeds {max} bytes (durable_streams.max_append_bytes)"
        ))
    };
    if declared_length(headers).is_some_and(|len| len > max as u64) {
        refuse_unread(headers, body).await;
        return Err(too_large());
    }
    let mut data = body.into_data_stream();
    let mut chunks = Vec::new();
    let mut len = 0;
    while let Some(chunk) = data.next().await {
        let chunk =
            chunk.map_err(|e| DsError::bad(format!("the request body could not be read: {e}")))?;
        len += chunk.len();
        if len > max {
            // No Content-Length (a chunked body): over the bound midway.
            discard(data).await;
            return Err(too_large());
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        1 => chunks.swap_remove(0),
        _ => chunks.concat().into(),
    })
}

/// Before answering a request whose body the server will not use and has not started reading:
/// reads the body on ([`discard`]), unless the client waits for `100 Continue` (reading would
/// invite the refused body; without it the client sends nothing) or declares more than
/// [`DRAIN_BYTES`] (the reset would come anyway, after the wasted transfer).
async fn refuse_unread(headers: &HeaderMap, body: Body) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue || declared_length(headers).is_some_and(|len| len > DRAIN_BYTES as u64) {
        return;
    }
    discard(body.into_data_stream()).await;
}

/// Reads and discards the rest of a refused body, up to [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn discard(mut data: BodyDataStream) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = data.next().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// The request's `Content-Length`, when it has a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

/// The stream's absolute URL, for `Location` (from `Host` and `X-Forwarded-Proto`).
fn absolute_url(parts: &axum::http::request::Parts) -> String {
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    match header("host") {
        Some(host) => {
            let scheme = header("x-forwarded-proto").unwrap_or("http");
            format!("{scheme}://{host}{path}")
        }
        None => path,
    }
}

/// CORS preflight: any origin may call with any of the protocol's headers.
fn preflight(headers: &HeaderMap) -> Response {
    let allow_headers = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, PUT, POST, DELETE, OPTIONS"),
            ),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            ),
        ],
    )
        .into_response()
}

/// PROTOCOL.md §12.7 on every response, plus CORS for browser clients.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    response
}

/// Adds a header whose value is text the server produced (never fails for valid text).
pub(crate) fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// A body-less or bodied response with headers.
pub(crate) fn respond(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response {
    (status, headers, body).into_response()
}
