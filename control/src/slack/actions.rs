//! `POST /integrations/slack/actions`: Slack's interactivity callback for the Approve/Deny
//! buttons. The request signature (`v0`, 5-minute tolerance) is checked over the raw body; the
//! clicking Slack user is mapped to a Gate identity (email via `requester_mappings` reversed,
//! else `users.info`), who must be in one of the resource's `approver_groups` (else
//! `slack.approver_groups`) and must not be the requester. A refused click is answered in Slack
//! (an ephemeral reply) and changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gate_proto::v1::{ApproveAccessRequestRequest, DenyAccessRequestRequest};
use serde_json::{Value, json};

use super::api::Api;
use super::blocks::{APPROVE, DENY};
use crate::auth::{Caller, Principal};
use crate::delivery::sign::verify_slack;
use crate::error::{ApiError, Code};
use crate::service::ControlPlane;
use crate::util::now_ms;

/// Why a click was not applied (told to the clicker, in Slack).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Refused(String),
}

fn ephemeral(text: &str) -> Response {
    axum::Json(json!({"response_type": "ephemeral", "replace_original": false, "text": text}))
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The handler.
pub async fn handle(
    State(cp): State<Arc<ControlPlane>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = cp.slack.as_ref() else {
        return ApiError::new(Code::NotFound, "slack is not configured").into_response();
    };
    if let Err(e) = verify_slack(
        &slack.signing_secret,
        header(&headers, "x-slack-request-timestamp"),
        header(&headers, "x-slack-signature"),
        &body,
        now_ms() / 1000,
    ) {
        tracing::warn!(error = %e, "slack action refused: bad signature");
        cp.metrics.request("http", "SlackAction", "unauthenticated");
        return ApiError {
            code: Code::Unauthenticated,
            message: e.to_string(),
            field: Some("x-slack-signature".to_owned()),
        }
        .into_response();
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    let Some(payload) = payload.and_then(|p| serde_json::from_str::<Value>(&p).ok()) else {
        return ApiError::invalid(
            "payload",
            "expected a form field payload with a JSON object",
        )
        .into_response();
    };
    let outcome = match decide(&cp, &payload).await {
        Ok(text) => text,
        Err(ActionError::Refused(text)) => {
            tracing::warn!(user = %payload["user"]["id"], reason = %text, "slack action refused");
            text
        }
    };
    cp.metrics.request("http", "SlackAction", "ok");
    ephemeral(&outcome)
}

async fn decide(cp: &ControlPlane, payload: &Value) -> Result<String, ActionError> {
    let refused = |t: &str| ActionError::Refused(t.to_owned());
    let slack = cp
        .slack
        .as_ref()
        .ok_or_else(|| refused("slack is not configured"))?;
    let action = &payload["actions"][0];
    let action_id = action["action_id"].as_str().unwrap_or_default();
    if action_id != APPROVE && action_id != DENY {
        return Err(refused("unknown action"));
    }
    let (org_id, request_id) = action["value"]
        .as_str()
        .and_then(|v| v.split_once(':'))
        .ok_or_else(|| refused("the button carries no access request"))?;
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    if user.is_empty() {
        return Err(refused("no Slack user in the callback"));
    }
    // Who clicked, as a Gate identity.
    let mapped = slack
        .requester_mappings
        .iter()
        .find(|(_, id)| id.as_str() == user)
        .map(|(email, _)| email.clone());
    let email = match mapped {
        Some(email) => Some(email),
        None => Api {
            config: slack,
            timeout: cp.delivery.timeout,
        }
        .user_email(user)
        .await
        .map_err(|e| ActionError::Refused(format!("cannot tell who you are: {e}")))?,
    };
    let email = email.ok_or_else(|| refused("your Slack account has no email Gate can match"))?;
    let internal = |e: crate::store::StoreError| {
        tracing::warn!(error = %e, "slack action: store");
        refused("Gate could not record that; try again")
    };
    let identity = cp
        .store
        .list_identities(org_id)
        .await
        .map_err(internal)?
        .into_iter()
        .find(|i| i.email.eq_ignore_ascii_case(&email) || i.name.eq_ignore_ascii_case(&email))
        .ok_or_else(|| ActionError::Refused(format!("{email} is not a Gate identity here")))?;
    let request = cp
        .store
        .get_access_request(org_id, request_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| refused("that access request no longer exists"))?;
    let resource = cp
        .store
        .get_resource(org_id, &request.resource_id)
        .await
        .map_err(internal)?;
    let approvers = resource
        .map(|r| r.approver_groups)
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| slack.approver_groups.clone());
    if !identity.groups.iter().any(|g| approvers.contains(g)) {
        return Err(ActionError::Refused(format!(
            "{} may not decide access to {}: approvers are members of {}",
            identity.name,
            request.resource,
            approvers.join(", ")
        )));
    }
    if [&request.requested_by, &request.subject]
        .iter()
        .any(|who| who.eq_ignore_ascii_case(&identity.name) || who.eq_ignore_ascii_case(&email))
    {
        return Err(refused(
            "you asked for this access; someone else must decide",
        ));
    }
    let caller = Caller {
        principal: Principal::System,
        org_id: org_id.to_owned(),
    };
    let by = identity.name.clone();
    let result = if action_id == APPROVE {
        cp.approve_access_request(
            &caller,
            ApproveAccessRequestRequest {
                id: request_id.to_owned(),
                approved_by: by,
            },
        )
        .await
    } else {
        cp.deny_access_request(
            &caller,
            DenyAccessRequestRequest {
                id: request_id.to_owned(),
                denied_by: by,
            },
        )
        .await
    };
    match result {
        Ok(r) => Ok(format!(
            "Done: {}",
            super::blocks::outcome(&json!({
            "status": r.status, "approved_by": r.approved_by, "denied_by": r.denied_by,
            "expires_at": r.expires_at}))
        )),
        Err(e) => Err(ActionError::Refused(e.message)),
    }
}
