//! `FrameArena`: one stream's event frames written back to back into shared chunks.
//!
//! A stream's history holds its last `max_events` frames, so every new frame replaces one written
//! `max_events` events ago — memory long gone from the CPU cache. Invariant: no allocation and
//! no free per frame. Frames are appended to the end of a chunk (sequential writes), and each
//! frame is a `Bytes` slice sharing the chunk's one refcount; a chunk is freed when its last
//! frame is dropped.

use agentwire_core::{Frame, RunEvent};
use bytes::BytesMut;

/// The first chunk of a stream; each next one doubles, up to [`MAX_CHUNK`]. A stream with a few
/// events keeps a small chunk; a busy one amortizes its allocations over ~100 frames.
const MIN_CHUNK: usize = 1024;
/// The largest chunk. What a stream holds beyond its frames' own bytes is at most about two
/// chunks: the unwritten end of the newest, and the dropped start of the oldest.
const MAX_CHUNK: usize = 32 * 1024;
/// A chunk with less room than this left starts a new one, so that a frame rarely straddles the
/// end (which costs a copy of the frame into the next chunk).
const MIN_ROOM: usize = 512;

/// Writes a stream's event frames into shared chunks (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct FrameArena {
    chunk: BytesMut,
    next_chunk: usize,
}

impl FrameArena {
    /// The frame of `event` at `seq`, serialized once into the current chunk, or its size
    /// ([`RunEvent::size_at_any_seq`]) when that is over `max_bytes`: then nothing is kept.
    pub(crate) fn frame(
        &mut self,
        seq: u64,
        event: &RunEvent,
        max_bytes: usize,
    ) -> Result<Frame, usize> {
        if self.chunk.capacity() < MIN_ROOM {
            self.next_chunk = self.next_chunk.clamp(MIN_CHUNK, MAX_CHUNK);
            self.chunk = BytesMut::with_capacity(self.next_chunk);
            self.next_chunk *= 2;
        }
        event.write_envelope(seq, &mut self.chunk);
        // A seq is 1 to 20 digits: a frame 19 bytes or more below the bound fits at any seq, and
        // only one nearer is measured.
        if self.chunk.len() + 19 > max_bytes {
            let size = RunEvent::size_at_any_seq(self.chunk.len(), seq);
            if size > max_bytes {
                return Err(self.discard(size));
            }
        }
        Ok(Frame::event_of_kind(
            seq,
            self.chunk.split().freeze(),
            &event.kind,
        ))
    }

    /// Drops the frame just written (over the bound) and returns its size. A chunk the frame
    /// grew past the largest is let go rather than kept.
    #[cold]
    fn discard(&mut self, size: usize) -> usize {
        if self.chunk.capacity() > MAX_CHUNK {
            self.chunk = BytesMut::new();
        }
        self.chunk.clear();
        size
    }

    /// Lets go of the current chunk's unwritten end and starts small again: for a stream whose
    /// history has emptied (a later event may be long in coming).
    pub(crate) fn release(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentwire_core::{AgentThinking, EventKind, RunId, ThreadId};

    use super::*;

    fn event(thought: String) -> RunEvent {
        RunEvent {
            run_id: RunId::new("r_1").unwrap(),
            thread_id: ThreadId::new("t_1").unwrap(),
            agent: Arc::from("demo"),
            ts: 1,
            kind: EventKind::AgentThinking(AgentThinking {
                thought,
                step: None,
            }),
        }
    }

    #[test]
    fn frames_are_exactly_the_envelope_and_outlive_their_chunk() {
        let mut arena = FrameArena::default();
        // Sizes around MIN_ROOM and past MAX_CHUNK: frames that straddle a chunk's end, and a
        // frame larger than any chunk.
        let sizes = [10, 300, 500, 900, 2000, 40_000, 3, 511, 512, 513];
        let mut frames = Vec::new();
        for (i, n) in sizes.iter().cycle().take(200).enumerate() {
            let e = event("x".repeat(*n));
            let seq = i as u64 + 1;
            let frame = arena.frame(seq, &e, usize::MAX).unwrap();
            assert_eq!(frame.seq(), seq);
            assert_eq!(frame.event_type(), Some("agent_thinking"));
            assert_eq!(frame.bytes().as_ref(), e.to_envelope_json(seq).as_slice());
            frames.push((frame, e.to_envelope_json(seq)));
        }
        arena.release();
        drop(arena);
        // Every frame still reads back intact once the arena and its chunks are gone.
        for (frame, json) in &frames {
            assert_eq!(frame.bytes().as_ref(), json.as_slice());
        }
    }

    #[test]
    fn chunks_grow_from_small_to_the_cap_and_start_small_after_release() {
        let mut arena = FrameArena::default();
        let e = event("y".repeat(200));
        arena.frame(1, &e, usize::MAX).unwrap();
        assert!(arena.chunk.capacity() < MIN_CHUNK);
        for seq in 2..2000 {
            arena.frame(seq, &e, usize::MAX).unwrap();
            assert!(arena.chunk.capacity() < MAX_CHUNK);
        }
        assert_eq!(arena.next_chunk, 2 * MAX_CHUNK);
        arena.release();
        arena.frame(2000, &e, usize::MAX).unwrap();
        assert_eq!(arena.next_chunk, 2 * MIN_CHUNK);
    }
}
