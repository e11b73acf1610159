//! asciicast v2, the format `asciinema play` replays: a JSON header line, then one JSON array
//! per event. Pure: bytes in, lines out; the recorder owns the file.
//!
//! ```text
//! {"version":2,"width":80,"height":24,"timestamp":1764815400,"env":{"TERM":"xterm"},"command":"top"}
//! [0.125042,"o","\u001b[1mhello\u001b[0m\r\n"]
//! [1.500000,"i","ls\r"]
//! [2.000001,"r","120x40"]
//! ```
//!
//! Times are seconds since the start with microsecond precision. Terminal output is bytes, but
//! event data is text: a UTF-8 sequence split between two reads is carried to the next event
//! ([`Utf8Carry`]), and bytes that are not UTF-8 become U+FFFD, as `String::from_utf8_lossy`
//! would make of the whole stream.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The header (first line).
#[derive(Debug, Clone, Serialize)]
pub struct Header<'a> {
    pub version: u8,
    pub width: u16,
    pub height: u16,
    /// Unix time of the start, in seconds.
    pub timestamp: i64,
    pub env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
}

impl Header<'_> {
    /// The header as one line, `\n` included.
    pub fn line(&self) -> Vec<u8> {
        // A struct of strings and numbers always serializes.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bytes the terminal showed.
    Output,
    /// Bytes the user typed.
    Input,
    /// A new terminal size, data `COLSxROWS`.
    Resize,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::Output => "o",
            Kind::Input => "i",
            Kind::Resize => "r",
        }
    }
}

/// Append the event line `[t, "kind", data]\n` to `out`.
pub fn event_line(at: Duration, kind: Kind, data: &str, out: &mut Vec<u8>) {
    let micros = at.subsec_micros();
    out.extend_from_slice(format!("[{}.{micros:06},\"{}\",", at.as_secs(), kind.code()).as_bytes());
    // A `str` always serializes.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"]\n");
}

/// The resize event's data.
pub fn size(cols: u16, rows: u16) -> String {
    format!("{cols}x{rows}")
}

