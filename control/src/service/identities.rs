//! Identities, groups and membership, and identity tokens (short-lived JWTs).

use gate_proto::v1::{
    CreateGroupRequest, CreateIdentityRequest, DeleteGroupRequest, DeleteIdentityRequest,
    DeleteResponse, GetGroupRequest, GetIdentityRequest, Group, GroupMemberRequest, Identity,
    IssueIdentityTokenRequest, IssueIdentityTokenResponse, ListGroupsRequest, ListGroupsResponse,
    ListIdentitiesRequest, ListIdentitiesResponse, UpdateGroupRequest, UpdateIdentityRequest,
};

use super::resources::ORIGINS;
use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::util::new_id;

pub(crate) const KINDS: &[&str] = &["user", "service"];
/// Longest identity token lifetime.
const MAX_TTL_SECONDS: u32 = 86_400;
/// Most SSH keys one identity may register, and the longest key line.
const MAX_SSH_KEYS: usize = 32;
const MAX_SSH_KEY_LINE: usize = 16_384;

/// `identity.ssh_keys`: OpenSSH public key lines of a type Gate accepts (as in a static
/// identity's `ssh_keys`); surrounding whitespace is trimmed.
fn check_ssh_keys(keys: &mut [String]) -> ApiResult<()> {
    if keys.len() > MAX_SSH_KEYS {
        return Err(ApiError::invalid(
            "identity.ssh_keys",
            format!("at most {MAX_SSH_KEYS} keys"),
        ));
    }
    for (j, key) in keys.iter_mut().enumerate() {
        validate::text(&format!("identity.ssh_keys[{j}]"), key, MAX_SSH_KEY_LINE)?;
        *key = key.trim().to_owned();
    }
    let mut problems = gate_config::Problems::default();
    gate_config::ssh::validate_keys(keys, "identity.ssh_keys", &mut problems);
    match problems.errors().first() {
        Some(problem) => Err(ApiError::invalid(&problem.path, &problem.message)),
        None => Ok(()),
    }
}

fn check_identity(i: &mut Identity) -> ApiResult<()> {
    validate::name("identity.name", &i.name)?;
    validate::text("identity.email", &i.email, 254)?;
    if !i.email.is_empty() && !i.email.contains('@') {
        return Err(ApiError::invalid(
            "identity.email",
            "expected an email address",
        ));
    }
    if i.kind.is_empty() {
        i.kind = "user".to_owned();
    }
    validate::one_of("identity.kind", &i.kind, KINDS)?;
    validate::one_of_or_empty("identity.origin", &i.origin, ORIGINS)?;
    if !i.groups.is_empty() {
        return Err(ApiError::invalid(
            "identity.groups",
            "is read-only; add the identity to groups with /api/v1/groups/{id}/members",
        ));
    }
    check_ssh_keys(&mut i.ssh_keys)
}

impl ControlPlane {
    pub async fn create_identity(
        &self,
        caller: &Caller,
        req: CreateIdentityRequest,
    ) -> ApiResult<Identity> {
        let org = caller.org(Need::Write)?;
        let mut i = req
            .identity
            .ok_or_else(|| ApiError::invalid("identity", "is required"))?;
        check_identity(&mut i)?;
        i.id = new_id();
        i.org_id = org.to_owned();
        i.origin = validate::origin("identity.origin", &i.origin)?;
        let created = self.store.insert_identity(&i).await?;
        self.changed();
        Ok(created)
    }

