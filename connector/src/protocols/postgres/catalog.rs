//! Column provenance: table OID + column number → table and column names
//! (and, for views, the base columns they read); table names → their
//! columns; which called functions are user-defined. Looked up on a
//! dedicated upstream connection and cached per resource and database (30 s,
//! and dropped after DDL that passes through Gate).

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
    /// For a view or materialized view: every (table, column) of a base
    /// table it reads, through nested views too.
    pub view_of: Option<Vec<(String, String)>>,
    fetched: Instant,
}

/// What is cached besides tables by OID.
#[derive(Debug, Default)]
struct Named {
    /// Tables holding columns of these names, by the comma-joined names.
    holders: HashMap<String, (Arc<Vec<String>>, Instant)>,
    /// Function names, and whether one outside `pg_catalog` has that name.
    user_functions: HashMap<String, (bool, Instant)>,
}

/// The cache and lookup connection for one resource and database.
#[derive(Debug, Default)]
pub struct Catalog {
    connection: tokio::sync::Mutex<Option<Upstream>>,
    tables: Mutex<HashMap<u32, Arc<TableInfo>>>,
    named: Mutex<Named>,
}

/// Quote `names` as a SQL list of string literals.
fn literals<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

impl Catalog {
    /// Forget everything (after DDL).
    pub fn invalidate(&self) {
        if let Ok(mut t) = self.tables.lock() {
            t.clear();
        }
        if let Ok(mut n) = self.named.lock() {
            *n = Named::default();
        }
    }

    /// Run one catalog query on the lookup connection (opened on first use,
    /// reopened after an error).
    async fn query(
        &self,
        resource: &ResourceConfig,
        user: &str,
        database: &str,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, PgError> {
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
        match upstream::simple_query(conn, sql).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                *connection = None; // reconnect next time
                Err(e)
            }
        }
    }

    /// The tables (lower-case names) that have a column named one of
    /// `columns` (lower case), and the views that read them: where masked
    /// data lives.
    pub async fn tables_with_columns(
        &self,
        resource: &ResourceConfig,
        user: &str,
        database: &str,
        columns: &[String],
    ) -> Result<Arc<Vec<String>>, PgError> {
        let key = columns.join(",");
        if let Ok(named) = self.named.lock()
            && let Some((tables, at)) = named.holders.get(&key)
            && at.elapsed() < TTL
        {
            return Ok(tables.clone());
        }
        // The tables with such a column, and every view reading them (through views too).
        let sql = format!(
            "with recursive holder(rel) as ( \
               select a.attrelid from pg_catalog.pg_attribute a \
               where lower(a.attname) in ({}) and a.attnum > 0 and not a.attisdropped \
               union \
               select r.ev_class from holder h \
               join pg_catalog.pg_depend d on d.refobjid = h.rel and d.classid = 'pg_rewrite'::regclass \
               join pg_catalog.pg_rewrite r on r.oid = d.objid where r.ev_class <> h.rel) \
             select distinct lower(c.relname) from holder h join pg_catalog.pg_class c on c.oid = h.rel \
             where c.relkind in ('r', 'p', 'v', 'm', 'f')",
            literals(columns.iter().map(String::as_str))
        );
        let rows = self.query(resource, user, database, &sql).await?;
        let tables: Arc<Vec<String>> = Arc::new(
            rows.into_iter()
                .filter_map(|row| row.into_iter().next().flatten())
                .collect(),
        );
        if let Ok(mut named) = self.named.lock() {
            named.holders.insert(key, (tables.clone(), Instant::now()));
        }
        Ok(tables)
    }

    /// Which of `functions` (unqualified, lower case) exist outside
    /// `pg_catalog` (user-defined, extension or `pg_temp` functions).
    pub async fn user_functions(
        &self,
        resource: &ResourceConfig,
        user: &str,
        database: &str,
        functions: &[&str],
    ) -> Result<Vec<String>, PgError> {
        let mut user_defined = Vec::new();
        let mut missing = Vec::new();
        if let Ok(named) = self.named.lock() {
            for f in functions {
                match named.user_functions.get(*f) {
                    Some((true, at)) if at.elapsed() < TTL => user_defined.push((*f).to_owned()),
                    Some((false, at)) if at.elapsed() < TTL => {}
                    _ => missing.push(*f),
                }
            }
        }
        if missing.is_empty() {
            return Ok(user_defined);
        }
        let sql = format!(
            "select distinct lower(p.proname) from pg_catalog.pg_proc p \
             join pg_catalog.pg_namespace n on n.oid = p.pronamespace \
             where n.nspname <> 'pg_catalog' and lower(p.proname) in ({})",
            literals(missing.iter().copied())
        );
        let rows = self.query(resource, user, database, &sql).await?;
        let found: Vec<String> = rows
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect();
        if let Ok(mut named) = self.named.lock() {
            for f in &missing {
                let is_user = found.iter().any(|u| u == f);
                named
                    .user_functions
                    .insert((*f).to_owned(), (is_user, Instant::now()));
            }
        }
        user_defined.extend(found);
        Ok(user_defined)
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
            "select a.attrelid::int8, c.relname, a.attnum, a.attname, c.relkind from pg_catalog.pg_attribute a \
             join pg_catalog.pg_class c on c.oid = a.attrelid \
             where a.attrelid in ({list}) and a.attnum > 0 and not a.attisdropped"
        );
        let rows = self.query(resource, user, database, &sql).await?;
        let mut views = Vec::new();
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
            let is_view = matches!(row.get(4), Some(Some(k)) if k == "v" || k == "m");
            if is_view && !views.contains(&oid) {
                views.push(oid);
            }
            fetched
                .entry(oid)
                .or_insert_with(|| TableInfo {
                    name: table.clone(),
                    columns: HashMap::new(),
                    view_of: None,
                    fetched: Instant::now(),
                })
                .columns
                .insert(num, column.clone());
        }
        for view in views {
            let base = self
                .view_base_columns(resource, user, database, view)
                .await?;
            if let Some(info) = fetched.get_mut(&view) {
                info.view_of = Some(base);
            }
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

impl Catalog {
    /// Every (table, column) of a base relation that the view `oid` reads,
    /// following views over views.
    async fn view_base_columns(
        &self,
        resource: &ResourceConfig,
        user: &str,
        database: &str,
        oid: u32,
    ) -> Result<Vec<(String, String)>, PgError> {
        let sql = format!(
            "with recursive used(rel, col) as ( \
               select d.refobjid, d.refobjsubid from pg_catalog.pg_rewrite r \
               join pg_catalog.pg_depend d on d.objid = r.oid and d.classid = 'pg_rewrite'::regclass \
               where r.ev_class = {oid} and d.refobjsubid > 0 and d.refobjid <> {oid} \
               union \
               select d.refobjid, d.refobjsubid from used u \
               join pg_catalog.pg_rewrite r on r.ev_class = u.rel \
               join pg_catalog.pg_depend d on d.objid = r.oid and d.classid = 'pg_rewrite'::regclass \
               where d.refobjsubid > 0 and d.refobjid <> u.rel) \
             select distinct c.relname, a.attname from used u \
             join pg_catalog.pg_class c on c.oid = u.rel \
             join pg_catalog.pg_attribute a on a.attrelid = u.rel and a.attnum = u.col \
             where c.relkind not in ('v')"
        );
        let rows = self.query(resource, user, database, &sql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let mut row = row.into_iter();
                Some((row.next()??, row.next()??))
            })
            .collect())
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
