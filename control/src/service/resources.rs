//! Resources: validated, org-scoped CRUD.

use gate_proto::v1::{
    CreateResourceRequest, DeleteResourceRequest, DeleteResponse, GetResourceRequest,
    ListResourcesRequest, ListResourcesResponse, Resource, UpdateResourceRequest,
};

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::util::new_id;

pub(crate) const PROTOCOLS: &[&str] = &["postgres", "mysql", "mongodb", "http", "ssh", "mcp"];
pub(crate) const ORIGINS: &[&str] = &["api", "kubernetes"];

fn check(r: &Resource) -> ApiResult<()> {
    validate::name("resource.name", &r.name)?;
    validate::one_of("resource.protocol", &r.protocol, PROTOCOLS)?;
    if r.host.is_empty() {
        return Err(ApiError::invalid("resource.host", "is required"));
    }
    validate::text("resource.host", &r.host, 253)?;
    if r.port == 0 || r.port > 65_535 {
        return Err(ApiError::invalid("resource.port", "expected 1-65535"));
    }
    validate::text("resource.database", &r.database, 128)?;
    validate::one_of_or_empty("resource.origin", &r.origin, ORIGINS)?;
    validate::owner("resource.owner", &r.owner)?;
    for (i, group) in r.approver_groups.iter().enumerate() {
        validate::name(&format!("resource.approver_groups[{i}]"), group)?;
    }
    validate::labels("resource.labels", &r.labels)?;
    validate::labels("resource.connector_selector", &r.connector_selector)?;
    Ok(())
}

impl ControlPlane {
    pub async fn create_resource(
        &self,
        caller: &Caller,
        req: CreateResourceRequest,
    ) -> ApiResult<Resource> {
        let org = caller.org(Need::Write)?;
        let mut r = req
            .resource
            .ok_or_else(|| ApiError::invalid("resource", "is required"))?;
        check(&r)?;
        r.id = new_id();
        r.org_id = org.to_owned();
        r.origin = validate::origin("resource.origin", &r.origin)?;
        let created = self.store.insert_resource(&r).await?;
        self.changed();
        Ok(created)
    }

    pub async fn get_resource(
        &self,
        caller: &Caller,
        req: GetResourceRequest,
    ) -> ApiResult<Resource> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_resource(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("resource"))
    }

    pub async fn list_resources(
        &self,
        caller: &Caller,
        _req: ListResourcesRequest,
    ) -> ApiResult<ListResourcesResponse> {
        let org = caller.org(Need::Read)?;
        Ok(ListResourcesResponse {
            resources: self.store.list_resources(org).await?,
        })
    }

    pub async fn update_resource(
        &self,
        caller: &Caller,
        req: UpdateResourceRequest,
    ) -> ApiResult<Resource> {
        let org = caller.org(Need::Write)?;
        let mut r = req
            .resource
            .ok_or_else(|| ApiError::invalid("resource", "is required"))?;
        validate::id("resource.id", &r.id)?;
        check(&r)?;
        r.org_id = org.to_owned();
        let updated = self
            .store
            .update_resource(&r)
            .await?
            .ok_or_else(|| ApiError::not_found("resource"))?;
        self.changed();
        Ok(updated)
    }

    pub async fn delete_resource(
        &self,
        caller: &Caller,
        req: DeleteResourceRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_resource(org, &req.id).await? {
            return Err(ApiError::not_found("resource"));
        }
        self.changed();
        Ok(DeleteResponse {})
    }
}
