//! Mounting the Durable Streams protocol (`agentwire-durable-streams`) at `/ds` with this
//! server's authentication: a stream belongs to the user a request authenticates as, or to the
//! API key (`Authorization: Bearer <api_key>`). The user's own event streams are served
//! read-only under `/ds/agentwire/` (`durable_events.rs`).

use std::sync::Arc;

use agentwire_durable_streams::model::{Caller, Owner};
use agentwire_durable_streams::{
    DsError, DurableStreams, MemoryStore, MemorySubscriptions, StoreKind, StreamStore,
    SubscriptionStore, no_auth,
};
use agentwire_startup::Ready;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use crate::{AppState, AuthRequest, Authenticate};

/// The `/ds` surface the config asks for, authenticating with `auth`; `None` when disabled.
pub(crate) fn build(ready: &Ready, auth: Arc<dyn Authenticate>) -> Option<DurableStreams> {
    let config = ready.config();
    let settings = config.durable_streams.clone();
    if !settings.enabled {
        return None;
    }
    let limits = settings.owner_limits();
    let (store, subscriptions): (Arc<dyn StreamStore>, Arc<dyn SubscriptionStore>) =
        match settings.store {
            StoreKind::Memory => (
                Arc::new(MemoryStore::new(limits)),
                Arc::new(MemorySubscriptions::default()),
            ),
            // Validated at startup: `broker` is a Redis URL (connected lazily on first use).
            StoreKind::Redis => redis_store(&config.broker, &settings.redis_prefix, limits)?,
        };
    let store = Arc::new(crate::durable_events::WithAgentwireStreams {
        stored: store,
        bridge: ready.bridge().clone(),
        queue_bytes: config.limits.queue_bytes,
    });
    let authenticate = if settings.insecure_no_auth {
        // Validated at startup: only on a loopback listener.
        no_auth()
    } else {
        let api_key = config.api_key.clone();
        Arc::new(move |headers: &HeaderMap, query: &str| {
            owner(&*auth, api_key.as_deref(), headers, query)
        })
    };
    Some(DurableStreams::new(store, authenticate, settings).with_subscriptions(subscriptions))
}

/// Who a `/ds` request is: the API key's holder, or the user the server's [`Authenticate`]
/// proves. A refusal is counted like every other route's (`route="ds"`).
/// The `redis` store over the broker's Redis (validated at startup: `broker` is a Redis URL),
/// connected lazily on first use, holding the streams and the subscriptions; `None` (and `/ds`
/// off) when it cannot start.
#[cfg(feature = "redis")]
fn redis_store(
    broker: &str,
    prefix: &str,
    limits: agentwire_durable_streams::OwnerLimits,
) -> Option<(Arc<dyn StreamStore>, Arc<dyn SubscriptionStore>)> {
    match agentwire_durable_streams::RedisStore::new(broker, prefix, limits) {
        Ok(store) => {
            let store = Arc::new(store);
            Some((store.clone(), store))
        }
        Err(e) => {
            tracing::error!(error = %e, "durable streams: the redis store cannot start; /ds is off");
            None
        }
    }
}

/// Without the `redis` feature there is no Redis store (nor a Redis broker, which it needs).
#[cfg(not(feature = "redis"))]
fn redis_store(
    _broker: &str,
    _prefix: &str,
    _limits: agentwire_durable_streams::OwnerLimits,
) -> Option<(Arc<dyn StreamStore>, Arc<dyn SubscriptionStore>)> {
    tracing::error!(
        "durable streams: this build has no redis store (the `redis` feature); /ds is off"
    );
    None
}

fn owner(
    auth: &dyn Authenticate,
    api_key: Option<&str>,
    headers: &HeaderMap,
    query: &str,
) -> Result<Caller, DsError> {
    if let Some(key) = api_key
        && crate::auth::bearer_matches(headers, key)
    {
        return Ok(Owner("apikey".into()).into());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let request = AuthRequest {
        headers,
        token: param("token"),
        user: param("user"),
    };
    auth.identify(&request)
        .map(|identity| Caller {
            owner: Owner::user(identity.user.as_str()),
            expires_at: identity.expires_at,
        })
        .map_err(|e| {
            let message = e.to_string();
            crate::auth::count_failure("ds".to_owned(), &message);
            DsError::Unauthorized(message)
        })
}

/// Middleware of `/ds`: a live read (`live=sse` or `live=long-poll`) by a user holds one of the
/// user's `limits.max_http_streams_per_user` until its response body ends (429
/// `too_many_streams` when none is left). Reads with the API key, and requests that do not
/// authenticate (the route answers those), pass as they are.
pub(crate) async fn stream_cap(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().unwrap_or_default();
    if request.method() != Method::GET || !is_live_read(query) {
        return next.run(request).await;
    }
    let api_key = state.ready().config().api_key.as_deref();
    if api_key.is_some_and(|key| crate::auth::bearer_matches(request.headers(), key)) {
        return next.run(request).await;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let credentials = AuthRequest {
        headers: request.headers(),
        token: param("token"),
        user: param("user"),
    };
    let Ok(user) = state.auth().authenticate(&credentials) else {
        return next.run(request).await;
    };
    let slot = match state.http_limits().open_stream(&user) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    let (parts, body) = next.run(request).await.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held_until_the_body_ends = &slot;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Whether a `/ds` query asks for a live read (PROTOCOL.md: `live=sse` or `live=long-poll`).
fn is_live_read(query: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .iter()
        .any(|(k, v)| k == "live" && (v == "sse" || v == "long-poll"))
}
