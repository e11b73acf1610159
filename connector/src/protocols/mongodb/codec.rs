//! MongoDB message framing, pure: bytes in, messages out (and back).
//!
//! ```text
//! header:        int32 messageLength | int32 requestID | int32 responseTo | int32 opCode   (little-endian)
//! OP_MSG 2013:   uint32 flagBits | section+ | [uint32 CRC-32C when flagBits & checksumPresent]
//!   section:     0x00 document (the command body)
//!              | 0x01 int32 size | cstring identifier | document*   (a document sequence)
//! OP_QUERY 2004: int32 flags | cstring fullCollectionName | int32 skip | int32 return | document [document]
//! OP_REPLY 1:    int32 flags | int64 cursorID | int32 startingFrom | int32 numberReturned | document*
//! OP_COMPRESSED 2012: int32 originalOpcode | int32 uncompressedSize | uint8 compressorId | bytes
//! ```
//! A frame keeps the bytes it arrived as (`Frame::raw`): messages Gate does
//! not change are forwarded as those bytes; only what Gate answers or masks
//! is encoded anew (without a checksum).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bson::Document;
use bytes::{BufMut, Bytes, BytesMut};

/// Opcodes Gate knows.
pub mod opcode {
    pub const REPLY: i32 = 1;
    pub const QUERY: i32 = 2004;
    pub const COMPRESSED: i32 = 2012;
    pub const MSG: i32 = 2013;
}

/// OP_MSG flag bits.
pub mod flags {
    pub const CHECKSUM_PRESENT: u32 = 1;
    pub const MORE_TO_COME: u32 = 1 << 1;
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Bits 0-15 are "required": a reader must refuse bits it does not know.
    pub(crate) const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;
}

pub use super::compression::{decompress, encode_compressed};

/// The largest message Gate accepts or announces (`maxMessageSizeBytes`, as MongoDB's).
pub const MAX_MESSAGE: usize = 48_000_000;
/// The deepest nesting of documents and arrays Gate reads (MongoDB allows
/// 100 levels in stored documents; commands and replies wrap them a few more).
pub const MAX_DEPTH: usize = 128;
/// The largest BSON document Gate announces (`maxBsonObjectSize`).
pub const MAX_BSON: usize = 16 * 1024 * 1024;
pub(super) const HEADER: usize = 16;

/// Why bytes are not a valid MongoDB message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("message of {got} bytes exceeds the maximum message size of {max} bytes")]
    TooLarge { got: usize, max: usize },
    #[error("message length {0} is shorter than the 16-byte header")]
    TooShort(i64),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("invalid BSON in {0}")]
    Bson(&'static str),
    #[error("{0} nests documents deeper than {MAX_DEPTH} levels")]
    TooDeep(&'static str),
    #[error("OP_MSG flag bits {0:#x} are required but unknown")]
    UnknownFlags(u32),
    #[error("OP_MSG checksum does not match")]
    Checksum,
    #[error("unsupported opcode {0}")]
    Opcode(i32),
    #[error("compressor {0} is not supported by Gate (only noop, snappy, zlib and zstd)")]
    Compressor(u8),
}

/// The message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: i32,
    pub request_id: i32,
    pub response_to: i32,
    pub opcode: i32,
}

/// One whole message as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    /// Header and body, as received.
    pub raw: Bytes,
}

impl Frame {
    /// The bytes after the header.
    pub fn body(&self) -> &[u8] {
        self.raw.get(HEADER..).unwrap_or_default()
    }
}

pub(super) fn i32_at(data: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = data.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_le_bytes(bytes))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    i32_at(data, at).map(|v| v as u32)
}

/// Take one message off the front of `buf`, or `Ok(None)` until it is whole.
/// A length outside 16..=`max` is an error before the body is read.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, CodecError> {
    let Some(length) = i32_at(buf, 0) else {
        return Ok(None);
    };
    if length < HEADER as i32 {
        return Err(CodecError::TooShort(length.into()));
    }
    let length = length as usize;
    if length > max {
        return Err(CodecError::TooLarge { got: length, max });
    }
    if buf.len() < length {
        buf.reserve(length - buf.len());
        return Ok(None);
    }
    let raw = buf.split_to(length).freeze();
    let header = Header {
        length: length as i32,
        request_id: i32_at(&raw, 4).ok_or(CodecError::Truncated("header"))?,
        response_to: i32_at(&raw, 8).ok_or(CodecError::Truncated("header"))?,
        opcode: i32_at(&raw, 12).ok_or(CodecError::Truncated("header"))?,
    };
    Ok(Some(Frame { header, raw }))
}

/// The request id and opcode at the front of `buf` (a message refused
/// before it was whole still gets its answer addressed).
pub fn peek_request(buf: &[u8]) -> Option<(i32, i32)> {
    Some((i32_at(buf, 4)?, i32_at(buf, 12)?))
}

/// A document sequence (OP_MSG section kind 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub identifier: String,
    pub documents: Vec<Document>,
}

/// An OP_MSG.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    pub flags: u32,
    pub body: Document,
    pub sequences: Vec<Sequence>,
}

