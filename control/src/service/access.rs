//! Just-in-time access requests: create (any reader), approve / deny / revoke / expire (admins).
//! Approved, unexpired requests are the grants connectors enforce. Every change queues its
//! event (webhooks, Slack) in the same transaction; nobody approves or denies their own request.

use gate_proto::v1::{
    AccessRequest, ApproveAccessRequestRequest, CreateAccessRequestRequest,
    DenyAccessRequestRequest, ExpireAccessRequestRequest, GetAccessRequestRequest,
    ListAccessRequestsRequest, ListAccessRequestsResponse, RevokeAccessRequestRequest,
};

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, Code};
use crate::store::Transition;
use crate::util::new_id;

/// Longest access a request may ask for.
const MAX_DURATION_SECONDS: u32 = 7 * 86_400;
pub(crate) const STATUSES: &[&str] = &["pending", "approved", "denied", "revoked", "expired"];
pub(crate) const OPERATIONS: &[&str] = &["tool", "resource", "prompt", "query", "session"];

impl ControlPlane {
    pub async fn create_access_request(
        &self,
        caller: &Caller,
        req: CreateAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        let org = caller.org(Need::Read)?;
        validate::name("subject", &req.subject)?;
        validate::id("resource_id", &req.resource_id)?;
        validate::text("reason", &req.reason, 1024)?;
        validate::text("requested_by", &req.requested_by, 254)?;
        if req.duration_seconds == 0 || req.duration_seconds > MAX_DURATION_SECONDS {
            return Err(ApiError::invalid(
                "duration_seconds",
                format!("expected 1 to {MAX_DURATION_SECONDS}"),
            ));
        }
        for (i, scope) in req.scopes.iter().enumerate() {
            validate::one_of(
                &format!("scopes[{i}].operation"),
                &scope.operation,
                OPERATIONS,
            )?;
            validate::targets(
                &format!("scopes[{i}].target"),
                std::slice::from_ref(&scope.target),
            )?;
        }
        let resource = self
            .store
            .get_resource(org, &req.resource_id)
            .await?
            .ok_or_else(|| ApiError {
                field: Some("resource_id".to_owned()),
                ..ApiError::not_found("resource")
            })?;
        let requested_by = if req.requested_by.is_empty() {
            caller.actor()
        } else {
            req.requested_by
        };
        let request = AccessRequest {
            id: new_id(),
            org_id: org.to_owned(),
            requested_by,
            subject: req.subject,
            resource_id: resource.id,
            resource: resource.name,
            reason: req.reason,
            duration_seconds: req.duration_seconds,
            scopes: req.scopes,
            ..AccessRequest::default()
        };
        let stored = self
            .store
            .insert_access_request(&request, self.slack_enabled())
            .await?;
        self.queued();
        Ok(stored)
    }

    pub async fn get_access_request(
        &self,
        caller: &Caller,
        req: GetAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_access_request(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("access request"))
    }

    pub async fn list_access_requests(
        &self,
        caller: &Caller,
        req: ListAccessRequestsRequest,
    ) -> ApiResult<ListAccessRequestsResponse> {
        let org = caller.org(Need::Read)?;
        if !req.status.is_empty() {
            validate::one_of("status", &req.status, STATUSES)?;
        }
        let mut access_requests = self.store.list_access_requests(org).await?;
        if !req.status.is_empty() {
            access_requests.retain(|r| r.status == req.status);
        }
        Ok(ListAccessRequestsResponse { access_requests })
    }

    pub async fn approve_access_request(
        &self,
        caller: &Caller,
        req: ApproveAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        let by = who(caller, &req.approved_by, "approved_by")?;
        if !req.approved_by.is_empty() || !caller.is_system() {
            self.not_own_request(caller, &req.id, &by, "approved_by")
                .await?;
        }
        self.transition(caller, &req.id, Transition::Approve { by: &by }, "pending")
            .await
    }

    pub async fn deny_access_request(
        &self,
        caller: &Caller,
        req: DenyAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        let by = who(caller, &req.denied_by, "denied_by")?;
        if !req.denied_by.is_empty() || !caller.is_system() {
            self.not_own_request(caller, &req.id, &by, "denied_by")
                .await?;
        }
        self.transition(caller, &req.id, Transition::Deny { by: &by }, "pending")
            .await
    }

    pub async fn revoke_access_request(
        &self,
        caller: &Caller,
        req: RevokeAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        let by = who(caller, &req.revoked_by, "revoked_by")?;
        self.transition(caller, &req.id, Transition::Revoke { by: &by }, "approved")
            .await
    }

    pub async fn expire_access_request(
        &self,
        caller: &Caller,
        req: ExpireAccessRequestRequest,
    ) -> ApiResult<AccessRequest> {
        self.transition(caller, &req.id, Transition::Expire, "approved")
            .await
    }

    /// Refuse a decision by the request's own requester or subject. The system key deciding in
    /// its own name is the break-glass operator, not a requester, and is not checked.
    async fn not_own_request(
        &self,
        caller: &Caller,
        id: &str,
        by: &str,
        field: &str,
    ) -> ApiResult<()> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", id)?;
        let request = self
            .store
            .get_access_request(org, id)
            .await?
            .ok_or_else(|| ApiError::not_found("access request"))?;
        if by.eq_ignore_ascii_case(&request.requested_by)
            || by.eq_ignore_ascii_case(&request.subject)
        {
            return Err(ApiError {
                code: Code::PermissionDenied,
                message: format!("{by} asked for this access; someone else must decide"),
                field: Some(field.to_owned()),
            });
        }
        Ok(())
    }

    pub(crate) async fn transition(
        &self,
        caller: &Caller,
        id: &str,
        transition: Transition<'_>,
        needs: &str,
    ) -> ApiResult<AccessRequest> {
        let org = caller.org(Need::Admin)?;
        validate::id("id", id)?;
        let (request, changed) = self
            .store
            .transition_access_request(org, id, transition, self.slack_enabled())
            .await?
            .ok_or_else(|| ApiError::not_found("access request"))?;
        if !changed {
            return Err(ApiError {
                code: Code::FailedPrecondition,
                message: format!(
                    "the access request is {}; this needs a {needs} request",
                    request.status
                ),
                field: Some("id".to_owned()),
            });
        }
        self.changed();
        self.queued();
        tracing::info!(
            id = %request.id,
            status = %request.status,
            subject = %request.subject,
            org,
            "access request changed"
        );
        Ok(request)
    }
}

/// The actor recorded for a decision: the given name, else the caller.
fn who(caller: &Caller, given: &str, field: &str) -> ApiResult<String> {
    validate::text(field, given, 254)?;
    Ok(if given.is_empty() {
        caller.actor()
    } else {
        given.to_owned()
    })
}
