//! Column provenance: table OID + column number → table and column names,
//! looked up on a dedicated upstream connection and cached per resource and
//! database (30 s, and dropped after DDL that passes through Gate).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_config::connector::ResourceConfig;

use super::error::PgError;
use super::upstream::{self, Upstream};

const TTL: Duration = Duration::from_secs(30);

/// A table's name and its columns by number.
#[derive(Debug)]
pub struct TableInfo {
    pub name: String,
    pub columns: HashMap<i16, String>,
    fetched: Instant,
}

/// The cache and lookup connection for one resource and database.
#[derive(Debug, Default)]
pub struct Catalog {
    connection: tokio::sync::Mutex<Option<Upstream>>,
    tables: Mutex<HashMap<u32, Arc<TableInfo>>>,
}

impl Catalog {
    /// Forget everything (after DDL).
    pub fn invalidate(&self) {
        if let Ok(mut t) = self.tables.lock() {
            t.clear();
        }
    }

    /// The tables for `oids` (0 = not a table column, skipped).
    pub async fn tables(
        &self,
        resource: &ResourceConfig,
        user: &str,
        database: &str,
        oids: &[u32],
    ) -> Result<HashMap<u32, Arc<TableInfo>>, PgError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        if let Ok(cache) = self.tables.lock() {
            for &oid in oids.iter().filter(|o| **o != 0) {
                match cache.get(&oid) {
                    Some(t) if t.fetched.elapsed() < TTL => {
                        found.insert(oid, t.clone());
                    }
                    _ if !missing.contains(&oid) => missing.push(oid),
                    _ => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let list = missing
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "select a.attrelid::int8, c.relname, a.attnum, a.attname from pg_catalog.pg_attribute a \
             join pg_catalog.pg_class c on c.oid = a.attrelid \
             where a.attrelid in ({list}) and a.attnum > 0 and not a.attisdropped"
        );
        let rows = {
            let mut connection = self.connection.lock().await;
            if connection.is_none() {
                *connection = Some(
                    upstream::connect(
                        resource,
                        user,
                        database,
                        &[("application_name", "gate-catalog")],
                    )
                    .await?,
                );
            }
            let Some(conn) = connection.as_mut() else {
                return Err(PgError::Timeout("catalog connection"));
            };
            match upstream::simple_query(conn, &sql).await {
                Ok(rows) => rows,
                Err(e) => {
                    *connection = None; // reconnect next time
                    return Err(e);
                }
            }
        };
        let mut fetched: HashMap<u32, TableInfo> = HashMap::new();
        for row in rows {
            let (Some(Some(oid)), Some(Some(table)), Some(Some(num)), Some(Some(column))) =
                (row.first(), row.get(1), row.get(2), row.get(3))
            else {
                continue;
            };
            let (Ok(oid), Ok(num)) = (oid.parse::<u32>(), num.parse::<i16>()) else {
                continue;
            };
            fetched
                .entry(oid)
                .or_insert_with(|| TableInfo {
                    name: table.clone(),
                    columns: HashMap::new(),
                    fetched: Instant::now(),
                })
                .columns
                .insert(num, column.clone());
        }
        if let Ok(mut cache) = self.tables.lock() {
            for (oid, info) in fetched {
                let info = Arc::new(info);
                cache.insert(oid, info.clone());
                found.insert(oid, info);
            }
        }
        Ok(found)
    }
}

/// One catalog per (resource, database).
#[derive(Debug, Default)]
pub struct Catalogs {
    by_key: Mutex<HashMap<(String, String), Arc<Catalog>>>,
}

impl Catalogs {
    /// The catalog for `resource` and `database`.
    pub fn get(&self, resource: &str, database: &str) -> Arc<Catalog> {
        let Ok(mut map) = self.by_key.lock() else {
            return Arc::default();
        };
        map.entry((resource.to_owned(), database.to_owned()))
            .or_default()
            .clone()
    }
}
