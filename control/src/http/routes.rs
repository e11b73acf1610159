//! The `/api/v1` route table: one row per operation. The router, the OpenAPI document and the
//! authorization-matrix test are all built from it, so they cannot drift apart.

/// HTTP methods used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// Who may call a route (documentation and the matrix test; enforcement is in the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
    Connector,
    System,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub verb: Verb,
    /// axum syntax: `/api/v1/resources/{id}`.
    pub path: &'static str,
    /// The gRPC method with the same logic (`ControlPlaneService.CreateResource`).
    pub operation: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Request body schema (a `gate.v1` message, or a JSON shape described in `summary`).
    pub body: Option<&'static str>,
    /// Response schema.
    pub response: &'static str,
}

macro_rules! routes {
    ($($verb:ident $path:literal => $op:literal, $access:ident, $body:expr, $resp:literal, $summary:literal;)*) => {
        /// Every `/api/v1` operation.
        pub const ROUTES: &[Route] = &[$(Route {
            verb: Verb::$verb,
            path: $path,
            operation: $op,
            summary: $summary,
            access: Access::$access,
            body: $body,
            response: $resp,
        }),*];
    };
}

routes! {
    Get "/api/v1/organizations" => "ListOrganizations", Read, None, "ListOrganizationsResponse", "List organizations (system keys: all; others: their own)";
    Post "/api/v1/organizations" => "CreateOrganization", System, Some("CreateOrganizationRequest"), "Organization", "Create an organization (system key)";
    Get "/api/v1/organizations/{id}" => "GetOrganization", Read, None, "Organization", "Get an organization";
    Delete "/api/v1/organizations/{id}" => "DeleteOrganization", System, None, "DeleteResponse", "Delete an organization and everything in it (system key)";
    Get "/api/v1/api-keys" => "ListApiKeys", Admin, None, "ListApiKeysResponse", "List the organization's API keys (never their secrets)";
    Post "/api/v1/api-keys" => "CreateApiKey", Admin, Some("CreateApiKeyRequest"), "CreateApiKeyResponse", "Create an API key; the secret is shown once";
    Delete "/api/v1/api-keys/{id}" => "RevokeApiKey", Admin, None, "ApiKey", "Revoke an API key";
    Get "/api/v1/resources" => "ListResources", Read, None, "ListResourcesResponse", "List resources";
    Post "/api/v1/resources" => "CreateResource", Write, Some("Resource"), "Resource", "Create a resource";
    Get "/api/v1/resources/{id}" => "GetResource", Read, None, "Resource", "Get a resource";
    Put "/api/v1/resources/{id}" => "UpdateResource", Write, Some("Resource"), "Resource", "Replace a resource";
    Delete "/api/v1/resources/{id}" => "DeleteResource", Write, None, "DeleteResponse", "Delete a resource";
    Get "/api/v1/policies" => "ListPolicies", Read, None, "ListPoliciesResponse", "List policies with their current text";
    Post "/api/v1/policies" => "CreatePolicy", Write, Some("CreatePolicyRequest"), "Policy", "Create a policy (compiled first; errors name file:line:col)";
    Post "/api/v1/policies/simulate" => "SimulatePolicy", Read, Some("SimulateBody"), "SimulatePolicyResponse", "Evaluate a saved policy or a text against an input";
    Get "/api/v1/policies/{id}" => "GetPolicy", Read, None, "Policy", "Get a policy";
    Patch "/api/v1/policies/{id}" => "UpdatePolicy", Write, Some("UpdatePolicyRequest"), "Policy", "Change a policy; new text is a new version";
    Delete "/api/v1/policies/{id}" => "DeletePolicy", Write, None, "DeleteResponse", "Delete a policy and its history";
    Post "/api/v1/policies/{id}/state" => "SetPolicyState", Write, Some("SetPolicyStateRequest"), "Policy", "Move to draft, dry_run or active; optionally to another version (rollback)";
    Get "/api/v1/policies/{id}/history" => "GetPolicyHistory", Read, None, "PolicyHistory", "Versions and state changes with who and when";
    Get "/api/v1/identities" => "ListIdentities", Read, None, "ListIdentitiesResponse", "List identities with their groups";
    Post "/api/v1/identities" => "CreateIdentity", Write, Some("Identity"), "Identity", "Create an identity";
    Get "/api/v1/identities/{id}" => "GetIdentity", Read, None, "Identity", "Get an identity";
    Put "/api/v1/identities/{id}" => "UpdateIdentity", Write, Some("Identity"), "Identity", "Replace an identity";
    Delete "/api/v1/identities/{id}" => "DeleteIdentity", Write, None, "DeleteResponse", "Delete an identity";
    Post "/api/v1/identities/{id}/tokens" => "IssueIdentityToken", Admin, Some("IssueIdentityTokenRequest"), "IssueIdentityTokenResponse", "Issue a short-lived JWT for the identity";
    Get "/api/v1/groups" => "ListGroups", Read, None, "ListGroupsResponse", "List groups with their members";
    Post "/api/v1/groups" => "CreateGroup", Write, Some("Group"), "Group", "Create a group";
    Get "/api/v1/groups/{id}" => "GetGroup", Read, None, "Group", "Get a group";
    Put "/api/v1/groups/{id}" => "UpdateGroup", Write, Some("Group"), "Group", "Rename or describe a group";
    Delete "/api/v1/groups/{id}" => "DeleteGroup", Write, None, "DeleteResponse", "Delete a group";
    Put "/api/v1/groups/{id}/members/{identity_id}" => "AddGroupMember", Write, None, "Group", "Add an identity to a group";
    Delete "/api/v1/groups/{id}/members/{identity_id}" => "RemoveGroupMember", Write, None, "Group", "Remove an identity from a group";
    Get "/api/v1/connectors" => "ListConnectors", Read, None, "ListConnectorsResponse", "List connectors with status online, stale or offline";
    Post "/api/v1/connectors" => "Register", Connector, Some("RegisterConnectorRequest"), "RegisterConnectorResponse", "Register a connector (connector key)";
    Post "/api/v1/connectors/{id}/heartbeat" => "Heartbeat", Connector, None, "HeartbeatResponse", "Record a heartbeat (connector key)";
    Delete "/api/v1/connectors/{id}" => "Deregister", Connector, None, "DeleteResponse", "Deregister a connector (connector key)";
    Get "/api/v1/snapshot" => "FetchSnapshot", Connector, None, "Snapshot", "The versioned snapshot connectors enforce (connector key)";
    Get "/api/v1/audit" => "QueryAudit", Read, None, "QueryAuditResponse", "Query audit events (from, to, identity, resource, action, stage, operation, target, protocol, id, limit, cursor)";
    Post "/api/v1/audit" => "IngestAudit", Connector, Some("IngestAuditRequest"), "IngestAuditResponse", "Ingest a batch of audit events idempotently (connector key)";
    Get "/api/v1/recordings" => "ListRecordings", Read, None, "ListRecordingsResponse", "List session recordings, newest first (resource, identity, protocol, since, until, limit, cursor)";
    Get "/api/v1/recordings/{id}" => "GetRecording", Read, None, "Recording", "Get a recording's metadata";
    Get "/api/v1/recordings/{id}/cast" => "GetRecordingData", Read, None, "asciicast", "The recording's file (asciicast v2, for `asciinema play`)";
    Get "/api/v1/recordings/{id}/events" => "GetRecordingEvents", Read, None, "JSON lines", "The recording's events, one JSON value a line (an MCP recording's JSON lines; an SSH recording's asciicast header and event arrays)";
    Delete "/api/v1/recordings/{id}" => "DeleteRecording", Admin, None, "DeleteResponse", "Delete a recording and its file";
    Get "/api/v1/tool-pins" => "ListToolPins", Read, None, "ListToolPinsResponse", "MCP tool pins (optional ?resource=NAME), with pinned and pending definitions";
    Post "/api/v1/tool-pins" => "ReportTools", Connector, Some("ReportToolsRequest"), "ReportToolsResponse", "Report the tools an MCP resource listed (connector key)";
    Post "/api/v1/tool-pins/{resource}/{tool}/approve" => "ApproveToolPin", Admin, Some("ApproveToolPinRequest"), "ToolPin", "Approve a changed tool definition (body: {digest}, the pending digest you reviewed)";
    Get "/api/v1/access-requests" => "ListAccessRequests", Read, None, "ListAccessRequestsResponse", "List access requests (optional ?status=pending|approved|denied|revoked|expired)";
    Post "/api/v1/access-requests" => "CreateAccessRequest", Read, Some("CreateAccessRequestRequest"), "AccessRequest", "Ask for just-in-time access to a resource";
    Get "/api/v1/access-requests/{id}" => "GetAccessRequest", Read, None, "AccessRequest", "Get an access request";
    Post "/api/v1/access-requests/{id}/approve" => "ApproveAccessRequest", Admin, Some("ApproveAccessRequestRequest"), "AccessRequest", "Approve: access until approval time + duration";
    Post "/api/v1/access-requests/{id}/deny" => "DenyAccessRequest", Admin, Some("DenyAccessRequestRequest"), "AccessRequest", "Deny a pending request";
    Post "/api/v1/access-requests/{id}/revoke" => "RevokeAccessRequest", Admin, Some("RevokeAccessRequestRequest"), "AccessRequest", "Revoke an approved request (open sessions are closed)";
    Post "/api/v1/access-requests/{id}/expire" => "ExpireAccessRequest", Admin, None, "AccessRequest", "End an approved request now";
    Get "/api/v1/webhooks" => "ListWebhooks", Admin, None, "ListWebhooksResponse", "List webhooks (never their secrets)";
    Post "/api/v1/webhooks" => "CreateWebhook", Admin, Some("CreateWebhookRequest"), "CreateWebhookResponse", "Create a webhook; the signing secret is shown once";
    Get "/api/v1/webhooks/{id}" => "GetWebhook", Admin, None, "Webhook", "Get a webhook";
    Put "/api/v1/webhooks/{id}" => "UpdateWebhook", Admin, Some("UpdateWebhookRequest"), "Webhook", "Replace a webhook's url, events, description and enabled (the secret is kept)";
    Delete "/api/v1/webhooks/{id}" => "DeleteWebhook", Admin, None, "DeleteResponse", "Delete a webhook";
    Get "/api/v1/deliveries" => "ListDeliveries", Admin, None, "ListDeliveriesResponse", "List outbox deliveries, newest first (optional ?state=pending|delivering|delivered|dead, ?limit= up to 1000)";
    Post "/api/v1/deliveries/{id}/replay" => "ReplayDelivery", Admin, None, "Delivery", "Queue a dead (or delivered) delivery again, attempts reset";
    Get "/api/v1/audit/export" => "ExportAudit", Read, None, "JSON lines", "Export matching audit events as JSON lines (same filters as QueryAudit)";
}
