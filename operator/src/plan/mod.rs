//! The pure reconcile planner shared by every mirrored kind: the desired control-plane object
//! (from the spec) and what the control plane holds → one decision, and the status it leads to.

use crate::crd::{Condition, ORIGIN, SyncStatus, condition, reason};

/// What the control plane holds under the object's name.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed<W> {
    /// Control-plane id.
    pub id: String,
    /// `origin` of the control-plane object (`api`, `kubernetes`).
    pub origin: String,
    /// `owner` of the control-plane object (the UID of the custom resource that created it).
    pub owner: String,
    /// Its current contents, in the same shape as the desired object.
    pub current: W,
}

/// What the shell must do to the control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision<W> {
    /// Create the object (marked `origin=kubernetes`, `owner=UID`).
    Create(W),
    /// Set the object `id` back to `want`; `drift` when it was changed outside Kubernetes.
    Update { id: String, want: W },
    /// The object matches the spec.
    InSync { id: String },
    /// Delete the object `id` (the custom resource is being deleted).
    Delete { id: String },
    /// Nothing to remove in the control plane; let the finalizer go.
    Release,
    /// Refuse: the name belongs to an object created elsewhere.
    Refuse { message: String },
    /// The spec cannot be mirrored.
    Invalid { message: String },
}

/// Plan one reconcile of the object with `uid`.
///
/// `desired` is the spec converted to the control plane's shape (an error for an invalid spec);
/// `observed` is the control-plane object of the same name, if any.
pub fn decide<W: PartialEq>(
    uid: &str,
    deleting: bool,
    desired: Result<W, String>,
    observed: Option<Observed<W>>,
) -> Decision<W> {
    let ours = |o: &Observed<W>| o.origin == ORIGIN && o.owner == uid;
    if deleting {
        return match observed {
            Some(o) if ours(&o) => Decision::Delete { id: o.id },
            // Never delete what we do not own; the finalizer may go.
            _ => Decision::Release,
        };
    }
    let want = match desired {
        Ok(w) => w,
        Err(message) => return Decision::Invalid { message },
    };
    match observed {
        None => Decision::Create(want),
        Some(o) if !ours(&o) => Decision::Refuse {
            message: if o.origin == ORIGIN {
                format!(
                    "the control-plane object {} belongs to another Kubernetes object (uid {}); rename this one",
                    o.id, o.owner
                )
            } else {
                format!(
                    "the control-plane object {} was created through the {} origin; the operator does not take it over",
                    o.id, o.origin
                )
            },
        },
        Some(o) if o.current == want => Decision::InSync { id: o.id },
        Some(o) => Decision::Update { id: o.id, want },
    }
}

/// How a decision turned out once the shell carried it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The control plane now matches the spec; `how` is `Created`, `DriftCorrected` or `Reconciled`.
    Synced { id: String, how: &'static str },
    /// Refused before touching the control plane: `reason` is `OriginMismatch` or `InvalidSpec`.
    Refused {
        reason: &'static str,
        message: String,
    },
    /// The control plane failed or could not be reached.
    Failed { message: String },
}

/// The status after `outcome` for generation `generation`; conditions keep their
/// `lastTransitionTime` when their status does not change.
pub fn status_after(
    old: &SyncStatus,
    generation: Option<i64>,
    outcome: &Outcome,
    now: &str,
) -> SyncStatus {
    let cond = |type_: &str, ok: bool, reason: &str, message: &str| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .condition(type_)
            .filter(|c| c.status == status)
            .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            last_transition_time: since,
            observed_generation: generation,
        }
    };
    let (conditions, id, synced_at) = match outcome {
        Outcome::Synced { id, how } => (
            vec![
                cond(condition::READY, true, how, "mirrored in the control plane"),
                cond(
                    condition::SYNCED,
                    true,
                    how,
                    "the control plane matches the spec",
                ),
                cond(
                    condition::OWNED,
                    true,
                    reason::RECONCILED,
                    "origin kubernetes, owner is this object",
                ),
            ],
            Some(id.clone()),
            Some(now.to_owned()),
        ),
        Outcome::Refused {
            reason: why,
            message,
        } => {
            let owned = if *why == reason::ORIGIN_MISMATCH {
                cond(condition::OWNED, false, why, message)
            } else {
                cond(
                    condition::OWNED,
                    true,
                    reason::RECONCILED,
                    "not in conflict",
                )
            };
            (
                vec![
                    cond(condition::READY, false, why, message),
                    cond(condition::SYNCED, false, why, message),
                    owned,
                ],
                None,
                old.last_sync_time.clone(),
            )
        }
        Outcome::Failed { message } => {
            // What was mirrored before stays mirrored; only Synced reports the failure.
            let ready = old.condition(condition::READY).cloned().unwrap_or_else(|| {
                cond(
                    condition::READY,
                    false,
                    reason::CONTROL_PLANE_ERROR,
                    message,
                )
            });
            let mut conditions = vec![
                ready,
                cond(
                    condition::SYNCED,
                    false,
                    reason::CONTROL_PLANE_ERROR,
                    message,
                ),
            ];
            conditions.extend(old.condition(condition::OWNED).cloned());
            (
                conditions,
                old.control_plane_id.clone(),
                old.last_sync_time.clone(),
            )
        }
    };
    SyncStatus {
        observed_generation: generation,
        conditions,
        control_plane_id: id,
        last_sync_time: synced_at,
    }
}

#[cfg(test)]
mod tests;
