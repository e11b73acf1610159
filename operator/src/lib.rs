//! The Gate Kubernetes operator: CRD types, pure reconcile planners, the controllers around them,
//! leader election, health/metrics and the sidecar injector.

pub mod crd;
pub mod time;
