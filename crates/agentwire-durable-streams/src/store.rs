//! `StreamStore`: where streams live. The HTTP layer parses and answers; a store executes each
//! operation atomically.

use std::time::Duration;

use async_trait::async_trait;

use crate::DsError;
use crate::model::{
    AppendRequest, Appended, CreateRequest, Created, Owner, ReadChunk, ReadRequest, StreamInfo,
};
use crate::offset::Offset;

/// Per-owner bounds a store enforces (429 past them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerLimits {
    /// Streams an owner may hold at once.
    pub max_streams: u64,
    /// Payload bytes an owner may hold across its streams.
    pub max_bytes: u64,
}

/// Storage for Durable Streams.
///
/// # What an implementor must guarantee
/// - Each call is atomic and linearizable per stream: two appends never interleave, and a
///   producer's validation and append happen as one step (PROTOCOL.md §5.2.1).
/// - Appends run through [`StreamMeta::admit`](crate::stream::StreamMeta::admit), creation and
///   forks through the helpers of [`stream`](crate::stream), so every store answers alike.
/// - A stream is visible only to its owner: other callers get [`DsError::Forbidden`]; expired
///   streams answer [`DsError::NotFound`], soft-deleted ones [`DsError::Gone`].
/// - Reads and writes renew a sliding TTL; `head` and `wait` do not.
/// - `wait` returns once the stream's tail passes `seen`, the stream closes or disappears, or
///   `timeout` passes — whichever is first — and never misses an append that lands while it
///   registers. It reports nothing: the caller reads again.
#[async_trait]
pub trait StreamStore: Send + Sync + 'static {
    /// `PUT`: create, fork, or confirm an identical existing stream.
    async fn create(&self, path: &str, req: CreateRequest) -> Result<Created, DsError>;
    /// `POST`: append and/or close.
    async fn append(&self, path: &str, req: AppendRequest) -> Result<Appended, DsError>;
    /// `GET` (catch-up part of every mode).
    async fn read(&self, path: &str, req: ReadRequest) -> Result<ReadChunk, DsError>;
    /// `HEAD`.
    async fn head(&self, path: &str, caller: &Owner) -> Result<StreamInfo, DsError>;
    /// `DELETE` (soft delete while forks reference the stream).
    async fn delete(&self, path: &str, caller: &Owner) -> Result<(), DsError>;
    /// Waits for data past `seen` (see the trait docs).
    async fn wait(
        &self,
        path: &str,
        caller: &Owner,
        seen: Offset,
        timeout: Duration,
    ) -> Result<(), DsError>;
}
