//! Managed policies: compiled on every save (errors as file:line:col), versions, states with
//! history, and simulation through `gate-policy`.

use std::collections::BTreeSet;

use gate_policy::{DefaultAction, EngineOptions, PolicyEngine, PolicySpec, Stage, Value};
use gate_proto::v1::{
    CreatePolicyRequest, DeletePolicyRequest, DeleteResponse, GetPolicyHistoryRequest,
    GetPolicyRequest, ListPoliciesRequest, ListPoliciesResponse, Policy, PolicyHistory,
    SetPolicyStateRequest, SimulatePolicyRequest, SimulatePolicyResponse, UpdatePolicyRequest,
};

use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult, Code};
use crate::store::{PolicyInsert, PolicyPatch, StoreError};

pub(crate) const STATES: &[&str] = &["draft", "dry_run", "active"];
pub(crate) const STAGES: &[&str] = &["session", "pre_request", "post_request"];
/// Largest policy text accepted.
const MAX_REGO: usize = 256 * 1024;

fn check_stages(stages: &[String]) -> ApiResult<Vec<String>> {
    let mut seen = BTreeSet::new();
    for (i, stage) in stages.iter().enumerate() {
        validate::one_of(&format!("stages[{i}]"), stage, STAGES)?;
        seen.insert(stage.clone());
    }
    Ok(STAGES
        .iter()
        .filter(|s| seen.contains(**s))
        .map(|s| (*s).to_owned())
        .collect())
}

/// Compile `rego` as the policy `name` off the async runtime's threads (a
/// hostile text costs at most the engine's compile budget, on a blocking
/// thread); errors name the file, line and column.
async fn compile(name: &str, rego: &str) -> ApiResult<PolicyEngine> {
    let (name, rego) = (name.to_owned(), rego.to_owned());
    tokio::task::spawn_blocking(move || compile_now(&name, &rego))
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("policy compiler stopped: {e}")))?
}

fn compile_now(name: &str, rego: &str) -> ApiResult<PolicyEngine> {
    if rego.trim().is_empty() {
        return Err(ApiError::invalid("rego", "is required"));
    }
    if rego.len() > MAX_REGO {
        return Err(ApiError::invalid(
            "rego",
            format!("must be at most {MAX_REGO} bytes"),
        ));
    }
    let spec = PolicySpec::from_source(name, format!("{name}.rego"), rego);
    let options = EngineOptions {
        default_action: DefaultAction::Allow,
        ..EngineOptions::default()
    };
    PolicyEngine::new(vec![spec], options).map_err(|errors| {
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ApiError::invalid("rego", messages.join("; "))
    })
}

fn version_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) if message.starts_with("version") => {
            ApiError::invalid("version", message)
        }
        other => other.into(),
    }
}

impl ControlPlane {
    pub async fn create_policy(
        &self,
        caller: &Caller,
        req: CreatePolicyRequest,
    ) -> ApiResult<Policy> {
        let org = caller.org(Need::Write)?;
        validate::name("name", &req.name)?;
        validate::text("description", &req.description, 1024)?;
        let stages = check_stages(&req.stages)?;
        validate::targets("targets", &req.targets)?;
        let state = if req.state.is_empty() {
            "draft"
        } else {
            req.state.as_str()
        };
        validate::one_of("state", state, STATES)?;
        let origin = validate::origin("origin", &req.origin)?;
        validate::owner("owner", &req.owner)?;
        compile(&req.name, &req.rego).await?;
        let by = caller.actor();
        let policy = self
            .store
            .insert_policy(PolicyInsert {
                org_id: org,
                name: &req.name,
                description: &req.description,
                stages: &stages,
                targets: &req.targets,
                state,
                rego: &req.rego,
                origin: &origin,
                owner: &req.owner,
                by: &by,
            })
            .await?;
        self.changed();
        self.queued();
        Ok(policy)
    }

