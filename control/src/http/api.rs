//! `/api/v1` handlers: turn path, query and JSON body into the protobuf request, call the same
//! [`ControlPlane`] function as gRPC, and return its answer as JSON.

use std::collections::HashMap;

use gate_proto::v1::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::audit_json;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code};
use crate::service::ControlPlane;

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    Json(serde_json::Value),
    /// JSON lines (`application/x-ndjson`).
    Lines(String),
    /// A file's bytes as they are read, with their content type.
    Stream(
        &'static str,
        tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    ),
}

/// The HTTP request parts a handler may use.
#[derive(Debug, Default)]
pub struct Call<'a> {
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: &'a [u8],
}

impl Call<'_> {
    pub(super) fn param(&self, name: &str) -> String {
        self.params.get(name).cloned().unwrap_or_default()
    }

    /// Parse the JSON body; an empty body is `{}`. Errors name the field path.
    pub(super) fn body<T: DeserializeOwned>(&self) -> ApiResult<T> {
        decode(self.json_object()?)
    }

    /// The JSON body as an object (an empty body is `{}`), before it is decoded.
    fn json_object(&self) -> ApiResult<serde_json::Value> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            self.body
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let mut json = serde_json::Value::deserialize(&mut de)
            .map_err(|e| ApiError::invalid("body", format!("not valid JSON: {e}")))?;
        // Only whitespace may follow the value (`{"a":1} x` and `{}{}` are refused).
        de.end().map_err(|e| {
            ApiError::invalid("body", format!("unexpected data after the JSON value: {e}"))
        })?;
        // serde would fill a message from an array too (`[]` as `{}`).
        if !json.is_object() {
            return Err(ApiError::invalid("body", "expected a JSON object"));
        }
        integral_floats_to_integers(&mut json);
        Ok(json)
    }

    /// Only the named query parameters are allowed.
    pub(super) fn query_only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.query.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(ApiError::invalid(
                unknown,
                format!(
                    "unknown query parameter; expected {}",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            )),
        }
    }
}

/// Decode a request message from its JSON; errors name the field path.
fn decode<T: DeserializeOwned>(json: serde_json::Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." || path == "?" {
            "body".to_owned()
        } else {
            path
        };
        ApiError::invalid(&field, e.into_inner().to_string())
    })
}

/// JSON does not tell `3` from `3.0`, and JSON Schema calls both integers:
/// integral numbers written with a fraction are read as integers.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                    // 2^64 and -2^63 are exact as floats: the bounds of u64 and i64.
                    if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                        *value = serde_json::Value::from(f as u64);
                    } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                        *value = serde_json::Value::from(f as i64);
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            serde_json::Value::Object(fields) => stack.extend(fields.values_mut()),
            _ => {}
        }
    }
}

fn to_json<T: serde::Serialize>(value: T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::new(Code::Internal, format!("cannot encode the response: {e}")))
}

pub(super) fn json<T: serde::Serialize>(value: T) -> ApiResult<Reply> {
    to_json(value).map(Reply::Json)
}

/// `POST /api/v1/policies/simulate` takes the input as a JSON object.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SimulateBody {
    policy_id: String,
    rego: String,
    stage: String,
    input: Option<serde_json::Value>,
    audit_event_id: String,
}

/// Time parameters among `names` that are present must not be empty (an open bound is left out).
fn times_given(call: &Call<'_>, names: &[&str]) -> ApiResult<()> {
    match names
        .iter()
        .find(|name| call.query.get(**name).is_some_and(String::is_empty))
    {
        Some(name) => Err(ApiError::invalid(
            name,
            "expected an RFC 3339 time, got \"\"",
        )),
        None => Ok(()),
    }
}

/// `?limit=`, 0 when absent.
fn limit_param(call: &Call<'_>) -> ApiResult<u32> {
    match call.query.get("limit") {
        None => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::invalid("limit", "expected a whole number")),
    }
}

fn audit_query(call: &Call<'_>) -> ApiResult<QueryAuditRequest> {
    let q = |name: &str| call.query.get(name).cloned().unwrap_or_default();
    times_given(call, &["from", "to"])?;
    let limit = limit_param(call)?;
    Ok(QueryAuditRequest {
        from: q("from"),
        to: q("to"),
        identity: q("identity"),
        resource: q("resource"),
        action: q("action"),
        stage: q("stage"),
        operation: q("operation"),
        target: q("target"),
        protocol: q("protocol"),
        id: q("id"),
        limit,
        cursor: q("cursor"),
    })
}

fn recordings_query(call: &Call<'_>) -> ApiResult<ListRecordingsRequest> {
    let q = |name: &str| call.query.get(name).cloned().unwrap_or_default();
    times_given(call, &["since", "until"])?;
    let limit = limit_param(call)?;
    Ok(ListRecordingsRequest {
        resource: q("resource"),
        identity: q("identity"),
        protocol: q("protocol"),
        since: q("since"),
        until: q("until"),
        limit,
        cursor: q("cursor"),
    })
}

