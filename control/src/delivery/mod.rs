//! The outbox worker: claims due deliveries (`store/outbox.rs`), sends each to its webhook
//! (signed, `sign.rs`) or to Slack (`crate::slack`), and records the outcome: delivered,
//! retried after an exponential backoff with jitter, or, after `delivery.max_attempts`, a dead
//! letter (the table, and a JSON file in `delivery.dead_letter_dir` when configured).

pub mod client;
pub mod events;
pub mod sign;
pub mod ssrf;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gate_config::control::DeliveryConfig;
use gate_proto::v1::Delivery;
use tokio::task::JoinSet;

use crate::service::ControlPlane;
use crate::util::{now_ms, random_bytes};
use ssrf::Guard;

/// Deliveries claimed per round.
const BATCH: u32 = 16;
/// How often a worker looks for connectors whose heartbeats stopped and approvals whose time ran
/// out.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Why one attempt failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Retry(String),
    #[error("{0}")]
    Permanent(String),
}

/// How long a claim lasts: longer than one attempt can take, so only a dead worker loses it.
pub fn lease(config: &DeliveryConfig) -> Duration {
    config.timeout * 2 + Duration::from_secs(1)
}

/// The wait before attempt `attempts + 1`: `initial * 2^(attempts-1)` capped at `max`, then a
/// random point in its upper half (jitter spreads retries of many receivers).
pub fn backoff(config: &DeliveryConfig, attempts: u32, random: u64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = config
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(config.max_backoff);
    let half = base / 2;
    let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_millis(random % span)
}

/// Run the worker until the task is aborted.
pub async fn run(cp: Arc<ControlPlane>, config: DeliveryConfig) {
    let guard = Guard {
        allowed_http_hosts: config.allowed_http_hosts.clone(),
        trusted: false,
    };
    let lease_ms = i64::try_from(lease(&config).as_millis()).unwrap_or(i64::MAX);
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        // Connectors whose heartbeats stopped are announced from here (every few seconds).
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            last_sweep = Some(tokio::time::Instant::now());
            match cp.store.announce_offline_connectors().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(connectors = n, "connectors went offline"),
                Err(e) => tracing::warn!(error = %e, "outbox: cannot sweep connectors"),
            }
            // Approvals whose time ran out become `expired` (and announced) here.
            match cp.store.expire_due_requests(cp.slack.is_some()).await {
                Ok(orgs) if orgs.is_empty() => {}
                Ok(orgs) => tracing::info!(orgs = orgs.len(), "access requests expired"),
                Err(e) => tracing::warn!(error = %e, "outbox: cannot sweep expired requests"),
            }
        }
        let claimed = match cp.store.claim_deliveries(BATCH, lease_ms).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot claim deliveries");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            let _ = tokio::time::timeout(config.poll_interval, cp.delivery_wake.notified()).await;
            continue;
        }
        let mut round = JoinSet::new();
        for c in claimed {
            let (cp, config, guard) = (Arc::clone(&cp), config.clone(), guard.clone());
            round.spawn(async move { attempt(&cp, &config, &guard, c.delivery, c.attempts).await });
        }
        while round.join_next().await.is_some() {}
    }
}

async fn attempt(
    cp: &ControlPlane,
    config: &DeliveryConfig,
    guard: &Guard,
    d: Delivery,
    attempts: u32,
) {
    let kind = if d.target_kind == "slack" {
        "slack"
    } else {
        "webhook"
    };
    let result = match kind {
        "slack" => crate::slack::deliver(cp, config, &d).await,
        _ => deliver_webhook(cp, config, guard, &d).await,
    };
    let outcome = match result {
        Ok(()) => {
            cp.metrics.delivery(kind, "success");
            cp.store.mark_delivered(&d.id, attempts).await.map(|_| None)
        }
        Err(e) => {
            cp.metrics.delivery(kind, "failure");
            let (message, permanent) = match &e {
                DeliveryError::Retry(m) => (m.as_str(), false),
                DeliveryError::Permanent(m) => (m.as_str(), true),
            };
            let retry_at = (!permanent && attempts < config.max_attempts).then(|| {
                let wait = backoff(config, attempts, u64::from_le_bytes(random_bytes::<8>()));
                now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2)
            });
            tracing::warn!(id = %d.id, event = %d.event_type, target = kind, attempts, error = message,
                dead = retry_at.is_none(), "delivery attempt failed");
            cp.store
                .mark_failed(&d.id, attempts, message, retry_at)
                .await
        }
    };
    match outcome {
        Ok(Some(dead)) if dead.state == "dead" => {
            cp.metrics.dead_letter(kind);
            if let Some(dir) = config.dead_letter_dir.as_deref() {
                write_dead_letter(dir, &dead);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(id = %d.id, error = %e, "outbox: cannot record the outcome"),
    }
}

/// `{dir}/{delivery id}.json`: the delivery with its payload, for whoever reads the directory.
fn write_dead_letter(dir: &str, d: &Delivery) {
    let path = PathBuf::from(dir).join(format!("{}.json", d.id));
    let written = std::fs::create_dir_all(dir).and_then(|_| {
        let text = serde_json::to_vec_pretty(d).map_err(std::io::Error::other)?;
        std::fs::write(&path, text)
    });
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write dead letter file");
    }
}

async fn deliver_webhook(
    cp: &ControlPlane,
    config: &DeliveryConfig,
    guard: &Guard,
    d: &Delivery,
) -> Result<(), DeliveryError> {
    let (webhook, secret) = cp
        .store
        .webhook_for_delivery(&d.org_id, &d.target_id)
        .await
        .map_err(|e| DeliveryError::Retry(format!("store: {e}")))?
        .ok_or_else(|| DeliveryError::Permanent("the webhook no longer exists".to_owned()))?;
    if !webhook.enabled {
        return Err(DeliveryError::Permanent(
            "the webhook is disabled".to_owned(),
        ));
    }
    let timestamp = now_ms() / 1000;
    let body = d.payload.as_bytes().to_vec();
    let headers = [
        (sign::DELIVERY_HEADER, d.id.clone()),
        (sign::EVENT_HEADER, d.event_type.clone()),
        (sign::TIMESTAMP_HEADER, timestamp.to_string()),
        (
            sign::SIGNATURE_HEADER,
            sign::webhook_signature(&secret, timestamp, &body),
        ),
    ];
    let answer = client::post(guard, &webhook.url, &headers, body, config.timeout)
        .await
        .map_err(DeliveryError::Retry)?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(DeliveryError::Retry(format!(
            "HTTP status {}",
            answer.status
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let config = DeliveryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..DeliveryConfig::default()
        };
        for (attempts, base) in [(1u32, 1u64), (2, 2), (3, 4), (7, 60), (40, 60)] {
            for random in [0u64, 1, 499, 123_456_789, u64::MAX] {
                let wait = backoff(&config, attempts, random);
                let base = Duration::from_secs(base);
                assert!(wait >= base / 2 && wait <= base, "{attempts} {wait:?}");
            }
        }
        assert_ne!(backoff(&config, 3, 0), backoff(&config, 3, 1500));
    }
}
