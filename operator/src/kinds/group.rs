//! `Group` ⇄ control-plane group: description and members (identity names or emails; unknown
//! members are created as identities with origin `kubernetes`).

use std::collections::BTreeSet;

use gate_proto::v1 as pb;
use tonic::Status;

use crate::context::Ctx;
use crate::crd::{Group, ORIGIN, SyncStatus};
use crate::mirror::Mirror;
use crate::plan::Observed;

/// The control-plane contents a group spec decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupWant {
    pub description: String,
    /// Identity names or emails.
    pub members: BTreeSet<String>,
}

async fn identities(ctx: &Ctx) -> Result<Vec<pb::Identity>, Status> {
    Ok(ctx
        .cp()
        .list_identities(pb::ListIdentitiesRequest {})
        .await?
        .into_inner()
        .identities)
}

/// The identity id of `member` (by name, then email), created when unknown.
async fn identity_id(ctx: &Ctx, known: &[pb::Identity], member: &str) -> Result<String, Status> {
    if let Some(i) = known
        .iter()
        .find(|i| i.name == member)
        .or_else(|| known.iter().find(|i| i.email == member))
    {
        return Ok(i.id.clone());
    }
    let identity = pb::Identity {
        name: member.to_owned(),
        email: if member.contains('@') {
            member.to_owned()
        } else {
            String::new()
        },
        kind: "user".into(),
        origin: ORIGIN.into(),
        ..pb::Identity::default()
    };
    let created = ctx
        .cp()
        .create_identity(pb::CreateIdentityRequest {
            identity: Some(identity),
        })
        .await?;
    Ok(created.into_inner().id)
}

/// Make the members of group `id` exactly `want`.
async fn set_members(
    ctx: &Ctx,
    id: &str,
    have: &[String],
    want: &BTreeSet<String>,
) -> Result<(), Status> {
    let known = identities(ctx).await?;
    let mut wanted_ids = BTreeSet::new();
    for member in want {
        wanted_ids.insert(identity_id(ctx, &known, member).await?);
    }
    for extra in have.iter().filter(|m| !wanted_ids.contains(*m)) {
        let request = pb::GroupMemberRequest {
            group_id: id.into(),
            identity_id: extra.clone(),
        };
        ctx.cp().remove_group_member(request).await?;
    }
    for missing in wanted_ids.iter().filter(|m| !have.contains(m)) {
        let request = pb::GroupMemberRequest {
            group_id: id.into(),
            identity_id: missing.clone(),
        };
        ctx.cp().add_group_member(request).await?;
    }
    Ok(())
}

impl Mirror for Group {
    type Want = GroupWant;
    const KIND: &'static str = "Group";

    fn sync_status(&self) -> SyncStatus {
        self.status.clone().unwrap_or_default()
    }

    async fn desired(&self, ctx: &Ctx) -> Result<GroupWant, String> {
        // Members named by email compare as the name of the identity that has that email.
        let known = identities(ctx)
            .await
            .map_err(|s| format!("cannot list identities: {}", s.message()))?;
        let members = self
            .spec
            .members
            .iter()
            .map(|m| {
                match known
                    .iter()
                    .find(|i| i.name == *m)
                    .or_else(|| known.iter().find(|i| i.email == *m))
                {
                    Some(i) => i.name.clone(),
                    None => m.clone(),
                }
            })
            .collect();
        Ok(GroupWant {
            description: self.spec.description.clone(),
            members,
        })
    }

    async fn observe(ctx: &Ctx, name: &str) -> Result<Option<Observed<GroupWant>>, Status> {
        let all = ctx
            .cp()
            .list_groups(pb::ListGroupsRequest {})
            .await?
            .into_inner();
        let Some(group) = all.groups.into_iter().find(|g| g.name == name) else {
            return Ok(None);
        };
        let known = identities(ctx).await?;
        let members = group
            .members
            .iter()
            .filter_map(|id| known.iter().find(|i| &i.id == id))
            .map(|i| i.name.clone())
            .collect();
        Ok(Some(Observed {
            current: GroupWant {
                description: group.description,
                members,
            },
            id: group.id,
            origin: group.origin,
            owner: group.owner,
        }))
    }

    async fn create(ctx: &Ctx, name: &str, uid: &str, want: &GroupWant) -> Result<String, Status> {
        let group = pb::Group {
            name: name.to_owned(),
            description: want.description.clone(),
            origin: ORIGIN.into(),
            owner: uid.into(),
            ..pb::Group::default()
        };
        let id = ctx
            .cp()
            .create_group(pb::CreateGroupRequest { group: Some(group) })
            .await?
            .into_inner()
            .id;
        set_members(ctx, &id, &[], &want.members).await?;
        Ok(id)
    }

    async fn update(ctx: &Ctx, id: &str, name: &str, want: &GroupWant) -> Result<(), Status> {
        let group = pb::Group {
            id: id.into(),
            name: name.into(),
            description: want.description.clone(),
            ..pb::Group::default()
        };
        let updated = ctx
            .cp()
            .update_group(pb::UpdateGroupRequest { group: Some(group) })
            .await?
            .into_inner();
        set_members(ctx, id, &updated.members, &want.members).await
    }

    async fn delete(ctx: &Ctx, id: &str) -> Result<(), Status> {
        ctx.cp()
            .delete_group(pb::DeleteGroupRequest { id: id.into() })
            .await?;
        Ok(())
    }
}
