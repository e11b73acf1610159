//! Block Kit messages: a pending request with Approve/Deny buttons, the same request with its
//! outcome (no buttons), and the requester's notice.

use serde_json::{Value, json};

/// The action ids of the two buttons; their `value` is `{org_id}:{access_request_id}`.
pub const APPROVE: &str = "gate_approve";
pub const DENY: &str = "gate_deny";

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")})
}

fn summary(r: &Value) -> Vec<Value> {
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    let scopes: Vec<String> = r["scopes"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s["operation"].as_str().unwrap_or_default(),
                        s["target"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let minutes = r["duration_seconds"].as_u64().unwrap_or(0) / 60;
    vec![
        json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*Access request* for *{}* by {}", text("resource"), text("requested_by"))}}),
        json!({"type": "section", "fields": [
            field("Subject", &text("subject")),
            field("Duration", &format!("{minutes} min")),
            field("Reason", &if text("reason").is_empty() { "—".to_owned() } else { text("reason") }),
            field("Scopes", &if scopes.is_empty() { "whole resource".to_owned() } else { scopes.join(", ") }),
        ]}),
    ]
}

/// A new request, with buttons.
pub fn pending(channel: &str, r: &Value) -> Value {
    let value = format!(
        "{}:{}",
        r["org_id"].as_str().unwrap_or_default(),
        r["id"].as_str().unwrap_or_default()
    );
    let mut blocks = summary(r);
    blocks.push(
        json!({"type": "actions", "block_id": "gate_decision", "elements": [
            {"type": "button", "action_id": APPROVE, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": DENY, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Deny"}},
        ]}),
    );
    json!({
        "channel": channel,
        "text": format!("Access request for {} by {}", r["resource"].as_str().unwrap_or_default(),
            r["requested_by"].as_str().unwrap_or_default()),
        "blocks": blocks,
    })
}

/// The outcome line: `Approved by carol` / `Denied by dave`.
pub fn outcome(r: &Value) -> String {
    match r["status"].as_str() {
        Some("approved") => format!(
            "Approved by {} (until {})",
            r["approved_by"].as_str().unwrap_or_default(),
            r["expires_at"].as_str().unwrap_or_default()
        ),
        Some("denied") => format!("Denied by {}", r["denied_by"].as_str().unwrap_or_default()),
        Some(other) => format!("Now {other}"),
        None => "Changed".to_owned(),
    }
}

/// The original message, buttons replaced by the outcome.
pub fn decided(channel: &str, ts: &str, r: &Value) -> Value {
    let mut blocks = summary(r);
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome(r)}]}));
    json!({"channel": channel, "ts": ts, "text": outcome(r), "blocks": blocks})
}

/// A direct message to the requester.
pub fn notice(user: &str, r: &Value, posted: bool) -> Value {
    let resource = r["resource"].as_str().unwrap_or_default();
    let text = if posted {
        format!("Your access request for {resource} was sent for approval.")
    } else {
        format!("Your access request for {resource}: {}", outcome(r))
    };
    json!({"channel": user, "text": text})
}
