//! Tool pinning (`pin_tools`): each tool's definition is pinned the first time it is listed
//! through Gate; a later `tools/list` that serves a changed definition (a "rug pull") has the
//! tool hidden, and calls to it are refused, until an admin approves the new definition in the
//! control plane. Pins come from the control plane's snapshot; what this connector saw itself
//! is reported back (`ReportTools`) and overlaid until the next snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use gate_policy::Verdict;
use gate_proto::v1::{ReportToolsRequest, ToolDefinition, ToolPin};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::audit::{AuditEvent, McpAudit, Parties};
use crate::server::Gate;

/// One tool's pin as this connector knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    /// The approved digest (from the control plane, or first seen here).
    pinned: String,
    /// A changed digest the control plane holds for approval ("" when none).
    pending: String,
    /// The digest this connector last saw the upstream serve ("" when not seen).
    seen: String,
}

impl Entry {
    /// The definition in use differs from the pin.
    fn changed(&self) -> bool {
        !self.pending.is_empty() || (!self.seen.is_empty() && self.seen != self.pinned)
    }
}

/// A tool whose served definition differs from its pin, newly seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub tool: String,
    pub pinned: String,
    pub served: String,
}

/// The tools a connector pinned, keyed by (resource, tool).
#[derive(Debug, Default)]
pub struct PinBook {
    entries: RwLock<HashMap<(String, String), Entry>>,
    /// Where reports go (the control link's reporter); `None` before it starts.
    reports: Mutex<Option<mpsc::UnboundedSender<ReportToolsRequest>>>,
}

/// A tool's canonical definition (the tool object without `_meta`, keys sorted at every
/// level, no whitespace) and its SHA-256 in hex; `None` for an entry without a string `name`.
pub fn definition(tool: &Json) -> Option<(String, String, String)> {
    let name = tool.get("name")?.as_str()?.to_owned();
    let mut tool = tool.clone();
    if let Some(map) = tool.as_object_mut() {
        map.remove("_meta");
    }
    let mut canonical = String::new();
    write_canonical(&tool, &mut canonical);
    let digest = hex(&Sha256::digest(canonical.as_bytes()));
    Some((name, canonical, digest))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// JSON with object keys sorted, whatever map order serde_json was built with.
fn write_canonical(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl PinBook {
    /// Send reports to `sender` from now on.
    pub fn report_to(&self, sender: mpsc::UnboundedSender<ReportToolsRequest>) {
        if let Ok(mut slot) = self.reports.lock() {
            *slot = Some(sender);
        }
    }

    /// Take the control plane's pins (a snapshot, or a report's answer). With `whole`, pins the
    /// control plane no longer holds are forgotten unless this connector saw the tool itself
    /// (its first-seen pin may not have reached the control plane yet).
    pub fn apply(&self, pins: &[ToolPin], whole: bool) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if whole {
            entries.retain(|_, e| !e.seen.is_empty());
            for entry in entries.values_mut() {
                entry.pending.clear();
            }
        }
        for pin in pins {
            let entry = entries
                .entry((pin.resource.clone(), pin.tool.clone()))
                .or_default();
            entry.pinned.clone_from(&pin.pinned_digest);
            entry.pending.clone_from(&pin.pending_digest);
        }
    }

    /// Why a call to `tool` of `resource` is refused, if its definition changed since it was
    /// pinned.
    pub fn refusal(&self, resource: &str, tool: &str) -> Option<String> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&(resource.to_owned(), tool.to_owned()))?;
        entry.changed().then(|| {
            format!(
                "tool {tool:?} changed since it was pinned; it is refused until an admin approves the new definition"
            )
        })
    }

    /// Check a `tools/list` result of `resource` against the pins: tools seen for the first
    /// time are pinned, changed ones are removed from `result.tools`. Returns the newly seen
    /// changes (to audit); what was learned is reported to the control plane.
    pub fn observe(&self, resource: &str, result: &mut Json) -> Vec<Change> {
        let Some(Json::Array(tools)) = result.get_mut("tools") else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let mut report = Vec::new();
        let Ok(mut entries) = self.entries.write() else {
            // A poisoned book cannot vouch for anything: hide every tool.
            tools.clear();
            return changes;
        };
        tools.retain(|tool| {
            let Some((name, canonical, digest)) = definition(tool) else {
                return false;
            };
            let entry = entries
                .entry((resource.to_owned(), name.clone()))
                .or_default();
            let newly_seen = entry.seen != digest;
            entry.seen.clone_from(&digest);
            if entry.pinned.is_empty() {
                entry.pinned.clone_from(&digest);
            }
            let differs = entry.pinned != digest;
            if newly_seen || entry.pending != if differs { digest.as_str() } else { "" } {
                report.push(ToolDefinition {
                    name: name.clone(),
                    digest: digest.clone(),
                    definition: canonical,
                });
            }
            if differs && newly_seen {
                changes.push(Change {
                    tool: name,
                    pinned: entry.pinned.clone(),
                    served: digest,
                });
            }
            !entry.changed()
        });
        drop(entries);
        if !report.is_empty()
            && let Ok(slot) = self.reports.lock()
            && let Some(sender) = slot.as_ref()
        {
            let _ = sender.send(ReportToolsRequest {
                resource: resource.to_owned(),
                tools: report,
            });
        }
        changes
    }
}

