//! MySQL packet framing and field encodings, pure: bytes in, packets out.
//!
//! ```text
//! packet:   int<3> payload_length | int<1> sequence_id | payload
//!   a payload of 0xFFFFFF bytes or more is split into 0xFFFFFF-byte packets
//!   with consecutive sequence ids, ended by a shorter (possibly empty) one
//! int<lenenc>: < 0xFB itself | 0xFC int<2> | 0xFD int<3> | 0xFE int<8>   (0xFB = NULL in rows)
//! string<lenenc>: int<lenenc> length | bytes        string<NUL>: bytes | 0x00
//! ```
//! A packet that passes through keeps its original bytes (`Packet::raw`);
//! only the packets Gate inspects are decoded further.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{BufMut, Bytes, BytesMut};

/// The largest payload one physical packet carries.
pub const MAX_PACKET: usize = 0xFF_FFFF;
/// The largest logical payload Gate accepts (MySQL's `max_allowed_packet` defaults to 64 MiB).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Why bytes are not a valid packet or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("packet of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("continuation packet out of sequence (expected {expected}, got {got})")]
    Sequence { expected: u8, got: u8 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// One logical packet: its first sequence id, the sequence id of its last
/// physical packet, the joined payload and the bytes as they arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub last_seq: u8,
    pub payload: Bytes,
    pub raw: Bytes,
}

impl Packet {
    /// The first payload byte (a command, or a response's header), if any.
    pub fn first(&self) -> Option<u8> {
        self.payload.first().copied()
    }
}

/// Take one logical packet off the front of `buf`, or `Ok(None)` until it is whole.
pub fn decode_packet(buf: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
    let mut at = 0usize;
    let mut total = 0usize;
    let mut first_seq = None;
    let mut expected = 0u8;
    loop {
        let Some((len, seq)) = header(buf.get(at..)) else {
            return Ok(None);
        };
        match first_seq {
            None => first_seq = Some(seq),
            Some(_) if seq != expected => {
                return Err(CodecError::Sequence { expected, got: seq });
            }
            Some(_) => {}
        }
        expected = seq.wrapping_add(1);
        total += len;
        if total > MAX_PAYLOAD {
            return Err(CodecError::TooLarge(total));
        }
        if buf.len() < at + 4 + len {
            return Ok(None);
        }
        at += 4 + len;
        if len < MAX_PACKET {
            break;
        }
    }
    let raw = buf.split_to(at).freeze();
    let payload = if at == total + 4 {
        raw.slice(4..)
    } else {
        let mut joined = BytesMut::with_capacity(total);
        let mut rest = &raw[..];
        while let Some((len, _)) = header(Some(rest)) {
            let chunk = rest
                .get(4..4 + len)
                .ok_or(CodecError::Truncated("packet"))?;
            joined.extend_from_slice(chunk);
            rest = rest.get(4 + len..).unwrap_or_default();
        }
        joined.freeze()
    };
    Ok(Some(Packet {
        seq: first_seq.unwrap_or(0),
        last_seq: expected.wrapping_sub(1),
        payload,
        raw,
    }))
}

/// The payload length and sequence id of the packet header at the start of `bytes`.
fn header(bytes: Option<&[u8]>) -> Option<(usize, u8)> {
    match bytes? {
        [a, b, c, seq, ..] => Some((
            usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16,
            *seq,
        )),
        _ => None,
    }
}

/// Append `payload` as packets starting at sequence id `seq`; returns the
/// sequence id after the last packet written.
pub fn put_packet(out: &mut BytesMut, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PACKET);
        let (chunk, tail) = rest.split_at(n);
        out.reserve(4 + n);
        // n <= 0xFFFFFF: three bytes hold it.
        out.put_uint_le(n as u64, 3);
        out.put_u8(seq);
        out.put_slice(chunk);
        seq = seq.wrapping_add(1);
        rest = tail;
        if n < MAX_PACKET {
            return seq;
        }
    }
}

/// A cursor over a payload that reads MySQL's field encodings.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.data.first().copied()
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.data.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.bytes(1, what)?.first().copied().unwrap_or(0))
    }

    /// A little-endian unsigned integer of `n` (≤ 8) bytes.
    pub fn uint(&mut self, n: usize, what: &'static str) -> Result<u64, CodecError> {
        let bytes = self.bytes(n, what)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(self.uint(2, what)? as u16)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(self.uint(4, what)? as u32)
    }

    /// A length-encoded integer; `None` is the NULL marker (0xFB).
    pub fn lenenc(&mut self, what: &'static str) -> Result<Option<u64>, CodecError> {
        match self.u8(what)? {
            0xFB => Ok(None),
            0xFC => Ok(Some(self.uint(2, what)?)),
            0xFD => Ok(Some(self.uint(3, what)?)),
            0xFE => Ok(Some(self.uint(8, what)?)),
            0xFF => Err(CodecError::Malformed(what)),
            small => Ok(Some(u64::from(small))),
        }
    }

    /// A length-encoded integer that must not be NULL.
    pub fn lenenc_int(&mut self, what: &'static str) -> Result<u64, CodecError> {
        self.lenenc(what)?.ok_or(CodecError::Malformed(what))
    }

    /// A length-encoded string; `None` is NULL.
    pub fn lenenc_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, CodecError> {
        match self.lenenc(what)? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| CodecError::Truncated(what))?;
                self.bytes(n, what).map(Some)
            }
        }
    }

    /// A length-encoded string that must not be NULL, as text (lossy).
    pub fn lenenc_str(&mut self, what: &'static str) -> Result<String, CodecError> {
        let bytes = self
            .lenenc_bytes(what)?
            .ok_or(CodecError::Malformed(what))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A NUL-terminated string (the NUL is consumed).
    pub fn nul_bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self
            .data
            .iter()
            .position(|b| *b == 0)
            .ok_or(CodecError::Truncated(what))?;
        let head = self.bytes(end, what)?;
        self.bytes(1, what)?;
        Ok(head)
    }

    /// A NUL-terminated string, or the rest when there is no NUL (as some
    /// clients and servers end the last field).
    pub fn nul_or_rest(&mut self) -> &'a [u8] {
        match self.data.iter().position(|b| *b == 0) {
            Some(end) => {
                let (head, tail) = self.data.split_at(end);
                self.data = tail.get(1..).unwrap_or_default();
                head
            }
            None => std::mem::take(&mut self.data),
        }
    }
}

/// Append a length-encoded integer.
pub fn put_lenenc(out: &mut BytesMut, n: u64) {
    match n {
        0..=0xFA => out.put_u8(n as u8),
        0xFB..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(n as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_uint_le(n, 3);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(n);
        }
    }
}

/// Append a length-encoded string.
pub fn put_lenenc_bytes(out: &mut BytesMut, bytes: &[u8]) {
    put_lenenc(out, bytes.len() as u64);
    out.put_slice(bytes);
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
