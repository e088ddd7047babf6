//! `PUT` (create, fork), `POST` (append, close), `DELETE`, `HEAD`.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::*;
use crate::model::{AppendRequest, CreateRequest, Owner, StreamInfo};

pub(super) async fn put(
    ds: &DurableStreams,
    path: &str,
    location: &str,
    request: &HeaderMap,
    body: Bytes,
    caller: Owner,
) -> Result<Response, DsError> {
    let (ttl_secs, expires_at) = headers::expiry(request)?;
    let owner = caller.clone();
    let req = CreateRequest {
        caller,
        content_type: headers::text(request, &header::CONTENT_TYPE)?
            .filter(|c| !c.trim().is_empty()),
        ttl_secs,
        expires_at,
        closed: headers::closed(request),
        fork: headers::fork(request, &ds.config.mount)?,
        body,
    };
    let forked = req.fork.is_some();
    let created = ds.store.create(path, req).await?;
    if created.new {
        // A new stream's own data is pending for a subscription; a fork's inherited data is not.
        let from = if forked {
            created.info.tail
        } else {
            Offset::ZERO
        };
        ds.written(&owner, path, from).await;
    }
    let mut out = info_headers(&created.info);
    let status = if created.new {
        set(&mut out, header::LOCATION, location);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(respond(status, out, Bytes::new()))
}

pub(super) async fn post(
    ds: &DurableStreams,
    path: &str,
    request: &HeaderMap,
    body: Bytes,
    caller: Owner,
) -> Result<Response, DsError> {
    let close = headers::closed(request);
    if body.is_empty() && !close {
        return Err(DsError::bad(
            "an append needs a body (an empty POST is valid only with Stream-Closed: true)",
        ));
    }
    let writes_data = !body.is_empty();
    let req = AppendRequest {
        content_type: headers::text(request, &header::CONTENT_TYPE)?,
        stream_seq: headers::text(request, &STREAM_SEQ)?,
        producer: headers::producer(request)?,
        close,
        body,
        caller,
    };
    ds.charge_append(&req.caller)?;
    let owner = req.caller.clone();
    let appended = ds.store.append(path, req).await?;
    if writes_data && !appended.duplicate {
        ds.written(&owner, path, appended.from).await;
    }
    let mut out = HeaderMap::new();
    out.insert(STREAM_NEXT_OFFSET, appended.next.header_value());
    if appended.closed {
        out.insert(STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if let Some((epoch, seq)) = appended.producer_ack {
        out.insert(PRODUCER_EPOCH, HeaderValue::from(epoch));
        out.insert(PRODUCER_SEQ, HeaderValue::from(seq));
    }
    // 200 marks new data from a producer; a close-only or a duplicate is 204 (§5.2.1).
    let status = if appended.producer_ack.is_some() && !appended.duplicate && writes_data {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    Ok(respond(status, out, Bytes::new()))
}

pub(super) async fn delete(
    ds: &DurableStreams,
    path: &str,
    caller: Owner,
) -> Result<Response, DsError> {
    ds.store.delete(path, &caller).await?;
    ds.deleted(&caller, path).await;
    Ok(respond(
        StatusCode::NO_CONTENT,
        HeaderMap::new(),
        Bytes::new(),
    ))
}

pub(super) async fn head(
    ds: &DurableStreams,
    path: &str,
    caller: Owner,
) -> Result<Response, DsError> {
    let info = ds.store.head(path, &caller).await?;
    let mut out = info_headers(&info);
    if let Some(ttl) = info.config.ttl_secs {
        out.insert(STREAM_TTL, HeaderValue::from(ttl));
    }
    if let Some(expiry) = &info.config.expires_at {
        set(&mut out, STREAM_EXPIRES_AT, &expiry.raw);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(respond(StatusCode::OK, out, Bytes::new()))
}

/// `Content-Type`, `Stream-Next-Offset` and (when closed) `Stream-Closed`.
pub(super) fn info_headers(info: &StreamInfo) -> HeaderMap {
    let mut out = HeaderMap::new();
    set(&mut out, header::CONTENT_TYPE, &info.config.content_type);
    out.insert(STREAM_NEXT_OFFSET, info.tail.header_value());
    if info.closed {
        out.insert(STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    out
}
