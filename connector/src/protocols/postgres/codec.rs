//! PostgreSQL wire framing (protocol 3.0), pure: bytes in, frames out.
//!
//! ```text
//! startup phase:  Int32 length | Int32 code | payload          (no tag byte)
//!   code 196608 = StartupMessage (key\0value\0 ... \0)
//!   code 80877103 = SSLRequest, 80877104 = GSSENCRequest, 80877102 = CancelRequest (pid, secret)
//! normal phase:   Byte1 tag | Int32 length (includes itself) | body
//! ```
//! Frames that pass through are kept as their original bytes; only the
//! messages Gate inspects are decoded further.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest frame accepted (PostgreSQL's own limit for most messages is 1 GiB; Gate is stricter).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Largest startup packet (PostgreSQL uses 10 000).
pub const MAX_STARTUP: usize = 10_000;

/// Request codes: the second int32 of a client's first packet.
pub const PROTOCOL_3_0: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// Tags of the client's (frontend) messages.
pub mod frontend {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const PASSWORD: u8 = b'p';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const FUNCTION_CALL: u8 = b'F';
}

/// Tags of the server's (backend) messages.
pub mod backend {
    pub const AUTHENTICATION: u8 = b'R';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const NO_DATA: u8 = b'n';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
}

/// A malformed packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame length {0} is out of range")]
    BadLength(usize),
    #[error("unsupported protocol version {major}.{minor}")]
    Version { major: u16, minor: u16 },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
}

/// The first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel { pid: u32, secret: u32 },
    Message { params: Vec<(String, String)> },
}

impl Startup {
    /// A startup parameter by name.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decode a startup-phase packet; `Ok(None)` when more bytes are needed.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<Startup>, CodecError> {
    let Some(len) = peek_u32(buf, 0) else {
        return Ok(None);
    };
    let len = len as usize;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(CodecError::BadLength(len));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    let code = packet.get_u32();
    Ok(Some(match code {
        SSL_REQUEST if len == 8 => Startup::Ssl,
        GSSENC_REQUEST if len == 8 => Startup::GssEnc,
        CANCEL_REQUEST if len == 16 => Startup::Cancel {
            pid: packet.get_u32(),
            secret: packet.get_u32(),
        },
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            return Err(CodecError::Malformed {
                what: "startup request",
            });
        }
        PROTOCOL_3_0 => Startup::Message {
            params: parse_params(&packet)?,
        },
        other => {
            return Err(CodecError::Version {
                major: (other >> 16) as u16,
                minor: (other & 0xffff) as u16,
            });
        }
    }))
}

fn parse_params(body: &[u8]) -> Result<Vec<(String, String)>, CodecError> {
    let malformed = |_| CodecError::Malformed {
        what: "startup message",
    };
    let mut params = Vec::new();
    let mut r = Reader::new(body);
    loop {
        let key = r.cstr().map_err(malformed)?;
        if key.is_empty() {
            // The terminating NUL must be the last byte.
            return if r.rest().is_empty() {
                Ok(params)
            } else {
                Err(CodecError::Malformed {
                    what: "startup message",
                })
            };
        }
        let value = r.cstr().map_err(malformed)?;
        params.push((key.to_owned(), value.to_owned()));
    }
}

/// Encode a StartupMessage (used towards the upstream).
pub fn encode_startup(params: &[(&str, &str)], out: &mut BytesMut) {
    let body_len: usize = params
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum::<usize>()
        + 1;
    out.put_u32((8 + body_len) as u32);
    out.put_u32(PROTOCOL_3_0);
    for (k, v) in params {
        put_cstr(out, k);
        put_cstr(out, v);
    }
    out.put_u8(0);
}

/// Encode a CancelRequest.
pub fn encode_cancel(pid: u32, secret: u32, out: &mut BytesMut) {
    out.put_u32(16);
    out.put_u32(CANCEL_REQUEST);
    out.put_u32(pid);
    out.put_u32(secret);
}

/// One tagged message: its tag and the whole original bytes (tag + length + body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub raw: Bytes,
}

impl Frame {
    /// The body after tag and length.
    pub fn body(&self) -> &[u8] {
        self.raw.get(5..).unwrap_or_default()
    }
}

