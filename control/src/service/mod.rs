//! The business logic every transport calls: one function per operation, taking the caller and the
//! protobuf request and returning the protobuf response or an [`ApiError`]. Auth is decided here.

pub(crate) mod access;
pub(crate) mod audit;
mod connectors;
pub(crate) mod identities;
mod orgs;
pub(crate) mod policies;
pub mod recordings;
pub(crate) mod resources;
pub(crate) mod tool_pins;
mod validate;
pub(crate) mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use gate_config::ControlConfig;
use gate_config::control::{DeliveryConfig, RecordingConfig, SlackConfig};
use tokio::sync::{Notify, watch};

use crate::auth::{Caller, Principal, Role, bearer, same_secret};
use crate::error::{ApiError, ApiResult, Code};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tokens::TokenIssuer;
use crate::util::{now_ms, sha256_hex};

pub use connectors::HEARTBEAT_SECONDS;

/// The organization system callers act in when they send no `X-Org-ID`.
pub const DEFAULT_ORG: &str = "default";

/// The control plane's shared state.
#[derive(Debug)]
pub struct ControlPlane {
    pub store: Store,
    api_key: Option<String>,
    insecure: bool,
    pub tokens: TokenIssuer,
    pub metrics: Metrics,
    token_ttl: Duration,
    /// Bumped on every change a connector must see; snapshot watchers wake on it.
    changes: watch::Sender<u64>,
    /// Wakes the outbox worker when a change queued deliveries.
    pub delivery_wake: Arc<Notify>,
    pub delivery: DeliveryConfig,
    pub slack: Option<SlackConfig>,
    /// Recording storage (`recording.dir`, `recording.retention`); `None`: uploads are refused.
    pub recording: Option<RecordingConfig>,
    /// The admin UI's OpenID Connect sign-in (`ui.oidc`); `None`: keys only.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

impl ControlPlane {
    /// Build from a loaded config and an opened store. `insecure` allows a missing `api_key`.
    pub async fn new(config: &ControlConfig, store: Store, insecure: bool) -> Result<Self, String> {
        let api_key = config.api_key.clone().filter(|k| !k.is_empty());
        if api_key.is_none() && !insecure {
            return Err(
                "api_key is empty: set it (GATE_API_KEY) or start with --insecure / \
                 GATE_INSECURE=true for local development"
                    .to_owned(),
            );
        }
        let tokens = TokenIssuer::load_or_create(
            &store,
            &config.public_url,
            &config.identity_tokens.audience,
        )
        .await
        .map_err(|e| format!("identity token signing key: {e}"))?;
        let changes = watch::channel(0).0;
        if let Some(dsn) = store.postgres_dsn() {
            tokio::spawn(crate::store::listen_for_changes(
                dsn.to_owned(),
                changes.clone(),
            ));
        }
        let oidc = match &config.ui.oidc {
            Some(oidc) => Some(Arc::new(crate::oidc::Oidc::new(oidc, &config.public_url)?)),
            None => None,
        };
        Ok(Self {
            oidc,
            store,
            api_key,
            insecure,
            tokens,
            metrics: Metrics::default(),
            token_ttl: config.identity_tokens.default_ttl,
            changes,
            delivery_wake: Arc::new(Notify::new()),
            delivery: config.delivery.clone(),
            slack: config.slack.clone(),
            recording: config.recording.clone(),
        })
    }

    /// Authenticate `authorization` (the header value) and apply `org_header` (`X-Org-ID`).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        org_header: Option<&str>,
        operation: &str,
    ) -> ApiResult<Caller> {
        let org_header = org_header.map(str::trim).filter(|o| !o.is_empty());
        let token = match authorization {
            None => None,
            Some(value) => Some(bearer(value).ok_or_else(|| {
                ApiError::unauthenticated("authorization: expected `Bearer <api key>`")
            })?),
        };
        let principal = match token {
            None if self.insecure && self.api_key.is_none() => {
                tracing::warn!(operation, "unauthenticated request served (insecure mode)");
                Principal::Insecure
            }
            None => {
                return Err(ApiError::unauthenticated(
                    "missing bearer token (authorization header)",
                ));
            }
            Some(token)
                if self
                    .api_key
                    .as_deref()
                    .is_some_and(|k| same_secret(k, token)) =>
            {
                Principal::System
            }
            Some(token) => {
                let stored = self
                    .store
                    .key_by_hash(&sha256_hex(token))
                    .await?
                    .ok_or_else(|| ApiError::unauthenticated("invalid api key"))?;
                if stored.revoked {
                    return Err(ApiError::unauthenticated("api key revoked"));
                }
                if let Some(org) = org_header
                    && org != stored.key.org_id
                {
                    return Err(ApiError {
                        code: Code::PermissionDenied,
                        message: "organization keys are bound to their organization; only system keys choose one"
                            .to_owned(),
                        field: Some("x-org-id".to_owned()),
                    });
                }
                if stored.last_used_ms.is_none_or(|t| now_ms() - t > 60_000) {
                    let store = self.store.clone();
                    let id = stored.key.id.clone();
                    tokio::spawn(async move {
                        let _ = store.touch_key(&id).await;
                    });
                }
                let role = Role::parse(&stored.key.role).ok_or_else(|| {
                    ApiError::new(Code::Internal, "stored api key has an unknown role")
                })?;
                return Ok(Caller {
                    principal: Principal::Key {
                        id: stored.key.id,
                        name: stored.key.name,
                        role,
                    },
                    org_id: stored.key.org_id,
                });
            }
        };
        let org_id = match org_header {
            None => DEFAULT_ORG.to_owned(),
            Some(org) => {
                if self.store.get_org(org).await?.is_none() {
                    return Err(ApiError {
                        code: Code::NotFound,
                        message: format!("organization {org:?} not found"),
                        field: Some("x-org-id".to_owned()),
                    });
                }
                org.to_owned()
            }
        };
        Ok(Caller { principal, org_id })
    }

    /// Tell snapshot watchers that something changed.
    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
        // Other replicas on the same PostgreSQL learn of it through NOTIFY.
        if self.store.postgres_dsn().is_some() {
            let store = self.store.clone();
            tokio::spawn(async move { store.notify_change().await });
        }
    }

    /// Tell the outbox worker that deliveries were queued.
    pub(crate) fn queued(&self) {
        self.delivery_wake.notify_one();
    }

    /// Is Slack configured (so access events are queued for it too)?
    pub(crate) fn slack_enabled(&self) -> bool {
        self.slack.is_some()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn insecure(&self) -> bool {
        self.insecure && self.api_key.is_none()
    }
}
