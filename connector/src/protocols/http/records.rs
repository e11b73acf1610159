//! Streaming JSON responses under masks: NDJSON lines and server-sent events
//! transformed one record at a time as they arrive, so a long stream is
//! never held whole. A record that cannot be inspected (not JSON, over the
//! limit) ends the stream with an error instead of passing unmasked.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming};

use super::enforce::{StreamKind, Transformed};
use super::error::HttpError;
use super::{Body, BoxError};

/// What a stream does to each JSON record (HTTP: filters and masks; MCP:
/// its JSON-RPC enforcement).
pub type Transform = Arc<dyn Fn(&[u8]) -> Result<Transformed, HttpError> + Send + Sync>;

/// The body that transforms records of `inner`.
pub struct Records {
    inner: Incoming,
    kind: StreamKind,
    transform: Transform,
    /// The longest record accepted.
    limit: usize,
    pending: BytesMut,
    ended: bool,
}

impl Records {
    /// A streaming body of `kind` from `inner`, each record through `transform`.
    pub fn body(inner: Incoming, kind: StreamKind, transform: Transform, limit: usize) -> Body {
        Self {
            inner,
            kind,
            transform,
            limit,
            pending: BytesMut::new(),
            ended: false,
        }
        .boxed()
    }

    /// The next complete record in `pending`, transformed (empty when dropped).
    fn next_record(&mut self) -> Option<Result<Bytes, BoxError>> {
        let record = match self.kind {
            StreamKind::Lines => {
                let end = self.pending.iter().position(|&b| b == b'\n')?;
                self.pending.split_to(end + 1)
            }
            StreamKind::Events => {
                let end = event_end(&self.pending)?;
                self.pending.split_to(end)
            }
        };
        Some(self.transform_record(&record))
    }

    fn transform_record(&self, record: &[u8]) -> Result<Bytes, BoxError> {
        match self.kind {
            StreamKind::Lines => transform_line(record, &*self.transform),
            StreamKind::Events => transform_event(record, &*self.transform),
        }
    }
}

/// One NDJSON line (with its newline), transformed; empty when filters drop it.
pub fn transform_line(
    record: &[u8],
    transform: &dyn Fn(&[u8]) -> Result<Transformed, HttpError>,
) -> Result<Bytes, BoxError> {
    let line = record.strip_suffix(b"\n").unwrap_or(record);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::copy_from_slice(record));
    }
    match transform(line)? {
        Transformed::Keep(mut out, _) => {
            out.push(b'\n');
            Ok(out.into())
        }
        Transformed::Drop => Ok(Bytes::new()),
    }
}

/// One event (its lines and the blank line ending it): the `data` lines are
/// one JSON document, replaced by its transformed form on one `data:` line.
pub fn transform_event(
    record: &[u8],
    transform: &dyn Fn(&[u8]) -> Result<Transformed, HttpError>,
) -> Result<Bytes, BoxError> {
    let text = std::str::from_utf8(record).map_err(|_| "a server-sent event is not UTF-8")?;
    let mut fields = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("data")
            && (value.is_empty() || value.starts_with(':'))
        {
            let value = value.strip_prefix(':').unwrap_or(value);
            data.push(value.strip_prefix(' ').unwrap_or(value));
            continue;
        }
        if !line.is_empty() {
            fields.push(line);
        }
    }
    if data.is_empty() {
        return Ok(Bytes::copy_from_slice(record));
    }
    let payload = data.join("\n");
    let mut out = String::new();
    match transform(payload.as_bytes())? {
        Transformed::Keep(json, _) => {
            for field in fields {
                out.push_str(field);
                out.push('\n');
            }
            out.push_str("data: ");
            out.push_str(&String::from_utf8_lossy(&json));
            out.push_str("\n\n");
        }
        Transformed::Drop => {}
    }
    Ok(out.into())
}

/// Where the first event ends (after its blank line: `\n\n` or `\r\n\r\n`).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl HttpBody for Records {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.next_record() {
                Some(Ok(bytes)) if bytes.is_empty() => continue,
                Some(Ok(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {}
            }
            if this.ended {
                if this.pending.is_empty() {
                    return Poll::Ready(None);
                }
                let rest = std::mem::take(&mut this.pending);
                let out = this.transform_record(&rest);
                return Poll::Ready(Some(out.map(Frame::data)));
            }
            if this.pending.len() > this.limit {
                return Poll::Ready(Some(Err(format!(
                    "a streamed record exceeds the {}-byte inspection limit",
                    this.limit
                )
                .into())));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending.extend_from_slice(&data),
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                None => this.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gate_policy::{Mask, Strategy};

    use super::super::enforce::{Rules, transform};
    use super::*;

    fn masks() -> Vec<Mask> {
        vec![Mask {
            column: "email".into(),
            strategy: Strategy::Redact,
            table: None,
        }]
    }

    #[test]
    fn events_keep_their_fields_and_mask_their_data() {
        let masks = masks();
        let rules = Rules {
            masks: &masks,
            filters: &[],
            filter_path: None,
            key: None,
        };
        let f = |doc: &[u8]| transform(doc, &rules);
        let event = b"event: user\nid: 7\ndata: {\"email\":\ndata: \"a@b.c\"}\n\n";
        let out = transform_event(event, &f).unwrap();
        assert_eq!(
            &out[..],
            b"event: user\nid: 7\ndata: {\"email\":\"***\"}\n\n"
        );
        assert_eq!(
            &transform_event(b": ping\n\n", &f).unwrap()[..],
            b": ping\n\n"
        );
        assert!(transform_event(b"data: not json\n\n", &f).is_err());
    }

    #[test]
    fn lines_are_masked_one_by_one() {
        let masks = masks();
        let rules = Rules {
            masks: &masks,
            filters: &[],
            filter_path: None,
            key: None,
        };
        let f = |doc: &[u8]| transform(doc, &rules);
        assert_eq!(
            &transform_line(b"{\"email\":\"x@y.z\"}\r\n", &f).unwrap()[..],
            b"{\"email\":\"***\"}\n"
        );
        assert_eq!(event_end(b"data: 1\r\n\r\ndata: 2\n\n"), Some(11));
    }
}
