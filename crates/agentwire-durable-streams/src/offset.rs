//! Offsets (PROTOCOL.md §8) and live-mode cursors (§10.1).
//!
//! An offset is a position in the stream: the count of bytes before it, or for
//! `application/json` streams the count of messages. It is written like the reference server's
//! tokens, `<16 digits>_<16 digits>`, with the position in the second half and the first half
//! always zero: lexicographic order is numeric order, the sentinels `-1` and `now` can never be
//! minted, and a client that (against §8) hard-codes the reference's zero offset still works.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use crate::DsError;

/// Digits in each half of a token.
const HALF_WIDTH: usize = 16;
/// The largest position a token can carry.
const MAX_POSITION: u64 = 9_999_999_999_999_999;

/// A position in a stream.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Offset(pub u64);

impl Offset {
    /// The start of every stream.
    pub const ZERO: Offset = Offset(0);

    /// The token clients see.
    pub fn token(self) -> String {
        format!("{:0w$}_{:0w$}", 0, self.0.min(MAX_POSITION), w = HALF_WIDTH)
    }

    /// The token as a header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_str(&self.token()).expect("digits are a valid header value")
    }

    /// Parses a token this server minted.
    ///
    /// # Errors
    /// [`DsError::BadRequest`] when `token` is not `<16 digits>_<16 digits>`.
    pub fn parse(token: &str) -> Result<Self, DsError> {
        let digits = |s: &str| s.len() == HALF_WIDTH && s.bytes().all(|b| b.is_ascii_digit());
        match token.split_once('_') {
            Some((high, low)) if digits(high) && digits(low) => {
                low.parse().map(Offset).map_err(|_| malformed(token))
            }
            _ => Err(malformed(token)),
        }
    }
}

fn malformed(token: &str) -> DsError {
    DsError::bad(format!(
        "malformed offset {token:?}: use -1, now, or a Stream-Next-Offset value"
    ))
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.token())
    }
}

/// Where a read starts (`offset` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no offset: the first byte.
    Start,
    /// `now`: the tail when the request is served.
    Now,
    /// A minted offset.
    At(Offset),
}

impl ReadFrom {
    /// Parses the `offset` query value.
    ///
    /// # Errors
    /// [`DsError::BadRequest`] for an empty or malformed value.
    pub fn parse(value: Option<&str>) -> Result<Self, DsError> {
        match value {
            None | Some("-1") => Ok(Self::Start),
            Some("now") => Ok(Self::Now),
            Some("") => Err(DsError::bad(
                "empty offset: use -1, now, or a Stream-Next-Offset value",
            )),
            Some(token) => Offset::parse(token).map(Self::At),
        }
    }
}

/// Cursor intervals start at 2024-10-09T00:00:00Z (PROTOCOL.md §10.1).
const CURSOR_EPOCH_SECS: u64 = 1_728_432_000;
/// Cursor interval length.
const CURSOR_INTERVAL_SECS: u64 = 20;

/// The cursor for a live response: the current interval number, or — when the client already
/// holds a cursor at or past it — the client's cursor plus 1–3600 seconds of jitter, so cursors
/// never go backwards and a CDN cannot loop on one cached empty answer.
pub fn next_cursor(client: Option<&str>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(CURSOR_EPOCH_SECS);
    let interval = now.saturating_sub(CURSOR_EPOCH_SECS) / CURSOR_INTERVAL_SECS;
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(theirs) if theirs >= interval => {
            let jitter_secs = fastrand::u64(1..=3600);
            let steps = jitter_secs.div_ceil(CURSOR_INTERVAL_SECS).max(1);
            theirs.saturating_add(steps).to_string()
        }
        _ => interval.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_sort_like_positions_and_round_trip() {
        let (a, b) = (Offset(9), Offset(10));
        assert!(a.token() < b.token());
        assert_eq!(Offset::parse(&b.token()).unwrap(), b);
        assert_eq!(Offset(0).token(), "0000000000000000_0000000000000000");
    }

    #[test]
    fn sentinels_and_garbage() {
        assert_eq!(ReadFrom::parse(None).unwrap(), ReadFrom::Start);
        assert_eq!(ReadFrom::parse(Some("-1")).unwrap(), ReadFrom::Start);
        assert_eq!(ReadFrom::parse(Some("now")).unwrap(), ReadFrom::Now);
        for bad in [
            "",
            "1,2",
            "abc",
            "12 3",
            "0000000000000000_000000000000000x",
            "00000000000000000000",
        ] {
            assert!(ReadFrom::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_advances_past_a_colliding_client_cursor() {
        let now: u64 = next_cursor(None).parse().unwrap();
        let next: u64 = next_cursor(Some(&now.to_string())).parse().unwrap();
        assert!(next > now);
        assert_eq!(next_cursor(Some("1")), now.to_string());
    }
}
