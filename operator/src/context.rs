//! What every reconcile shares: the Kubernetes client, the control-plane client, Events,
//! metrics, timing settings, and per-object exponential backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gate_proto::client::AdminClient;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::metrics::Metrics;

/// Timing of reconciles.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How often an in-sync object is checked against the control plane (drift correction).
    pub resync: Duration,
    /// How often a pending or approved AccessRequest is checked.
    pub access_poll: Duration,
    /// First retry after a control-plane error; doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            resync: Duration::from_secs(60),
            access_poll: Duration::from_secs(2),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Shared state of the controllers.
pub struct Ctx {
    pub client: kube::Client,
    pub cp: AdminClient,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub timing: Timing,
    failures: Mutex<HashMap<String, u32>>,
}

impl Ctx {
    pub fn new(client: kube::Client, cp: AdminClient, instance: &str, timing: Timing) -> Ctx {
        let reporter = Reporter {
            controller: "gate-operator".into(),
            instance: Some(instance.to_owned()),
        };
        Ctx {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cp,
            metrics: Metrics::default(),
            timing,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// A control-plane client for one call (tonic clients are cheap clones over one channel).
    pub fn cp(&self) -> AdminClient {
        self.cp.clone()
    }

    /// Record an Event on `object`; a failure to record is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot record an Event");
        }
    }

    /// The delay before retrying `key` after another failure (exponential, capped).
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(&self.timing, *n)
    }

    /// Forget the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// `base * 2^(failures-1)`, at most `max`.
pub fn backoff_delay(timing: &Timing, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    timing
        .backoff_base
        .saturating_mul(factor)
        .min(timing.backoff_max)
}
