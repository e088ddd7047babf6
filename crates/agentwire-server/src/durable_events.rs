//! agentwire's own event streams as read-only Durable Streams, beside the stored ones:
//! - `/ds/agentwire/events`: the caller's event stream;
//! - `/ds/agentwire/runs/{run_id}`: one run's events, closed (EOF) after its `agent_completed`
//!   or `agent_error`;
//! - `/ds/agentwire/runs/{run_id}/ai-sdk` and `…/ag-ui`: the same run mapped for a front end
//!   (`durable_views.rs`): AI SDK UI message stream chunks, AG-UI events (TanStack AI).
//!
//! All are `application/json` streams (of the event frames `/ws` delivers, or of the mapped
//! chunks). An offset's position is a seq: reading from offset `n` returns what the events with
//! seq > `n` show, and `Stream-Next-Offset` carries the last seq delivered. Writes answer 405.

use std::sync::Arc;
use std::time::Duration;

use agentwire_bridge::{AgentWebSocketBridge, ConnectionQueue, ResumeFrom};
use agentwire_core::async_trait;
use agentwire_core::{Frame, UserId};
use agentwire_durable_streams::model::{
    AppendRequest, Appended, CreateRequest, Created, Owner, ReadChunk, ReadRequest, StreamConfig,
    StreamInfo,
};
use agentwire_durable_streams::offset::{Offset, ReadFrom};
use agentwire_durable_streams::{DsError, StreamStore};
use axum::body::Bytes;

use crate::durable_views::View;

/// Where agentwire's streams live under `/ds`.
const PREFIX: &str = "/agentwire/";
/// Events read from history per page.
const PAGE: usize = 1000;

/// A [`StreamStore`] serving agentwire's event streams under `/agentwire/…` and every other
/// path from `stored`.
pub(crate) struct WithAgentwireStreams {
    pub(crate) stored: Arc<dyn StreamStore>,
    pub(crate) bridge: AgentWebSocketBridge,
    pub(crate) queue_bytes: usize,
}

/// Which agentwire stream a path names.
enum Source<'a> {
    Events,
    Run(&'a str, View),
}

fn source(path: &str) -> Option<Result<Source<'_>, DsError>> {
    let rest = path.strip_prefix(PREFIX)?;
    let found = match rest.split_once('/') {
        None if rest == "events" => Some(Source::Events),
        Some(("runs", run_path)) => {
            let (run, view) = match run_path.split_once('/') {
                None => (run_path, Some(View::Frames)),
                Some((run, suffix)) => (run, View::named(suffix)),
            };
            view.filter(|_| !run.is_empty())
                .map(|view| Source::Run(run, view))
        }
        _ => None,
    };
    Some(found.ok_or(DsError::NotFound))
}

fn user_of(owner: &Owner) -> Result<UserId, DsError> {
    owner
        .0
        .strip_prefix("user:")
        .and_then(|id| UserId::new(id).ok())
        .ok_or(DsError::NotFound)
}

fn unavailable(e: impl std::fmt::Display) -> DsError {
    DsError::Store(format!("event history: {e}"))
}

fn read_only() -> DsError {
    DsError::MethodNotAllowed("agentwire's event streams are read-only")
}

/// The fields of an event frame this mapping needs.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    run_id: Option<&'a str>,
}

fn head_of(frame: &Frame) -> EventHead<'_> {
    serde_json::from_slice(frame.bytes()).unwrap_or(EventHead {
        kind: None,
        run_id: None,
    })
}

fn info(tail: u64, closed: bool, epoch: &str) -> StreamInfo {
    StreamInfo {
        config: StreamConfig {
            content_type: "application/json".into(),
            ttl_secs: None,
            expires_at: None,
        },
        tail: Offset(tail),
        closed,
        // ETags change when the history's epoch does (a restarted memory broker).
        incarnation: epoch.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }),
    }
}

impl WithAgentwireStreams {
    /// The caller's events after `from`, as the protocol reads them.
    async fn read_events(&self, user: &UserId, req: &ReadRequest) -> Result<ReadChunk, DsError> {
        let from = match req.from {
            ReadFrom::Start => 0,
            ReadFrom::Now => self.bridge.stream_head(user).await.map_err(unavailable)?.1,
            ReadFrom::At(Offset(seq)) => seq,
        };
        let page = self
            .bridge
            .history_after(user, from, None, PAGE)
            .await
            .map_err(unavailable)?;
        if page.gap.is_some() && req.from != ReadFrom::Start {
            return Err(DsError::Gone); // the offset is older than the history kept
        }
        let from = from.min(page.head);
        let (mut parts, mut next, mut bytes) = (Vec::new(), from, 0);
        for frame in &page.frames {
            if bytes >= req.max_bytes && !parts.is_empty() {
                break;
            }
            bytes += frame.len();
            parts.push(frame.bytes().clone());
            next = frame.seq();
        }
        if parts.len() == page.frames.len() {
            next = next.max(page.head);
        }
        Ok(ReadChunk {
            info: info(page.head, false, &page.epoch),
            start: Offset(from),
            next: Offset(next),
            parts,
        })
    }

