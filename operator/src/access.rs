//! AccessRequest both ways: a CR becomes a control-plane access request; its approval, denial,
//! expiry or revocation there shows in `.status`; deleting the CR revokes (or withdraws) it.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use gate_proto::v1 as pb;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Resource as _, ResourceExt};

use crate::context::Ctx;
use crate::crd::{AccessRequest, AccessRequestStatus, Phase, reason};
use crate::mirror::{Error, cp_error, error_policy, with_finalizer, write_status};
use crate::plan::{Outcome, status_after};

/// The control-plane request the spec asks for (`resource_id` resolved by the caller).
pub fn create_request(
    object: &AccessRequest,
    resource_id: &str,
) -> Result<pb::CreateAccessRequestRequest, String> {
    let spec = &object.spec;
    let duration =
        gate_config::parse_duration(&spec.duration).map_err(|e| format!("spec.duration: {e}"))?;
    let seconds = u32::try_from(duration.as_secs()).unwrap_or(u32::MAX);
    if seconds == 0 || seconds > 7 * 24 * 3600 {
        return Err(format!(
            "spec.duration: expected at most 168h (7 days), got {}",
            spec.duration
        ));
    }
    let requested_by = spec.requested_by.clone().unwrap_or_else(|| {
        format!(
            "kubernetes:{}/{}",
            object.namespace().unwrap_or_default(),
            object.name_any()
        )
    });
    Ok(pb::CreateAccessRequestRequest {
        requested_by,
        subject: spec.subject.clone(),
        resource_id: resource_id.to_owned(),
        reason: spec.reason.clone(),
        duration_seconds: seconds,
        scopes: spec
            .scopes
            .iter()
            .map(|s| pb::GrantScope {
                operation: s.operation.clone(),
                target: s.target.clone(),
            })
            .collect(),
    })
}

/// The status that reports control-plane request `cp`.
pub fn status_from(
    old: &AccessRequestStatus,
    generation: Option<i64>,
    cp: &pb::AccessRequest,
    now: &str,
) -> AccessRequestStatus {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let synced = Outcome::Synced {
        id: cp.id.clone(),
        how: reason::RECONCILED,
    };
    AccessRequestStatus {
        sync: status_after(&old.sync, generation, &synced, now),
        phase: Phase::from_control_plane(&cp.status),
        approved_by: text(&cp.approved_by),
        denied_by: text(&cp.denied_by),
        revoked_by: text(&cp.revoked_by),
        expires_at: text(&cp.expires_at),
    }
}

/// When to look again: soon while the outcome can still change, never once it is final.
pub fn next_check(phase: Option<Phase>, ctx: &Ctx) -> Action {
    match phase {
        Some(Phase::Pending | Phase::Approved) | None => Action::requeue(ctx.timing.access_poll),
        Some(Phase::Denied | Phase::Expired | Phase::Revoked) => Action::await_change(),
    }
}

async fn apply(
    api: &Api<AccessRequest>,
    object: &AccessRequest,
    ctx: &Ctx,
) -> Result<Action, Error> {
    let name = object.name_any();
    let old = object.status.clone().unwrap_or_default();
    let generation = object.meta().generation;
    let now = crate::time::now();
    let found = match &old.sync.control_plane_id {
        Some(id) => ctx
            .cp()
            .get_access_request(pb::GetAccessRequestRequest { id: id.clone() })
            .await
            .map(|r| r.into_inner()),
        None => match create(object, ctx).await {
            Ok(Ok(created)) => {
                ctx.event(
                    object,
                    false,
                    reason::CREATED,
                    format!("created control-plane access request {}", created.id),
                )
                .await;
                Ok(created)
            }
            Ok(Err(message)) => {
                ctx.event(object, true, reason::INVALID_SPEC, message.clone())
                    .await;
                let refused = Outcome::Refused {
                    reason: reason::INVALID_SPEC,
                    message,
                };
                let status = AccessRequestStatus {
                    sync: status_after(&old.sync, generation, &refused, &now),
                    ..old.clone()
                };
                if status != old {
                    write(api, &name, &status).await?;
                }
                return Ok(Action::requeue(ctx.timing.resync));
            }
            Err(status) => Err(status),
        },
    };
    match found {
        Ok(cp) => {
            let status = status_from(&old, generation, &cp, &now);
            if status.phase != old.phase {
                let note = format!("control-plane access request {} is {}", cp.id, cp.status);
                ctx.event(
                    object,
                    false,
                    &format!("{:?}", status.phase.unwrap_or(Phase::Pending)),
                    note,
                )
                .await;
            }
            let stale = AccessRequestStatus {
                sync: crate::crd::SyncStatus {
                    last_sync_time: None,
                    ..status.sync.clone()
                },
                ..status.clone()
            } != AccessRequestStatus {
                sync: crate::crd::SyncStatus {
                    last_sync_time: None,
                    ..old.sync.clone()
                },
                ..old.clone()
            };
            if stale {
                write(api, &name, &status).await?;
            }
            ctx.succeeded(&object.uid().unwrap_or_default());
            Ok(next_check(status.phase, ctx))
        }
        Err(s) => {
            let failed = Outcome::Failed {
                message: cp_error(&s),
            };
            let status = AccessRequestStatus {
                sync: status_after(&old.sync, generation, &failed, &now),
                ..old.clone()
            };
            ctx.event(object, true, reason::CONTROL_PLANE_ERROR, cp_error(&s))
                .await;
            write(api, &name, &status).await?;
            Err(Error::ControlPlane(cp_error(&s)))
        }
    }
}

