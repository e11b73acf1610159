//! Change notification between control-plane replicas on one PostgreSQL: every change is
//! announced with `NOTIFY gate_changes`, and each replica listens and wakes its snapshot watchers,
//! so a change made through replica A reaches connectors watching replica B within the second.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::Store;

/// The channel replicas announce changes on.
const CHANNEL: &str = "gate_changes";

impl Store {
    /// Tell the other replicas something changed (best effort: they also poll).
    pub async fn notify_change(&self) {
        if let Err(e) = sqlx::query("SELECT pg_notify('gate_changes', '')")
            .execute(self.pool())
            .await
        {
            tracing::warn!(error = %e, "cannot notify other replicas of a change");
        }
    }
}

/// Listen for other replicas' changes for as long as the runtime runs; reconnects after a failure.
pub async fn listen_for_changes(dsn: String, changes: watch::Sender<u64>) {
    loop {
        match PgListener::connect(&dsn).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for replica changes");
                } else {
                    // Anything may have changed while not listening.
                    changes.send_modify(|n| *n += 1);
                    loop {
                        match listener.recv().await {
                            Ok(_) => changes.send_modify(|n| *n += 1),
                            Err(e) => {
                                tracing::warn!(error = %e, "replica change listener lost");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the replica change listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
