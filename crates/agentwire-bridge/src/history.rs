//! `HistoryBuffer`: the last events of one user's stream, bounded by count, bytes and age.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use agentwire_core::{Frame, ReplayGap};

use crate::ReadLimit;

/// The retained tail of one stream: at most `max_events` frames of at most `max_bytes` bytes in
/// all, none older than `ttl`. The newest frame is always held (unless `max_events` is 0), even
/// alone over `max_bytes`.
///
/// Frames are pushed with strictly increasing seqs (the bridge guarantees this), so the buffer is
/// always a contiguous run `first_seq..=last_seq`.
#[derive(Debug)]
pub struct HistoryBuffer {
    frames: VecDeque<(Instant, Frame)>,
    /// The sum of the held frames' lengths.
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    ttl: Duration,
}

/// What a reader asked for and what history could give.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replay {
    /// Events that were asked for but are no longer held.
    pub gap: Option<ReplayGap>,
    /// Held events after the requested seq, in order.
    pub frames: Vec<Frame>,
}

impl HistoryBuffer {
    /// An empty buffer.
    pub fn new(max_events: usize, max_bytes: usize, ttl: Duration) -> Self {
        Self {
            // Grows on demand: most streams are short or idle, and every user has one.
            frames: VecDeque::new(),
            bytes: 0,
            max_events,
            max_bytes,
            ttl,
        }
    }

    /// Appends the frame of the stream's next seq and drops what is over the bounds.
    pub fn push(&mut self, now: Instant, frame: Frame) {
        debug_assert!(
            self.frames
                .back()
                .is_none_or(|(_, f)| f.seq() + 1 == frame.seq())
        );
        if self.max_events == 0 {
            return;
        }
        if self.frames.len() == self.max_events {
            self.pop_front();
        }
        while !self.frames.is_empty() && self.bytes + frame.len() > self.max_bytes {
            self.pop_front();
        }
        self.bytes += frame.len();
        self.frames.push_back((now, frame));
        self.expire(now);
    }

    fn pop_front(&mut self) {
        if let Some((_, f)) = self.frames.pop_front() {
            self.bytes -= f.len();
        }
    }

    /// Drops frames older than the ttl.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.frames.front() {
            if now.saturating_duration_since(*at) > self.ttl {
                self.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes of the held frames (their JSON).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The oldest held seq, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.frames.front().map(|(_, f)| f.seq())
    }