    pub async fn get_identity(
        &self,
        caller: &Caller,
        req: GetIdentityRequest,
    ) -> ApiResult<Identity> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_identity(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("identity"))
    }

    pub async fn list_identities(
        &self,
        caller: &Caller,
        _req: ListIdentitiesRequest,
    ) -> ApiResult<ListIdentitiesResponse> {
        let org = caller.org(Need::Read)?;
        Ok(ListIdentitiesResponse {
            identities: self.store.list_identities(org).await?,
        })
    }

    pub async fn update_identity(
        &self,
        caller: &Caller,
        req: UpdateIdentityRequest,
    ) -> ApiResult<Identity> {
        let org = caller.org(Need::Write)?;
        let mut i = req
            .identity
            .ok_or_else(|| ApiError::invalid("identity", "is required"))?;
        validate::id("identity.id", &i.id)?;
        check_identity(&mut i)?;
        i.org_id = org.to_owned();
        let updated = self
            .store
            .update_identity(&i)
            .await?
            .ok_or_else(|| ApiError::not_found("identity"))?;
        self.changed();
        Ok(updated)
    }

    pub async fn delete_identity(
        &self,
        caller: &Caller,
        req: DeleteIdentityRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_identity(org, &req.id).await? {
            return Err(ApiError::not_found("identity"));
        }
        self.changed();
        Ok(DeleteResponse {})
    }

    /// Sign a JWT for an identity: `sub` (id), `name`, `email`, `groups`, `iss`, `aud`, `exp`.
    pub async fn issue_identity_token(
        &self,
        caller: &Caller,
        req: IssueIdentityTokenRequest,
    ) -> ApiResult<IssueIdentityTokenResponse> {
        let org = caller.org(Need::Admin)?;
        validate::id("identity_id", &req.identity_id)?;
        if req.ttl_seconds > MAX_TTL_SECONDS {
            return Err(ApiError::invalid(
                "ttl_seconds",
                format!("must be at most {MAX_TTL_SECONDS}"),
            ));
        }
        let identity = self
            .store
            .get_identity(org, &req.identity_id)
            .await?
            .ok_or_else(|| ApiError::not_found("identity"))?;
        let ttl = if req.ttl_seconds == 0 {
            self.token_ttl.as_secs()
        } else {
            u64::from(req.ttl_seconds)
        };
        let (token, expires_at) = self.tokens.issue(&identity, ttl)?;
        Ok(IssueIdentityTokenResponse { token, expires_at })
    }

    pub async fn create_group(&self, caller: &Caller, req: CreateGroupRequest) -> ApiResult<Group> {
        let org = caller.org(Need::Write)?;
        let mut g = req
            .group
            .ok_or_else(|| ApiError::invalid("group", "is required"))?;
        validate::name("group.name", &g.name)?;
        validate::text("group.description", &g.description, 1024)?;
        if !g.members.is_empty() {
            return Err(ApiError::invalid(
                "group.members",
                "add members with /api/v1/groups/{id}/members",
            ));
        }
        g.id = new_id();
        g.org_id = org.to_owned();
        g.origin = validate::origin("group.origin", &g.origin)?;
        validate::owner("group.owner", &g.owner)?;
        let created = self.store.insert_group(&g).await?;
        self.changed();
        Ok(created)
    }

    pub async fn get_group(&self, caller: &Caller, req: GetGroupRequest) -> ApiResult<Group> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_group(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))
    }

    pub async fn list_groups(
        &self,
        caller: &Caller,
        _req: ListGroupsRequest,
    ) -> ApiResult<ListGroupsResponse> {
        let org = caller.org(Need::Read)?;
        Ok(ListGroupsResponse {
            groups: self.store.list_groups(org).await?,
        })
    }

    pub async fn update_group(&self, caller: &Caller, req: UpdateGroupRequest) -> ApiResult<Group> {
        let org = caller.org(Need::Write)?;
        let mut g = req
            .group
            .ok_or_else(|| ApiError::invalid("group", "is required"))?;
        validate::id("group.id", &g.id)?;
        validate::name("group.name", &g.name)?;
        validate::text("group.description", &g.description, 1024)?;
        validate::one_of_or_empty("group.origin", &g.origin, ORIGINS)?;
        validate::owner("group.owner", &g.owner)?;
        g.org_id = org.to_owned();
        let updated = self
            .store
            .update_group(&g)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))?;
        self.changed();
        Ok(updated)
    }

    pub async fn delete_group(
        &self,
        caller: &Caller,
        req: DeleteGroupRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_group(org, &req.id).await? {
            return Err(ApiError::not_found("group"));
        }
        self.changed();
        Ok(DeleteResponse {})
    }

    pub async fn add_group_member(
        &self,
        caller: &Caller,
        req: GroupMemberRequest,
    ) -> ApiResult<Group> {
        self.membership(caller, req, true).await
    }

    pub async fn remove_group_member(
        &self,
        caller: &Caller,
        req: GroupMemberRequest,
    ) -> ApiResult<Group> {
        self.membership(caller, req, false).await
    }

    async fn membership(
        &self,
        caller: &Caller,
        req: GroupMemberRequest,
        member: bool,
    ) -> ApiResult<Group> {
        let org = caller.org(Need::Write)?;
        validate::id("group_id", &req.group_id)?;
        validate::id("identity_id", &req.identity_id)?;
        if self.store.get_group(org, &req.group_id).await?.is_none() {
            return Err(ApiError::not_found("group"));
        }
        if self
            .store
            .get_identity(org, &req.identity_id)
            .await?
            .is_none()
        {
            return Err(ApiError {
                field: Some("identity_id".to_owned()),
                ..ApiError::not_found("identity")
            });
        }
        self.store
            .set_membership(org, &req.group_id, &req.identity_id, member)
            .await?;
        self.changed();
        self.store
            .get_group(org, &req.group_id)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))
    }
}
