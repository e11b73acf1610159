//! Statement classification for policy input, for every SQL protocol:
//! `sqlparser` (in the protocol's dialect) turns the text into one
//! `QueryInfo` per statement; text it cannot parse becomes a single
//! statement of type `unknown`.

use std::ops::ControlFlow;

use gate_policy::QueryInfo;
use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

/// Classify every statement in `sql` (PostgreSQL dialect).
pub fn classify(sql: &str) -> Vec<QueryInfo> {
    classify_in(&PostgreSqlDialect {}, sql)
}

/// Classify every statement in `sql` (MySQL dialect, for MySQL and MariaDB).
pub fn classify_mysql(sql: &str) -> Vec<QueryInfo> {
    classify_in(&MySqlDialect {}, sql)
}

/// Classify every statement in `sql` as `dialect` parses it.
pub fn classify_in(dialect: &dyn Dialect, sql: &str) -> Vec<QueryInfo> {
    match Parser::parse_sql(dialect, sql) {
        Ok(statements) if !statements.is_empty() => {
            let single = statements.len() == 1;
            statements
                .iter()
                .map(|statement| QueryInfo {
                    raw: sql.to_owned(),
                    kind: kind(statement),
                    // One statement: its text as sent; several: each rendered from the parse.
                    statement: Some(if single {
                        sql.trim().trim_end_matches(';').trim_end().to_owned()
                    } else {
                        statement.to_string()
                    }),
                    tables: tables(statement),
                    columns: columns(statement),
                    ..Default::default()
                })
                .collect()
        }

        Ok(_) => Vec::new(),
        Err(_) => vec![QueryInfo {
            raw: sql.to_owned(),
            kind: "unknown".to_owned(),
            ..Default::default()
        }],
    }
}

fn tables(statement: &Statement) -> Vec<String> {
    let mut names = Vec::new();
    let _ = visit_relations(statement, |relation| {
        let name = relation.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The column names the statement's expressions reference (select list,
/// predicates, assignments), lower case and unqualified, each once.
fn columns(statement: &Statement) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_expressions(statement, |expr| {
        let name = match expr {
            sqlparser::ast::Expr::Identifier(ident) => Some(&ident.value),
            sqlparser::ast::Expr::CompoundIdentifier(parts) => parts.last().map(|p| &p.value),
            _ => None,
        };
        if let Some(name) = name.map(|n| n.to_ascii_lowercase())
            && !names.contains(&name)
        {
            names.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The lower-case statement kind (`select`, `insert`, `drop`, `begin`, …).
fn kind(statement: &Statement) -> String {
    let kind = match statement {
        Statement::Query(_) => "select",
        Statement::Insert(_) => "insert",
        Statement::Update { .. } => "update",
        Statement::Delete(_) => "delete",
        Statement::Drop { .. } | Statement::DropFunction { .. } => "drop",
        Statement::Truncate { .. } => "truncate",
        Statement::Grant { .. } => "grant",
        Statement::Revoke { .. } => "revoke",
        Statement::Copy { .. } => "copy",
        Statement::StartTransaction { .. } => "begin",
        Statement::Commit { .. } => "commit",
        Statement::Rollback { .. } => "rollback",
        Statement::Savepoint { .. } => "savepoint",
        Statement::Explain { .. } | Statement::ExplainTable { .. } => "explain",
        Statement::Prepare { .. } => "prepare",
        Statement::Execute { .. } => "execute",
        Statement::Deallocate { .. } => "deallocate",
        Statement::Declare { .. } => "declare",
        Statement::Fetch { .. } => "fetch",
        Statement::Close { .. } => "close",
        Statement::Discard { .. } => "discard",
        _ => return generic_kind(statement),
    };
    kind.to_owned()
}

/// For everything else: the leading keywords of the statement's SQL form
/// (`create`, `alter`, `set`, `show`, `comment`, …).
fn generic_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let first = text
        .split_whitespace()
        .next()
        .unwrap_or("unknown")
        .to_ascii_lowercase();
    match first.as_str() {
        "start" => "begin".to_owned(),
        "release" => "release_savepoint".to_owned(),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<String> {
        classify(sql).into_iter().map(|q| q.kind).collect()
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(kinds("select * from customers"), ["select"]);
        assert_eq!(kinds("WITH x AS (SELECT 1) SELECT * FROM x"), ["select"]);
        assert_eq!(kinds("insert into t values (1)"), ["insert"]);
        assert_eq!(kinds("update t set a = 1"), ["update"]);
        assert_eq!(kinds("delete from t"), ["delete"]);
        assert_eq!(kinds("DROP TABLE customers"), ["drop"]);
        assert_eq!(kinds("truncate customers"), ["truncate"]);
        assert_eq!(kinds("create table t (a int)"), ["create"]);
        assert_eq!(kinds("alter table t add column b int"), ["alter"]);
        assert_eq!(kinds("grant select on t to bob"), ["grant"]);
        assert_eq!(kinds("begin"), ["begin"]);
        assert_eq!(kinds("commit"), ["commit"]);
        assert_eq!(kinds("set search_path = public"), ["set"]);
        assert_eq!(kinds("show server_version"), ["show"]);
        assert_eq!(kinds("copy t to stdout"), ["copy"]);
    }

    #[test]
    fn multi_statement_text_yields_each_statement() {
        let all = classify("select 1; drop table t; select 2");
        assert_eq!(
            all.iter().map(|q| q.kind.as_str()).collect::<Vec<_>>(),
            ["select", "drop", "select"]
        );
        assert!(
            all.iter()
                .all(|q| q.raw == "select 1; drop table t; select 2")
        );
    }

    #[test]
    fn tables_are_listed_once() {
        let q = &classify(
            "select * from customers c join orders o on o.cid = c.id join customers x on true",
        )[0];
        assert_eq!(q.tables, ["customers", "orders"]);
    }

    #[test]
    fn referenced_columns_are_listed_once() {
        let q =
            &classify("select c.id, name from customers c where c.email like 'a%' and id > 1")[0];
        assert_eq!(q.columns, ["id", "name", "email"]);
    }

    #[test]
    fn unparseable_text_is_unknown() {
        assert_eq!(
            kinds("VACUUM FULL VERBOSE ANALYZE foo(bar) EXTRA"),
            ["unknown"]
        );
        assert!(kinds("").is_empty());
    }
}
