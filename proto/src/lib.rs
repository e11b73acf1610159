//! Gate's gRPC/Protobuf contracts (`proto/gate/v1/*.proto`): generated prost/tonic code, committed and
//! kept current by `make verify-generated`, plus [`client`], the admin client for `ControlPlaneService`.

pub mod client;
pub mod wire;

/// `package gate.v1`: messages, `ControlPlaneService` and `ConnectorService` (server and client).
#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod v1 {
    include!("gen/gate.v1.rs");
}
