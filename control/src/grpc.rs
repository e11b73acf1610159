//! gRPC adapters: `gate.v1.ControlPlaneService` and `gate.v1.ConnectorService` call the same
//! [`ControlPlane`] functions as HTTP; auth comes from `authorization` and `x-org-id` metadata.

use std::pin::Pin;
use std::sync::Arc;

use gate_proto::v1::connector_service_server::{ConnectorService, ConnectorServiceServer};
use gate_proto::v1::control_plane_service_server::{
    ControlPlaneService, ControlPlaneServiceServer,
};
use gate_proto::v1::*;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::service::ControlPlane;

/// Both gRPC services over one shared control plane.
#[derive(Clone, Debug)]
pub struct Grpc {
    cp: Arc<ControlPlane>,
}

/// Largest gRPC request message (an audit batch of 500 events is about 1 MiB).
pub const MAX_GRPC_REQUEST: usize = 16 * 1024 * 1024;
/// Largest gRPC response message (a connector's snapshot with every policy).
pub const MAX_GRPC_RESPONSE: usize = 64 * 1024 * 1024;

impl Grpc {
    pub fn new(cp: Arc<ControlPlane>) -> Self {
        Self { cp }
    }

    /// The tonic routes, ready to merge into the axum router. Requests over
    /// [`MAX_GRPC_REQUEST`] are refused with `OUT_OF_RANGE` before they
    /// are decoded; responses are capped at [`MAX_GRPC_RESPONSE`].
    pub fn routes(&self) -> tonic::service::Routes {
        tonic::service::Routes::new(
            ControlPlaneServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_GRPC_REQUEST)
                .max_encoding_message_size(MAX_GRPC_RESPONSE),
        )
        .add_service(
            ConnectorServiceServer::new(self.clone())
                .max_decoding_message_size(MAX_GRPC_REQUEST)
                .max_encoding_message_size(MAX_GRPC_RESPONSE),
        )
    }

    async fn caller(
        &self,
        metadata: &MetadataMap,
        operation: &'static str,
    ) -> Result<Caller, Status> {
        let text = |name| metadata.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        match self
            .cp
            .authenticate(text("authorization"), text("x-org-id"), operation)
            .await
        {
            Ok(caller) => Ok(caller),
            Err(e) => {
                self.cp.metrics.request("grpc", operation, e.code.as_str());
                Err(e.into())
            }
        }
    }

    fn finish<T>(
        &self,
        operation: &'static str,
        result: ApiResult<T>,
    ) -> Result<Response<T>, Status> {
        let code = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
        self.cp.metrics.request("grpc", operation, code);
        result.map(Response::new).map_err(Status::from)
    }
}

/// Implements a tonic service trait whose methods are all unary calls of `ControlPlane` functions.
macro_rules! unary_service {
    ($trait:ident { $($method:ident => $function:ident ($req:ty) -> $resp:ty;)* } $($extra:tt)*) => {
        #[tonic::async_trait]
        impl $trait for Grpc {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let caller = self.caller(request.metadata(), stringify!($method)).await?;
                    let result = self.cp.$function(&caller, request.into_inner()).await;
                    self.finish(stringify!($method), result)
                }
            )*
            $($extra)*
        }
    };
}

