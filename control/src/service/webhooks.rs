//! Webhooks (create with the secret shown once, get, list, replace, delete) and the delivery
//! outbox (list, replay): admin only, on both transports.

use gate_proto::v1::{
    CreateWebhookRequest, CreateWebhookResponse, DeleteResponse, DeleteWebhookRequest, Delivery,
    GetWebhookRequest, ListDeliveriesRequest, ListDeliveriesResponse, ListWebhooksRequest,
    ListWebhooksResponse, ReplayDeliveryRequest, UpdateWebhookRequest, Webhook,
};

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::delivery::ssrf::Guard;
use crate::error::{ApiError, ApiResult, Code};
use crate::store::{DELIVERY_STATES, EVENT_TYPES};
use crate::util::{hex, new_id, random_bytes};

/// The shape of a webhook URL (also in the OpenAPI document): https to a host name (no IP
/// literals, lowercase), or http to loopback, an optional port, a plain path. The SSRF guard
/// then refuses metadata names and, at delivery, names resolving to refused addresses.
pub(crate) const WEBHOOK_URL: &str = concat!(
    r"^(https://([a-z0-9-]+\.)+[a-z]{2,}|http://(127\.0\.0\.1|localhost))",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    r"(/[A-Za-z0-9._~-]*)*$"
);

fn url_shape() -> &'static Option<regex::Regex> {
    static SHAPE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    SHAPE.get_or_init(|| regex::Regex::new(WEBHOOK_URL).ok())
}

/// Longest webhook URL.
const MAX_URL: usize = 2048;
/// Most deliveries one list returns.
pub(crate) const MAX_LIST: u32 = 1000;

impl ControlPlane {
    fn guard(&self) -> Guard {
        Guard {
            allowed_http_hosts: self.delivery.allowed_http_hosts.clone(),
            trusted: false,
        }
    }

    fn check_webhook(&self, url: &str, events: &[String], description: &str) -> ApiResult<()> {
        if url.is_empty() {
            return Err(ApiError::invalid("url", "is required"));
        }
        validate::text("url", url, MAX_URL)?;
        let target = self
            .guard()
            .check_url(url)
            .map_err(|e| ApiError::invalid("url", e))?;
        // http:// to a host the operator allowed is outside the documented shape.
        let allowed_http = !target.tls
            && self
                .delivery
                .allowed_http_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&target.host));
        if !allowed_http && !url_shape().as_ref().is_some_and(|r| r.is_match(url)) {
            return Err(ApiError::invalid(
                "url",
                "expected https://host.name[:port]/path (lowercase host name), or http:// to \
                 127.0.0.1 or localhost",
            ));
        }
        if events.is_empty() {
            return Err(ApiError::invalid(
                "events",
                format!("select at least one of {}", EVENT_TYPES.join(", ")),
            ));
        }
        for (i, event) in events.iter().enumerate() {
            validate::one_of(&format!("events[{i}]"), event, EVENT_TYPES)?;
        }
        validate::text("description", description, 1024)
    }

    pub async fn create_webhook(
        &self,
        caller: &Caller,
        req: CreateWebhookRequest,
    ) -> ApiResult<CreateWebhookResponse> {
        let org = caller.org(Need::Admin)?;
        self.check_webhook(&req.url, &req.events, &req.description)?;
        let secret = format!("whsec_{}", hex(&random_bytes::<32>()));
        let mut events = req.events;
        events.sort();
        events.dedup();
        let webhook = Webhook {
            id: new_id(),
            org_id: org.to_owned(),
            url: req.url,
            events,
            enabled: req.enabled.unwrap_or(true),
            description: req.description,
            ..Webhook::default()
        };
        let webhook = self.store.insert_webhook(&webhook, &secret).await?;
        tracing::info!(id = %webhook.id, url = %webhook.url, org, "webhook created");
        Ok(CreateWebhookResponse {
            webhook: Some(webhook),
            secret,
        })
    }

    pub async fn get_webhook(&self, caller: &Caller, req: GetWebhookRequest) -> ApiResult<Webhook> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        self.store
            .get_webhook(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        _req: ListWebhooksRequest,
    ) -> ApiResult<ListWebhooksResponse> {
        let org = caller.org(Need::Admin)?;
        Ok(ListWebhooksResponse {
            webhooks: self.store.list_webhooks(org).await?,
        })
    }

    pub async fn update_webhook(
        &self,
        caller: &Caller,
        req: UpdateWebhookRequest,
    ) -> ApiResult<Webhook> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        self.check_webhook(&req.url, &req.events, &req.description)?;
        let mut events = req.events;
        events.sort();
        events.dedup();
        let webhook = Webhook {
            id: req.id,
            org_id: org.to_owned(),
            url: req.url,
            events,
            enabled: req.enabled,
            description: req.description,
            ..Webhook::default()
        };
        self.store
            .update_webhook(&webhook)
            .await?
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        req: DeleteWebhookRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_webhook(org, &req.id).await? {
            return Err(ApiError::not_found("webhook"));
        }
        Ok(DeleteResponse {})
    }

    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        req: ListDeliveriesRequest,
    ) -> ApiResult<ListDeliveriesResponse> {
        let org = caller.org(Need::Admin)?;
        if !req.state.is_empty() {
            validate::one_of("state", &req.state, DELIVERY_STATES)?;
        }
        if req.limit > MAX_LIST {
            return Err(ApiError::invalid(
                "limit",
                format!("must be at most {MAX_LIST}"),
            ));
        }
        let limit = if req.limit == 0 { MAX_LIST } else { req.limit };
        let state = Some(req.state.as_str()).filter(|s| !s.is_empty());
        Ok(ListDeliveriesResponse {
            deliveries: self.store.list_deliveries(org, state, limit).await?,
        })
    }

    pub async fn replay_delivery(
        &self,
        caller: &Caller,
        req: ReplayDeliveryRequest,
    ) -> ApiResult<Delivery> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        let Some(replayed) = self.store.replay_delivery(org, &req.id).await? else {
            let current = self
                .store
                .get_delivery(org, &req.id)
                .await?
                .ok_or_else(|| ApiError::not_found("delivery"))?;
            return Err(ApiError {
                code: Code::FailedPrecondition,
                message: format!(
                    "the delivery is {}; only dead or delivered ones are replayed",
                    current.state
                ),
                field: Some("id".to_owned()),
            });
        };
        self.queued();
        tracing::info!(id = %req.id, org, "delivery replayed");
        Ok(replayed)
    }
}
