//! How one record is laid out in a segment file.
//!
//! ```text
//! header   payload_len: u32   length of the payload in bytes
//!          crc: u32           CRC32 (IEEE) of the payload
//! payload  offset: u64        the record's offset in its shard
//!          arrival_ms: u64    arrival time, milliseconds since the Unix epoch
//!          key_len: u16       length of the partition key in bytes
//!          key: [u8; key_len] the partition key, UTF-8
//!          data: [u8]         the record's data: the rest of the payload
//! ```
//!
//! Every integer is little-endian. The layout is written by hand rather than with serde so that
//! it is fixed, cheap to encode into one batch buffer, and checkable byte by byte on recovery.

use std::ops::Range;

/// Bytes before the payload: its length and its CRC.
pub(super) const HEADER_LEN: usize = 8;

/// Bytes of the payload before the key: offset, arrival and key length.
const FIXED_PAYLOAD_LEN: usize = 8 + 8 + 2;

/// The largest payload a frame may declare. Kinesis records hold at most 1 MiB of data and a
/// 256-character key, so anything far bigger is damage; the cap also bounds what a reader
/// allocates on the word of a length field.
pub(super) const MAX_PAYLOAD_LEN: usize = 16 << 20;

/// The fewest bytes a frame takes: an empty key and no data.
pub(super) const MIN_FRAME_LEN: usize = HEADER_LEN + FIXED_PAYLOAD_LEN;

/// The bytes [`claimed`] looks at.
pub(super) const CLAIM_LEN: usize = HEADER_LEN + 8;

/// The bytes a frame of this key and data takes in a segment.
pub(super) fn frame_len(key_len: usize, data_len: usize) -> usize {
    HEADER_LEN + FIXED_PAYLOAD_LEN + key_len + data_len
}

/// Why a record cannot be framed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum EncodeError {
    /// The partition key is longer than a `u16` length can say.
    KeyTooLong(usize),
    /// The payload would exceed [`MAX_PAYLOAD_LEN`].
    TooLarge(usize),
}

/// Appends the frame of one record to `buf`.
pub(super) fn encode(
    buf: &mut Vec<u8>,
    offset: u64,
    arrival_ms: u64,
    key: &[u8],
    data: &[u8],
) -> Result<(), EncodeError> {
    let key_len = u16::try_from(key.len()).map_err(|_| EncodeError::KeyTooLong(key.len()))?;
    let payload_len = FIXED_PAYLOAD_LEN + key.len() + data.len();
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(EncodeError::TooLarge(payload_len));
    }
    // MAX_PAYLOAD_LEN fits in a u32, so this cannot fail once the check above passed.
    let payload_len_u32 =
        u32::try_from(payload_len).map_err(|_| EncodeError::TooLarge(payload_len))?;

    let start = buf.len();
    buf.reserve(HEADER_LEN + payload_len);
    buf.extend_from_slice(&payload_len_u32.to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // the CRC, filled in once the payload is written
    let payload_start = buf.len();
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&arrival_ms.to_le_bytes());
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(data);
    let crc = crc32fast::hash(&buf[payload_start..]);
    buf[start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A frame found at the start of a buffer. Ranges are relative to the frame's first byte, so the
/// caller slices its own buffer and nothing here borrows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FrameInfo {
    /// Bytes the whole frame takes, header included.
    pub(super) len: usize,
    /// The record's offset in its shard.
    pub(super) offset: u64,
    /// Arrival time in milliseconds since the Unix epoch.
    pub(super) arrival_ms: u64,
    /// Where the partition key lies in the frame.
    pub(super) key: Range<usize>,
    /// Where the data lies in the frame.
    pub(super) data: Range<usize>,
}

/// What the start of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    /// A whole frame whose CRC matches.
    Frame(FrameInfo),
    /// The start of a frame: `needed` bytes from the buffer's start would hold all of it.
    Incomplete {
        /// Bytes needed from the buffer's start (the header alone while it is incomplete).
        needed: usize,
    },
    /// Bytes no frame of ours can start with.
    Invalid(&'static str),
}

/// Decodes the frame at the start of `buf`, checking its CRC. Never panics, whatever `buf` holds.
pub(super) fn decode(buf: &[u8]) -> Decoded {
    let (Some(payload_len), Some(crc)) = (read_u32(buf, 0), read_u32(buf, 4)) else {
        return Decoded::Incomplete { needed: HEADER_LEN };
    };
    let payload_len = payload_len as usize;
    if payload_len < FIXED_PAYLOAD_LEN {
        return Decoded::Invalid("payload shorter than a frame's fixed fields");
    }
    if payload_len > MAX_PAYLOAD_LEN {
        return Decoded::Invalid("payload length beyond the largest frame");
    }
    let len = HEADER_LEN + payload_len;
    let Some(payload) = buf.get(HEADER_LEN..len) else {
        return Decoded::Incomplete { needed: len };
    };
    if crc32fast::hash(payload) != crc {
        return Decoded::Invalid("CRC mismatch");
    }
    let (Some(offset), Some(arrival_ms), Some(key_len)) = (
        read_u64(payload, 0),
        read_u64(payload, 8),
        read_u16(payload, 16),
    ) else {
        return Decoded::Invalid("payload shorter than a frame's fixed fields");
    };
    let key_start = HEADER_LEN + FIXED_PAYLOAD_LEN;
    let key_end = key_start + usize::from(key_len);
    if key_end > len {
        return Decoded::Invalid("partition key runs past the end of the frame");
    }
    Decoded::Frame(FrameInfo {
        len,
        offset,
        arrival_ms,
        key: key_start..key_end,
        data: key_end..len,
    })
}

