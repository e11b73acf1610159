//! The Gate control plane: store, admin API, gRPC services and connector sync (built by the control-plane issue).
