//! The reserved `__ds` control prefix (PROTOCOL.md §6, §7), routed before any stream: the JWK
//! Set (public), subscription management and claims (the owner's credentials), and callbacks,
//! acks and releases (a wake token).

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{DurableStreams, absolute_url};
use crate::model::Owner;
use crate::subscription::{Finish, SubError};

/// Largest control request body.
const MAX_BODY: usize = 64 * 1024;

/// Answers a request under `/__ds/` (`path` is relative to the mount).
pub(super) async fn dispatch(
    ds: &DurableStreams,
    parts: Parts,
    body: Body,
    path: &str,
) -> Response {
    match route(ds, &parts, body, path).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(
    ds: &DurableStreams,
    parts: &Parts,
    body: Body,
    path: &str,
) -> Result<Response, SubError> {
    let full = absolute_url(parts);
    let base = full.strip_suffix(path).unwrap_or(&full).to_owned();
    let segments: Vec<&str> = path.trim_start_matches("/__ds/").split('/').collect();
    match segments.as_slice() {
        ["jwks.json"] if parts.method == Method::GET => {
            let jwks = ds.subscriptions.jwks().await?;
            let headers = [
                (header::CONTENT_TYPE, "application/jwk-set+json"),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ];
            Ok((
                headers.map(|(k, v)| (k, HeaderValue::from_static(v))),
                jwks.to_string(),
            )
                .into_response())
        }
        ["jwks.json"] => Err(not_allowed("use GET")),
        ["subscriptions", id, rest @ ..] => subscription(ds, parts, body, id, rest, &base).await,
        _ => Err(SubError::new(
            404,
            "SUBSCRIPTION_NOT_FOUND",
            "no such Durable Streams control route",
        )),
    }
}

/// `/__ds/subscriptions/:id/<rest>`.
async fn subscription(
    ds: &DurableStreams,
    parts: &Parts,
    body: Body,
    id: &str,
    rest: &[&str],
    base: &str,
) -> Result<Response, SubError> {
    let engine = &ds.subscriptions;
    let no_content = || Ok(StatusCode::NO_CONTENT.into_response());
    match (&parts.method, rest) {
        (&Method::PUT, []) => {
            let body = json_body(body).await?;
            let (created, view) = engine.create(&owner(ds, parts)?, id, &body, base).await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, axum::Json(view)).into_response())
        }
        (&Method::GET, []) => {
            Ok(axum::Json(engine.get(&owner(ds, parts)?, id, base).await?).into_response())
        }
        (&Method::DELETE, []) => {
            engine.delete(&owner(ds, parts)?, id).await?;
            no_content()
        }
        (&Method::POST, ["streams"]) => {
            let owner = owner(ds, parts)?;
            engine
                .add_streams(&owner, id, &json_body(body).await?)
                .await?;
            no_content()
        }
        (&Method::DELETE, ["streams", path @ ..]) if !path.is_empty() => {
            let stream = percent_decode(&path.join("/"))?;
            engine
                .remove_stream(&owner(ds, parts)?, id, &stream)
                .await?;
            no_content()
        }
        (&Method::POST, ["claim"]) => {
            let owner = owner(ds, parts)?;
            let claimed = engine.claim(&owner, id, &json_body(body).await?).await?;
            Ok(axum::Json(claimed).into_response())
        }
        (&Method::POST, [action @ ("callback" | "ack" | "release")]) => {
            ds.charge_token_request(&parts.extensions)?;
            let kind = match *action {
                "callback" => Finish::Callback,
                "ack" => Finish::Ack,
                _ => Finish::Release,
            };
            let token = bearer(parts).ok_or_else(|| {
                SubError::new(
                    401,
                    "TOKEN_INVALID",
                    "a wake token is required (Authorization: Bearer)",
                )
            })?;
            match engine
                .finish(&token, id, &json_body(body).await?, kind)
                .await?
            {
                Some(answer) => Ok(axum::Json(answer).into_response()),
                None => no_content(),
            }
        }
        (_, [] | ["streams", ..] | ["claim" | "callback" | "ack" | "release"]) => Err(not_allowed(
            "this method does not apply to this control route",
        )),
        _ => Err(SubError::new(
            404,
            "SUBSCRIPTION_NOT_FOUND",
            "no such subscription route",
        )),
    }
}

fn not_allowed(message: &str) -> SubError {
    SubError::new(405, "METHOD_NOT_ALLOWED", message)
}

/// The request's owner by the server's authentication.
fn owner(ds: &DurableStreams, parts: &Parts) -> Result<Owner, SubError> {
    let query = parts.uri.query().unwrap_or_default();
    Ok(ds.authenticate(&parts.headers, query)?.owner)
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn json_body(body: Body) -> Result<Value, SubError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        SubError::new(
            413,
            "INVALID_REQUEST",
            format!("control bodies are at most {MAX_BODY} bytes"),
        )
    })?;
    if bytes.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| SubError::new(400, "INVALID_REQUEST", "the body is not valid JSON"))
}

/// `%XX`-decodes a path segment (`manual%2Fb` → `manual/b`).
fn percent_decode(raw: &str) -> Result<String, SubError> {
    let bad = || {
        SubError::new(
            400,
            "INVALID_REQUEST",
            "malformed percent-encoding in the stream path",
        )
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("manual%2Fb").unwrap(), "manual/b");
        assert_eq!(percent_decode("a%20b/c").unwrap(), "a b/c");
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("a%zz").is_err());
    }
}
