//! `ConnectorService`: registration, heartbeats, deregistration and snapshots (fetch and watch).

use std::sync::Arc;

use gate_proto::v1::{
    Connector, DeleteResponse, DeregisterConnectorRequest, FetchSnapshotRequest, HeartbeatRequest,
    HeartbeatResponse, ListConnectorsRequest, ListConnectorsResponse, RegisterConnectorRequest,
    RegisterConnectorResponse, Snapshot, WatchSnapshotRequest,
};
use std::collections::HashMap;

use gate_proto::v1::Resource;
use tokio::sync::mpsc;

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::util::{now_ms, rfc3339};

/// Heartbeat interval the control plane asks connectors to keep.
pub const HEARTBEAT_SECONDS: u32 = 10;

impl ControlPlane {
    pub async fn register_connector(
        &self,
        caller: &Caller,
        req: RegisterConnectorRequest,
    ) -> ApiResult<RegisterConnectorResponse> {
        let org = caller.org(Need::Connector)?;
        validate::name("name", &req.name)?;
        validate::text("version", &req.version, 64)?;
        validate::text("host", &req.host, 253)?;
        for (i, resource) in req.resources.iter().enumerate() {
            validate::name(&format!("resources[{i}]"), resource)?;
        }
        validate::labels("labels", &req.labels)?;
        let before = self.store.revision(org).await?;
        let connector: Connector = self
            .store
            .register_connector(
                org,
                &req.name,
                &req.version,
                &req.resources,
                &req.host,
                &req.labels,
            )
            .await?;
        if self.store.revision(org).await? != before {
            // New labels select other resources: its watch must send a new snapshot.
            self.changed();
        }
        tracing::info!(
            connector = %connector.name,
            id = %connector.id,
            org,
            "connector registered"
        );
        Ok(RegisterConnectorResponse {
            connector: Some(connector),
            heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        })
    }

    pub async fn heartbeat(
        &self,
        caller: &Caller,
        req: HeartbeatRequest,
    ) -> ApiResult<HeartbeatResponse> {
        let org = caller.org(Need::Connector)?;
        validate::id("connector_id", &req.connector_id)?;
        if !self.store.heartbeat(org, &req.connector_id).await? {
            return Err(ApiError::not_found("connector"));
        }
        Ok(HeartbeatResponse {
            snapshot_version: self.store.revision(org).await?,
        })
    }

    pub async fn deregister_connector(
        &self,
        caller: &Caller,
        req: DeregisterConnectorRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Connector)?;
        validate::id("connector_id", &req.connector_id)?;
        if !self.store.deregister(org, &req.connector_id).await? {
            return Err(ApiError::not_found("connector"));
        }
        self.queued();
        Ok(DeleteResponse {})
    }

    pub async fn list_connectors(
        &self,
        caller: &Caller,
        _req: ListConnectorsRequest,
    ) -> ApiResult<ListConnectorsResponse> {
        let org = caller.org(Need::Read)?;
        Ok(ListConnectorsResponse {
            connectors: self.store.list_connectors(org).await?,
        })
    }

    /// The whole state a connector enforces; only the version when `known_version` is current.
    pub async fn fetch_snapshot(
        &self,
        caller: &Caller,
        req: FetchSnapshotRequest,
    ) -> ApiResult<Snapshot> {
        let org = caller.org(Need::Connector)?;
        validate::labels("labels", &req.labels)?;
        let snapshot = self.snapshot(org, &req.labels, req.known_version).await?;
        self.metrics
            .snapshot_served(req.known_version != snapshot.version);
        Ok(snapshot)
    }

    /// The snapshot for a connector with `labels`: only the resources whose `connector_selector`
    /// they satisfy. A connector whose labels changed re-registers, which bumps the revision, so
    /// a `known_version` from before the change is never taken as current.
    async fn snapshot(
        &self,
        org: &str,
        labels: &HashMap<String, String>,
        known_version: u64,
    ) -> ApiResult<Snapshot> {
        let version = self.store.revision(org).await?;
        if known_version != 0 && known_version == version {
            return Ok(Snapshot {
                version,
                generated_at: rfc3339(now_ms()),
                ..Snapshot::default()
            });
        }
        Ok(Snapshot {
            version,
            resources: self.resources_for(org, labels).await?,
            policies: self.store.list_policies(org).await?,
            grants: self.store.active_grants(org).await?,
            identities: self.store.list_identities(org).await?,
            tool_pins: self.store.list_tool_pins(org, None, false).await?,
            generated_at: rfc3339(now_ms()),
        })
    }

    async fn resources_for(
        &self,
        org: &str,
        labels: &HashMap<String, String>,
    ) -> ApiResult<Vec<Resource>> {
        let mut resources = self.store.list_resources(org).await?;
        resources.retain(|r| selects(&r.connector_selector, labels));
        Ok(resources)
    }

    /// A stream that yields a full snapshot now (unless `known_version` is current) and after
    /// every change; ends when the receiver is dropped.
    pub async fn watch_snapshot(
        self: Arc<Self>,
        caller: &Caller,
        req: WatchSnapshotRequest,
    ) -> ApiResult<mpsc::Receiver<ApiResult<Snapshot>>> {
        let org = caller.org(Need::Connector)?.to_owned();
        validate::labels("labels", &req.labels)?;
        let (tx, rx) = mpsc::channel(4);
        let mut changes = self.subscribe();
        tokio::spawn(async move {
            // The version the connector has; `None` forces a first full snapshot.
            let mut sent = (req.known_version != 0).then_some(req.known_version);
            loop {
                changes.mark_unchanged();
                match self.snapshot(&org, &req.labels, 0).await {
                    Ok(snapshot) if sent != Some(snapshot.version) => {
                        sent = Some(snapshot.version);
                        self.metrics.snapshot_served(true);
                        if tx.send(Ok(snapshot)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// Does `selector` select a connector with `labels`: every key present with an equal value.
pub(crate) fn selects(
    selector: &HashMap<String, String>,
    labels: &HashMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}
