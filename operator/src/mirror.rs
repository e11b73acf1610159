//! The I/O shell around the planner for the mirrored kinds (Resource, Policy, Group): read the
//! control plane, carry out the decision, write status by server-side apply, record Events.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;

use crate::context::Ctx;
use crate::crd::{FIELD_MANAGER, FINALIZER, SyncStatus, reason};
use crate::plan::{Decision, Observed, Outcome, decide, status_after};

/// Why a reconcile failed (the controller retries with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control plane: {0}")]
    ControlPlane(String),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("object without {0}")]
    Missing(&'static str),
}

/// A control-plane error as text, with its gRPC code.
pub fn cp_error(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// A kind mirrored one-to-one into a control-plane object of the same name.
pub trait Mirror:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The comparable control-plane contents.
    type Want: PartialEq + Clone + Debug + Send + Sync;
    /// `Resource`, `Policy`, `Group` (metrics label, logs).
    const KIND: &'static str;

    fn sync_status(&self) -> SyncStatus;
    /// The spec in the control plane's shape, or why it cannot be mirrored.
    fn desired(&self, ctx: &Ctx) -> impl Future<Output = Result<Self::Want, String>> + Send;
    /// The control-plane object named `name`.
    fn observe(
        ctx: &Ctx,
        name: &str,
    ) -> impl Future<Output = Result<Option<Observed<Self::Want>>, Status>> + Send;
    /// Create it (marked `origin=kubernetes`, `owner=uid`); returns its id.
    fn create(
        ctx: &Ctx,
        name: &str,
        uid: &str,
        want: &Self::Want,
    ) -> impl Future<Output = Result<String, Status>> + Send;
    /// Set `id` to `want`.
    fn update(
        ctx: &Ctx,
        id: &str,
        name: &str,
        want: &Self::Want,
    ) -> impl Future<Output = Result<(), Status>> + Send;
    fn delete(ctx: &Ctx, id: &str) -> impl Future<Output = Result<(), Status>> + Send;
}

/// Reconcile one object of kind `K` (the controller's callback).
pub async fn reconcile<K: Mirror>(object: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_finalizer(
        object,
        ctx,
        K::KIND,
        |api, object, ctx| async move { apply(&api, &object, &ctx).await },
        |object, ctx| async move { cleanup(&*object, &ctx).await },
    )
    .await
}