unary_service!(ControlPlaneService {
    create_organization => create_organization(CreateOrganizationRequest) -> Organization;
    get_organization => get_organization(GetOrganizationRequest) -> Organization;
    list_organizations => list_organizations(ListOrganizationsRequest) -> ListOrganizationsResponse;
    delete_organization => delete_organization(DeleteOrganizationRequest) -> DeleteResponse;
    create_api_key => create_api_key(CreateApiKeyRequest) -> CreateApiKeyResponse;
    list_api_keys => list_api_keys(ListApiKeysRequest) -> ListApiKeysResponse;
    revoke_api_key => revoke_api_key(RevokeApiKeyRequest) -> ApiKey;
    create_resource => create_resource(CreateResourceRequest) -> Resource;
    get_resource => get_resource(GetResourceRequest) -> Resource;
    list_resources => list_resources(ListResourcesRequest) -> ListResourcesResponse;
    update_resource => update_resource(UpdateResourceRequest) -> Resource;
    delete_resource => delete_resource(DeleteResourceRequest) -> DeleteResponse;
    create_policy => create_policy(CreatePolicyRequest) -> Policy;
    get_policy => get_policy(GetPolicyRequest) -> Policy;
    list_policies => list_policies(ListPoliciesRequest) -> ListPoliciesResponse;
    update_policy => update_policy(UpdatePolicyRequest) -> Policy;
    set_policy_state => set_policy_state(SetPolicyStateRequest) -> Policy;
    get_policy_history => get_policy_history(GetPolicyHistoryRequest) -> PolicyHistory;
    delete_policy => delete_policy(DeletePolicyRequest) -> DeleteResponse;
    simulate_policy => simulate_policy(SimulatePolicyRequest) -> SimulatePolicyResponse;
    create_identity => create_identity(CreateIdentityRequest) -> Identity;
    get_identity => get_identity(GetIdentityRequest) -> Identity;
    list_identities => list_identities(ListIdentitiesRequest) -> ListIdentitiesResponse;
    update_identity => update_identity(UpdateIdentityRequest) -> Identity;
    delete_identity => delete_identity(DeleteIdentityRequest) -> DeleteResponse;
    issue_identity_token => issue_identity_token(IssueIdentityTokenRequest) -> IssueIdentityTokenResponse;
    create_group => create_group(CreateGroupRequest) -> Group;
    get_group => get_group(GetGroupRequest) -> Group;
    list_groups => list_groups(ListGroupsRequest) -> ListGroupsResponse;
    update_group => update_group(UpdateGroupRequest) -> Group;
    delete_group => delete_group(DeleteGroupRequest) -> DeleteResponse;
    add_group_member => add_group_member(GroupMemberRequest) -> Group;
    remove_group_member => remove_group_member(GroupMemberRequest) -> Group;
    list_connectors => list_connectors(ListConnectorsRequest) -> ListConnectorsResponse;
    query_audit => query_audit(QueryAuditRequest) -> QueryAuditResponse;
    list_recordings => list_recordings(ListRecordingsRequest) -> ListRecordingsResponse;
    get_recording => get_recording(GetRecordingRequest) -> Recording;
    delete_recording => delete_recording(DeleteRecordingRequest) -> DeleteResponse;
    list_tool_pins => list_tool_pins(ListToolPinsRequest) -> ListToolPinsResponse;
    approve_tool_pin => approve_tool_pin(ApproveToolPinRequest) -> ToolPin;
    create_access_request => create_access_request(CreateAccessRequestRequest) -> AccessRequest;
    get_access_request => get_access_request(GetAccessRequestRequest) -> AccessRequest;
    list_access_requests => list_access_requests(ListAccessRequestsRequest) -> ListAccessRequestsResponse;
    approve_access_request => approve_access_request(ApproveAccessRequestRequest) -> AccessRequest;
    deny_access_request => deny_access_request(DenyAccessRequestRequest) -> AccessRequest;
    revoke_access_request => revoke_access_request(RevokeAccessRequestRequest) -> AccessRequest;
    expire_access_request => expire_access_request(ExpireAccessRequestRequest) -> AccessRequest;
    create_webhook => create_webhook(CreateWebhookRequest) -> CreateWebhookResponse;
    get_webhook => get_webhook(GetWebhookRequest) -> Webhook;
    list_webhooks => list_webhooks(ListWebhooksRequest) -> ListWebhooksResponse;
    update_webhook => update_webhook(UpdateWebhookRequest) -> Webhook;
    delete_webhook => delete_webhook(DeleteWebhookRequest) -> DeleteResponse;
    list_deliveries => list_deliveries(ListDeliveriesRequest) -> ListDeliveriesResponse;
    replay_delivery => replay_delivery(ReplayDeliveryRequest) -> Delivery;
}
    type GetRecordingDataStream = ChunkStream;

    async fn get_recording_data(
        &self,
        request: Request<GetRecordingRequest>,
    ) -> Result<Response<Self::GetRecordingDataStream>, Status> {
        let caller = self.caller(request.metadata(), "get_recording_data").await?;
        let result = self.cp.recording_file(&caller, request.into_inner()).await;
        let (_, path) = self.finish("get_recording_data", result)?.into_inner();
        let chunks = crate::service::recordings::read_chunks(path);
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(chunks), |chunk| match chunk {
            Ok(data) => Ok(RecordingChunk { data }),
            Err(e) => Err(Status::internal(format!("reading the recording: {e}"))),
        });
        Ok(Response::new(Box::pin(stream)))
    }
);

