//! The control-plane store: sqlx's Any driver over PostgreSQL (`database.dsn`) or embedded SQLite
//! (`.data/gate.db`), with the same queries on both; every query is scoped to one organization.

mod access;
mod audit;
mod connectors;
mod identities;
mod keys;
mod listing;
mod migrate;
mod notify;
mod orgs;
mod outbox;
mod policies;
mod recordings;
mod resources;
mod slack;
mod tool_pins;
mod webhooks;

use std::path::Path;
use std::time::Duration;

use gate_config::control::DatabaseConfig;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

pub use access::Transition;
pub use audit::AuditFilter;
pub use keys::StoredKey;
pub use migrate::MigrationError;
pub use notify::listen_for_changes;
pub use outbox::{Claimed, EVENT_TYPES, Event, SLACK_EVENTS, STATES as DELIVERY_STATES};
pub use policies::{PolicyInsert, PolicyPatch};
pub use recordings::RecordingFilter;
pub use tool_pins::Approval;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A store failure. Constraint violations are told apart so the API can answer 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("cannot create {path}: {error}")]
    Directory { path: String, error: std::io::Error },
}

/// Turn unique-constraint violations into [`StoreError::Conflict`].
pub(crate) fn conflict(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Database(e),
    }
}

/// A pooled connection to the store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The PostgreSQL DSN, for the change listener (replicas notify each other).
    dsn: Option<String>,
}

impl Store {
    /// Open (and create, for SQLite) the configured database and apply migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, StoreError> {
        install_default_drivers();
        let (url, backend) = match config.dsn.as_deref().filter(|d| !d.is_empty()) {
            Some(dsn) => (dsn.to_owned(), Backend::Postgres),
            None => {
                let path = Path::new(&config.sqlite_path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|error| StoreError::Directory {
                        path: dir.display().to_string(),
                        error,
                    })?;
                }
                (
                    format!("sqlite://{}?mode=rwc", config.sqlite_path),
                    Backend::Sqlite,
                )
            }
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_open_conns)
            .min_connections(config.min_conns)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        let dsn = (backend == Backend::Postgres).then(|| url.clone());
        let store = Self { pool, backend, dsn };
        migrate::run(&store, config.migrations_path.as_deref().map(Path::new)).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The PostgreSQL DSN when the store is PostgreSQL.
    pub fn postgres_dsn(&self) -> Option<&str> {
        self.dsn.as_deref()
    }

    /// Is the database answering?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Record a change in `org_id` that connectors must see; returns the new revision.
    pub async fn bump_revision(&self, org_id: &str) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        bump_revision_in(&mut conn, org_id).await?;
        drop(conn);
        self.revision(org_id).await
    }

    /// The current revision of `org_id` (0 before any change).
    pub async fn revision(&self, org_id: &str) -> Result<u64, StoreError> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM org_revisions WHERE org_id = $1")
                .bind(org_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0).try_into().unwrap_or(0))
    }
}

/// [`Store::bump_revision`] on a transaction (or any connection).
pub(crate) async fn bump_revision_in(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO org_revisions (org_id, revision) VALUES ($1, 1) \
         ON CONFLICT (org_id) DO UPDATE SET revision = org_revisions.revision + 1",
    )
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// JSON text of a list column.
pub(crate) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A map column (labels, selectors): a JSON object, keys sorted so equal maps store equally.
pub(crate) fn json_map(map: &std::collections::HashMap<String, String>) -> String {
    let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".to_owned())
}

/// Parse a map column; `column` names it in the error.
pub(crate) fn parse_map(
    text: &str,
    column: &str,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Parse a list column.
pub(crate) fn parse_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("list column: {e}")))
}