/// Run `on_apply` or, once the object is being deleted, `on_cleanup` under the operator's
/// finalizer (added before the first apply, removed after a successful cleanup); count and time it.
pub async fn with_finalizer<K, A, AF, C, CF>(
    object: Arc<K>,
    ctx: Arc<Ctx>,
    kind: &'static str,
    on_apply: A,
    on_cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
    A: FnOnce(Api<K>, Arc<K>, Arc<Ctx>) -> AF,
    AF: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>, Arc<Ctx>) -> CF,
    CF: Future<Output = Result<Action, Error>>,
{
    let started = Instant::now();
    let namespace = object.namespace().ok_or(Error::Missing("namespace"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => on_apply(api.clone(), object, ctx.clone()).await,
            Finalizer::Cleanup(object) => on_cleanup(object, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics
        .observe(kind, started.elapsed().as_secs_f64(), result.is_err());
    result
}

/// The controllers' error policy: exponential backoff per object.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Ctx>,
) -> Action {
    let delay = ctx.backoff(&object.uid().unwrap_or_default());
    tracing::warn!(kind = %K::kind(&()), name = %object.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply<K: Mirror>(api: &Api<K>, object: &K, ctx: &Ctx) -> Result<Action, Error> {
    let name = object.name_any();
    let uid = object.uid().ok_or(Error::Missing("uid"))?;
    let desired = object.desired(ctx).await;
    let (outcome, failure) = match K::observe(ctx, &name).await {
        Err(status) => (
            Outcome::Failed {
                message: cp_error(&status),
            },
            Some(cp_error(&status)),
        ),
        Ok(observed) => {
            carry_out(
                object,
                ctx,
                &name,
                &uid,
                decide(&uid, false, desired, observed),
            )
            .await
        }
    };
    let old = object.sync_status();
    let new = status_after(
        &old,
        object.meta().generation,
        &outcome,
        &crate::time::now(),
    );
    if status_changed(&old, &new, ctx) {
        write_status(
            api,
            &name,
            K::KIND,
            K::api_version(&()).as_ref(),
            serde_json::to_value(&new).unwrap_or_default(),
        )
        .await?;
    }
    match failure {
        Some(message) => Err(Error::ControlPlane(message)),
        None => {
            ctx.succeeded(&uid);
            Ok(Action::requeue(ctx.timing.resync))
        }
    }
}

/// Carry out `decision`; returns the outcome and, for a control-plane failure, its message.
async fn carry_out<K: Mirror>(
    object: &K,
    ctx: &Ctx,
    name: &str,
    uid: &str,
    decision: Decision<K::Want>,
) -> (Outcome, Option<String>) {
    let done = match decision {
        Decision::Create(want) => K::create(ctx, name, uid, &want)
            .await
            .map(|id| (id, reason::CREATED)),
        Decision::Update { id, want } => K::update(ctx, &id, name, &want)
            .await
            .map(|()| (id, reason::DRIFT_CORRECTED)),
        Decision::InSync { id } => Ok((id, reason::RECONCILED)),
        Decision::Refuse { message } => {
            ctx.event(object, true, reason::ORIGIN_MISMATCH, message.clone())
                .await;
            return (
                Outcome::Refused {
                    reason: reason::ORIGIN_MISMATCH,
                    message,
                },
                None,
            );
        }
        Decision::Invalid { message } => {
            ctx.event(object, true, reason::INVALID_SPEC, message.clone())
                .await;
            return (
                Outcome::Refused {
                    reason: reason::INVALID_SPEC,
                    message,
                },
                None,
            );
        }
        Decision::Delete { .. } | Decision::Release => {
            return (
                Outcome::Failed {
                    message: "not deleting".into(),
                },
                None,
            );
        }
    };
    match done {
        Ok((id, how)) => {
            if how != reason::RECONCILED {
                let note = if how == reason::CREATED {
                    format!("created control-plane {} {id}", K::KIND)
                } else {
                    format!(
                        "control-plane {} {id} differed from the spec (changed outside Kubernetes); set back",
                        K::KIND
                    )
                };
                ctx.event(object, false, how, note).await;
            }
            (Outcome::Synced { id, how }, None)
        }
        // The control plane refused the spec itself: not retried until the spec changes.
        Err(status)
            if status.code() == tonic::Code::InvalidArgument
                || status.code() == tonic::Code::AlreadyExists =>
        {
            let message = cp_error(&status);
            ctx.event(object, true, reason::INVALID_SPEC, message.clone())
                .await;
            (
                Outcome::Refused {
                    reason: reason::INVALID_SPEC,
                    message,
                },
                None,
            )
        }
        Err(status) => {
            let message = cp_error(&status);
            ctx.event(object, true, reason::CONTROL_PLANE_ERROR, message.clone())
                .await;
            (
                Outcome::Failed {
                    message: message.clone(),
                },
                Some(message),
            )
        }
    }
}

async fn cleanup<K: Mirror>(object: &K, ctx: &Ctx) -> Result<Action, Error> {
    let name = object.name_any();
    let uid = object.uid().ok_or(Error::Missing("uid"))?;
    let observed = K::observe(ctx, &name)
        .await
        .map_err(|s| Error::ControlPlane(cp_error(&s)))?;
    if let Decision::Delete { id } = decide(&uid, true, Err(String::new()), observed) {
        match K::delete(ctx, &id).await {
            Ok(()) => {
                ctx.event(
                    object,
                    false,
                    reason::DELETING,
                    format!("deleted control-plane {} {id}", K::KIND),
                )
                .await
            }
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                ctx.event(object, true, reason::CONTROL_PLANE_ERROR, cp_error(&s))
                    .await;
                return Err(Error::ControlPlane(cp_error(&s)));
            }
        }
    }
    ctx.succeeded(&uid);
    Ok(Action::await_change())
}

/// Write only when something but `lastSyncTime` changed, or the last sync is older than the
/// resync period (a status write is itself a watch event: writing every time would loop).
pub fn status_changed(old: &SyncStatus, new: &SyncStatus, ctx: &Ctx) -> bool {
    let strip = |s: &SyncStatus| SyncStatus {
        last_sync_time: None,
        ..s.clone()
    };
    if strip(old) != strip(new) {
        return true;
    }
    let age = old
        .last_sync_time
        .as_deref()
        .and_then(crate::time::seconds_until)
        .map(|s| -s);
    new.last_sync_time.is_some() && age.is_none_or(|age| age >= ctx.timing.resync.as_secs() as i64)
}

/// Server-side apply of `.status` with the operator's own field manager.
pub async fn write_status<K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    api_version: &str,
    status: serde_json::Value,
) -> Result<(), Error> {
    let body = serde_json::json!({"apiVersion": api_version, "kind": kind, "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}