/// An OP_QUERY (only the legacy handshake and `$cmd` commands use it now).
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    pub flags: i32,
    pub collection: String,
    pub skip: i32,
    pub limit: i32,
    pub query: Document,
}

/// An OP_REPLY.
#[derive(Debug, Clone, PartialEq)]
pub struct OpReply {
    pub flags: i32,
    pub cursor_id: i64,
    pub starting_from: i32,
    pub documents: Vec<Document>,
}

/// A decoded message body.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Msg(OpMsg),
    Query(OpQuery),
    Reply(OpReply),
}

/// One BSON document at the start of `data`, and its length.
pub fn read_document(data: &[u8], what: &'static str) -> Result<(Document, usize), CodecError> {
    let len = i32_at(data, 0).ok_or(CodecError::Truncated(what))?;
    if len < 5 {
        return Err(CodecError::Bson(what));
    }
    let len = len as usize;
    let bytes = data.get(..len).ok_or(CodecError::Truncated(what))?;
    super::depth::check_depth(bytes, what)?;
    let doc = Document::from_reader(bytes).map_err(|_| CodecError::Bson(what))?;
    Ok((doc, len))
}

fn cstring(data: &[u8], what: &'static str) -> Result<(String, usize), CodecError> {
    let end = data
        .iter()
        .position(|&b| b == 0)
        .ok_or(CodecError::Truncated(what))?;
    let text = std::str::from_utf8(data.get(..end).unwrap_or_default())
        .map_err(|_| CodecError::Malformed(what))?;
    Ok((text.to_owned(), end + 1))
}

/// Decode `frame`'s body; OP_COMPRESSED is decompressed first (`compression.rs`).
pub fn decode_message(frame: &Frame) -> Result<Message, CodecError> {
    match frame.header.opcode {
        opcode::COMPRESSED => {
            let (opcode, body) = decompress(frame.body())?;
            decode_body(opcode, &body, false)
        }
        opcode => decode_body(opcode, frame.body(), true),
    }
}

fn decode_body(opcode: i32, body: &[u8], checksum_allowed: bool) -> Result<Message, CodecError> {
    match opcode {
        opcode::MSG => decode_msg(body, checksum_allowed).map(Message::Msg),
        opcode::QUERY => decode_query(body).map(Message::Query),
        opcode::REPLY => decode_reply(body).map(Message::Reply),
        other => Err(CodecError::Opcode(other)),
    }
}

fn decode_msg(body: &[u8], checksum_allowed: bool) -> Result<OpMsg, CodecError> {
    let flag_bits = u32_at(body, 0).ok_or(CodecError::Truncated("OP_MSG flags"))?;
    let unknown = flag_bits & 0xFFFF & !flags::KNOWN_REQUIRED;
    if unknown != 0 {
        return Err(CodecError::UnknownFlags(unknown));
    }
    let mut end = body.len();
    if flag_bits & flags::CHECKSUM_PRESENT != 0 {
        if !checksum_allowed || end < 8 {
            return Err(CodecError::Malformed("OP_MSG checksum"));
        }
        end -= 4;
        // The checksum covers the header too, which the caller has: checked by `verify_checksum`.
    }
    let mut sections = body.get(4..end).unwrap_or_default();
    let mut doc = None;
    let mut sequences = Vec::new();
    while let Some((&kind, rest)) = sections.split_first() {
        match kind {
            0 => {
                let (d, len) = read_document(rest, "OP_MSG body")?;
                if doc.replace(d).is_some() {
                    return Err(CodecError::Malformed("OP_MSG with two body sections"));
                }
                sections = rest.get(len..).unwrap_or_default();
            }
            1 => {
                let size = i32_at(rest, 0).ok_or(CodecError::Truncated("document sequence"))?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| *s >= 5)
                    .ok_or(CodecError::Malformed("document sequence size"))?;
                let section = rest
                    .get(4..size)
                    .ok_or(CodecError::Truncated("document sequence"))?;
                let (identifier, mut at) = cstring(section, "document sequence identifier")?;
                let mut documents = Vec::new();
                while let Some(remaining) = section.get(at..).filter(|r| !r.is_empty()) {
                    let (d, len) = read_document(remaining, "document sequence")?;
                    documents.push(d);
                    at += len;
                }
                sequences.push(Sequence {
                    identifier,
                    documents,
                });
                sections = rest.get(size..).unwrap_or_default();
            }
            _ => return Err(CodecError::Malformed("OP_MSG section kind")),
        }
    }
    let body = doc.ok_or(CodecError::Malformed("OP_MSG without a body section"))?;
    Ok(OpMsg {
        flags: flag_bits,
        body,
        sequences,
    })
}

fn decode_query(body: &[u8]) -> Result<OpQuery, CodecError> {
    let flags = i32_at(body, 0).ok_or(CodecError::Truncated("OP_QUERY"))?;
    let (collection, len) = cstring(body.get(4..).unwrap_or_default(), "OP_QUERY collection")?;
    let at = 4 + len;
    let skip = i32_at(body, at).ok_or(CodecError::Truncated("OP_QUERY"))?;
    let limit = i32_at(body, at + 4).ok_or(CodecError::Truncated("OP_QUERY"))?;
    let (query, _) = read_document(body.get(at + 8..).unwrap_or_default(), "OP_QUERY query")?;
    Ok(OpQuery {
        flags,
        collection,
        skip,
        limit,
        query,
    })
}

