//! Authentication, once: the extractors every route that needs a caller uses.
//!
//! - [`AuthenticatedUser`]: the user the [`Authenticate`](crate::Authenticate) of the
//!   [`AppState`] proves (`/v1/runs`, `/v1/runs/{run_id}/cancel`, `/v1/events`,
//!   `/debug/disconnect`);
//! - [`AuthenticatedIdentity`]: the same, with when the credentials expire, for the routes that
//!   hold a connection open and end it then (`/ws`, `/v1/stream`, `/agui/{agent}`).
//! - [`Publisher`]: the server API key of `/v1/publish`.
//! - [`MetricsScraper`]: the `metrics.token` of `/metrics`.
//!
//! Each refusal is an [`AuthRejection`]: 401 with agentwire's JSON error body, counted in
//! `agentwire_auth_failures_total{route}`, where `route` is the matched route without its
//! leading `/` (`ws`, `v1/runs`, `agui/{agent}`, `metrics`, …; a nested router's prefix is part
//! of it).

use agentwire_auth::Identity;
use agentwire_core::{ErrorCode, UserId};
use axum::extract::{FromRequestParts, MatchedPath, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{ApiError, AppState, AuthRequest};

/// Why a request was refused before its handler ran. Answered with agentwire's JSON error body
/// (`{"error": {"code", "message"}}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// 401 `unauthorized`: missing or wrong credentials (the message says which).
    #[error("{0}")]
    Unauthorized(String),
    /// 400 `invalid_field`: the query string cannot be read.
    #[error("{0}")]
    BadQuery(String),
    /// 404 `not_found`: the route is disabled by configuration (`/v1/publish` without an
    /// `api_key`).
    #[error("{0}")]
    Disabled(&'static str),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::BadQuery(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidField),
            Self::Disabled(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        };
        ApiError::new(status, code, self.to_string()).into_response()
    }
}

/// The 401 for `parts`' route, counted in `agentwire_auth_failures_total`.
fn refuse(parts: &Parts, message: String) -> AuthRejection {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str().trim_start_matches('/'))
        .to_owned();
    count_failure(route, &message);
    AuthRejection::Unauthorized(message)
}

/// Logs and counts one refused authentication on `route` (every route that authenticates goes
/// through here, the extractors and the `/ds` surface alike).
pub(crate) fn count_failure(route: String, message: &str) {
    tracing::info!(route = %route, error = %message, "authentication failed");
    metrics::counter!("agentwire_auth_failures_total", "route" => route).increment(1);
}

/// The credentials a query string may carry (`?token=` for JWTs, `?user=` for dev auth).
#[derive(Debug, Deserialize, Default)]
struct Credentials {
    token: Option<String>,
    user: Option<String>,
}

/// The user a request is, proven by the [`Authenticate`](crate::Authenticate) of the
/// [`AppState`] from the request's headers and its `token` / `user` query parameters.
///
/// ```no_run
/// use agentwire_server::{AppState, AuthenticatedUser};
/// use axum::{Router, routing::get};
///
/// async fn whoami(AuthenticatedUser(user): AuthenticatedUser) -> String {
///     user.to_string()
/// }
///
/// # fn demo(state: AppState) {
/// let app: Router = Router::new().route("/whoami", get(whoami)).with_state(state);
/// # let _ = app; }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub UserId);

impl FromRequestParts<AppState> for AuthenticatedUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        authenticate(parts, state, |auth, request| auth.authenticate(request)).map(Self)
    }
}

/// The user a request is and when its credentials expire ([`Identity`]), proven by
/// [`Authenticate::identify`](crate::Authenticate::identify) from the same places as
/// [`AuthenticatedUser`]. A route that holds a connection open ends it at
/// [`Identity::expires_at`].
///
/// ```no_run
/// use agentwire_server::{AppState, AuthenticatedIdentity};
/// use axum::{Router, routing::get};
///
/// async fn until(AuthenticatedIdentity(identity): AuthenticatedIdentity) -> String {
///     format!("{} until {:?}", identity.user, identity.expires_at)
/// }
///
/// # fn demo(state: AppState) {
/// let app: Router = Router::new().route("/until", get(until)).with_state(state);
/// # let _ = app; }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedIdentity(pub Identity);

impl FromRequestParts<AppState> for AuthenticatedIdentity {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        authenticate(parts, state, |auth, request| auth.identify(request)).map(Self)
    }
}

/// Runs `check` with the state's authenticator on the request's credentials; a refusal is a
/// counted 401.
fn authenticate<T>(
    parts: &Parts,
    state: &AppState,
    check: impl FnOnce(
        &dyn crate::Authenticate,
        &AuthRequest<'_>,
    ) -> Result<T, agentwire_auth::AuthError>,
) -> Result<T, AuthRejection> {
    let Query(credentials) = Query::<Credentials>::try_from_uri(&parts.uri)
        .map_err(|e| AuthRejection::BadQuery(e.body_text()))?;
    let request = AuthRequest {
        headers: &parts.headers,
        token: credentials.token.as_deref(),
        user: credentials.user.as_deref(),
    };
    check(state.auth(), &request).map_err(|e| refuse(parts, e.to_string()))
}

/// A caller of `/v1/publish` holding the server API key (`api_key`) as
/// `Authorization: Bearer <api_key>`. Without a configured key the route is disabled (404).
#[derive(Debug, Clone, Copy)]
pub struct Publisher;

impl FromRequestParts<AppState> for Publisher {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        let Some(key) = state.ready().config().api_key.as_deref() else {
            return Err(AuthRejection::Disabled(
                "no such route: /v1/publish is disabled until api_key (AGENTWIRE_API_KEY) is set",
            ));
        };
        if !bearer_matches(&parts.headers, key) {
            return Err(refuse(
                parts,
                "send the server API key as `Authorization: Bearer <api_key>`".into(),
            ));
        }
        Ok(Self)
    }
}

/// A scraper of `/metrics`: any caller when `metrics.token` is unset, otherwise one sending
/// `Authorization: Bearer <metrics.token>`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsScraper;

impl FromRequestParts<AppState> for MetricsScraper {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AuthRejection> {
        match &state.ready().config().metrics.token {
            Some(token) if !bearer_matches(&parts.headers, token) => Err(refuse(
                parts,
                "GET /metrics needs `Authorization: Bearer <metrics.token>`".into(),
            )),
            _ => Ok(Self),
        }
    }
}

/// Whether the `Authorization: Bearer` token equals `key`, compared in constant time.
pub(crate) fn bearer_matches(headers: &HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(token.trim().as_bytes(), key.as_bytes())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"secret-key", b"secret-key"));
        assert!(!constant_time_eq(b"secret-kez", b"secret-key"));
        assert!(!constant_time_eq(b"secret", b"secret-key"));
        assert!(!constant_time_eq(b"", b"k"));
        assert!(constant_time_eq(b"", b""));
    }
}
