//! `HistoryBuffer`: the last events of one user's stream, bounded by count and age.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use agentwire_core::{Frame, ReplayGap};

/// The retained tail of one stream: at most `max_events` frames, none older than `ttl`.
///
/// Frames are pushed with strictly increasing seqs (the bridge guarantees this), so the buffer is
/// always a contiguous run `first_seq..=last_seq`.
#[derive(Debug)]
pub struct HistoryBuffer {
    frames: VecDeque<(Instant, Frame)>,
    max_events: usize,
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
    pub fn new(max_events: usize, ttl: Duration) -> Self {
        Self {
            // Grows on demand: most streams are short or idle, and every user has one.
            frames: VecDeque::new(),
            max_events,
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
            self.frames.pop_front();
        }
        self.frames.push_back((now, frame));
        self.expire(now);
    }

    /// Drops frames older than the ttl.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.frames.front() {
            if now.saturating_duration_since(*at) > self.ttl {
                self.frames.pop_front();
            } else {
                break;
            }
        }
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
    /// held, then the held frames, at most `limit` of them.
    pub fn after(&self, after: u64, head: u64, limit: usize) -> Replay {
        if after >= head {
            return Replay::default();
        }
        let first_held = self.first_seq().unwrap_or(head + 1);
        let gap = (first_held > after + 1).then(|| ReplayGap {
            from_seq: after + 1,
            to_seq: first_held - 1,
        });
        let skip = (after + 1).saturating_sub(first_held) as usize;
        let frames = self
            .frames
            .iter()
            .skip(skip)
            .take(limit)
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

    #[test]
    fn replays_after_a_seq_and_reports_the_gap() {
        let now = Instant::now();
        let mut h = HistoryBuffer::new(3, Duration::from_secs(60));
        for s in 1..=5 {
            h.push(now, frame(s));
        }
        let r = h.after(0, 5, usize::MAX);
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
        let r = h.after(3, 5, usize::MAX);
        assert_eq!((r.gap, r.frames.len()), (None, 2));
        assert_eq!(h.after(5, 5, usize::MAX), Replay::default());
    }

    #[test]
    fn expires_by_age() {
        let t0 = Instant::now();
        let mut h = HistoryBuffer::new(10, Duration::from_secs(1));
        h.push(t0, frame(1));
        h.push(t0 + Duration::from_millis(1500), frame(2));
        assert_eq!(h.first_seq(), Some(2));
        h.expire(t0 + Duration::from_secs(10));
        assert!(h.is_empty());
        let r = h.after(0, 2, usize::MAX);
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
            cap in 0usize..20, head in 0u64..60, after_frac in 0.0f64..1.2
        ) {
            let now = Instant::now();
            let mut h = HistoryBuffer::new(cap, Duration::from_secs(60));
            for s in 1..=head { h.push(now, frame(s)); }
            prop_assert!(h.len() <= cap);
            let after = ((head as f64) * after_frac) as u64;
            let r = h.after(after, head, usize::MAX);
            let mut covered: Vec<u64> = Vec::new();
            if let Some(g) = r.gap { covered.extend(g.from_seq..=g.to_seq); }
            covered.extend(r.frames.iter().map(Frame::seq));
            let expected: Vec<u64> = if after >= head { vec![] } else { (after + 1..=head).collect() };
            prop_assert_eq!(covered, expected);
        }
    }
}