/// Decode one tagged frame; `Ok(None)` when more bytes are needed.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let Some(len) = peek_u32(buf, 1) else {
        return Ok(None);
    };
    let len = len as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(CodecError::BadLength(len));
    }
    if buf.len() < len + 1 {
        buf.reserve(len + 1 - buf.len());
        return Ok(None);
    }
    Ok(Some(Frame {
        tag,
        raw: buf.split_to(len + 1).freeze(),
    }))
}

fn peek_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Append `s` as a NUL-terminated string.
pub fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// Write a tagged message whose body `fill` appends.
pub fn put_message(out: &mut BytesMut, tag: u8, fill: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_u32(0);
    fill(out);
    let len = (out.len() - at) as u32;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}

/// A reader over a message body with typed, bounds-checked getters.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self
            .data
            .split_first()
            .ok_or(CodecError::Malformed { what: "message" })?;
        self.data = rest;
        Ok(b)
    }
    pub fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(
            self.bytes(2)?
                .try_into()
                .map_err(|_| CodecError::Malformed { what: "message" })?,
        ))
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(
            self.bytes(4)?
                .try_into()
                .map_err(|_| CodecError::Malformed { what: "message" })?,
        ))
    }
    pub fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(self.u32()? as i32)
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.data.len() < n {
            return Err(CodecError::Malformed { what: "message" });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    pub fn cstr(&mut self) -> Result<&'a str, CodecError> {
        let end = self
            .data
            .iter()
            .position(|b| *b == 0)
            .ok_or(CodecError::Malformed { what: "string" })?;
        let s = std::str::from_utf8(self.bytes(end)?)
            .map_err(|_| CodecError::Malformed { what: "string" })?;
        self.u8()?;
        Ok(s)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// ErrorResponse / NoticeResponse fields Gate writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// Rows a CommandComplete reports (`SELECT 5`, `INSERT 0 3`, `COPY 7`): the
/// number its tag ends with, 0 when it ends with none (`CREATE TABLE`).
pub fn command_rows(body: &[u8]) -> u64 {
    let tag = body.strip_suffix(&[0]).unwrap_or(body);
    let digits = tag
        .rsplit(|b| *b == b' ')
        .next()
        .filter(|word| !word.is_empty() && word.iter().all(u8::is_ascii_digit));
    digits
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Append an ErrorResponse ('E').
pub fn put_error(out: &mut BytesMut, error: &ErrorFields) {
    put_message(out, b'E', |b| {
        b.put_u8(b'S');
        put_cstr(b, error.severity);
        b.put_u8(b'V');
        put_cstr(b, error.severity);
        b.put_u8(b'C');
        put_cstr(b, error.code);
        b.put_u8(b'M');
        put_cstr(b, &error.message);
        b.put_u8(0);
    });
}

/// The (code, message) of an ErrorResponse body.
/// Every field of an ErrorResponse or NoticeResponse body, in order.
pub fn parse_fields(body: &[u8]) -> Result<Vec<(u8, String)>, CodecError> {
    let mut r = Reader::new(body);
    let mut fields = Vec::new();
    loop {
        match r.u8()? {
            0 => return Ok(fields),
            kind => fields.push((kind, r.cstr()?.to_owned())),
        }
    }
}

/// Append an ErrorResponse or NoticeResponse (`tag`) with these fields.
pub fn put_fields(out: &mut BytesMut, tag: u8, fields: &[(u8, String)]) {
    put_message(out, tag, |b| {
        for (kind, value) in fields {
            b.put_u8(*kind);
            put_cstr(b, value);
        }
        b.put_u8(0);
    });
}

pub fn parse_error(body: &[u8]) -> Result<(String, String), CodecError> {
    let mut r = Reader::new(body);
    let (mut code, mut message) = (String::new(), String::new());
    loop {
        match r.u8()? {
            0 => return Ok((code, message)),
            b'C' => code = r.cstr()?.to_owned(),
            b'M' => message = r.cstr()?.to_owned(),
            _ => {
                r.cstr()?;
            }
        }
    }
}

/// Append ReadyForQuery ('Z') with a transaction status (`I`, `T`, `E`).
pub fn put_ready(out: &mut BytesMut, status: u8) {
    put_message(out, b'Z', |b| b.put_u8(status));
}

/// Authentication request codes.
pub mod auth {
    pub const OK: u32 = 0;
    pub const CLEARTEXT: u32 = 3;
    pub const MD5: u32 = 5;
    pub const SASL: u32 = 10;
    pub const SASL_CONTINUE: u32 = 11;
    pub const SASL_FINAL: u32 = 12;
}

/// Append an Authentication ('R') message with `code` and extra bytes.
pub fn put_auth(out: &mut BytesMut, code: u32, extra: &[u8]) {
    put_message(out, b'R', |b| {
        b.put_u32(code);
        b.put_slice(extra);
    });
}

/// Append BackendKeyData ('K').
pub fn put_backend_key(out: &mut BytesMut, pid: u32, secret: u32) {
    put_message(out, b'K', |b| {
        b.put_u32(pid);
        b.put_u32(secret);
    });
}

/// Append a Query ('Q').
pub fn put_query(out: &mut BytesMut, sql: &str) {
    put_message(out, b'Q', |b| put_cstr(b, sql));
}

/// Append a PasswordMessage ('p') holding a C string.
pub fn put_password(out: &mut BytesMut, password: &str) {
    put_message(out, b'p', |b| put_cstr(b, password));
}

/// Append a SASLInitialResponse ('p').
pub fn put_sasl_initial(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    put_message(out, b'p', |b| {
        put_cstr(b, mechanism);
        b.put_i32(data.len() as i32);
        b.put_slice(data);
    });
}

/// Append a SASLResponse ('p').
pub fn put_sasl_response(out: &mut BytesMut, data: &[u8]) {
    put_message(out, b'p', |b| b.put_slice(data));
}

/// Append a Parse ('P') of `sql` into the statement `name`, with no parameter types.
pub fn put_parse(out: &mut BytesMut, name: &str, sql: &str) {
    put_message(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, sql);
        b.put_i16(0);
    });
}

