//! Keys of an identity provider, from its JWKS endpoint (`auth.jwks_url`): RS256, ES256 and
//! EdDSA keys by `kid`, cached, refreshed periodically and when a token names a `kid` the cache
//! does not have (at most once per [`MIN_REFRESH_INTERVAL`]), and replaced whole on every
//! refresh, so a key the provider has rotated out stops verifying.
//!
//! [`crate::Authenticate`] is synchronous, so a token signed with a key that is not cached yet
//! is refused ("retry") while the refresh it triggered runs in the background; the next attempt
//! verifies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Notify;

use crate::AuthError;

/// The least time between two fetches of the key set, however many unknown `kid`s arrive.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How often the key set is fetched when nothing asks for it earlier.
pub const PERIODIC_REFRESH: Duration = Duration::from_secs(300);
/// The largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The cached keys of one JWKS endpoint.
#[derive(Debug)]
pub struct JwksKeys {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    last_fetch: Mutex<Option<Instant>>,
    wanted: Notify,
}

impl JwksKeys {
    /// An empty cache for `url`; [`Self::refresh`] or [`Self::run`] fills it.
    pub fn new(url: impl Into<String>) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            url: url.into(),
            client,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            wanted: Notify::new(),
        })
    }

    /// The key with `kid` and the one algorithm it verifies, if cached.
    pub(crate) fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    /// Asks the background task ([`Self::run`]) for a refresh: a token named an unknown `kid`.
    pub(crate) fn want_refresh(&self) {
        self.wanted.notify_one();
    }

    /// Fetches the key set now and replaces the cache with it. Keys of other types (or without
    /// a `kid`) are skipped.
    ///
    /// # Errors
    /// The endpoint did not answer a JWKS document; the cache is left as it was.
    pub async fn refresh(&self) -> Result<usize, AuthError> {
        *self.last_fetch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let unavailable = |e: String| {
            AuthError::InvalidToken(format!("the identity provider's keys are unavailable: {e}"))
        };
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unavailable(e.to_string()))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(unavailable(format!(
                "the key set is over {MAX_JWKS_BYTES} bytes"
            )));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(algorithm)) = (&jwk.common.key_id, algorithm_of(&jwk.algorithm))
            else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid.clone(), (key, algorithm));
            }
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(count)
    }

    /// Keeps the cache of `keys` fresh while it is in use: fetches at once, then every
    /// [`PERIODIC_REFRESH`] and whenever a token names an unknown `kid`, never twice within
    /// [`MIN_REFRESH_INTERVAL`]. Ends at its next wake-up after the last other `Arc` of the cache
    /// is dropped.
    pub async fn run(keys: Weak<Self>) {
        loop {
            let Some(this) = keys.upgrade() else { return };
            if let Err(e) = this.refresh().await {
                tracing::warn!(url = %this.url, error = %e, "JWKS refresh failed");
            }
            let wanted = tokio::time::timeout(PERIODIC_REFRESH, this.wanted.notified());
            let _ = wanted.await;
            let since = this
                .last_fetch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(MIN_REFRESH_INTERVAL, |t| t.elapsed());
            drop(this);
            if since < MIN_REFRESH_INTERVAL {
                tokio::time::sleep(MIN_REFRESH_INTERVAL - since).await;
            }
        }
    }
}

/// The one algorithm a key verifies: RS256 for RSA, ES256 for P-256, EdDSA for Ed25519.
fn algorithm_of(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}
