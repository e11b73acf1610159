//! `/api/v1` handlers for webhooks, the delivery outbox and MCP tool pins, called by
//! [`super::api::dispatch`] for the operations it does not know.

use gate_proto::v1::*;

use super::api::{Call, Reply, json};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::service::ControlPlane;

pub(super) async fn dispatch(
    cp: &ControlPlane,
    caller: &Caller,
    operation: &str,
    call: &Call<'_>,
) -> ApiResult<Reply> {
    let id = || call.param("id");
    match operation {
        "ListWebhooks" => json(cp.list_webhooks(caller, ListWebhooksRequest {}).await?),
        "CreateWebhook" => json(cp.create_webhook(caller, call.body()?).await?),
        "GetWebhook" => json(
            cp.get_webhook(caller, GetWebhookRequest { id: id() })
                .await?,
        ),
        "UpdateWebhook" => {
            let request = UpdateWebhookRequest {
                id: id(),
                ..call.body()?
            };
            json(cp.update_webhook(caller, request).await?)
        }
        "DeleteWebhook" => json(
            cp.delete_webhook(caller, DeleteWebhookRequest { id: id() })
                .await?,
        ),
        "ListDeliveries" => {
            let state = call.query.get("state").cloned().unwrap_or_default();
            let limit = match call.query.get("limit") {
                None => 0,
                Some(text) => text
                    .parse()
                    .map_err(|_| ApiError::invalid("limit", "expected a whole number"))?,
            };
            json(
                cp.list_deliveries(caller, ListDeliveriesRequest { state, limit })
                    .await?,
            )
        }
        "ReplayDelivery" => json(
            cp.replay_delivery(caller, ReplayDeliveryRequest { id: id() })
                .await?,
        ),
        "ListToolPins" => {
            call.query_only(&["resource"])?;
            let resource = call.query.get("resource").cloned().unwrap_or_default();
            json(
                cp.list_tool_pins(caller, ListToolPinsRequest { resource })
                    .await?,
            )
        }
        "ReportTools" => json(cp.report_tools(caller, call.body()?).await?),
        "ApproveToolPin" => {
            let request = ApproveToolPinRequest {
                resource: call.param("resource"),
                tool: call.param("tool"),
                ..call.body()?
            };
            json(cp.approve_tool_pin(caller, request).await?)
        }
        other => Err(ApiError::new(
            Code::Unimplemented,
            format!("operation {other} is not implemented"),
        )),
    }
}
