//! Gate's gRPC/Protobuf contracts (`proto/gate/v1/*.proto`): generated prost/tonic code, committed and
//! kept current by `make verify-generated`, plus [`client`], the admin client for `ControlPlaneService`.

pub mod client;
pub mod wire;

/// `package gate.v1`: messages, `ControlPlaneService` and `ConnectorService` (server and client).
#[allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]
pub mod v1 {
    include!("gen/gate.v1.rs");
}

/// The JSON shape of every field of every `gate.v1` message (generated from the
/// same `.proto` files), for documents that describe the messages, such as the
/// control plane's OpenAPI.
pub mod fields {
    /// One element of a field: a JSON scalar (`string`, `boolean`, `number`,
    /// or an integer named by its range: `uint32`, `int32`, `uint64`,
    /// `int64`) or another message by name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Element {
        Scalar(&'static str),
        Message(&'static str),
    }

    /// How a field holds its elements.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FieldKind {
        Single(Element),
        /// `optional`: the element or `null`.
        Optional(Element),
        /// `repeated`: an array.
        Repeated(Element),
        /// `map<string, V>`: an object of V (a scalar as in [`Element::Scalar`]).
        Map(&'static str),
    }

    include!("gen/fields.rs");
}
