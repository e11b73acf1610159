//! `Policy` ⇄ control-plane policy: text (inline or from a ConfigMap), state, targets, stages.

use gate_proto::v1 as pb;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use tonic::Status;

use crate::context::Ctx;
use crate::crd::{ORIGIN, Policy, SyncStatus};
use crate::mirror::Mirror;
use crate::plan::Observed;

/// The control-plane contents a policy spec decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWant {
    pub description: String,
    pub rego: String,
    pub state: String,
    pub targets: Vec<String>,
    /// In the control plane's order (session, pre_request, post_request); empty = all.
    pub stages: Vec<String>,
}

fn canonical_stages(stages: &[String]) -> Vec<String> {
    let all = ["session", "pre_request", "post_request"];
    let chosen: Vec<String> = all
        .iter()
        .filter(|s| stages.iter().any(|x| x == *s))
        .map(|s| (*s).to_owned())
        .collect();
    if chosen.len() == all.len() {
        Vec::new()
    } else {
        chosen
    }
}

impl Mirror for Policy {
    type Want = PolicyWant;
    const KIND: &'static str = "Policy";

    fn sync_status(&self) -> SyncStatus {
        self.status.clone().unwrap_or_default()
    }

    async fn desired(&self, ctx: &Ctx) -> Result<PolicyWant, String> {
        let spec = &self.spec;
        let rego = match (&spec.rego, &spec.config_map_ref) {
            (Some(rego), None) => rego.clone(),
            (None, Some(r)) => {
                let namespace = self.namespace().unwrap_or_default();
                let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
                let map = maps
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| {
                        format!("spec.configMapRef: cannot read ConfigMap {}: {e}", r.name)
                    })?
                    .ok_or_else(|| {
                        format!(
                            "spec.configMapRef: ConfigMap {}/{} not found",
                            namespace, r.name
                        )
                    })?;
                map.data
                    .and_then(|d| d.get(&r.key).cloned())
                    .ok_or_else(|| {
                        format!(
                            "spec.configMapRef: ConfigMap {} has no key {:?}",
                            r.name, r.key
                        )
                    })?
            }
            _ => return Err("spec: set exactly one of rego and configMapRef".into()),
        };
        let stages: Vec<String> = spec.stages.iter().map(|s| s.as_str().to_owned()).collect();
        Ok(PolicyWant {
            description: spec.description.clone(),
            rego,
            state: spec.state.as_str().to_owned(),
            targets: spec.targets.clone(),
            stages: canonical_stages(&stages),
        })
    }

    async fn observe(ctx: &Ctx, name: &str) -> Result<Option<Observed<PolicyWant>>, Status> {
        let all = ctx
            .cp()
            .list_policies(pb::ListPoliciesRequest {})
            .await?
            .into_inner();
        Ok(all
            .policies
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| Observed {
                current: PolicyWant {
                    description: p.description,
                    rego: p.rego,
                    state: p.state,
                    targets: p.targets,
                    stages: canonical_stages(&p.stages),
                },
                id: p.id,
                origin: p.origin,
                owner: p.owner,
            }))
    }

    async fn create(ctx: &Ctx, name: &str, uid: &str, want: &PolicyWant) -> Result<String, Status> {
        let request = pb::CreatePolicyRequest {
            name: name.to_owned(),
            description: want.description.clone(),
            stages: want.stages.clone(),
            targets: want.targets.clone(),
            rego: want.rego.clone(),
            state: want.state.clone(),
            origin: ORIGIN.into(),
            owner: uid.into(),
        };
        Ok(ctx.cp().create_policy(request).await?.into_inner().id)
    }

    async fn update(ctx: &Ctx, id: &str, _name: &str, want: &PolicyWant) -> Result<(), Status> {
        let current = ctx
            .cp()
            .get_policy(pb::GetPolicyRequest { id: id.into() })
            .await?
            .into_inner();
        let request = pb::UpdatePolicyRequest {
            id: id.into(),
            description: Some(want.description.clone()),
            stages: want.stages.clone(),
            set_stages: true,
            targets: want.targets.clone(),
            set_targets: true,
            rego: (current.rego != want.rego).then(|| want.rego.clone()),
        };
        ctx.cp().update_policy(request).await?;
        if current.state != want.state {
            let request = pb::SetPolicyStateRequest {
                id: id.into(),
                state: want.state.clone(),
                version: None,
            };
            ctx.cp().set_policy_state(request).await?;
        }
        Ok(())
    }

    async fn delete(ctx: &Ctx, id: &str) -> Result<(), Status> {
        ctx.cp()
            .delete_policy(pb::DeletePolicyRequest { id: id.into() })
            .await?;
        Ok(())
    }
}
