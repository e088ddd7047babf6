//! Who a request is: the [`Authenticate`] trait an application implements to plug its own
//! authentication into agentwire's routes, and [`Authenticator`], agentwire's own — HS256 JWTs or
//! dev auth, from the places docs/protocol.md lists (`Authorization: Bearer`, the `bearer.<jwt>`
//! subprotocol, `?token=`, and `?user=` in dev mode).
//!
//! No HTTP server here: the server crate runs an [`Authenticate`] once per request, in its
//! `AuthenticatedUser` extractor. Routes that hold a connection open ask
//! [`Authenticate::identify`] instead, which also says when the credentials expire
//! ([`Identity`]), and verify the token of a `refresh` frame with [`Authenticate::refresh`].
//!
//! ```
//! use agentwire_auth::{AuthRequest, Authenticate, Authenticator};
//! use agentwire_startup::{AgentwireConfig, AuthMode};
//!
//! let mut config = AgentwireConfig::default();
//! config.auth.mode = AuthMode::Jwt;
//! config.auth.jwt_secret = Some("a-secret-of-at-least-32-bytes-long!".into());
//! let auth = Authenticator::from_config(&config);
//! let token = auth.mint("ada", std::time::Duration::from_secs(60)).unwrap();
//!
//! let headers = http::HeaderMap::new();
//! let request = AuthRequest { headers: &headers, token: Some(&token), user: None };
//! assert_eq!(auth.authenticate(&request).unwrap().as_str(), "ada");
//! // Accepted for 60 s, plus 5 s of clock-skew leeway.
//! let expires_in = auth.identify(&request).unwrap().expires_in(std::time::SystemTime::now());
//! assert!(expires_in.unwrap() <= std::time::Duration::from_secs(65));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod claims;
mod jwks;

pub use jwks::{JwksKeys, MIN_REFRESH_INTERVAL, PERIODIC_REFRESH};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_core::UserId;
use agentwire_startup::{AgentwireConfig, AuthMode};
use http::HeaderMap;
use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Why a request was not authenticated. The message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials where they were looked for.
    #[error(
        "no credentials: send `Authorization: Bearer <jwt>`, the subprotocol `bearer.<jwt>`, or `?token=<jwt>`{0}"
    )]
    Missing(&'static str),
    /// The token is invalid (signature, algorithm, expiry, claims).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The user id is not acceptable.
    #[error("invalid user id: {0}")]
    InvalidUser(String),
    /// A token was to be made or checked, but no `auth.jwt_secret` is configured.
    #[error(
        "no JWT secret is configured: set AGENTWIRE_AUTH__JWT_SECRET (or auth.jwt_secret in the \
         config file) to a random string of at least 32 bytes, e.g. \
         `export AGENTWIRE_AUTH__JWT_SECRET=$(openssl rand -hex 32)`"
    )]
    NoSecret,
    /// A token was sent on an open connection to a server that verifies no tokens there.
    #[error("{0}")]
    CannotRefresh(&'static str),
    /// A token sent on an open connection proves another user than the connection's.
    #[error(
        "the token is for another user than this connection's; open a new connection for that user"
    )]
    OtherUser,
}

/// Who a request is, and until when its credentials hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user the credentials prove.
    pub user: UserId,
    /// When the credentials stop being accepted — for a JWT its `exp` plus the 5 s of clock-skew
    /// leeway every token is checked with — or `None` when they do not expire (dev auth, or an
    /// [`Authenticate`] that gives no expiry). A connection opened with them ends then, unless
    /// it is refreshed first.
    pub expires_at: Option<SystemTime>,
}

impl Identity {
    /// A user whose credentials do not expire.
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            expires_at: None,
        }
    }

    /// A user whose credentials stop being accepted at `at`.
    pub fn expiring_at(user: UserId, at: SystemTime) -> Self {
        Self {
            user,
            expires_at: Some(at),
        }
    }

    /// How long the credentials hold from `now`: `None` when they do not expire, zero once
    /// they have.
    pub fn expires_in(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

impl From<UserId> for Identity {
    fn from(user: UserId) -> Self {
        Self::new(user)
    }
}

/// What was wrong with a token, in words a person can act on: no library error names, no lists
/// of algorithms.
fn token_problem(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "it is not a JWT (three base64url parts joined by dots, e.g. from `agentwire token <user>`)"
                .into()
        }
        ErrorKind::InvalidSignature => {
            "its signature does not match: it was not signed with this server's secret \
             (auth.jwt_secret) or its identity provider's keys (auth.jwks_url)"
                .into()
        }
        ErrorKind::ExpiredSignature => "it has expired: get a new one".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            "it is signed with a kind of signature this server does not accept: use a token from \
             `agentwire token` or from the identity provider set in auth.jwks_url"
                .into()
        }
        ErrorKind::InvalidIssuer => {
            "it was issued by someone other than this server trusts (its `iss` is not auth.issuer)"
                .into()
        }
        ErrorKind::InvalidAudience => {
            "it is meant for another service (its `aud` does not name auth.audience)".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("it has no `{claim}` claim, which this server requires")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("its `{claim}` claim does not have the expected form")
        }
        _ => "it could not be verified".into(),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// The credentials of one request, from the places docs/protocol.md lists.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The request headers (`Authorization`, `Sec-WebSocket-Protocol`, cookies, …).
    pub headers: &'a HeaderMap,
    /// The `token` query parameter.
    pub token: Option<&'a str>,
    /// The `user` query parameter (dev auth).
    pub user: Option<&'a str>,
}

