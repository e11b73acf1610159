//! MCP tool pins: connectors report the tools they saw listed (`ReportTools`); admins review
//! and approve a changed definition. Validation names the field; a digest must be the SHA-256
//! of the definition it comes with, so what an admin approves is exactly what was served.

use gate_proto::v1::{
    ApproveToolPinRequest, ListToolPinsRequest, ListToolPinsResponse, ReportToolsRequest,
    ReportToolsResponse, ToolPin,
};

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, Code};
use crate::store::Approval;
use crate::util::sha256_hex;

/// Most tools one report may carry.
pub(crate) const MAX_TOOLS_PER_REPORT: usize = 1000;
/// Longest definition (canonical JSON) stored.
pub(crate) const MAX_DEFINITION_BYTES: usize = 64 * 1024;

/// MCP tool names: 1–256 characters, no control characters.
fn tool_name(field: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    validate::text(field, name, 256)?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn digest(field: &str, value: &str) -> ApiResult<()> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "expected a SHA-256 digest as 64 lowercase hex digits",
        ))
    }
}

fn check_report(req: &ReportToolsRequest) -> ApiResult<()> {
    validate::name("resource", &req.resource)?;
    if req.tools.len() > MAX_TOOLS_PER_REPORT {
        return Err(ApiError::invalid(
            "tools",
            format!("at most {MAX_TOOLS_PER_REPORT} tools per report"),
        ));
    }
    for (i, tool) in req.tools.iter().enumerate() {
        tool_name(&format!("tools[{i}].name"), &tool.name)?;
        digest(&format!("tools[{i}].digest"), &tool.digest)?;
        let field = format!("tools[{i}].definition");
        if tool.definition.len() > MAX_DEFINITION_BYTES {
            return Err(ApiError::invalid(
                &field,
                format!("must be at most {MAX_DEFINITION_BYTES} bytes"),
            ));
        }
        let parsed: serde_json::Value = serde_json::from_str(&tool.definition)
            .map_err(|e| ApiError::invalid(&field, format!("expected JSON: {e}")))?;
        if parsed.get("name").and_then(|n| n.as_str()) != Some(tool.name.as_str()) {
            return Err(ApiError::invalid(
                &field,
                "expected a tool object whose name is the tool's name",
            ));
        }
        if sha256_hex(&tool.definition) != tool.digest {
            return Err(ApiError::invalid(
                &format!("tools[{i}].digest"),
                "is not the SHA-256 of the definition",
            ));
        }
    }
    Ok(())
}

impl ControlPlane {
    /// A connector's `tools/list` observation (connector key).
    pub async fn report_tools(
        &self,
        caller: &Caller,
        req: ReportToolsRequest,
    ) -> ApiResult<ReportToolsResponse> {
        let org = caller.org(Need::Connector)?;
        check_report(&req)?;
        let (pins, changed) = self
            .store
            .report_tools(org, &req.resource, &req.tools)
            .await?;
        if changed {
            self.changed();
        }
        Ok(ReportToolsResponse { pins })
    }

    /// The organization's pins (or one resource's), with the pinned and pending definitions
    /// (any role).
    pub async fn list_tool_pins(
        &self,
        caller: &Caller,
        req: ListToolPinsRequest,
    ) -> ApiResult<ListToolPinsResponse> {
        let org = caller.org(Need::Read)?;
        // Any text may be asked for: a name no resource has lists nothing.
        let resource = (!req.resource.is_empty()).then_some(req.resource.as_str());
        Ok(ListToolPinsResponse {
            pins: self.store.list_tool_pins(org, resource, true).await?,
        })
    }

    /// Approve a changed definition (admin): it becomes the pin, and connectors list and allow
    /// the tool again.
    pub async fn approve_tool_pin(
        &self,
        caller: &Caller,
        req: ApproveToolPinRequest,
    ) -> ApiResult<ToolPin> {
        let org = caller.org(Need::Admin)?;
        // Resource and tool are looked up as given (a pin that does not exist is a 404).
        digest("digest", &req.digest)?;
        let outcome = self
            .store
            .approve_tool_pin(org, &req.resource, &req.tool, &req.digest, &caller.actor())
            .await?;
        match outcome {
            Approval::Approved(pin) => {
                self.changed();
                tracing::info!(
                    resource = %req.resource,
                    tool = %req.tool,
                    digest = %req.digest,
                    by = %caller.actor(),
                    "changed MCP tool definition approved"
                );
                Ok(*pin)
            }
            Approval::NotFound => Err(ApiError::not_found("tool pin")),
            Approval::NothingPending => Err(ApiError::new(
                Code::FailedPrecondition,
                format!(
                    "tool {:?} matches its pin: no changed definition waits for approval",
                    req.tool
                ),
            )),
            Approval::Stale(now) => Err(ApiError {
                code: Code::FailedPrecondition,
                message: format!(
                    "the pending definition of {:?} changed again (its digest is now {now}); review it and approve that digest",
                    req.tool
                ),
                field: Some("digest".to_owned()),
            }),
        }
    }
}
