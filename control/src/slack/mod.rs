//! Slack approvals: new access requests are posted with Approve/Deny buttons to the channel
//! chosen by `resource_approval_channels` → `org_approval_channels` → `default_approval_channel`;
//! the requester is told (via `requester_mappings` → a Slack user id in `requested_by` →
//! `users.lookupByEmail`); decisions update the original message. All of it runs from the
//! outbox (kind `slack`), so Slack failures are retried and dead-lettered like webhooks.
//! Button clicks come back on `/integrations/slack/actions` (`actions.rs`).

pub mod actions;
pub mod api;
pub mod blocks;

use gate_config::control::{DeliveryConfig, SlackConfig};
use gate_proto::v1::Delivery;
use serde_json::Value;

use crate::delivery::DeliveryError;
use crate::service::ControlPlane;
use api::Api;

fn retry(e: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Retry(e.to_string())
}

/// Deliver one outbox row to Slack.
pub async fn deliver(
    cp: &ControlPlane,
    config: &DeliveryConfig,
    d: &Delivery,
) -> Result<(), DeliveryError> {
    let Some(slack) = cp.slack.as_ref() else {
        return Err(DeliveryError::Permanent(
            "slack is not configured".to_owned(),
        ));
    };
    let api = Api {
        config: slack,
        timeout: config.timeout,
    };
    let event: Value = serde_json::from_str(&d.payload)
        .map_err(|e| DeliveryError::Permanent(format!("payload is not JSON: {e}")))?;
    let request = &event["data"]["access_request"];
    let request_id = request["id"].as_str().unwrap_or_default();
    let posted = cp
        .store
        .slack_message(&d.org_id, request_id)
        .await
        .map_err(retry)?;
    match d.event_type.as_str() {
        "access.requested" => {
            // A retry after a successful post does not post twice.
            if posted.is_none() {
                let org_name = cp
                    .store
                    .get_org(&d.org_id)
                    .await
                    .map_err(retry)?
                    .map(|o| o.name)
                    .unwrap_or_default();
                let channel =
                    channel_for(slack, &d.org_id, &org_name, request).ok_or_else(|| {
                        DeliveryError::Permanent(
                            "no approval channel: set slack.default_approval_channel".to_owned(),
                        )
                    })?;
                let (channel, ts) = api
                    .post_message(&blocks::pending(&channel, request))
                    .await
                    .map_err(retry)?;
                cp.store
                    .save_slack_message(&d.org_id, request_id, &channel, &ts)
                    .await
                    .map_err(retry)?;
            }
            notify_requester(&api, slack, request, true).await
        }
        _ => {
            if let Some((channel, ts)) = posted {
                api.update(&blocks::decided(&channel, &ts, request))
                    .await
                    .map_err(retry)?;
            }
            notify_requester(&api, slack, request, false).await
        }
    }
}

/// The approval channel: the resource's (by id or name), the organization's (by id or name),
/// else the default.
pub fn channel_for(
    slack: &SlackConfig,
    org_id: &str,
    org_name: &str,
    request: &Value,
) -> Option<String> {
    let text = |k: &str| request[k].as_str().unwrap_or_default().to_owned();
    let by_resource = [text("resource_id"), text("resource")]
        .into_iter()
        .find_map(|k| slack.resource_approval_channels.get(&k).cloned());
    let by_org = [org_id, org_name]
        .into_iter()
        .find_map(|k| slack.org_approval_channels.get(k).cloned());
    by_resource
        .or(by_org)
        .or_else(|| slack.default_approval_channel.clone())
        .filter(|c| !c.is_empty())
}

/// Looks like a Slack user id (`U0123ABCD`, `W…` on Enterprise Grid).
fn is_slack_user_id(text: &str) -> bool {
    text.len() >= 9
        && (text.starts_with('U') || text.starts_with('W'))
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// The requester's Slack user: mapping, then a user id as given, then lookup by email.
pub async fn requester_user(
    api: &Api<'_>,
    slack: &SlackConfig,
    requested_by: &str,
) -> Result<Option<String>, api::SlackError> {
    if let Some(user) = slack.requester_mappings.get(requested_by) {
        return Ok(Some(user.clone()));
    }
    if is_slack_user_id(requested_by) {
        return Ok(Some(requested_by.to_owned()));
    }
    if requested_by.contains('@') {
        return api.lookup_by_email(requested_by).await;
    }
    Ok(None)
}

async fn notify_requester(
    api: &Api<'_>,
    slack: &SlackConfig,
    request: &Value,
    posted: bool,
) -> Result<(), DeliveryError> {
    let requested_by = request["requested_by"].as_str().unwrap_or_default();
    match requester_user(api, slack, requested_by)
        .await
        .map_err(retry)?
    {
        Some(user) => api
            .post_message(&blocks::notice(&user, request, posted))
            .await
            .map(|_| ())
            .map_err(retry),
        None => Ok(()),
    }
}