/// What a `tools/list` response of a `pin_tools` resource is checked with.
pub(crate) struct ListCheck {
    pub(crate) gate: Arc<Gate>,
    pub(crate) resource: String,
    pub(crate) parties: Parties,
}

impl ListCheck {
    /// Hide changed tools from `result` and audit each newly seen change.
    pub(crate) fn list(&self, result: &mut Json) {
        let changes = self.gate.protocols.mcp.pins.observe(&self.resource, result);
        for change in changes {
            let mut verdict = Verdict::refusal();
            verdict.reason = Some(format!(
                "tool {:?} changed since it was pinned (pinned {}, now served {}); hidden and refused until an admin approves it",
                change.tool, change.pinned, change.served
            ));
            let statement = format!("tools/list {}", change.tool);
            let mut event =
                AuditEvent::new("result", &self.parties, Some(&statement), Arc::new(verdict));
            event.mcp = Some(Arc::new(McpAudit {
                method: "tools/list".into(),
                operation: Some("tool".into()),
                target: Some(change.tool.clone()),
                ..McpAudit::default()
            }));
            tracing::warn!(
                resource = %self.resource,
                tool = %change.tool,
                pinned = %change.pinned,
                served = %change.served,
                "an MCP tool definition changed since it was pinned"
            );
            self.gate.metrics.add(
                "gate_mcp_tool_changes_total",
                &[("resource", self.resource.as_str())],
                1.0,
            );
            self.gate.audit.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pin(tool: &str, pinned: &str, pending: &str) -> ToolPin {
        ToolPin {
            resource: "tools".into(),
            tool: tool.into(),
            pinned_digest: pinned.into(),
            pending_digest: pending.into(),
            ..ToolPin::default()
        }
    }

    fn names(result: &Json) -> Vec<&str> {
        result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn canonical_definitions_ignore_key_order_and_meta() {
        let a = json!({"name": "x", "description": "d", "inputSchema": {"type": "object", "properties": {}}});
        let b = json!({"inputSchema": {"properties": {}, "type": "object"}, "_meta": {"k": 1}, "description": "d", "name": "x"});
        let (_, ca, da) = definition(&a).unwrap();
        let (_, cb, db) = definition(&b).unwrap();
        assert_eq!((ca.as_str(), &da), (cb.as_str(), &db));
        assert_eq!(
            ca,
            r#"{"description":"d","inputSchema":{"properties":{},"type":"object"},"name":"x"}"#
        );
        assert_eq!(da.len(), 64);
        let changed = json!({"name": "x", "description": "now also emails your keys", "inputSchema": {"type": "object", "properties": {}}});
        assert_ne!(definition(&changed).unwrap().2, da);
        assert!(definition(&json!({"description": "no name"})).is_none());
    }

    #[test]
    fn first_seen_tools_are_pinned_and_changes_hidden_and_refused() {
        let book = PinBook::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        book.report_to(tx);
        let v1 = json!({"tools": [{"name": "lookup", "description": "v1"}, {"name": "echo"}]});
        let mut first = v1.clone();
        assert!(book.observe("tools", &mut first).is_empty());
        assert_eq!(names(&first), ["lookup", "echo"]);
        let reported = rx.try_recv().unwrap();
        assert_eq!(reported.tools.len(), 2, "first-seen tools are reported");
        let mut again = v1.clone();
        assert!(book.observe("tools", &mut again).is_empty());
        assert!(rx.try_recv().is_err(), "nothing new, nothing reported");
        assert!(book.refusal("tools", "lookup").is_none());

        let mut pulled = json!({"tools": [{"name": "lookup", "description": "v2: also deletes"}, {"name": "echo"}]});
        let changes = book.observe("tools", &mut pulled);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].tool, "lookup");
        assert_eq!(names(&pulled), ["echo"], "the changed tool is hidden");
        assert!(book.refusal("tools", "lookup").unwrap().contains("changed"));
        assert!(book.refusal("tools", "echo").is_none());
        assert_eq!(rx.try_recv().unwrap().tools[0].name, "lookup");
        let mut still = json!({"tools": [{"name": "lookup", "description": "v2: also deletes"}]});
        assert!(
            book.observe("tools", &mut still).is_empty(),
            "a change is audited once"
        );
        assert!(names(&still).is_empty());

        // The control plane records it as pending, then an admin approves it.
        let (_, _, v1_digest) = definition(&v1["tools"][0]).unwrap();
        let (_, _, v2_digest) = definition(&pulled_tool()).unwrap();
        book.apply(&[pin("lookup", &v1_digest, &v2_digest)], true);
        assert!(book.refusal("tools", "lookup").is_some());
        book.apply(&[pin("lookup", &v2_digest, "")], true);
        assert!(book.refusal("tools", "lookup").is_none());
        let mut approved = json!({"tools": [pulled_tool()]});
        assert!(book.observe("tools", &mut approved).is_empty());
        assert_eq!(names(&approved), ["lookup"]);
    }

    fn pulled_tool() -> Json {
        json!({"name": "lookup", "description": "v2: also deletes"})
    }

    #[test]
    fn a_change_another_replica_saw_is_refused_here_too() {
        let book = PinBook::default();
        book.apply(&[pin("lookup", &"a".repeat(64), &"b".repeat(64))], true);
        assert!(book.refusal("tools", "lookup").is_some());
        assert!(book.refusal("other", "lookup").is_none());
        // A snapshot without the pin forgets it (nothing was seen here).
        book.apply(&[], true);
        assert!(book.refusal("tools", "lookup").is_none());
    }
}
