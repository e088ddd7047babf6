//! Decoding the read script's reply.

use agentwire_bridge::StreamSlice;
use agentwire_core::{Frame, ReplayGap};
use redis::Value;

pub(crate) fn parse_seq(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
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

/// `[head, epoch, after, first held seq after it, id1, frame1, id2, frame2, …]` → a slice. A gap
/// is every seq after `after` before the first held one: trimmed history, or seqs skipped after a
/// primary change (which may hide events the old primary never replicated).
pub(crate) fn parse_slice(values: Vec<Value>) -> Option<StreamSlice> {
    let mut it = values.into_iter();
    let head = as_u64(&it.next()?)?;
    let epoch = String::from_utf8(as_bytes(it.next()?)?).ok()?;
    let after = as_u64(&it.next()?)?;
    let first_seq = as_u64(&it.next()?)?;
    let mut frames = Vec::new();
    while let Some(id) = it.next() {
        let id = String::from_utf8(as_bytes(id)?).ok()?;
        let frame = as_bytes(it.next()?)?;
        frames.push(Frame::event(parse_seq(&id)?, frame));
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

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_skipped_range_inside_the_stream_is_a_gap() {
        let slice = parse_slice(vec![
            Value::Int(100_012),
            bulk("ep"),
            Value::Int(10),
            Value::Int(100_011),
            bulk("100011-1"),
            bulk("{}"),
        ])
        .unwrap();
        assert_eq!(
            slice.gap,
            Some(ReplayGap {
                from_seq: 11,
                to_seq: 100_010
            })
        );
        assert_eq!(slice.frames.len(), 1);
        let none = parse_slice(vec![
            Value::Int(5),
            bulk("ep"),
            Value::Int(5),
            Value::Int(6),
        ]);
        assert_eq!(none.unwrap().gap, None);
    }
}
