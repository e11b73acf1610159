//! Organizations (system callers) and organization API keys (admins).

use base64::Engine;
use gate_proto::v1::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreateOrganizationRequest,
    DeleteOrganizationRequest, DeleteResponse, GetOrganizationRequest, ListApiKeysRequest,
    ListApiKeysResponse, ListOrganizationsRequest, ListOrganizationsResponse, Organization,
    RevokeApiKeyRequest,
};

use super::{ControlPlane, DEFAULT_ORG, validate};
use crate::auth::{Caller, Need, Role};
use crate::error::{ApiError, ApiResult, Code};
use crate::util::{new_id, random_bytes, sha256_hex};

impl ControlPlane {
    pub async fn create_organization(
        &self,
        caller: &Caller,
        req: CreateOrganizationRequest,
    ) -> ApiResult<Organization> {
        caller.org(Need::System)?;
        validate::name("name", &req.name)?;
        Ok(self.store.create_org(&req.name).await?)
    }

    /// System callers see any organization; others only their own.
    pub async fn get_organization(
        &self,
        caller: &Caller,
        req: GetOrganizationRequest,
    ) -> ApiResult<Organization> {
        let own = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        if !caller.is_system() && req.id != own {
            return Err(ApiError::not_found("organization"));
        }
        self.store
            .get_org(&req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("organization"))
    }

    pub async fn list_organizations(
        &self,
        caller: &Caller,
        _req: ListOrganizationsRequest,
    ) -> ApiResult<ListOrganizationsResponse> {
        let own = caller.org(Need::Read)?;
        let mut organizations = self.store.list_orgs().await?;
        if !caller.is_system() {
            organizations.retain(|o| o.id == own);
        }
        Ok(ListOrganizationsResponse { organizations })
    }

    pub async fn delete_organization(
        &self,
        caller: &Caller,
        req: DeleteOrganizationRequest,
    ) -> ApiResult<DeleteResponse> {
        caller.org(Need::System)?;
        validate::id("id", &req.id)?;
        if req.id == DEFAULT_ORG {
            return Err(ApiError {
                code: Code::FailedPrecondition,
                message: "the default organization cannot be deleted".to_owned(),
                field: Some("id".to_owned()),
            });
        }
        if !self.store.delete_org(&req.id).await? {
            return Err(ApiError::not_found("organization"));
        }
        self.remove_org_recordings(&req.id);
        self.changed();
        Ok(DeleteResponse {})
    }

    /// A new key for the caller's organization; the secret is in this response only.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        req: CreateApiKeyRequest,
    ) -> ApiResult<CreateApiKeyResponse> {
        let org = caller.org(Need::Admin)?;
        validate::name("name", &req.name)?;
        let role = Role::parse(&req.role).ok_or_else(|| {
            ApiError::invalid(
                "role",
                format!(
                    "expected readonly, editor, admin or connector, got {:?}",
                    req.role
                ),
            )
        })?;
        let secret = format!(
            "gk_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<30>())
        );
        let key = ApiKey {
            id: new_id(),
            org_id: org.to_owned(),
            name: req.name,
            role: role.as_str().to_owned(),
            prefix: secret[..10].to_owned(),
            ..ApiKey::default()
        };
        let api_key = self.store.insert_key(&key, &sha256_hex(&secret)).await?;
        Ok(CreateApiKeyResponse {
            api_key: Some(api_key),
            secret,
        })
    }

    pub async fn list_api_keys(
        &self,
        caller: &Caller,
        _req: ListApiKeysRequest,
    ) -> ApiResult<ListApiKeysResponse> {
        let org = caller.org(Need::Admin)?;
        Ok(ListApiKeysResponse {
            api_keys: self.store.list_keys(org).await?,
        })
    }

    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        req: RevokeApiKeyRequest,
    ) -> ApiResult<ApiKey> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", &req.id)?;
        self.store
            .revoke_key(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("api key"))
    }
}
