//! The HTTP shape of an audit event: `details` is a JSON object; gRPC keeps the proto's `details_json` text.
//!
//! ```text
//! gRPC  gate.v1.AuditEvent { ..., details_json: "{\"kind\":\"select\"}" }
//! HTTP  {"id": ..., "details": {"kind": "select"}}               (read, export, ingest)
//!       {"id": ..., "details_json": "{\"kind\":\"select\"}"}     (ingest only: older connectors)
//! ```

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// Rewrite one serialized `AuditEvent` for HTTP: the `details_json` text becomes the `details`
/// object (`{}` when empty). Ingest stores only objects; a stored text that is not one (a row
/// written by hand) is kept, as `{"unparsed": text}`, rather than dropped.
pub(crate) fn event_to_http(event: &mut Value) {
    let Some(fields) = event.as_object_mut() else {
        return;
    };
    let text = match fields.remove("details_json") {
        Some(Value::String(text)) => text,
        _ => String::new(),
    };
    let details = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str::<Value>(&text) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!({"unparsed": text}),
        }
    };
    fields.insert("details".to_owned(), details);
}

/// [`event_to_http`] on every element of a serialized `QueryAuditResponse`'s `events`.
pub(crate) fn events_to_http(response: &mut Value) {
    if let Some(events) = response.get_mut("events").and_then(Value::as_array_mut) {
        events.iter_mut().for_each(event_to_http);
    }
}

/// Turn an `IngestAuditRequest` body from HTTP into the proto's JSON: each event's `details`
/// object becomes `details_json` text. An event may carry `details_json` (text, from older
/// connectors) instead; giving both is refused, naming the fields.
pub(crate) fn ingest_from_http(body: &mut Value) -> ApiResult<()> {
    let Some(events) = body.get_mut("events").and_then(Value::as_array_mut) else {
        return Ok(()); // Not an array: the decoder names the problem.
    };
    for (i, event) in events.iter_mut().enumerate() {
        let Some(fields) = event.as_object_mut() else {
            continue;
        };
        let Some(details) = fields.remove("details") else {
            continue;
        };
        let path = format!("events[{i}].details");
        if fields.contains_key("details_json") {
            return Err(ApiError::invalid(
                &path,
                "give details (a JSON object) or details_json (the same object as text, from \
                 older connectors), not both",
            ));
        }
        if !details.is_object() {
            return Err(ApiError::invalid(&path, "expected a JSON object"));
        }
        fields.insert(
            "details_json".to_owned(),
            Value::String(details.to_string()),
        );
    }
    Ok(())
}

/// Adjust the OpenAPI schema generated from the proto's `AuditEvent` to the HTTP shape.
pub(crate) fn adjust_schema(schema: &mut Value) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "details".to_owned(),
            json!({
                "type": "object",
                "description": "Anything else the connector recorded (statement kind, dry-run findings), as a JSON object"
            }),
        );
        properties.insert(
            "details_json".to_owned(),
            json!({
                "type": "string",
                "writeOnly": true,
                "deprecated": true,
                "description": "Ingest only, from older connectors: details as JSON text (an object). Never in responses"
            }),
        );
    }
    schema["not"] = json!({"required": ["details", "details_json"]});
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stored_text_is_read_as_an_object() {
        let mut event = json!({"id": "e", "details_json": r#"{"kind":"select","dry_run":[]}"#});
        event_to_http(&mut event);
        assert_eq!(
            event,
            json!({"id": "e", "details": {"kind": "select", "dry_run": []}})
        );
        let mut empty = json!({"id": "e", "details_json": ""});
        event_to_http(&mut empty);
        assert_eq!(empty, json!({"id": "e", "details": {}}));
        let mut odd = json!({"details_json": "[1]"});
        event_to_http(&mut odd);
        assert_eq!(odd, json!({"details": {"unparsed": "[1]"}}));
    }

    #[test]
    fn ingest_takes_the_object_or_the_older_text_but_not_both() {
        let mut body =
            json!({"events": [{"details": {"kind": "drop"}}, {"details_json": "{}"}, {}]});
        ingest_from_http(&mut body).unwrap();
        assert_eq!(
            body,
            json!({"events": [{"details_json": r#"{"kind":"drop"}"#}, {"details_json": "{}"}, {}]})
        );
        let mut both = json!({"events": [{}, {"details": {}, "details_json": "{}"}]});
        let err = ingest_from_http(&mut both).unwrap_err().body();
        assert_eq!(err["field"], "events[1].details");
        let mut text = json!({"events": [{"details": "{}"}]});
        let err = ingest_from_http(&mut text).unwrap_err().body();
        assert_eq!(
            (err["field"].as_str(), err["message"].as_str()),
            (Some("events[0].details"), Some("expected a JSON object"))
        );
    }
}
