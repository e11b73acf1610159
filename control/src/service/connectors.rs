//! `ConnectorService`: registration, heartbeats, deregistration and snapshots (fetch and watch).

use std::sync::Arc;

use gate_proto::v1::{
    Connector, DeleteResponse, DeregisterConnectorRequest, FetchSnapshotRequest, HeartbeatRequest,
    HeartbeatResponse, ListConnectorsRequest, ListConnectorsResponse, RegisterConnectorRequest,
    RegisterConnectorResponse, Snapshot, WatchSnapshotRequest,
};
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
        let connector: Connector = self
            .store
            .register_connector(org, &req.name, &req.version, &req.resources, &req.host)
            .await?;
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
        let snapshot = self.snapshot(org, req.known_version).await?;
        self.metrics
            .snapshot_served(req.known_version != snapshot.version);
        Ok(snapshot)
    }

    async fn snapshot(&self, org: &str, known_version: u64) -> ApiResult<Snapshot> {
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
            resources: self.store.list_resources(org).await?,
            policies: self.store.list_policies(org).await?,
            grants: self.store.active_grants(org).await?,
            identities: self.store.list_identities(org).await?,
            tool_pins: self.store.list_tool_pins(org, None, false).await?,
            generated_at: rfc3339(now_ms()),
        })
    }

    /// A stream that yields a full snapshot now (unless `known_version` is current) and after
    /// every change; ends when the receiver is dropped.
    pub async fn watch_snapshot(
        self: Arc<Self>,
        caller: &Caller,
        req: WatchSnapshotRequest,
    ) -> ApiResult<mpsc::Receiver<ApiResult<Snapshot>>> {
        let org = caller.org(Need::Connector)?.to_owned();
        let (tx, rx) = mpsc::channel(4);
        let mut changes = self.subscribe();
        tokio::spawn(async move {
            // The version the connector has; `None` forces a first full snapshot.
            let mut sent = (req.known_version != 0).then_some(req.known_version);
            loop {
                changes.mark_unchanged();
                match self.snapshot(&org, 0).await {
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
