//! Parsing the protocol's request headers strictly (PROTOCOL.md §5.1, §5.2, §5.2.1).

use axum::http::{HeaderMap, HeaderName};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::*;
use crate::DsError;
use crate::model::{Expiry, ForkSpec, ProducerTuple};
use crate::offset::Offset;

/// Largest producer epoch/seq: 2^53 - 1 (JavaScript-safe integers).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A header as text; `Err` when it is not visible ASCII.
pub(super) fn text(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, DsError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| DsError::bad(format!("header {name} is not valid text")))
        })
        .transpose()
}

/// `Stream-Closed`: present only when exactly `true` (case-insensitive); other values are
/// ignored (§4.1).
pub(super) fn closed(headers: &HeaderMap) -> bool {
    headers
        .get(&STREAM_CLOSED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// A non-negative decimal integer without sign, leading zeros, point or exponent.
fn strict_uint(value: &str) -> Option<u64> {
    let canonical = value == "0" || (!value.starts_with('0') && !value.is_empty());
    if canonical && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse().ok()
    } else {
        None
    }
}

/// `Stream-TTL` and `Stream-Expires-At` (at most one).
pub(super) fn expiry(headers: &HeaderMap) -> Result<(Option<u64>, Option<Expiry>), DsError> {
    let ttl = text(headers, &STREAM_TTL)?
        .map(|v| {
            strict_uint(v.trim()).ok_or_else(|| {
                DsError::bad(format!(
                    "Stream-TTL {v:?} is not a whole number of seconds (e.g. 3600)"
                ))
            })
        })
        .transpose()?;
    let expires = text(headers, &STREAM_EXPIRES_AT)?
        .map(|raw| {
            let at = OffsetDateTime::parse(raw.trim(), &Rfc3339).map_err(|e| {
                DsError::bad(format!(
                    "Stream-Expires-At {raw:?} is not an RFC 3339 timestamp: {e}"
                ))
            })?;
            let unix_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| DsError::bad("Stream-Expires-At is out of range"))?;
            Ok::<_, DsError>(Expiry { raw, unix_ms })
        })
        .transpose()?;
    if ttl.is_some() && expires.is_some() {
        return Err(DsError::bad(
            "send Stream-TTL or Stream-Expires-At, not both",
        ));
    }
    Ok((ttl, expires))
}

/// The fork headers of a `PUT`.
pub(super) fn fork(headers: &HeaderMap, mount: &str) -> Result<Option<ForkSpec>, DsError> {
    let source = text(headers, &STREAM_FORKED_FROM)?;
    let offset = text(headers, &STREAM_FORK_OFFSET)?;
    let sub = text(headers, &STREAM_FORK_SUB_OFFSET)?;
    let Some(source) = source else {
        if offset.is_some() || sub.is_some() {
            return Err(DsError::bad(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From",
            ));
        }
        return Ok(None);
    };
    let offset = offset.map(|o| Offset::parse(o.trim())).transpose()?;
    let sub_offset = match sub {
        None => 0,
        Some(s) => strict_uint(s.trim()).ok_or_else(|| {
            DsError::bad(format!(
                "Stream-Fork-Sub-Offset {s:?} is not a non-negative integer"
            ))
        })?,
    };
    if sub_offset > 0 && offset.is_none() {
        return Err(DsError::bad(
            "Stream-Fork-Sub-Offset needs Stream-Fork-Offset",
        ));
    }
    let source = source.trim();
    // Accept the path relative to the mount (`/v1/stream/a`) or with it (`/ds/v1/stream/a`).
    let relative = source
        .strip_prefix(mount)
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(source);
    if !relative.starts_with('/') {
        return Err(DsError::bad(
            "Stream-Forked-From must be a path starting with /",
        ));
    }
    Ok(Some(ForkSpec {
        source: relative.to_owned(),
        offset,
        sub_offset,
    }))
}

/// `Producer-Id`, `Producer-Epoch`, `Producer-Seq`: all three or none.
pub(super) fn producer(headers: &HeaderMap) -> Result<Option<ProducerTuple>, DsError> {
    let id = text(headers, &PRODUCER_ID)?;
    let epoch = text(headers, &PRODUCER_EPOCH)?;
    let seq = text(headers, &PRODUCER_SEQ)?;
    let (id, epoch, seq) = match (id, epoch, seq) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(epoch), Some(seq)) => (id, epoch, seq),
        _ => {
            return Err(DsError::bad(
                "Producer-Id, Producer-Epoch and Producer-Seq go together: send all three or none",
            ));
        }
    };
    if id.trim().is_empty() {
        return Err(DsError::bad("Producer-Id must not be empty"));
    }
    let number = |name: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_SAFE_INTEGER && v.trim().bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| DsError::bad(format!("{name} {v:?} is not an integer in 0..=2^53-1")))
    };
    Ok(Some(ProducerTuple {
        epoch: number("Producer-Epoch", &epoch)?,
        seq: number("Producer-Seq", &seq)?,
        id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_must_be_canonical() {
        assert_eq!(strict_uint("3600"), Some(3600));
        assert_eq!(strict_uint("0"), Some(0));
        for bad in ["+3600", "03600", "3600.0", "3.6e3", "-1", ""] {
            assert_eq!(strict_uint(bad), None, "{bad}");
        }
    }
}
