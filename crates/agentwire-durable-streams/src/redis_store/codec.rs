//! How a chunk is stored as a sorted-set member.

use bytes::Bytes;

use super::store_error;
use crate::DsError;
use crate::stream::Chunk;

/// `start (8 bytes BE) | kind (0 bytes, 1 json) | payload`; JSON messages are length-prefixed.
pub(super) fn encode(chunk: &Chunk) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + chunk.byte_len() as usize + 4 * chunk.parts.len());
    out.extend_from_slice(&chunk.start.to_be_bytes());
    out.push(u8::from(chunk.json));
    for part in &chunk.parts {
        if chunk.json {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(part);
    }
    out
}

pub(super) fn decode(member: &[u8]) -> Result<Chunk, DsError> {
    let corrupt = || store_error("a stored chunk is corrupt");
    let (head, mut rest) = member.split_at_checked(9).ok_or_else(corrupt)?;
    let start = u64::from_be_bytes(head[..8].try_into().map_err(|_| corrupt())?);
    let json = head[8] == 1;
    let mut parts = Vec::new();
    if json {
        while !rest.is_empty() {
            let (len, tail) = rest.split_at_checked(4).ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt())?) as usize;
            let (part, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
            parts.push(Bytes::copy_from_slice(part));
            rest = tail;
        }
    } else {
        parts.push(Bytes::copy_from_slice(rest));
    }
    Ok(Chunk { start, parts, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip() {
        let bytes = Chunk {
            start: 7,
            parts: vec![Bytes::from_static(b"\x00\x01hello")],
            json: false,
        };
        let json = Chunk {
            start: 1 << 40,
            parts: vec![Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"[]")],
            json: true,
        };
        for chunk in [bytes, json] {
            assert_eq!(decode(&encode(&chunk)).unwrap(), chunk);
        }
        assert!(decode(b"short").is_err());
        assert!(decode(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err());
    }
}
