//! Which protocol a client speaks, from the first bytes it sends on the shared
//! listener: pure, total on any input, and fuzzed (`make fuzz`, target `detect`).
//!
//! MySQL is absent on purpose: its server speaks first, so a MySQL client sends
//! nothing until greeted; `server` greets a client silent for
//! `mysql_detect_delay` as MySQL, or a MySQL resource has its own `listen_port`.

/// A protocol recognised from a client's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A startup packet, SSLRequest, GSSENCRequest or CancelRequest.
    Postgres,
    /// A TLS ClientHello record (terminated by Gate, routed by SNI).
    Tls,
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 connection preface.
    Http2,
    /// An SSH identification string (`SSH-2.0-…`).
    Ssh,
    /// A MongoDB message header (OP_MSG, OP_QUERY or OP_COMPRESSED).
    Mongodb,
}

impl Detected {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Detected::Postgres => "postgres",
            Detected::Tls => "tls",
            Detected::Http1 => "http/1.1",
            Detected::Http2 => "http/2",
            Detected::Ssh => "ssh",
            Detected::Mongodb => "mongodb",
        }
    }
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    Detected(Detected),
    /// The bytes so far are a prefix of at least one protocol's opening.
    NeedMore,
    /// No protocol Gate knows opens like this.
    Unknown,
}

/// The most bytes [`detect`] ever needs (the HTTP/2 preface).
pub const MAX_DETECT_BYTES: usize = HTTP2_PREFACE.len();

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HTTP1_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

use crate::protocols::postgres::codec::{
    CANCEL_REQUEST, GSSENC_REQUEST, MAX_STARTUP, PROTOCOL_3_0, SSL_REQUEST,
};

/// MongoDB opcodes a client opens with.
const MONGO_OP_MSG: i32 = 2013;
const MONGO_OP_QUERY: i32 = 2004;
const MONGO_OP_COMPRESSED: i32 = 2012;
/// MongoDB's maximum message size (48 MB).
const MONGO_MAX_MESSAGE: i32 = 48_000_000;

/// A check of one protocol's opening.
type Check = fn(&[u8]) -> Verdict;
/// A check of one byte; `None` accepts any byte.
type ByteCheck = Option<fn(u8) -> bool>;

/// One protocol's verdict on the bytes so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Yes,
    Maybe,
    No,
}

/// Detect the protocol from the first bytes a client sent. Never needs more
/// than [`MAX_DETECT_BYTES`]; `NeedMore` with that many bytes cannot happen.
pub fn detect(first: &[u8]) -> Detection {
    let checks: [(Detected, Check); 6] = [
        (Detected::Postgres, postgres),
        (Detected::Tls, tls),
        (Detected::Http2, http2),
        (Detected::Http1, http1),
        (Detected::Ssh, ssh),
        (Detected::Mongodb, mongodb),
    ];
    let mut maybe = false;
    for (protocol, check) in checks {
        match check(first) {
            Verdict::Yes if !maybe => return Detection::Detected(protocol),
            // A protocol earlier in the list could still match with more bytes.
            Verdict::Yes | Verdict::Maybe => maybe = true,
            Verdict::No => {}
        }
    }
    if maybe {
        Detection::NeedMore
    } else {
        Detection::Unknown
    }
}

/// `Yes` when `data` starts with `literal`, `Maybe` when it is a prefix of it.
fn literal(data: &[u8], literal: &[u8]) -> Verdict {
    if data.starts_with(literal) {
        Verdict::Yes
    } else if literal.starts_with(data) {
        Verdict::Maybe
    } else {
        Verdict::No
    }
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn le_i32(data: &[u8], at: usize) -> Option<i32> {
    let bytes = data.get(at..at + 4)?;
    Some(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn postgres(data: &[u8]) -> Verdict {
    // Lengths are big-endian and small: the first byte of any valid one is 0.
    if data.first().is_some_and(|b| *b != 0) {
        return Verdict::No;
    }
    let (Some(length), Some(code)) = (be_u32(data, 0), be_u32(data, 4)) else {
        return Verdict::Maybe;
    };
    let valid = match code {
        SSL_REQUEST | GSSENC_REQUEST => length == 8,
        CANCEL_REQUEST => length == 16,
        PROTOCOL_3_0 => (8..=MAX_STARTUP).contains(&(length as usize)),
        _ => false,
    };
    if valid { Verdict::Yes } else { Verdict::No }
}

fn tls(data: &[u8]) -> Verdict {
    // Record type handshake (22), version 3.x, then the handshake type
    // client_hello (1) after the 5-byte record header.
    let pattern: [ByteCheck; 6] = [
        Some(|b| b == 0x16),
        Some(|b| b == 0x03),
        Some(|b| b <= 0x04),
        None,
        None,
        Some(|b| b == 0x01),
    ];
    for (i, check) in pattern.iter().enumerate() {
        let Some(byte) = data.get(i) else {
            return Verdict::Maybe;
        };
        if let Some(check) = check
            && !check(*byte)
        {
            return Verdict::No;
        }
    }
    Verdict::Yes
}

fn http2(data: &[u8]) -> Verdict {
    literal(data, HTTP2_PREFACE)
}

fn http1(data: &[u8]) -> Verdict {
    let mut verdict = Verdict::No;
    for method in HTTP1_METHODS {
        match literal(data, method) {
            Verdict::Yes => return Verdict::Yes,
            Verdict::Maybe => verdict = Verdict::Maybe,
            Verdict::No => {}
        }
    }
    verdict
}

fn ssh(data: &[u8]) -> Verdict {
    literal(data, b"SSH-")
}

fn mongodb(data: &[u8]) -> Verdict {
    if data.len() < 16 {
        // Every byte of a length, request id or response id is possible;
        // only a complete header tells.
        return match le_i32(data, 0) {
            Some(length) if !(16..=MONGO_MAX_MESSAGE).contains(&length) => Verdict::No,
            _ => Verdict::Maybe,
        };
    }
    let (Some(length), Some(response_to), Some(opcode)) =
        (le_i32(data, 0), le_i32(data, 8), le_i32(data, 12))
    else {
        return Verdict::No;
    };
    let opcode_ok = matches!(opcode, MONGO_OP_MSG | MONGO_OP_QUERY | MONGO_OP_COMPRESSED);
    // A client's request answers nothing: responseTo is 0.
    if opcode_ok && response_to == 0 && (16..=MONGO_MAX_MESSAGE).contains(&length) {
        Verdict::Yes
    } else {
        Verdict::No
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
