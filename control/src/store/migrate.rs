//! Migrations: embedded `migrations/{postgres,sqlite}/NNNN_*.sql` (or a directory from
//! `database.migrations_path`), applied in order, recorded with a checksum; edits to applied files are refused.

use std::path::Path;

use sqlx::Acquire;

use super::{Backend, Store, StoreError};
use crate::util::{now_ms, sha256_hex};

/// Embedded migrations, in order. A new file here needs its twin in the other directory.
macro_rules! embedded {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../migrations/", $dir, "/", $name)))),*]
    };
}

const POSTGRES: &[(&str, &str)] = embedded!("postgres": "0001_init.sql", "0002_access_requests.sql", "0003_audit_ids_per_org.sql", "0004_delivery.sql", "0005_owner.sql", "0006_recordings.sql", "0007_audit_operation_target.sql", "0008_identity_ssh_keys.sql", "0009_mcp_tool_pins.sql", "0011_connector_selector.sql");
const SQLITE: &[(&str, &str)] = embedded!(
    "sqlite": "0001_init.sql",
    "0002_access_requests.sql",
    "0003_audit_ids_per_org.sql",
    "0004_delivery.sql",
    "0005_owner.sql",
    "0006_recordings.sql",
    "0007_audit_operation_target.sql",
    "0008_identity_ssh_keys.sql",
    "0009_mcp_tool_pins.sql",
    "0011_connector_selector.sql"
);

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("migrations: cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("migrations: {0}: expected a name like 0001_description.sql")]
    BadName(String),
    #[error("migrations: {name} was changed after it was applied (checksum differs)")]
    Changed { name: String },
    #[error("migrations: {name} failed: {error}")]
    Failed { name: String, error: sqlx::Error },
}

struct Migration {
    version: i64,
    name: String,
    sql: String,
}

fn parse_name(name: &str) -> Result<i64, MigrationError> {
    name.strip_suffix(".sql")
        .and_then(|stem| stem.split_once('_'))
        .and_then(|(number, _)| number.parse().ok())
        .ok_or_else(|| MigrationError::BadName(name.to_owned()))
}

fn load(backend: Backend, dir: Option<&Path>) -> Result<Vec<Migration>, MigrationError> {
    let sub = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let mut migrations = Vec::new();
    match dir {
        None => {
            let embedded = if backend == Backend::Postgres {
                POSTGRES
            } else {
                SQLITE
            };
            for (name, sql) in embedded {
                migrations.push(Migration {
                    version: parse_name(name)?,
                    name: (*name).to_owned(),
                    sql: (*sql).to_owned(),
                });
            }
        }
        Some(dir) => {
            let dir = dir.join(sub);
            let read_err = |error| MigrationError::Read {
                path: dir.display().to_string(),
                error,
            };
            for entry in std::fs::read_dir(&dir).map_err(read_err)? {
                let path = entry.map_err(read_err)?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned();
                if !name.ends_with(".sql") {
                    continue;
                }
                let sql = std::fs::read_to_string(&path).map_err(|error| MigrationError::Read {
                    path: path.display().to_string(),
                    error,
                })?;
                migrations.push(Migration {
                    version: parse_name(&name)?,
                    name,
                    sql,
                });
            }
        }
    }
    migrations.sort_by_key(|m| m.version);
    Ok(migrations)
}

/// Apply every migration not applied yet.
pub(super) async fn run(store: &Store, dir: Option<&Path>) -> Result<(), StoreError> {
    let migrations = load(store.backend, dir)?;
    let mut conn = store.pool.acquire().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock(727274)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(&mut conn, &migrations).await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(727274)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS gate_schema_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut **conn)
    .await?;
    let applied: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT version, name, checksum FROM gate_schema_migrations")
            .fetch_all(&mut **conn)
            .await?;
    for migration in migrations {
        let checksum = sha256_hex(&migration.sql);
        if let Some((_, _, stored)) = applied.iter().find(|(v, _, _)| *v == migration.version) {
            if *stored != checksum {
                return Err(MigrationError::Changed {
                    name: migration.name.clone(),
                }
                .into());
            }
            continue;
        }
        let failed = |error| MigrationError::Failed {
            name: migration.name.clone(),
            error,
        };
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration.sql.clone()))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(
            "INSERT INTO gate_schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(&migration.name)
        .bind(&checksum)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in migrations/ is embedded, for both stores, in order.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, embedded) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".sql"))
                .collect();
            files.sort();
            let names: Vec<&str> = embedded.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, files, "{dir}");
        }
    }
}
