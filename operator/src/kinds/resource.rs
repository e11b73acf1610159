//! `Resource` ⇄ control-plane resource: the fields the control plane stores, compared as a
//! normalized `gate.v1.Resource`.

use gate_proto::v1 as pb;
use tonic::Status;

use crate::context::Ctx;
use crate::crd::{ORIGIN, Resource, SyncStatus};
use crate::mirror::Mirror;
use crate::plan::Observed;

/// Only the fields the spec sets; ids, marks and times cleared so `==` compares contents.
fn normalized(r: &pb::Resource) -> pb::Resource {
    let mut approver_groups = r.approver_groups.clone();
    approver_groups.sort();
    pb::Resource {
        name: r.name.clone(),
        protocol: r.protocol.clone(),
        host: r.host.clone(),
        port: r.port,
        database: r.database.clone(),
        labels: r.labels.clone(),
        require_access_grant: r.require_access_grant,
        approver_groups,
        connector_selector: r.connector_selector.clone(),
        ..pb::Resource::default()
    }
}

impl Mirror for Resource {
    type Want = pb::Resource;
    const KIND: &'static str = "Resource";

    fn sync_status(&self) -> SyncStatus {
        self.status.clone().unwrap_or_default()
    }

    async fn desired(&self, _ctx: &Ctx) -> Result<pb::Resource, String> {
        let spec = &self.spec;
        let port = u32::try_from(spec.endpoint.port)
            .ok()
            .filter(|p| (1..=65_535).contains(p))
            .ok_or_else(|| {
                format!(
                    "spec.endpoint.port: expected 1-65535, got {}",
                    spec.endpoint.port
                )
            })?;
        if spec.endpoint.host.is_empty() {
            return Err("spec.endpoint.host: is required".into());
        }
        Ok(normalized(&pb::Resource {
            name: kube::ResourceExt::name_any(self),
            protocol: spec.protocol.as_str().to_owned(),
            host: spec.endpoint.host.clone(),
            port,
            database: spec.database.clone().unwrap_or_default(),
            labels: spec.labels.clone().into_iter().collect(),
            require_access_grant: spec.require_access_grant,
            approver_groups: spec.approver_groups.clone(),
            connector_selector: spec.connector_selector.clone().into_iter().collect(),
            ..pb::Resource::default()
        }))
    }

    async fn observe(ctx: &Ctx, name: &str) -> Result<Option<Observed<pb::Resource>>, Status> {
        let all = ctx
            .cp()
            .list_resources(pb::ListResourcesRequest {})
            .await?
            .into_inner();
        Ok(all
            .resources
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| Observed {
                current: normalized(&r),
                id: r.id,
                origin: r.origin,
                owner: r.owner,
            }))
    }

    async fn create(
        ctx: &Ctx,
        _name: &str,
        uid: &str,
        want: &pb::Resource,
    ) -> Result<String, Status> {
        let resource = pb::Resource {
            origin: ORIGIN.into(),
            owner: uid.into(),
            ..want.clone()
        };
        let created = ctx
            .cp()
            .create_resource(pb::CreateResourceRequest {
                resource: Some(resource),
            })
            .await?;
        Ok(created.into_inner().id)
    }

    async fn update(ctx: &Ctx, id: &str, _name: &str, want: &pb::Resource) -> Result<(), Status> {
        let resource = pb::Resource {
            id: id.into(),
            ..want.clone()
        };
        ctx.cp()
            .update_resource(pb::UpdateResourceRequest {
                resource: Some(resource),
            })
            .await?;
        Ok(())
    }

    async fn delete(ctx: &Ctx, id: &str) -> Result<(), Status> {
        ctx.cp()
            .delete_resource(pb::DeleteResourceRequest { id: id.into() })
            .await?;
        Ok(())
    }
}
