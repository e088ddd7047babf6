//! Mounting the Durable Streams protocol (`agentwire-durable-streams`) at `/ds` with this
//! server's authentication: a stream belongs to the user a request authenticates as, or to the
//! API key (`Authorization: Bearer <api_key>`). The user's own event streams are served
//! read-only under `/ds/agentwire/` (`durable_events.rs`).

use std::sync::Arc;

use agentwire_durable_streams::model::{Caller, Owner};
use agentwire_durable_streams::{
    DsError, DurableStreams, MemoryStore, StoreKind, StreamStore, no_auth,
};
use agentwire_startup::Ready;
use axum::http::HeaderMap;

use crate::{AuthRequest, Authenticate};

/// The `/ds` surface the config asks for, authenticating with `auth`; `None` when disabled.
pub(crate) fn build(ready: &Ready, auth: Arc<dyn Authenticate>) -> Option<DurableStreams> {
    let config = ready.config();
    let settings = config.durable_streams.clone();
    if !settings.enabled {
        return None;
    }
    let limits = settings.owner_limits();
    let store: Arc<dyn StreamStore> = match settings.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(limits)),
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
    Some(DurableStreams::new(store, authenticate, settings))
}

/// Who a `/ds` request is: the API key's holder, or the user the server's [`Authenticate`]
/// proves. A refusal is counted like every other route's (`route="ds"`).
/// The `redis` store over the broker's Redis (validated at startup: `broker` is a Redis URL),
/// connected lazily on first use; `None` (and `/ds` off) when it cannot start.
#[cfg(feature = "redis")]
fn redis_store(
    broker: &str,
    prefix: &str,
    limits: agentwire_durable_streams::OwnerLimits,
) -> Option<Arc<dyn StreamStore>> {
    match agentwire_durable_streams::RedisStore::new(broker, prefix, limits) {
        Ok(store) => Some(Arc::new(store)),
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
) -> Option<Arc<dyn StreamStore>> {
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
