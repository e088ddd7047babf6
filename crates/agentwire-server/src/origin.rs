//! Cross-site protection for every route: a browser request whose `Origin` is not allowed is
//! refused (403), and in dev mode only loopback `Host` names are served, so a DNS-rebinding page
//! (its own name resolving to 127.0.0.1) is refused too.
//!
//! Allowed origins: the server's own (the `Origin` names the same host and port as `Host`),
//! every entry of `allowed_origins`, and in dev mode any loopback origin (a front-end dev server
//! on another port). A request without `Origin` (curl, a server, a plain navigation) passes:
//! the check is against web pages acting with the visitor's browser.

use agentwire_core::ErrorCode;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// What the middleware needs from the configuration, decided once.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    /// Dev auth: loopback `Host` only, loopback origins allowed.
    dev: bool,
    /// `allowed_origins`, lowercased, without a trailing `/`.
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub(crate) fn new(dev: bool, allowed: &[String]) -> Self {
        Self {
            dev,
            allowed: allowed
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// `Err(message)` when the request must be refused. A CORS preflight (`OPTIONS`) is checked
    /// for its `Host` only: it carries no credentials and does nothing, and the request it
    /// announces is checked for its `Origin` when it comes.
    fn check(&self, method: &axum::http::Method, headers: &HeaderMap) -> Result<(), String> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if self.dev && !is_loopback_host(host) {
            return Err(format!(
                "this development server answers only to localhost or a loopback address, not to the host name {host:?}"
            ));
        }
        if method == axum::http::Method::OPTIONS {
            return Ok(());
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let origin = origin.trim_end_matches('/');
        let origin_authority = origin.split_once("://").map_or("", |(_, rest)| rest);
        let same_origin = !origin_authority.is_empty()
            && without_default_port(origin_authority)
                == without_default_port(&host.to_ascii_lowercase());
        if same_origin
            || self.allowed.iter().any(|a| a == origin)
            || (self.dev && is_loopback_host(origin_authority))
        {
            return Ok(());
        }
        Err(format!(
            "requests from web pages at {origin} are not allowed; add it to allowed_origins if that site is yours"
        ))
    }
}

/// The middleware: refuses with a JSON 403 what [`OriginPolicy::check`] refuses.
pub(crate) async fn guard(
    State(policy): State<std::sync::Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(message) => {
            ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Unauthorized, message).into_response()
        }
    }
}

/// `host[:port]` with `:80` / `:443` dropped, for comparing an `Origin` with a `Host`.
fn without_default_port(authority: &str) -> &str {
    authority
        .strip_suffix(":80")
        .or_else(|| authority.strip_suffix(":443"))
        .unwrap_or(authority)
}

/// Whether `authority` (`host[:port]`) names this machine: `localhost`, `*.localhost`,
/// `127.0.0.0/8` or `[::1]`.
fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    const GET: Method = Method::GET;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn dev_mode_serves_loopback_hosts_only() {
        let dev = OriginPolicy::new(true, &[]);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "app.localhost",
        ] {
            assert!(dev.check(&GET, &headers(host, None)).is_ok(), "{host}");
        }
        for host in ["evil.example:8080", "192.168.1.5:8080", ""] {
            assert!(dev.check(&GET, &headers(host, None)).is_err(), "{host}");
        }
    }

    #[test]
    fn origins_same_listed_or_loopback_in_dev() {
        let dev = OriginPolicy::new(true, &[]);
        let h = |o| headers("127.0.0.1:8080", Some(o));
        assert!(dev.check(&GET, &h("http://127.0.0.1:8080")).is_ok());
        assert!(dev.check(&GET, &h("http://localhost:3000")).is_ok());
        assert!(dev.check(&GET, &h("https://evil.example")).is_err());
        assert!(dev.check(&GET, &h("null")).is_err());

        let jwt = OriginPolicy::new(false, &["https://app.example.com/".into()]);
        let h = |o| headers("api.example.com", Some(o));
        assert!(jwt.check(&GET, &h("https://api.example.com")).is_ok());
        assert!(jwt.check(&GET, &h("https://app.example.com")).is_ok());
        assert!(jwt.check(&GET, &h("http://localhost:3000")).is_err());
        assert!(jwt.check(&GET, &h("https://evil.example")).is_err());
        assert!(
            jwt.check(
                &GET,
                &headers("api.example.com:443", Some("https://api.example.com"))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_preflight_is_checked_for_its_host_only() {
        let dev = OriginPolicy::new(true, &[]);
        let foreign = headers("127.0.0.1:8080", Some("https://evil.example"));
        assert!(dev.check(&Method::OPTIONS, &foreign).is_ok());
        assert!(dev.check(&Method::POST, &foreign).is_err());
        let rebound = headers("evil.example", Some("https://evil.example"));
        assert!(dev.check(&Method::OPTIONS, &rebound).is_err());
    }
}