    pub async fn get_policy(&self, caller: &Caller, req: GetPolicyRequest) -> ApiResult<Policy> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .get_policy(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("policy"))
    }

    pub async fn list_policies(
        &self,
        caller: &Caller,
        _req: ListPoliciesRequest,
    ) -> ApiResult<ListPoliciesResponse> {
        let org = caller.org(Need::Read)?;
        Ok(ListPoliciesResponse {
            policies: self.store.list_policies(org).await?,
        })
    }

    pub async fn update_policy(
        &self,
        caller: &Caller,
        req: UpdatePolicyRequest,
    ) -> ApiResult<Policy> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        let current = self
            .store
            .get_policy(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("policy"))?;
        if let Some(description) = &req.description {
            validate::text("description", description, 1024)?;
        }
        let stages = if req.set_stages {
            Some(check_stages(&req.stages)?)
        } else {
            None
        };
        if req.set_targets {
            validate::targets("targets", &req.targets)?;
        }
        if let Some(rego) = &req.rego {
            compile(&current.name, rego).await?;
        }
        let patch = PolicyPatch {
            description: req.description.as_deref(),
            stages: stages.as_deref(),
            targets: req.set_targets.then_some(req.targets.as_slice()),
            rego: req.rego.as_deref(),
        };
        let updated = self
            .store
            .update_policy(org, &req.id, patch, &caller.actor())
            .await?
            .ok_or_else(|| ApiError::not_found("policy"))?;
        self.changed();
        Ok(updated)
    }

    /// draft → dry_run → active and back; `version` rolls back (or forward) to a saved text.
    pub async fn set_policy_state(
        &self,
        caller: &Caller,
        req: SetPolicyStateRequest,
    ) -> ApiResult<Policy> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        validate::one_of("state", &req.state, STATES)?;
        if req.version == Some(0) {
            return Err(ApiError::invalid("version", "versions start at 1"));
        }
        let updated = self
            .store
            .set_policy_state(org, &req.id, &req.state, req.version, &caller.actor())
            .await
            .map_err(version_conflict)?
            .ok_or_else(|| ApiError::not_found("policy"))?;
        self.changed();
        self.queued();
        Ok(updated)
    }

    pub async fn get_policy_history(
        &self,
        caller: &Caller,
        req: GetPolicyHistoryRequest,
    ) -> ApiResult<PolicyHistory> {
        let org = caller.org(Need::Read)?;
        validate::id("id", &req.id)?;
        self.store
            .policy_history(org, &req.id)
            .await?
            .ok_or_else(|| ApiError::not_found("policy"))
    }

    pub async fn delete_policy(
        &self,
        caller: &Caller,
        req: DeletePolicyRequest,
    ) -> ApiResult<DeleteResponse> {
        let org = caller.org(Need::Write)?;
        validate::id("id", &req.id)?;
        if !self.store.delete_policy(org, &req.id).await? {
            return Err(ApiError::not_found("policy"));
        }
        self.changed();
        Ok(DeleteResponse {})
    }

    /// The input recorded in the audit event `req.audit_event_id` names (`details.input`), as
    /// JSON text; `None` when the request gives no event.
    async fn recorded_input(
        &self,
        org: &str,
        req: &SimulatePolicyRequest,
    ) -> ApiResult<Option<String>> {
        let id = req.audit_event_id.trim();
        if id.is_empty() {
            return Ok(None);
        }
        if !req.input_json.trim().is_empty() {
            return Err(ApiError::invalid(
                "audit_event_id",
                "give input or audit_event_id, not both",
            ));
        }
        let filter = crate::store::AuditFilter {
            id: Some(id.to_owned()),
            limit: 1,
            ..crate::store::AuditFilter::default()
        };
        let event = self
            .store
            .query_audit(org, &filter)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("audit event"))?;
        let details: serde_json::Value =
            serde_json::from_str(&event.details_json).unwrap_or_default();
        match details.get("input") {
            Some(input) if input.is_object() => Ok(Some(input.to_string())),
            _ => Err(ApiError::invalid(
                "audit_event_id",
                "this audit event carries no policy input (details.input)",
            )),
        }
    }

    /// Evaluate a saved policy or a text against an input; nothing is stored.
    pub async fn simulate_policy(
        &self,
        caller: &Caller,
        req: SimulatePolicyRequest,
    ) -> ApiResult<SimulatePolicyResponse> {
        let org = caller.org(Need::Read)?;
        let stage: Stage = req.stage.parse().map_err(|_| {
            ApiError::invalid("stage", format!("expected one of {}", STAGES.join(", ")))
        })?;
        let recorded = self.recorded_input(org, &req).await?;
        let (name, rego) = match (req.policy_id.is_empty(), req.rego.is_empty()) {
            (false, true) => {
                let policy = self
                    .store
                    .get_policy(org, &req.policy_id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("policy"))?;
                (policy.name, policy.rego)
            }
            (true, false) => ("simulation".to_owned(), req.rego),
            _ => {
                return Err(ApiError::invalid(
                    "policy_id",
                    "give exactly one of policy_id and rego",
                ));
            }
        };
        let input_json = match &recorded {
            Some(input) => input.as_str(),
            None if req.input_json.trim().is_empty() => "{}",
            None => req.input_json.as_str(),
        };
        let input = serde_json::from_str::<serde_json::Value>(input_json)
            .map_err(|e| ApiError::invalid("input", format!("not valid JSON: {e}")))?;
        if !input.is_object() {
            return Err(ApiError::invalid("input", "expected a JSON object"));
        }
        let resource = input
            .pointer("/resource/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let engine = compile(&name, &rego).await?;
        let value = Value::from_json_str(input_json)
            .map_err(|e| ApiError::invalid("input", format!("not valid JSON: {e}")))?;
        // Evaluation is bounded by the engine's budgets; it still runs off
        // the runtime's threads so a slow policy never stalls other requests.
        let verdict =
            tokio::task::spawn_blocking(move || engine.evaluate(stage, &resource, &value))
                .await
                .map_err(|e| {
                    ApiError::new(Code::Internal, format!("policy evaluation stopped: {e}"))
                })?;
        let action = if verdict.defaulted {
            "none"
        } else {
            verdict.action.as_str()
        };
        Ok(SimulatePolicyResponse {
            action: action.to_owned(),
            reason: verdict.reason.clone().unwrap_or_default(),
            decision_json: serde_json::to_string(&verdict).unwrap_or_default(),
        })
    }
}