    /// Number of held frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Everything after `after` up to `head` (the stream's last seq): a gap for what is no longer
    /// held, then the held frames within `limit` (see [`ReadLimit`]).
    pub fn after(&self, after: u64, head: u64, limit: ReadLimit) -> Replay {
        if after >= head {
            return Replay::default();
        }
        let first_held = self.first_seq().unwrap_or(head + 1);
        let gap = (first_held > after + 1).then(|| ReplayGap {
            from_seq: after + 1,
            to_seq: first_held - 1,
        });
        let skip = (after + 1).saturating_sub(first_held) as usize;
        let mut bytes = 0usize;
        let frames = self
            .frames
            .iter()
            .skip(skip)
            .take(limit.events)
            .take_while(|(_, f)| {
                bytes = bytes.saturating_add(f.len());
                bytes == f.len() || bytes <= limit.bytes
            })
            .map(|(_, f)| f.clone())
            .collect();
        Replay { gap, frames }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(seq: u64) -> Frame {
        Frame::event(seq, format!("{{\"seq\":{seq}}}").into_bytes())
    }

    /// A frame of exactly `len` bytes.
    fn sized(seq: u64, len: usize) -> Frame {
        let head = format!("{{\"seq\":{seq},\"p\":\"");
        let pad = "x".repeat(len - head.len() - 2);
        Frame::event(seq, format!("{head}{pad}\"}}").into_bytes())
    }

    const ALL: ReadLimit = ReadLimit::events(usize::MAX);

    #[test]
    fn holds_at_most_max_bytes_and_always_the_newest() {
        let now = Instant::now();
        let mut h = HistoryBuffer::new(100, 1000, Duration::from_secs(60));
        for s in 1..=10 {
            h.push(now, sized(s, 300));
        }
        // 3 × 300 fit in 1000, a fourth would not.
        assert_eq!((h.first_seq(), h.len(), h.bytes()), (Some(8), 3, 900));
        let r = h.after(0, 10, ALL);
        assert_eq!(
            r.gap,
            Some(ReplayGap {
                from_seq: 1,
                to_seq: 7
            })
        );
        // One frame larger than the whole bound replaces everything and is kept.
        h.push(now, sized(11, 1500));
        assert_eq!((h.first_seq(), h.len(), h.bytes()), (Some(11), 1, 1500));
        h.push(now, sized(12, 100));
        assert_eq!((h.first_seq(), h.len(), h.bytes()), (Some(12), 1, 100));
    }

    #[test]
    fn a_read_stops_before_the_frame_that_passes_its_byte_limit_but_returns_one() {
        let now = Instant::now();
        let mut h = HistoryBuffer::new(100, usize::MAX, Duration::from_secs(60));
        for s in 1..=5 {
            h.push(now, sized(s, 100));
        }
        let seqs = |r: Replay| r.frames.iter().map(Frame::seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(h.after(0, 5, ReadLimit::events(10).bytes(250))),
            [1, 2]
        );
        assert_eq!(
            seqs(h.after(0, 5, ReadLimit::events(10).bytes(300))),
            [1, 2, 3]
        );
        assert_eq!(seqs(h.after(3, 5, ReadLimit::events(10).bytes(10))), [4]);
        assert_eq!(
            seqs(h.after(0, 5, ReadLimit::events(2).bytes(1000))),
            [1, 2]
        );
        assert!(h.after(0, 5, ReadLimit::events(0)).frames.is_empty());
    }

    #[test]
    fn replays_after_a_seq_and_reports_the_gap() {
        let now = Instant::now();
        let mut h = HistoryBuffer::new(3, usize::MAX, Duration::from_secs(60));
        for s in 1..=5 {
            h.push(now, frame(s));
        }
        let r = h.after(0, 5, ALL);
        assert_eq!(
            r.gap,
            Some(ReplayGap {
                from_seq: 1,
                to_seq: 2
            })
        );
        assert_eq!(
            r.frames.iter().map(Frame::seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        let r = h.after(3, 5, ALL);
        assert_eq!((r.gap, r.frames.len()), (None, 2));
        assert_eq!(h.after(5, 5, ALL), Replay::default());
    }

    #[test]
    fn expires_by_age() {
        let t0 = Instant::now();
        let mut h = HistoryBuffer::new(10, usize::MAX, Duration::from_secs(1));
        h.push(t0, frame(1));
        h.push(t0 + Duration::from_millis(1500), frame(2));
        assert_eq!(h.first_seq(), Some(2));
        h.expire(t0 + Duration::from_secs(10));
        assert!(h.is_empty());
        let r = h.after(0, 2, ALL);
        assert_eq!(
            r.gap,
            Some(ReplayGap {
                from_seq: 1,
                to_seq: 2
            })
        );
    }

    proptest! {
        /// For any capacity, pushes and resume point: gap + frames cover exactly
        /// `after+1..=head`, in order, with no duplicate and no hole.
        #[test]
        fn replay_covers_the_requested_range_exactly(
            cap in 0usize..20, head in 0u64..60, after_frac in 0.0f64..1.2, max_bytes in 1usize..200
        ) {
            let now = Instant::now();
            let mut h = HistoryBuffer::new(cap, max_bytes, Duration::from_secs(60));
            for s in 1..=head { h.push(now, frame(s)); }
            prop_assert!(h.len() <= cap);
            prop_assert!(h.bytes() <= max_bytes || h.len() == 1);
            prop_assert_eq!(h.bytes(), h.after(0, head, ALL).frames.iter().map(Frame::len).sum::<usize>());
            let after = ((head as f64) * after_frac) as u64;
            let r = h.after(after, head, ALL);
            let mut covered: Vec<u64> = Vec::new();
            if let Some(g) = r.gap { covered.extend(g.from_seq..=g.to_seq); }
            covered.extend(r.frames.iter().map(Frame::seq));
            let expected: Vec<u64> = if after >= head { vec![] } else { (after + 1..=head).collect() };
            prop_assert_eq!(covered, expected);
        }
    }
}