/// Decides which user a request is. Implement it to plug your own authentication into the
/// agentwire routes (see `examples/embed_in_axum.rs`).
///
/// # What an implementor must guarantee
/// - `authenticate` returns the user the credentials prove — never a user picked by the client
///   without proof (outside a deliberate dev setup) — and never a reserved id (`__…`).
/// - It does not block: it runs on the request path of every connection. (Validate a signed
///   cookie or token locally; do not call a remote service per connection.)
/// - The error message is sent to the client in the 401 body: do not put secrets in it.
///
/// A complete implementation that trusts a header set by your own gateway, plugged into the
/// routes with `agentwire_server::AppState::with_authenticator`:
///
/// ```
/// use agentwire_core::UserId;
/// use agentwire_auth::{AuthError, AuthRequest, Authenticate, user_id};
/// use http::HeaderMap;
///
/// /// Our gateway authenticates users and forwards `X-User: <id>`.
/// struct GatewayHeader;
///
/// impl Authenticate for GatewayHeader {
///     fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError> {
///         let raw = request
///             .headers
///             .get("x-user")
///             .and_then(|v| v.to_str().ok())
///             .ok_or(AuthError::Missing(" (the gateway sets X-User)"))?;
///         user_id(raw) // validates the id and refuses reserved ones
///     }
/// }
///
/// let mut headers = HeaderMap::new();
/// let anonymous = AuthRequest { headers: &headers, token: None, user: None };
/// assert!(GatewayHeader.authenticate(&anonymous).is_err());
/// headers.insert("x-user", "ada".parse().unwrap());
/// let request = AuthRequest { headers: &headers, token: None, user: None };
/// assert_eq!(GatewayHeader.authenticate(&request).unwrap().as_str(), "ada");
/// ```
///
/// A type that is not an `Authenticate` is refused with "`MyAuth` cannot authenticate agentwire
/// requests" and a note naming `authenticate`:
///
/// ```compile_fail
/// fn plug(_: impl agentwire_auth::Authenticate) {}
/// struct MyAuth;
/// plug(MyAuth);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot authenticate agentwire requests",
    note = "implement `fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError>`"
)]
pub trait Authenticate: Send + Sync + 'static {
    /// The user these credentials belong to.
    ///
    /// # Errors
    /// [`AuthError`]; the request is answered 401 with its message.
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError>;

    /// The user and when the credentials expire. Routes that hold a connection open (`/ws`, the
    /// SSE streams) call this instead of [`authenticate`](Self::authenticate) and end the
    /// connection at [`Identity::expires_at`]. The default gives no expiry: override it when
    /// your credentials expire.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate).
    fn identify(&self, request: &AuthRequest<'_>) -> Result<Identity, AuthError> {
        self.authenticate(request).map(Identity::new)
    }

    /// Verifies a token a client sends on an open connection (the `refresh` frame of
    /// docs/protocol.md) to keep it past the expiry of the credentials it was opened with. The
    /// caller checks that it proves the connection's user. The default passes the token to
    /// [`identify`](Self::identify) as if it came as `?token=`, without headers.
    ///
    /// # Errors
    /// As [`authenticate`](Self::authenticate); the client gets an `error` frame with code
    /// `unauthorized` and the message, and the connection keeps its current expiry.
    fn refresh(&self, token: &str) -> Result<Identity, AuthError> {
        let headers = HeaderMap::new();
        self.identify(&AuthRequest {
            headers: &headers,
            token: Some(token),
            user: None,
        })
    }
}

/// agentwire's own authentication: HS256 JWTs or dev auth, as `auth.mode` says.
#[derive(Clone)]
pub struct Authenticator {
    mode: AuthMode,
    decoding: Option<DecodingKey>,
    encoding: Option<EncodingKey>,
    validation: Validation,
    max_lifetime: Duration,
    auth: agentwire_startup::AuthConfig,
    jwks: Option<std::sync::Arc<JwksKeys>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator `config.auth` describes.
    pub fn from_config(config: &AgentwireConfig) -> Self {
        let secret = config.auth.jwt_secret.as_deref().map(str::as_bytes);
        let validation = claims::validation(&config.auth, Algorithm::HS256);
        let jwks = config.auth.jwks_url.as_deref().map(JwksKeys::new);
        // Refreshed in the background on the runtime that builds the authenticator.
        if let (Some(keys), Ok(runtime)) = (&jwks, tokio::runtime::Handle::try_current()) {
            runtime.spawn(JwksKeys::run(std::sync::Arc::downgrade(keys)));
        }
        Self {
            auth: config.auth.clone(),
            jwks,
            max_lifetime: config.auth.max_token_lifetime,
            mode: config.auth.mode,
            decoding: secret.map(DecodingKey::from_secret),
            encoding: secret.map(EncodingKey::from_secret),
            validation,
        }
    }

