//! What comes back from an MCP server, enforced: tool results and resource
//! contents masked (`structuredContent`, and JSON inside `text` items), and
//! lists narrowed to the targets an access grant allows. Pure.

use gate_policy::json::mask_json;
use gate_policy::mask::MaskingKey;
use gate_policy::{GrantInfo, Mask};
use serde_json::Value as Json;

/// The targets a grant allows for one operation; `None` when the grant
/// (or its absence) covers the whole resource.
pub fn allowed_targets(grant: Option<&GrantInfo>, operation: &str) -> Option<Vec<String>> {
    let grant = grant?;
    if grant.scopes.is_empty() {
        return None;
    }
    let mut targets = Vec::new();
    for scope in &grant.scopes {
        let op = scope.get("operation").and_then(Json::as_str).unwrap_or("");
        let target = scope.get("target").and_then(Json::as_str).unwrap_or("");
        if (op == operation || op == "*") && (target == "*" || target.is_empty()) {
            return None;
        }
        if op == operation || op == "*" {
            targets.push(target.to_owned());
        }
    }
    Some(targets)
}

/// Why a call to `target` of `operation` is outside the grant, if it is.
pub fn outside_grant(grant: Option<&GrantInfo>, operation: &str, target: &str) -> Option<String> {
    let allowed = allowed_targets(grant, operation)?;
    (!allowed.iter().any(|t| t == target)).then(|| {
        format!(
            "{operation} {target:?} is outside your access grant (allowed: {})",
            allowed.join(", ")
        )
    })
}

/// Narrow a list result (`tools/list`, `resources/list`, …) to the grant's
/// targets; how many entries were dropped.
pub fn filter_list(method: &str, result: &mut Json, grant: Option<&GrantInfo>) -> usize {
    let (field, operation, key) = match method {
        "tools/list" => ("tools", "tool", "name"),
        "prompts/list" => ("prompts", "prompt", "name"),
        "resources/list" => ("resources", "resource", "uri"),
        "resources/templates/list" => ("resourceTemplates", "resource", "uriTemplate"),
        _ => return 0,
    };
    let Some(allowed) = allowed_targets(grant, operation) else {
        return 0;
    };
    let Some(Json::Array(items)) = result.get_mut(field) else {
        return 0;
    };
    let before = items.len();
    items.retain(|item| {
        item.get(key)
            .and_then(Json::as_str)
            .is_some_and(|name| allowed.iter().any(|a| a == name))
    });
    let dropped = before - items.len();
    if dropped > 0
        && let Some(meta) = result.get_mut("_meta").and_then(Json::as_object_mut)
    {
        // A list narrowed for one caller must never be cached as shared.
        meta.insert("cacheScope".into(), "private".into());
    }
    dropped
}

/// Mask a result in place: `structuredContent`, every `text` content item
/// (JSON inside it), resource `contents[].text`. A text item that is not
/// JSON, or a `blob`, cannot be masked: `Err` says why (the caller refuses).
pub fn mask_result(
    result: &mut Json,
    masks: &[Mask],
    key: Option<&MaskingKey>,
) -> Result<(), String> {
    if masks.is_empty() {
        return Ok(());
    }
    let hash_key =
        |_| "a policy masks with strategy hash, but no masking.hash_key is configured".to_owned();
    if let Some(structured) = result.get_mut("structuredContent") {
        mask_json(structured, masks, key).map_err(hash_key)?;
    }
    for list in ["content", "contents", "messages"] {
        let Some(Json::Array(items)) = result.get_mut(list) else {
            continue;
        };
        for item in items {
            // Prompt messages carry their content one level down.
            let item = match item.get_mut("content") {
                Some(inner) if inner.is_object() => inner,
                _ => item,
            };
            if item.get("blob").is_some() {
                return Err(
                    "a policy masks this result, but it carries binary content Gate cannot inspect"
                        .into(),
                );
            }
            if let Some(Json::String(text)) = item.get_mut("text") {
                let mut doc: Json = serde_json::from_str(text).map_err(|_| {
                    "a policy masks this result, but a text item is not JSON, so it cannot be masked".to_owned()
                })?;
                mask_json(&mut doc, masks, key).map_err(hash_key)?;
                *text = doc.to_string();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use gate_policy::Strategy;
    use serde_json::json;

    use super::*;

    fn grant(scopes: Json) -> GrantInfo {
        GrantInfo {
            id: "g".into(),
            expires_at: None,
            scopes: scopes.as_array().unwrap().clone(),
        }
    }

    #[test]
    fn lists_narrow_to_the_grant_and_stop_being_shared() {
        let g = grant(json!([{"operation": "tool", "target": "lookup"}]));
        let mut result = json!({"tools": [{"name": "lookup"}, {"name": "delete_all"}], "_meta": {"cacheScope": "public"}});
        assert_eq!(filter_list("tools/list", &mut result, Some(&g)), 1);
        assert_eq!(result["tools"], json!([{"name": "lookup"}]));
        assert_eq!(result["_meta"]["cacheScope"], "private");
        assert_eq!(filter_list("tools/list", &mut result, None), 0);
        assert!(
            outside_grant(Some(&g), "tool", "delete_all")
                .unwrap()
                .contains("outside")
        );
        assert!(outside_grant(Some(&g), "tool", "lookup").is_none());
        let whole = grant(json!([{"operation": "tool", "target": "*"}]));
        assert!(outside_grant(Some(&whole), "tool", "anything").is_none());
    }

    #[test]
    fn results_are_masked_in_structured_and_text_content() {
        let masks = [Mask {
            column: "email".into(),
            strategy: Strategy::Redact,
            table: None,
        }];
        let mut result = json!({
            "content": [{"type": "text", "text": "{\"email\":\"a@b.c\",\"id\":1}"}],
            "structuredContent": {"email": "a@b.c"}
        });
        mask_result(&mut result, &masks, None).unwrap();
        assert_eq!(result["structuredContent"]["email"], "***");
        assert_eq!(result["content"][0]["text"], "{\"email\":\"***\",\"id\":1}");
        let mut plain = json!({"content": [{"type": "text", "text": "alice is a@b.c"}]});
        assert!(mask_result(&mut plain, &masks, None).is_err());
        let mut unmasked = plain.clone();
        mask_result(&mut unmasked, &[], None).unwrap();
        assert_eq!(unmasked, plain, "without masks nothing is touched");
    }
}