/// What the start of `buf` claims to be before its CRC is checked: the frame's length and the
/// record's offset; `None` unless `buf` holds [`CLAIM_LEN`] bytes and the length is one a frame
/// can have. For finding frames where the boundaries between them are lost.
pub(super) fn claimed(buf: &[u8]) -> Option<(usize, u64)> {
    let payload_len = read_u32(buf, 0)? as usize;
    if !(FIXED_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&payload_len) {
        return None;
    }
    Some((HEADER_LEN + payload_len, read_u64(buf, HEADER_LEN)?))
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(offset: u64, arrival_ms: u64, key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, offset, arrival_ms, key, data).unwrap();
        buf
    }

    #[test]
    fn round_trips_with_the_documented_layout() {
        let buf = framed(7, 1_700_000_000_123, b"key", b"hello");
        assert_eq!(buf.len(), frame_len(3, 5));
        assert_eq!(&buf[0..4], &(18u32 + 3 + 5).to_le_bytes());
        assert_eq!(&buf[4..8], &crc32fast::hash(&buf[8..]).to_le_bytes());
        assert_eq!(&buf[8..16], &7u64.to_le_bytes());
        assert_eq!(&buf[16..24], &1_700_000_000_123u64.to_le_bytes());
        assert_eq!(&buf[24..26], &3u16.to_le_bytes());

        let Decoded::Frame(info) = decode(&buf) else {
            panic!("expected a frame");
        };
        assert_eq!(info.len, buf.len());
        assert_eq!(info.offset, 7);
        assert_eq!(info.arrival_ms, 1_700_000_000_123);
        assert_eq!(&buf[info.key.clone()], b"key");
        assert_eq!(&buf[info.data.clone()], b"hello");
    }

    #[test]
    fn decodes_only_the_first_of_several_frames() {
        let mut buf = framed(1, 10, b"a", b"");
        let first_len = buf.len();
        encode(&mut buf, 2, 11, b"b", b"more").unwrap();
        let Decoded::Frame(info) = decode(&buf) else {
            panic!("expected a frame");
        };
        assert_eq!((info.len, info.offset), (first_len, 1));
        assert!(info.data.is_empty());
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let buf = framed(3, 4, b"partition", b"some data");
        for cut in 0..buf.len() {
            let needed = if cut < HEADER_LEN {
                HEADER_LEN
            } else {
                buf.len()
            };
            assert_eq!(
                decode(&buf[..cut]),
                Decoded::Incomplete { needed },
                "cut {cut}"
            );
        }
    }

    #[test]
    fn any_flipped_payload_byte_fails_the_crc() {
        let buf = framed(3, 4, b"partition", b"some data");
        for at in HEADER_LEN..buf.len() {
            let mut damaged = buf.clone();
            damaged[at] ^= 0x40;
            assert_eq!(
                decode(&damaged),
                Decoded::Invalid("CRC mismatch"),
                "byte {at}"
            );
        }
    }

    #[test]
    fn a_claim_is_what_the_header_says_without_the_crc() {
        let mut buf = framed(77, 4, b"key", b"data");
        assert_eq!(claimed(&buf), Some((buf.len(), 77)));
        buf[HEADER_LEN + 12] ^= 0xff;
        assert_eq!(
            claimed(&buf),
            Some((buf.len(), 77)),
            "the CRC is not checked"
        );
        assert_eq!(claimed(&buf[..CLAIM_LEN - 1]), None);
        assert_eq!(claimed(&[0; 64]), None);
        assert_eq!(MIN_FRAME_LEN, framed(0, 0, b"", b"").len());
    }

    #[test]
    fn rejects_impossible_lengths() {
        assert!(matches!(decode(&[0; 64]), Decoded::Invalid(_)));
        let mut huge = vec![0xff; 64];
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Decoded::Invalid(_)));
    }

    #[test]
    fn rejects_a_key_longer_than_its_frame() {
        // A well-formed CRC over a payload whose key length points past the end.
        let mut payload = Vec::new();
        payload.extend_from_slice(&1u64.to_le_bytes());
        payload.extend_from_slice(&2u64.to_le_bytes());
        payload.extend_from_slice(&100u16.to_le_bytes());
        payload.extend_from_slice(b"short");
        let mut buf = Vec::new();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        assert!(matches!(decode(&buf), Decoded::Invalid(_)));
    }

    #[test]
    fn refuses_to_encode_oversized_records() {
        let mut buf = Vec::new();
        let long_key = vec![b'k'; usize::from(u16::MAX) + 1];
        assert_eq!(
            encode(&mut buf, 0, 0, &long_key, b""),
            Err(EncodeError::KeyTooLong(long_key.len()))
        );
        let big = vec![0; MAX_PAYLOAD_LEN];
        assert!(matches!(
            encode(&mut buf, 0, 0, b"k", &big),
            Err(EncodeError::TooLarge(_))
        ));
        assert!(buf.is_empty());
    }
}
