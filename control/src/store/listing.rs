//! One org-scoped listing query for the time-ordered tables (audit events, recordings): optional
//! time range and equality filters, newest first, keyset pagination on (time, id).

use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// `SELECT * FROM table WHERE org_id = …` with the conditions that are set.
#[derive(Debug)]
pub(crate) struct Listing<'a> {
    pub table: &'static str,
    /// The time column ordered and ranged on (epoch milliseconds).
    pub time: &'static str,
    /// Inclusive lower and exclusive upper bound.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Columns that must equal the value, when one is given.
    pub equal: Vec<(&'static str, &'a Option<String>)>,
    /// Rows strictly older than (time, id).
    pub before: &'a Option<(i64, String)>,
    pub limit: u32,
}

impl Store {
    /// The rows of `listing` in `org_id`, newest first.
    pub(crate) async fn list(
        &self,
        org_id: &str,
        listing: &Listing<'_>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let time = listing.time;
        let mut sql = format!("SELECT * FROM {} WHERE org_id = $1", listing.table);
        let mut n = 1;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if listing.from_ms.is_some() {
            sql += &format!(" AND {time} >= {}", param());
        }
        if listing.to_ms.is_some() {
            sql += &format!(" AND {time} < {}", param());
        }
        for (column, value) in &listing.equal {
            if value.is_some() {
                sql += &format!(" AND {column} = {}", param());
            }
        }
        if listing.before.is_some() {
            let (t, id) = (param(), param());
            sql += &format!(" AND ({time} < {t} OR ({time} = {t} AND id < {id}))");
        }
        sql += &format!(" ORDER BY {time} DESC, id DESC LIMIT {}", listing.limit);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org_id.to_owned());
        for bound in [listing.from_ms, listing.to_ms].into_iter().flatten() {
            query = query.bind(bound);
        }
        for value in listing.equal.iter().filter_map(|(_, v)| v.as_ref()) {
            query = query.bind(value.clone());
        }
        if let Some((t, id)) = listing.before {
            query = query.bind(*t).bind(id.clone());
        }
        Ok(query.fetch_all(self.pool()).await?)
    }
}
