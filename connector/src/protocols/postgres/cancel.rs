//! CancelRequest routing: each session's BackendKeyData is Gate's own key;
//! a CancelRequest carrying it is forwarded to the upstream backend the
//! session is using, with that backend's key.

use std::collections::HashMap;
use std::sync::Mutex;

use super::upstream;

/// An upstream backend to cancel: address, backend pid, secret.
type CancelTarget = (String, u32, u32);

/// Where to send a client's CancelRequest: Gate's key → the upstream's.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    targets: Mutex<HashMap<(u32, u32), CancelTarget>>,
}

impl CancelRegistry {
    pub(super) fn register(&self, key: (u32, u32), target: CancelTarget) {
        if let Ok(mut t) = self.targets.lock() {
            t.insert(key, target);
        }
    }
    pub(super) fn remove(&self, key: (u32, u32)) {
        if let Ok(mut t) = self.targets.lock() {
            t.remove(&key);
        }
    }
    pub(super) async fn cancel(&self, pid: u32, secret: u32) {
        let target = self
            .targets
            .lock()
            .ok()
            .and_then(|t| t.get(&(pid, secret)).cloned());
        if let Some((addr, upstream_pid, upstream_secret)) = target {
            let _ = upstream::cancel(&addr, upstream_pid, upstream_secret).await;
        }
    }
}
