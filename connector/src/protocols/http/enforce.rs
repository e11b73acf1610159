//! `post_request` on an HTTP response: whether it must be inspected, and
//! for a JSON body the filters (arrays) then masks (fields at any depth or
//! dotted path). A response that must be inspected but cannot be is refused,
//! never passed on unmasked.

use gate_policy::json::{Doc, FilterOutcome, Node, filter_json_at, mask_json};
use gate_policy::mask::MaskingKey;
use gate_policy::{Filter, Mask, Verdict};

use super::error::HttpError;

/// How a response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspection {
    /// As the upstream sent it, streamed.
    Pass,
    /// Read whole (up to `max_body_bytes`), decoded, transformed, re-encoded as identity.
    Json,
    /// Streamed record by record, each transformed.
    Stream(StreamKind),
}

/// Streaming JSON formats masked record by record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// One JSON value per line (`application/x-ndjson`, `application/jsonl`).
    Lines,
    /// Server-sent events (`text/event-stream`): each event's `data` is JSON.
    Events,
}

/// The media type without parameters, lower case.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether a media type is JSON (`application/json`, `application/*+json`).
pub fn is_json(media: &str) -> bool {
    media == "application/json"
        || media == "text/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
}

/// How to treat a response with `media` type and a body (`has_body`).
pub fn plan(
    verdict: &Verdict,
    media: Option<&str>,
    has_body: bool,
) -> Result<Inspection, HttpError> {
    if (verdict.masks.is_empty() && verdict.filters.is_empty()) || !has_body {
        return Ok(Inspection::Pass);
    }
    match media {
        Some(m) if is_json(m) => Ok(Inspection::Json),
        Some("application/x-ndjson" | "application/jsonl" | "application/ndjson") => {
            Ok(Inspection::Stream(StreamKind::Lines))
        }
        Some("text/event-stream") => Ok(Inspection::Stream(StreamKind::Events)),
        other => Err(HttpError::ResponseRefused(format!(
            "a policy masks or filters this response, but its content type is {}, not JSON",
            other.unwrap_or("missing")
        ))),
    }
}

/// What a transform needs besides the document.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub masks: &'a [Mask],
    pub filters: &'a [Filter],
    /// The resource's `filter_path`.
    pub filter_path: Option<&'a str>,
    pub key: Option<&'a MaskingKey>,
}

impl<'a> Rules<'a> {
    pub fn of(
        verdict: &'a Verdict,
        filter_path: Option<&'a str>,
        key: Option<&'a MaskingKey>,
    ) -> Self {
        Self {
            masks: &verdict.masks,
            filters: &verdict.filters,
            filter_path,
            key,
        }
    }
}

/// The outcome of transforming one JSON document.
#[derive(Debug, PartialEq)]
pub enum Transformed {
    /// The document to send, and how many array elements filters dropped.
    Keep(Vec<u8>, usize),
    /// A single object the filters reject.
    Drop,
}

/// Filter then mask one JSON document (parsed as a borrowed [`Doc`]).
pub fn transform(bytes: &[u8], rules: &Rules<'_>) -> Result<Transformed, HttpError> {
    let doc = Doc::parse(bytes).map_err(not_json)?;
    enforce(doc, rules)
}

/// [`transform`] on a `serde_json::Value` (the reference the fuzz target
/// compares the borrowed document against).
pub fn transform_value(bytes: &[u8], rules: &Rules<'_>) -> Result<Transformed, HttpError> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(not_json)?;
    enforce(doc, rules)
}

fn not_json(e: serde_json::Error) -> HttpError {
    HttpError::ResponseRefused(format!(
        "a policy masks or filters this response, but it is not valid JSON ({e})"
    ))
}

fn enforce<T: Node>(mut doc: T, rules: &Rules<'_>) -> Result<Transformed, HttpError> {
    let dropped = match filter_json_at(&mut doc, rules.filters, rules.filter_path) {
        FilterOutcome::Dropped(n) => n,
        FilterOutcome::Kept => 0,
        FilterOutcome::Rejected => return Ok(Transformed::Drop),
        FilterOutcome::NotFilterable => {
            return Err(HttpError::ResponseRefused(
                "a policy filters this response, but it has no array where the filters apply (set filter_path or the filter's path)".into(),
            ));
        }
    };
    mask_json(&mut doc, rules.masks, rules.key).map_err(|_| {
        HttpError::ResponseRefused(
            "a policy masks with strategy hash, but no masking.hash_key is configured".into(),
        )
    })?;
    Ok(Transformed::Keep(doc.encode(), dropped))
}

#[cfg(test)]
mod tests {
    use gate_policy::{FilterOp, FilterOperand, Strategy};
    use serde_json::json;

    use super::*;

    fn rules<'a>(masks: &'a [Mask], filters: &'a [Filter], path: Option<&'a str>) -> Rules<'a> {
        Rules {
            masks,
            filters,
            filter_path: path,
            key: None,
        }
    }

    #[test]
    fn filters_run_before_masks_at_the_configured_path() {
        let masks = [Mask {
            column: "email".into(),
            strategy: Strategy::Email,
            table: None,
        }];
        let filters = [Filter {
            field: "org".into(),
            op: FilterOp::Eq,
            operand: FilterOperand::Value(json!("acme")),
            path: None,
        }];
        let body = json!({"data": {"items": [
            {"org": "acme", "email": "alice@example.com"},
            {"org": "other", "email": "bob@example.com"}
        ]}})
        .to_string();
        let Transformed::Keep(out, dropped) = transform(
            body.as_bytes(),
            &rules(&masks, &filters, Some("data.items")),
        )
        .unwrap() else {
            panic!("kept")
        };
        assert_eq!(dropped, 1);
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out,
            json!({"data": {"items": [{"org": "acme", "email": "a***@example.com"}]}})
        );
    }

    #[test]
    fn what_cannot_be_inspected_is_refused() {
        let masks = [Mask {
            column: "ssn".into(),
            strategy: Strategy::Redact,
            table: None,
        }];
        assert!(matches!(
            transform(b"{not json", &rules(&masks, &[], None)),
            Err(HttpError::ResponseRefused(_))
        ));
        let mut verdict = Verdict::refusal();
        verdict.masks = masks.to_vec();
        assert!(plan(&verdict, Some("text/html"), true).is_err());
        assert!(plan(&verdict, None, true).is_err());
        assert_eq!(
            plan(&verdict, Some("application/problem+json"), true).unwrap(),
            Inspection::Json
        );
        assert_eq!(
            plan(&verdict, Some("text/html"), false).unwrap(),
            Inspection::Pass
        );
    }
}