/// Turns a byte stream read in arbitrary pieces into text, piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Carry {
    /// The start of a sequence the last piece ended in (at most 3 bytes).
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The text of `data`, keeping an incomplete sequence at its end for the next call.
    pub fn decode(&mut self, data: &[u8]) -> String {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            data
        } else {
            let mut bytes = std::mem::take(&mut self.pending);
            bytes.extend_from_slice(data);
            joined = bytes;
            &joined
        };
        let mut text = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` marks the end of valid UTF-8.
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            self.pending = after.to_vec();
                            return text;
                        }
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(bad..).unwrap_or_default();
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: an incomplete sequence left over becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&pending).into_owned()
    }

    /// Whether bytes are waiting for the rest of their sequence.
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// A parsed recording (tests and the fuzz harness read back what was written).
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub header: serde_json::Value,
    /// (time in seconds, kind code, data).
    pub events: Vec<(f64, String, String)>,
}

/// Why a recording does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CastError {
    #[error("line 1: expected a header object with \"version\": 2")]
    Header,
    #[error("line {0}: expected [time, \"o\"|\"i\"|\"r\", text]")]
    Event(usize),
    #[error("line {0}: time goes backwards")]
    Time(usize),
}

/// Parse an asciicast v2 text.
pub fn parse(text: &str) -> Result<Cast, CastError> {
    let mut lines = text.lines();
    let header: serde_json::Value = lines
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .filter(|h: &serde_json::Value| h.get("version") == Some(&serde_json::json!(2)))
        .ok_or(CastError::Header)?;
    let mut events = Vec::new();
    let mut last = 0.0f64;
    for (i, line) in lines.enumerate() {
        let number = i + 2;
        let (t, kind, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|_| CastError::Event(number))?;
        if !matches!(kind.as_str(), "o" | "i" | "r") || !t.is_finite() || t < 0.0 {
            return Err(CastError::Event(number));
        }
        if t < last {
            return Err(CastError::Time(number));
        }
        last = t;
        events.push((t, kind, data));
    }
    Ok(Cast { header, events })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sequence_split_between_reads_is_carried_not_replaced() {
        let text = "héllo → 世界 🎉";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut carry = Utf8Carry::default();
            let (a, b) = bytes.split_at(split);
            let mut out = carry.decode(a);
            out += &carry.decode(b);
            assert!(!carry.is_pending(), "split at {split}");
            out += &carry.finish();
            assert_eq!(out, text, "split at {split}");
        }
        // Byte by byte: a 4-byte emoji waits for its last byte.
        let mut carry = Utf8Carry::default();
        let emoji = "🎉".as_bytes();
        assert_eq!(carry.decode(&emoji[..1]), "");
        assert_eq!(carry.decode(&emoji[1..3]), "");
        assert_eq!(carry.decode(&emoji[3..]), "🎉");
    }

    #[test]
    fn any_split_of_any_bytes_gives_the_lossy_whole() {
        // A small deterministic generator: UTF-8 text, stray continuation bytes, truncated
        // sequences, surrogates and overlongs, split at random points.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 9] = [
            b"a",
            "é".as_bytes(),
            "€".as_bytes(),
            "🎉".as_bytes(),
            b"\xff",
            b"\x80",
            b"\xe2\x82",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
        ];
        for _ in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..(next() % 24) {
                data.extend_from_slice(pieces[(next() % 9) as usize]);
            }
            let mut carry = Utf8Carry::default();
            let mut out = String::new();
            let mut rest = data.as_slice();
            while !rest.is_empty() {
                let (piece, after) = rest.split_at(1 + (next() as usize) % rest.len());
                out += &carry.decode(piece);
                rest = after;
            }
            out += &carry.finish();
            assert_eq!(out, String::from_utf8_lossy(&data), "{data:?}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(b"a\xffb\xc3("), "a\u{fffd}b\u{fffd}(");
        // An incomplete sequence at the very end is replaced when the stream ends.
        assert_eq!(carry.decode(b"ok\xe2\x82"), "ok");
        assert_eq!(carry.finish(), "\u{fffd}");
        let data = b"\xf0\x9f\x8e x \xed\xa0\x80 \xe2\x82\xac";
        for split in 0..=data.len() {
            let mut carry = Utf8Carry::default();
            let mut out = carry.decode(&data[..split]);
            out += &carry.decode(&data[split..]);
            out += &carry.finish();
            assert_eq!(out, String::from_utf8_lossy(data), "split at {split}");
        }
    }

    #[test]
    fn header_and_events_are_asciicast_v2() {
        let env = BTreeMap::from([("TERM".to_owned(), "xterm-256color".to_owned())]);
        let header = Header {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 1_764_815_400,
            env: &env,
            command: Some("top"),
            title: None,
        };
        let mut text = header.line();
        event_line(
            Duration::from_micros(125_042),
            Kind::Output,
            "\u{1b}[1mhi\r\n",
            &mut text,
        );
        event_line(
            Duration::from_micros(1_500_000),
            Kind::Input,
            "ls\r",
            &mut text,
        );
        event_line(
            Duration::from_micros(2_000_001),
            Kind::Resize,
            &size(120, 40),
            &mut text,
        );
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1764815400,\
             \"env\":{\"TERM\":\"xterm-256color\"},\"command\":\"top\"}\n\
             [0.125042,\"o\",\"\\u001b[1mhi\\r\\n\"]\n\
             [1.500000,\"i\",\"ls\\r\"]\n\
             [2.000001,\"r\",\"120x40\"]\n"
        );
        let cast = parse(&text).unwrap();
        assert_eq!(cast.header["width"], 80);
        assert_eq!(cast.events.len(), 3);
        assert_eq!(
            cast.events[0],
            (0.125042, "o".into(), "\u{1b}[1mhi\r\n".into())
        );
        assert_eq!(cast.events[2].2, "120x40");
    }

    #[test]
    fn parse_refuses_what_players_cannot_read() {
        assert_eq!(parse("{\"version\":1}\n"), Err(CastError::Header));
        assert_eq!(
            parse("{\"version\":2}\n[1.0,\"x\",\"a\"]\n"),
            Err(CastError::Event(2))
        );
        assert_eq!(
            parse("{\"version\":2}\n[2.0,\"o\",\"a\"]\n[1.0,\"o\",\"b\"]\n"),
            Err(CastError::Time(3))
        );
    }
}