/// Run `operation` (a name from the route table) for `caller`.
pub async fn dispatch(
    cp: &ControlPlane,
    caller: &Caller,
    operation: &str,
    call: &Call<'_>,
) -> ApiResult<Reply> {
    call.query_only(&super::params::names(operation))?;
    super::params::one_of_given(operation, &call.query)?;
    let id = || call.param("id");
    match operation {
        "ListOrganizations" => json(
            cp.list_organizations(caller, ListOrganizationsRequest {})
                .await?,
        ),
        "CreateOrganization" => json(cp.create_organization(caller, call.body()?).await?),
        "GetOrganization" => json(
            cp.get_organization(caller, GetOrganizationRequest { id: id() })
                .await?,
        ),
        "DeleteOrganization" => json(
            cp.delete_organization(caller, DeleteOrganizationRequest { id: id() })
                .await?,
        ),
        "ListApiKeys" => json(cp.list_api_keys(caller, ListApiKeysRequest {}).await?),
        "CreateApiKey" => json(cp.create_api_key(caller, call.body()?).await?),
        "RevokeApiKey" => json(
            cp.revoke_api_key(caller, RevokeApiKeyRequest { id: id() })
                .await?,
        ),
        "ListResources" => json(cp.list_resources(caller, ListResourcesRequest {}).await?),
        "CreateResource" => {
            let resource = Some(call.body()?);
            json(
                cp.create_resource(caller, CreateResourceRequest { resource })
                    .await?,
            )
        }
        "GetResource" => json(
            cp.get_resource(caller, GetResourceRequest { id: id() })
                .await?,
        ),
        "UpdateResource" => {
            let resource = Resource {
                id: id(),
                ..call.body()?
            };
            json(
                cp.update_resource(
                    caller,
                    UpdateResourceRequest {
                        resource: Some(resource),
                    },
                )
                .await?,
            )
        }
        "DeleteResource" => json(
            cp.delete_resource(caller, DeleteResourceRequest { id: id() })
                .await?,
        ),
        "ListPolicies" => json(cp.list_policies(caller, ListPoliciesRequest {}).await?),
        "CreatePolicy" => json(cp.create_policy(caller, call.body()?).await?),
        "GetPolicy" => json(cp.get_policy(caller, GetPolicyRequest { id: id() }).await?),
        "UpdatePolicy" => {
            // Fields present in the JSON object are changed; absent ones are kept.
            let present: serde_json::Map<String, serde_json::Value> = call.body()?;
            let request: UpdatePolicyRequest = call.body()?;
            let request = UpdatePolicyRequest {
                id: id(),
                set_stages: request.set_stages || present.contains_key("stages"),
                set_targets: request.set_targets || present.contains_key("targets"),
                ..request
            };
            json(cp.update_policy(caller, request).await?)
        }
        "SetPolicyState" => {
            let request = SetPolicyStateRequest {
                id: id(),
                ..call.body()?
            };
            json(cp.set_policy_state(caller, request).await?)
        }
        "GetPolicyHistory" => json(
            cp.get_policy_history(caller, GetPolicyHistoryRequest { id: id() })
                .await?,
        ),
        "DeletePolicy" => json(
            cp.delete_policy(caller, DeletePolicyRequest { id: id() })
                .await?,
        ),
        "SimulatePolicy" => {
            let body: SimulateBody = call.body()?;
            let input_json = body.input.map(|v| v.to_string()).unwrap_or_default();
            let request = SimulatePolicyRequest {
                policy_id: body.policy_id,
                rego: body.rego,
                stage: body.stage,
                input_json,
                audit_event_id: body.audit_event_id,
            };
            json(cp.simulate_policy(caller, request).await?)
        }
        "ListIdentities" => json(cp.list_identities(caller, ListIdentitiesRequest {}).await?),
        "CreateIdentity" => {
            let identity = Some(call.body()?);
            json(
                cp.create_identity(caller, CreateIdentityRequest { identity })
                    .await?,
            )
        }
        "GetIdentity" => json(
            cp.get_identity(caller, GetIdentityRequest { id: id() })
                .await?,
        ),
        "UpdateIdentity" => {
            let identity = Identity {
                id: id(),
                ..call.body()?
            };
            json(
                cp.update_identity(
                    caller,
                    UpdateIdentityRequest {
                        identity: Some(identity),
                    },
                )
                .await?,
            )
        }
        "DeleteIdentity" => json(
            cp.delete_identity(caller, DeleteIdentityRequest { id: id() })
                .await?,
        ),
        "IssueIdentityToken" => {
            let request = IssueIdentityTokenRequest {
                identity_id: id(),
                ..call.body()?
            };
            json(cp.issue_identity_token(caller, request).await?)
        }
        "ListGroups" => json(cp.list_groups(caller, ListGroupsRequest {}).await?),
        "CreateGroup" => {
            let group = Some(call.body()?);
            json(
                cp.create_group(caller, CreateGroupRequest { group })
                    .await?,
            )
        }
        "GetGroup" => json(cp.get_group(caller, GetGroupRequest { id: id() }).await?),
        "UpdateGroup" => {
            let group = Group {
                id: id(),
                ..call.body()?
            };
            json(
                cp.update_group(caller, UpdateGroupRequest { group: Some(group) })
                    .await?,
            )
        }
        "DeleteGroup" => json(
            cp.delete_group(caller, DeleteGroupRequest { id: id() })
                .await?,
        ),
        "AddGroupMember" | "RemoveGroupMember" => {
            let request = GroupMemberRequest {
                group_id: id(),
                identity_id: call.param("identity_id"),
            };
            if operation == "AddGroupMember" {
                json(cp.add_group_member(caller, request).await?)
            } else {
                json(cp.remove_group_member(caller, request).await?)
            }
        }
        "ListConnectors" => json(cp.list_connectors(caller, ListConnectorsRequest {}).await?),
        "Register" => json(cp.register_connector(caller, call.body()?).await?),
        "Heartbeat" => json(
            cp.heartbeat(caller, HeartbeatRequest { connector_id: id() })
                .await?,
        ),
        "Deregister" => json(
            cp.deregister_connector(caller, DeregisterConnectorRequest { connector_id: id() })
                .await?,
        ),
        "FetchSnapshot" => json(
            cp.fetch_snapshot(caller, FetchSnapshotRequest::default())
                .await?,
        ),
        "QueryAudit" => {
            let mut reply = to_json(cp.query_audit(caller, audit_query(call)?).await?)?;
            audit_json::events_to_http(&mut reply);
            Ok(Reply::Json(reply))
        }
        "IngestAudit" => {
            let mut body = call.json_object()?;
            audit_json::ingest_from_http(&mut body)?;
            json(cp.ingest_audit(caller, decode(body)?).await?)
        }
        "ListRecordings" => json(cp.list_recordings(caller, recordings_query(call)?).await?),
        "GetRecording" => json(
            cp.get_recording(caller, GetRecordingRequest { id: id() })
                .await?,
        ),
        "GetRecordingData" | "GetRecordingEvents" => {
            let (recording, path) = cp
                .recording_file(caller, GetRecordingRequest { id: id() })
                .await?;
            // Both formats are JSON lines; `/events` says so whatever the format.
            let content_type = if operation == "GetRecordingEvents" || recording.format == "jsonl" {
                "application/x-ndjson"
            } else {
                "application/x-asciicast"
            };
            Ok(Reply::Stream(
                content_type,
                crate::service::recordings::read_chunks(path),
            ))
        }
        "DeleteRecording" => json(
            cp.delete_recording(caller, DeleteRecordingRequest { id: id() })
                .await?,
        ),
        "ListAccessRequests" => {
            let status = call.query.get("status").cloned().unwrap_or_default();
            if call.query.contains_key("status") && status.is_empty() {
                return Err(ApiError::invalid(
                    "status",
                    "expected a request status, got \"\" (leave the parameter out for all)",
                ));
            }
            json(
                cp.list_access_requests(caller, ListAccessRequestsRequest { status })
                    .await?,
            )
        }
        "CreateAccessRequest" => json(cp.create_access_request(caller, call.body()?).await?),
        "GetAccessRequest" => json(
            cp.get_access_request(caller, GetAccessRequestRequest { id: id() })
                .await?,
        ),
        "ApproveAccessRequest" => {
            let request = ApproveAccessRequestRequest {
                id: id(),
                ..call.body()?
            };
            json(cp.approve_access_request(caller, request).await?)
        }
        "DenyAccessRequest" => {
            let request = DenyAccessRequestRequest {
                id: id(),
                ..call.body()?
            };
            json(cp.deny_access_request(caller, request).await?)
        }
        "RevokeAccessRequest" => {
            let request = RevokeAccessRequestRequest {
                id: id(),
                ..call.body()?
            };
            json(cp.revoke_access_request(caller, request).await?)
        }
        "ExpireAccessRequest" => json(
            cp.expire_access_request(caller, ExpireAccessRequestRequest { id: id() })
                .await?,
        ),
        "ExportAudit" => {
            let mut request = audit_query(call)?;
            if request.limit > 1000 {
                return Err(ApiError::invalid("limit", "must be at most 1000"));
            }
            request.limit = 1000;
            let mut lines = String::new();
            loop {
                let page = cp.query_audit(caller, request.clone()).await?;
                for event in &page.events {
                    let mut event = to_json(event)?;
                    audit_json::event_to_http(&mut event);
                    lines.push_str(&event.to_string());
                    lines.push('\n');
                }
                if page.next_cursor.is_empty() {
                    break;
                }
                request.cursor = page.next_cursor;
            }
            Ok(Reply::Lines(lines))
        }
        other => super::api_delivery::dispatch(cp, caller, other, call).await,
    }
}