fn decode_reply(body: &[u8]) -> Result<OpReply, CodecError> {
    let flags = i32_at(body, 0).ok_or(CodecError::Truncated("OP_REPLY"))?;
    let cursor = body.get(4..12).ok_or(CodecError::Truncated("OP_REPLY"))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(cursor);
    let starting_from = i32_at(body, 12).ok_or(CodecError::Truncated("OP_REPLY"))?;
    let returned = i32_at(body, 16).ok_or(CodecError::Truncated("OP_REPLY"))?;
    let mut rest = body.get(20..).unwrap_or_default();
    let mut documents = Vec::new();
    while !rest.is_empty() {
        let (d, len) = read_document(rest, "OP_REPLY document")?;
        documents.push(d);
        rest = rest.get(len..).unwrap_or_default();
    }
    if usize::try_from(returned).ok() != Some(documents.len()) {
        return Err(CodecError::Malformed("OP_REPLY numberReturned"));
    }
    Ok(OpReply {
        flags,
        cursor_id: i64::from_le_bytes(id),
        starting_from,
        documents,
    })
}

/// Check an OP_MSG's CRC-32C when its flags say it carries one.
pub fn verify_checksum(frame: &Frame) -> Result<(), CodecError> {
    if frame.header.opcode != opcode::MSG {
        return Ok(());
    }
    let Some(flag_bits) = u32_at(frame.body(), 0) else {
        return Ok(());
    };
    if flag_bits & flags::CHECKSUM_PRESENT == 0 {
        return Ok(());
    }
    let split = frame.raw.len().saturating_sub(4);
    let (covered, sum) = frame.raw.split_at(split);
    let expected = u32_at(sum, 0).ok_or(CodecError::Truncated("OP_MSG checksum"))?;
    if crc32c(covered) != expected {
        return Err(CodecError::Checksum);
    }
    Ok(())
}

/// CRC-32C (Castagnoli), bit by bit: OP_MSG checksums are rare and small.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

pub(super) fn put_header(
    out: &mut BytesMut,
    start: usize,
    request_id: i32,
    response_to: i32,
    op: i32,
) {
    let length = (out.len() - start) as i32;
    let mut header = Vec::with_capacity(HEADER);
    for field in [length, request_id, response_to, op] {
        header.extend_from_slice(&field.to_le_bytes());
    }
    if let Some(slot) = out.get_mut(start..start + HEADER) {
        slot.copy_from_slice(&header);
    }
}

fn put_document(out: &mut BytesMut, doc: &Document) {
    // A Document built from valid BSON always encodes; keys with NUL cannot be decoded into one.
    if let Ok(bytes) = doc.to_vec() {
        out.put_slice(&bytes);
    }
}

/// Append an OP_MSG (no checksum: `CHECKSUM_PRESENT` is cleared).
pub fn encode_msg(out: &mut BytesMut, request_id: i32, response_to: i32, msg: &OpMsg) {
    let start = out.len();
    out.put_bytes(0, HEADER);
    out.put_u32_le(msg.flags & !flags::CHECKSUM_PRESENT);
    out.put_u8(0);
    put_document(out, &msg.body);
    for sequence in &msg.sequences {
        out.put_u8(1);
        let at = out.len();
        out.put_i32_le(0);
        out.put_slice(sequence.identifier.as_bytes());
        out.put_u8(0);
        for doc in &sequence.documents {
            put_document(out, doc);
        }
        let size = (out.len() - at) as i32;
        if let Some(slot) = out.get_mut(at..at + 4) {
            slot.copy_from_slice(&size.to_le_bytes());
        }
    }
    put_header(out, start, request_id, response_to, opcode::MSG);
}

/// Append an OP_REPLY carrying `documents` (the answer to an OP_QUERY).
pub fn encode_reply(out: &mut BytesMut, request_id: i32, response_to: i32, reply: &OpReply) {
    let start = out.len();
    out.put_bytes(0, HEADER);
    out.put_i32_le(reply.flags);
    out.put_i64_le(reply.cursor_id);
    out.put_i32_le(reply.starting_from);
    out.put_i32_le(reply.documents.len() as i32);
    for doc in &reply.documents {
        put_document(out, doc);
    }
    put_header(out, start, request_id, response_to, opcode::REPLY);
}

/// Append an OP_QUERY (Gate's tests and its legacy probes).
pub fn encode_query(out: &mut BytesMut, request_id: i32, query: &OpQuery) {
    let start = out.len();
    out.put_bytes(0, HEADER);
    out.put_i32_le(query.flags);
    out.put_slice(query.collection.as_bytes());
    out.put_u8(0);
    out.put_i32_le(query.skip);
    out.put_i32_le(query.limit);
    put_document(out, &query.query);
    put_header(out, start, request_id, 0, opcode::QUERY);
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