/// Create the control-plane request; the inner error is an invalid spec (not retried).
async fn create(
    object: &AccessRequest,
    ctx: &Ctx,
) -> Result<Result<pb::AccessRequest, String>, tonic::Status> {
    let resources = ctx
        .cp()
        .list_resources(pb::ListResourcesRequest {})
        .await?
        .into_inner()
        .resources;
    let Some(resource) = resources.iter().find(|r| r.name == object.spec.resource) else {
        return Ok(Err(format!(
            "spec.resource: no resource {:?} in the control plane",
            object.spec.resource
        )));
    };
    let request = match create_request(object, &resource.id) {
        Ok(r) => r,
        Err(message) => return Ok(Err(message)),
    };
    match ctx.cp().create_access_request(request).await {
        Ok(created) => Ok(Ok(created.into_inner())),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::InvalidArgument | tonic::Code::NotFound
            ) =>
        {
            Ok(Err(cp_error(&s)))
        }
        Err(s) => Err(s),
    }
}

async fn cleanup(object: &AccessRequest, ctx: &Ctx) -> Result<Action, Error> {
    let status = object.status.clone().unwrap_or_default();
    let Some(id) = status.sync.control_plane_id.clone() else {
        return Ok(Action::await_change());
    };
    let by = format!(
        "kubernetes:{}/{} deleted",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let current = ctx
        .cp()
        .get_access_request(pb::GetAccessRequestRequest { id: id.clone() })
        .await;
    let result = match current.as_ref().map(|r| r.get_ref().status.as_str()) {
        Ok("approved") => ctx
            .cp()
            .revoke_access_request(pb::RevokeAccessRequestRequest {
                id: id.clone(),
                revoked_by: by,
            })
            .await
            .map(|_| "revoked"),
        Ok("pending") => ctx
            .cp()
            .deny_access_request(pb::DenyAccessRequestRequest {
                id: id.clone(),
                denied_by: by,
            })
            .await
            .map(|_| "withdrawn"),
        Ok(_) => Ok("left as it is"),
        Err(s) if s.code() == tonic::Code::NotFound => Ok("already gone"),
        Err(s) => Err(s.clone()),
    };
    match result {
        Ok(what) => {
            ctx.event(
                object,
                false,
                reason::DELETING,
                format!("control-plane access request {id} {what}"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(s) => Err(Error::ControlPlane(cp_error(&s))),
    }
}

async fn write(
    api: &Api<AccessRequest>,
    name: &str,
    status: &AccessRequestStatus,
) -> Result<(), Error> {
    write_status(
        api,
        name,
        "AccessRequest",
        "gate.dev/v1alpha1",
        serde_json::to_value(status).unwrap_or_default(),
    )
    .await
}

async fn reconcile(object: Arc<AccessRequest>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_finalizer(
        object,
        ctx,
        "AccessRequest",
        |api, object, ctx| async move { apply(&api, &object, &ctx).await },
        |object, ctx| async move { cleanup(&object, &ctx).await },
    )
    .await
}

/// The AccessRequest controller.
pub async fn controller(
    ctx: Arc<Ctx>,
    namespace: Option<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<AccessRequest> = match namespace.as_deref() {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy::<AccessRequest>, ctx)
        .for_each(|_| async {})
        .await;
}
