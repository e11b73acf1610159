//! Admin client: a `ControlPlaneService` (and `ConnectorService`) client that adds the Bearer key and,
//! for system keys, the `x-org-id` scope to every call.

use std::str::FromStr;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::v1::connector_service_client::ConnectorServiceClient;
use crate::v1::control_plane_service_client::ControlPlaneServiceClient;

/// Why a client could not be built.
#[derive(Debug)]
pub enum ClientError {
    /// The URL is not a valid endpoint (`http://host:port`).
    Url(String),
    /// The key or org id cannot be sent as a header value.
    Header(&'static str),
    /// The connection failed.
    Connect(tonic::transport::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Url(e) => write!(f, "control-plane url: {e}"),
            ClientError::Header(which) => write!(f, "{which}: not a valid header value"),
            ClientError::Connect(e) => write!(f, "cannot connect to the control plane: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Adds `authorization: Bearer <key>` and `x-org-id` to each request.
#[derive(Clone, Debug)]
pub struct Credentials {
    bearer: Option<AsciiMetadataValue>,
    org: Option<AsciiMetadataValue>,
}

impl Credentials {
    /// `key` is a root or org API key (`None` for an insecure control plane); `org_id` scopes a system key.
    pub fn new(key: Option<&str>, org_id: Option<&str>) -> Result<Self, ClientError> {
        let bearer = key
            .map(|k| MetadataValue::from_str(&format!("Bearer {k}")))
            .transpose()
            .map_err(|_| ClientError::Header("api key"))?;
        let org = org_id
            .map(MetadataValue::from_str)
            .transpose()
            .map_err(|_| ClientError::Header("org id"))?;
        Ok(Self { bearer, org })
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        if let Some(org) = &self.org {
            request.metadata_mut().insert("x-org-id", org.clone());
        }
        Ok(request)
    }
}

/// The admin client type.
pub type AdminClient = ControlPlaneServiceClient<InterceptedService<Channel, Credentials>>;
/// The connector-side client type.
pub type ConnectorClient = ConnectorServiceClient<InterceptedService<Channel, Credentials>>;

async fn channel(url: &str) -> Result<Channel, ClientError> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|e| ClientError::Url(e.to_string()))?;
    endpoint.connect().await.map_err(ClientError::Connect)
}

/// Connect an admin client to `url` (`http://127.0.0.1:8080`).
pub async fn connect_admin(
    url: &str,
    credentials: Credentials,
) -> Result<AdminClient, ClientError> {
    Ok(ControlPlaneServiceClient::with_interceptor(
        channel(url).await?,
        credentials,
    ))
}

/// Connect a connector-service client to `url`.
pub async fn connect_connector(
    url: &str,
    credentials: Credentials,
) -> Result<ConnectorClient, ClientError> {
    Ok(ConnectorServiceClient::with_interceptor(
        channel(url).await?,
        credentials,
    ))
}