    /// One run's events after `from`: the user's history filtered by `run_id`, ending at the
    /// run's terminal event.
    async fn read_run(
        &self,
        user: &UserId,
        (run, view): (&str, View),
        req: &ReadRequest,
    ) -> Result<ReadChunk, DsError> {
        let (mut frames, mut after) = (Vec::<Frame>::new(), 0);
        let (mut epoch, mut head);
        let mut terminal = None;
        // Scan the whole history window (bounded by history.max_events) for the run's events.
        loop {
            let page = self
                .bridge
                .history_after(user, after, None, PAGE)
                .await
                .map_err(unavailable)?;
            (epoch, head) = (page.epoch, page.head);
            let Some(last) = page.frames.last().map(Frame::seq) else {
                break;
            };
            for frame in page.frames {
                let event = head_of(&frame);
                if event.run_id != Some(run) || terminal.is_some() {
                    continue;
                }
                if matches!(event.kind, Some("agent_completed" | "agent_error")) {
                    terminal = Some(frame.seq());
                }
                frames.push(frame);
            }
            after = last;
            if after >= head {
                break;
            }
        }
        let tail = terminal.unwrap_or(head);
        let from = match req.from {
            ReadFrom::Start => 0,
            ReadFrom::Now => tail,
            ReadFrom::At(Offset(seq)) => seq.min(tail),
        };
        let (mut parts, mut next, mut bytes) = (Vec::<Bytes>::new(), from, 0);
        let mut pending = view.render(run, &frames);
        pending.retain(|(seq, _)| *seq > from);
        let mut taken = 0;
        // One event's messages are returned together: offsets stay seqs.
        for (seq, messages) in pending.iter() {
            if bytes >= req.max_bytes && taken > 0 {
                break;
            }
            bytes += messages.iter().map(Bytes::len).sum::<usize>();
            parts.extend(messages.iter().cloned());
            next = *seq;
            taken += 1;
        }
        if taken == pending.len() {
            next = tail;
        }
        Ok(ReadChunk {
            info: info(tail, terminal.is_some(), &epoch),
            start: Offset(from),
            next: Offset(next),
            parts,
        })
    }

    /// Waits for an event of `user` after `seen` through a bridge attachment (resuming at
    /// `seen`, so an event that landed before the attach is replayed at once).
    async fn wait_for_event(
        &self,
        user: &UserId,
        seen: Offset,
        timeout: Duration,
    ) -> Result<(), DsError> {
        let queue = Arc::new(ConnectionQueue::new(self.queue_bytes));
        let resume = ResumeFrom {
            last_seq: seen.0,
            epoch: None,
        };
        let (attachment, _) = self
            .bridge
            .attach_or_live(user, queue.clone(), Some(resume))
            .await
            .map_err(|e| DsError::TooMany(e.to_string()))?;
        let mut frames = Vec::new();
        let _ = tokio::time::timeout(timeout, queue.next_batch(&mut frames, 1)).await;
        queue.mark_gone();
        self.bridge.detach(user, attachment.connection_id).await;
        Ok(())
    }
}

#[async_trait]
impl StreamStore for WithAgentwireStreams {
    async fn create(&self, path: &str, req: CreateRequest) -> Result<Created, DsError> {
        match source(path) {
            Some(_) => Err(read_only()),
            None => self.stored.create(path, req).await,
        }
    }

    async fn append(&self, path: &str, req: AppendRequest) -> Result<Appended, DsError> {
        match source(path) {
            Some(_) => Err(read_only()),
            None => self.stored.append(path, req).await,
        }
    }

    async fn read(&self, path: &str, req: ReadRequest) -> Result<ReadChunk, DsError> {
        match source(path) {
            None => self.stored.read(path, req).await,
            Some(source) => {
                let user = user_of(&req.caller)?;
                match source? {
                    Source::Events => self.read_events(&user, &req).await,
                    Source::Run(run, view) => self.read_run(&user, (run, view), &req).await,
                }
            }
        }
    }

    async fn head(&self, path: &str, caller: &Owner) -> Result<StreamInfo, DsError> {
        if source(path).is_none() {
            return self.stored.head(path, caller).await;
        }
        let req = ReadRequest {
            caller: caller.clone(),
            from: ReadFrom::Now,
            max_bytes: 1,
        };
        Ok(self.read(path, req).await?.info)
    }

    async fn delete(&self, path: &str, caller: &Owner) -> Result<(), DsError> {
        match source(path) {
            Some(_) => Err(read_only()),
            None => self.stored.delete(path, caller).await,
        }
    }

    async fn wait(
        &self,
        path: &str,
        caller: &Owner,
        seen: Offset,
        timeout: Duration,
    ) -> Result<(), DsError> {
        match source(path) {
            None => self.stored.wait(path, caller, seen, timeout).await,
            Some(_) => self.wait_for_event(&user_of(caller)?, seen, timeout).await,
        }
    }
}
