//! Who asked for access: the mutating webhook on `AccessRequest` creation
//! sets `spec.requestedBy` from the creating user the API server
//! authenticated, so a person cannot file a request in someone else's name.
//! A service account (Argo CD, Flux, a CI job) creating the object on
//! someone's behalf keeps the `requestedBy` the spec names (from Git), and
//! is itself the requester when the spec names none. Updates pass untouched
//! (the spec is immutable after creation).

use json_patch::{AddOperation, Patch, PatchOperation};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionReview, Operation};
use serde_json::json;

/// The prefix of service-account user names.
const SERVICE_ACCOUNT: &str = "system:serviceaccount:";

/// The `spec.requestedBy` a created AccessRequest should carry, when it must change.
pub fn requester_for(creator: &str, named: Option<&str>) -> Option<String> {
    let named = named.filter(|n| !n.is_empty());
    match named {
        Some(_) if creator.starts_with(SERVICE_ACCOUNT) => None,
        Some(n) if n == creator => None,
        _ => Some(creator.to_owned()),
    }
}

/// Answer one AdmissionReview of an AccessRequest.
pub fn review(review: AdmissionReview<DynamicObject>) -> AdmissionReview<DynamicObject> {
    crate::inject::answer(review, |request| {
        if !matches!(request.operation, Operation::Create) {
            return Ok(None);
        }
        let Some(object) = request.object.as_ref() else {
            return Ok(None);
        };
        let creator = request
            .user_info
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or("the API server named no user for this request")?;
        let named = object
            .data
            .pointer("/spec/requestedBy")
            .and_then(|v| v.as_str());
        Ok(requester_for(creator, named).map(|requester| {
            Patch(vec![PatchOperation::Add(AddOperation {
                path: "/spec/requestedBy".parse().unwrap_or_default(),
                value: json!(requester),
            })])
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_their_own_requesters_and_service_accounts_may_name_one() {
        assert_eq!(requester_for("alice", None), Some("alice".into()));
        assert_eq!(requester_for("alice", Some("")), Some("alice".into()));
        assert_eq!(
            requester_for("alice", Some("bob")),
            Some("alice".into()),
            "a person cannot ask in someone else's name"
        );
        assert_eq!(requester_for("alice", Some("alice")), None);
        let argo = "system:serviceaccount:argocd:argocd-application-controller";
        assert_eq!(requester_for(argo, Some("bob@example.com")), None);
        assert_eq!(requester_for(argo, None), Some(argo.into()));
    }
}