    /// The mode in force.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    fn check(&self, req: &AuthRequest<'_>) -> Result<Identity, AuthError> {
        let (headers, query_user) = (req.headers, req.user);
        let token = bearer(headers)
            .or_else(|| subprotocol_token(headers))
            .or(req.token.map(str::to_owned));
        match (self.mode, token) {
            (AuthMode::Jwt, Some(token)) => self.verify(&token),
            (AuthMode::Jwt, None) if query_user.is_some() => Err(AuthError::Missing(
                " (?user= is ignored: this server uses JWT auth)",
            )),
            (AuthMode::Jwt, None) => Err(AuthError::Missing("")),
            (AuthMode::Dev, Some(token)) if self.decoding.is_some() => self.verify(&token),
            (AuthMode::Dev, _) => match query_user {
                Some(user) => user_id(user).map(Identity::new),
                None => Err(AuthError::Missing(" (dev auth: add ?user=<id>)")),
            },
        }
    }

    /// Whether this authenticator verifies tokens at all (JWT mode, or dev mode with a secret).
    fn verifies_tokens(&self) -> bool {
        self.mode == AuthMode::Jwt || self.decoding.is_some()
    }

    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::InvalidToken(token_problem(&e));
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let claims = match (&self.jwks, header.kid) {
            (Some(jwks), Some(kid)) if header.alg != Algorithm::HS256 => {
                let Some((key, algorithm)) = jwks.key(&kid) else {
                    jwks.want_refresh();
                    return Err(AuthError::InvalidToken(
                        "the token is signed with a key this server has not loaded yet; retry in a few seconds".into(),
                    ));
                };
                let validation = claims::validation(&self.auth, algorithm);
                jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(invalid)?
            }
            _ => {
                let key = match (&self.decoding, &self.jwks) {
                    (Some(key), _) => key,
                    (None, Some(_)) => {
                        return Err(AuthError::InvalidToken(
                            "this server verifies only tokens of its identity provider (with a `kid`)"
                                .into(),
                        ));
                    }
                    (None, None) => return Err(AuthError::NoSecret),
                };
                jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(invalid)?
            }
        }
        .claims;
        claims::check_lifetime(claims.exp, unix_now(), self.max_lifetime)?;
        let user = user_id(&claims.sub)?;
        Ok(match claims::accepted_until(claims.exp) {
            Some(at) => Identity::expiring_at(user, at),
            None => Identity::new(user),
        })
    }

    /// The identity provider's key cache, when `auth.jwks_url` is set.
    pub fn jwks(&self) -> Option<&std::sync::Arc<JwksKeys>> {
        self.jwks.as_ref()
    }

    /// Mints an HS256 token for `user`, valid for `ttl` (for `agentwire token`).
    ///
    /// # Errors
    /// No secret is configured, or the user id is invalid.
    pub fn mint(&self, user: &str, ttl: Duration) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::NoSecret)?;
        let user = user_id(user)?;
        if ttl > self.max_lifetime {
            return Err(AuthError::InvalidToken(format!(
                "a token valid for {}s would be refused: auth.max_token_lifetime is {}s",
                ttl.as_secs(),
                self.max_lifetime.as_secs()
            )));
        }
        let now = unix_now();
        let claims = Claims {
            sub: user.to_string(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| AuthError::InvalidToken(token_problem(&e)))
    }
}

impl Authenticate for Authenticator {
    fn authenticate(&self, request: &AuthRequest<'_>) -> Result<UserId, AuthError> {
        self.check(request).map(|identity| identity.user)
    }

    fn identify(&self, request: &AuthRequest<'_>) -> Result<Identity, AuthError> {
        self.check(request)
    }

    fn refresh(&self, token: &str) -> Result<Identity, AuthError> {
        if !self.verifies_tokens() {
            return Err(AuthError::CannotRefresh(
                "this server verifies no tokens (dev auth without auth.jwt_secret); its \
                 connections do not expire",
            ));
        }
        self.verify(token)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Validates a user id from credentials: well-formed and not reserved.
///
/// # Errors
/// [`AuthError::InvalidUser`].
pub fn user_id(raw: &str) -> Result<UserId, AuthError> {
    let id = UserId::new(raw).map_err(|e| AuthError::InvalidUser(e.to_string()))?;
    if id.is_reserved() {
        return Err(AuthError::InvalidUser(
            "ids starting with `__` are reserved".into(),
        ));
    }
    Ok(id)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn subprotocol_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix("bearer.").map(str::to_owned))
}
