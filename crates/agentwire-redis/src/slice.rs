//! Decoding the read script's reply: picking a page of frames out of the batch entries.

use agentwire_bridge::{ReadLimit, StreamSlice};
use agentwire_core::{Frame, ReplayGap};
use bytes::Bytes;
use redis::Value;

/// (first seq, last seq) of a stream entry id `<last seq>-<first seq>`.
fn parse_range(id: &str) -> Option<(u64, u64)> {
    let (last, first) = id.split_once('-')?;
    let (first, last) = (first.parse().ok()?, last.parse().ok()?);
    (first <= last).then_some((first, last))
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// The frames of one batch, `\n`-joined (frames are compact JSON, which holds no raw newline), as
/// slices of `joined`: the one way both reads and the live feed take a batch apart.
pub(crate) fn frames_of(joined: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut rest = Some(0);
    std::iter::from_fn(move || {
        let start = rest?;
        Some(match memchr::memchr(b'\n', &joined[start..]) {
            Some(len) => {
                rest = Some(start + len + 1);
                joined.slice(start..start + len)
            }
            None => {
                rest = None;
                joined.slice(start..)
            }
        })
    })
}

/// The frames of one batch entry, each with its seq; `None` when their number does not match
/// the id's range.
pub(crate) fn split_entry(id: &str, joined: Vec<u8>) -> Option<Vec<(u64, Bytes)>> {
    let (first, last) = parse_range(id)?;
    let joined = Bytes::from(joined);
    let out: Vec<Bytes> = frames_of(&joined).collect();
    (out.len() as u64 == last - first + 1).then(|| (first..).zip(out).collect())
}

/// `[head, epoch, after, low, id1, frames1, id2, frames2, …]` → a slice: the events after
/// `after` (and from `low`) up to `limit`, stopping before a hole inside the stream (seqs skipped
/// after a failover: the next page starts there and reports it) and before the event that would
/// pass `limit.bytes` (the first always comes). A gap is every seq after `after` before the first
/// held one: trimmed history, or seqs skipped after a primary change (which may hide events the
/// old primary never replicated).
pub(crate) fn parse_slice(values: Vec<Value>, limit: ReadLimit) -> Option<StreamSlice> {
    let mut it = values.into_iter();
    let head = as_u64(&it.next()?)?;
    let epoch = String::from_utf8(as_bytes(it.next()?)?).ok()?;
    let after = as_u64(&it.next()?)?;
    let start = (after + 1).max(as_u64(&it.next()?)?);
    let mut first_seq = head + 1;
    let mut frames: Vec<Frame> = Vec::new();
    let mut bytes = 0usize;
    'entries: while let Some(id) = it.next() {
        let id = String::from_utf8(as_bytes(id)?).ok()?;
        for (seq, frame) in split_entry(&id, as_bytes(it.next()?)?)? {
            if seq < start {
                continue;
            }
            let Some(prev) = frames.last().map(Frame::seq) else {
                first_seq = first_seq.min(seq);
                if limit.events == 0 {
                    break 'entries;
                }
                bytes = frame.len();
                frames.push(Frame::event(seq, frame));
                continue;
            };
            bytes = bytes.saturating_add(frame.len());
            if frames.len() >= limit.events || seq != prev + 1 || bytes > limit.bytes {
                break 'entries;
            }
            frames.push(Frame::event(seq, frame));
        }
    }
    let gap = (after < head && first_seq > after + 1).then(|| ReplayGap {
        from_seq: after + 1,
        to_seq: (first_seq - 1).min(head),
    });
    Some(StreamSlice {
        epoch: epoch.into(),
        head,
        gap,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_splits_at_every_newline_like_split() {
        for joined in ["", "a", "a\nb", "{\"x\":1}\n{\"y\":2}\n{}", "a\n", "\n\n"] {
            let ours: Vec<Bytes> = frames_of(&Bytes::from(joined)).collect();
            let split: Vec<&str> = joined.split('\n').collect();
            assert_eq!(ours, split, "{joined:?}");
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn seqs(slice: &StreamSlice) -> Vec<u64> {
        slice.frames.iter().map(Frame::seq).collect()
    }

    #[test]
    fn a_skipped_range_inside_the_stream_is_a_gap() {
        let slice = parse_slice(
            vec![
                Value::Int(100_012),
                bulk("ep"),
                Value::Int(10),
                Value::Int(1),
                bulk("100012-100011"),
                bulk("{\"a\":1}\n{\"b\":2}"),
            ],
            10.into(),
        )
        .unwrap();
        assert_eq!(
            slice.gap,
            Some(ReplayGap {
                from_seq: 11,
                to_seq: 100_010
            })
        );
        assert_eq!(seqs(&slice), vec![100_011, 100_012]);
        assert_eq!(&slice.frames[1].bytes()[..], b"{\"b\":2}");
        let none = parse_slice(
            vec![Value::Int(5), bulk("ep"), Value::Int(5), Value::Int(1)],
            10.into(),
        );
        assert_eq!(none.unwrap().gap, None);
    }

    #[test]
    fn a_page_starts_inside_a_batch_and_stops_at_a_hole_or_a_limit() {
        let reply = |after: i64, low: i64| {
            vec![
                Value::Int(9),
                bulk("ep"),
                Value::Int(after),
                Value::Int(low),
                bulk("3-1"),
                bulk("a\nbb\nccc"),
                bulk("5-4"),
                bulk("d\ne"),
                bulk("9-8"),
                bulk("f\ng"),
            ]
        };
        let slice = parse_slice(reply(1, 1), 10.into()).unwrap();
        assert_eq!((seqs(&slice), slice.gap), (vec![2, 3, 4, 5], None));
        let slice = parse_slice(reply(0, 3), 10.into()).unwrap();
        assert_eq!(seqs(&slice), vec![3, 4, 5]);
        assert_eq!(slice.gap.map(|g| (g.from_seq, g.to_seq)), Some((1, 2)));
        let slice = parse_slice(reply(5, 1), 10.into()).unwrap();
        assert_eq!(seqs(&slice), vec![8, 9]);
        assert_eq!(slice.gap.map(|g| (g.from_seq, g.to_seq)), Some((6, 7)));
        let slice = parse_slice(reply(0, 1), 2.into()).unwrap();
        assert_eq!(seqs(&slice), vec![1, 2]);
        let slice = parse_slice(reply(0, 1), ReadLimit::events(10).bytes(6)).unwrap();
        assert_eq!(seqs(&slice), vec![1, 2, 3], "1 + 2 + 3 bytes");
        let slice = parse_slice(reply(0, 1), ReadLimit::events(10).bytes(0)).unwrap();
        assert_eq!(seqs(&slice), vec![1], "the first always comes");
        let slice = parse_slice(reply(1, 1), 0.into()).unwrap();
        assert_eq!((seqs(&slice), slice.gap), (vec![], None));
        let slice = parse_slice(reply(5, 1), 0.into()).unwrap();
        assert_eq!(slice.gap.map(|g| (g.from_seq, g.to_seq)), Some((6, 7)));
        assert!(
            parse_slice(
                vec![
                    Value::Int(3),
                    bulk("ep"),
                    Value::Int(0),
                    Value::Int(1),
                    bulk("3-1"),
                    bulk("a\nb")
                ],
                5.into()
            )
            .is_none(),
            "a batch whose frames do not match its ids"
        );
    }
}
