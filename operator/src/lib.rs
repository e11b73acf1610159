//! The Gate Kubernetes operator: CRD types, pure reconcile planners, the controllers around them,
//! leader election, health/metrics and the sidecar injector.

pub mod access;
pub mod context;
pub mod crd;
pub mod inject;
mod kinds;
pub mod leader;
pub mod metrics;
pub mod mirror;
pub mod plan;
pub mod requester;
pub mod run;
pub mod time;
pub mod webhook;
pub mod webhook_cert;