impl Grpc {
    /// Read an upload stream into [`ControlPlane::begin_upload`] and commit it once it ends.
    async fn upload(
        &self,
        caller: &Caller,
        mut stream: tonic::Streaming<UploadRecordingRequest>,
    ) -> ApiResult<UploadRecordingResponse> {
        // The stream breaking is no fault of the recording: the connector tries again.
        let stream_error = |e: Status| {
            ApiError::new(
                crate::error::Code::Internal,
                format!("the upload stream broke: {}", e.message()),
            )
        };
        let first = stream
            .message()
            .await
            .map_err(stream_error)?
            .ok_or_else(|| ApiError::invalid("recording", "the upload stream was empty"))?;
        let mut upload = self.cp.begin_upload(caller, first.recording).await?;
        upload.write(&first.data)?;
        while let Some(next) = stream.message().await.map_err(stream_error)? {
            if next.recording.is_some() {
                return Err(ApiError::invalid(
                    "recording",
                    "only the first message may carry the metadata",
                ));
            }
            upload.write(&next.data)?;
        }
        self.cp.commit_upload(upload).await
    }
}

/// The stream type of `GetRecordingData`.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<RecordingChunk, Status>> + Send + 'static>>;

/// The snapshot stream type of `WatchSnapshot`.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send + 'static>>;

unary_service!(ConnectorService {
    register => register_connector(RegisterConnectorRequest) -> RegisterConnectorResponse;
    heartbeat => heartbeat(HeartbeatRequest) -> HeartbeatResponse;
    deregister => deregister_connector(DeregisterConnectorRequest) -> DeleteResponse;
    fetch_snapshot => fetch_snapshot(FetchSnapshotRequest) -> Snapshot;
    ingest_audit => ingest_audit(IngestAuditRequest) -> IngestAuditResponse;
    report_tools => report_tools(ReportToolsRequest) -> ReportToolsResponse;
}
    type WatchSnapshotStream = SnapshotStream;

    async fn watch_snapshot(
        &self,
        request: Request<WatchSnapshotRequest>,
    ) -> Result<Response<Self::WatchSnapshotStream>, Status> {
        let caller = self.caller(request.metadata(), "watch_snapshot").await?;
        let result = Arc::clone(&self.cp).watch_snapshot(&caller, request.into_inner()).await;
        let receiver = self.finish("watch_snapshot", result)?.into_inner();
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(receiver), |item: ApiResult<Snapshot>| {
            item.map_err(|e: ApiError| Status::from(e))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn upload_recording(
        &self,
        request: Request<tonic::Streaming<UploadRecordingRequest>>,
    ) -> Result<Response<UploadRecordingResponse>, Status> {
        let caller = self.caller(request.metadata(), "upload_recording").await?;
        let result = self.upload(&caller, request.into_inner()).await;
        self.finish("upload_recording", result)
    }
);