/// The fields of a Parse message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    pub name: &'a str,
    pub query: &'a str,
    /// The parameter type count and OIDs, as sent.
    pub param_types: &'a [u8],
}

/// Decode a Parse body.
pub fn parse_parse(body: &[u8]) -> Result<Parse<'_>, CodecError> {
    let mut r = Reader::new(body);
    Ok(Parse {
        name: r.cstr()?,
        query: r.cstr()?,
        param_types: r.rest(),
    })
}

/// Append a Parse with a replaced query and the original parameter types.
pub fn put_parse_with(out: &mut BytesMut, name: &str, sql: &str, param_types: &[u8]) {
    put_message(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, sql);
        if param_types.is_empty() {
            b.put_i16(0);
        } else {
            b.put_slice(param_types);
        }
    });
}

/// The fields of a Bind message Gate tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    pub result_formats: Vec<i16>,
}

/// Decode a Bind body.
pub fn parse_bind(body: &[u8]) -> Result<Bind<'_>, CodecError> {
    let mut r = Reader::new(body);
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let param_formats = r.i16()?;
    r.bytes(
        usize::try_from(param_formats).map_err(|_| CodecError::Malformed { what: "bind" })? * 2,
    )?;
    let params = r.i16()?;
    for _ in 0..params {
        let len = r.i32()?;
        if len > 0 {
            r.bytes(len as usize)?;
        }
    }
    let count = r.i16()?;
    let mut result_formats = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        result_formats.push(r.i16()?);
    }
    Ok(Bind {
        portal,
        statement,
        result_formats,
    })
}

/// Decode a Describe or Close body: (`S` statement | `P` portal, name).
pub fn parse_target(body: &[u8]) -> Result<(u8, &str), CodecError> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(CodecError::Malformed {
            what: "describe/close target",
        });
    }
    Ok((kind, r.cstr()?))
}

/// Append a Describe of a statement (`S`) or portal (`P`).
pub fn put_describe(out: &mut BytesMut, kind: u8, name: &str) {
    put_message(out, b'D', |b| {
        b.put_u8(kind);
        put_cstr(b, name);
    });
}

/// Decode a Query body.
pub fn parse_query(body: &[u8]) -> Result<&str, CodecError> {
    Reader::new(body).cstr()
}

#[cfg(test)]
mod tests;
