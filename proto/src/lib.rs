//! Gate's gRPC/Protobuf contracts (`proto/gate/v1/*.proto`); the generated code lands here with the control-plane issue.
