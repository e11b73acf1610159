//! The Gate Kubernetes operator: CRD types and reconcilers (built by the operator issue).
