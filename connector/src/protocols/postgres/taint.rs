//! What one SQL statement could carry out of the tables it reads, for
//! masking: whole-row references (a table or alias used as a value), the
//! functions it calls, whether it moves data into another object (CREATE …
//! AS, SELECT INTO, INSERT … SELECT, UPDATE … SET, views, functions, rules,
//! triggers), whether it runs procedural code (DO, CALL), and whether it
//! reads planner statistics. Pure: text in, facts out.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, SelectItem, SetExpr,
    Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Catalog relations whose contents include sample values of any column.
pub(super) const STATISTICS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
];

/// Functions that turn a whole row into one value, whatever their arguments look like.
const WHOLE_ROW_FUNCTIONS: &[&str] = &[
    "row_to_json",
    "to_json",
    "to_jsonb",
    "json_agg",
    "jsonb_agg",
    "array_agg",
    "hstore",
    "json_populate_record",
    "jsonb_populate_record",
    "row",
];

/// What a statement may carry out of the tables it reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Taint {
    /// A table or alias is used as a value (`select c from customers c`,
    /// `c::text`, `row_to_json(c)`, `(c.*)`), or a whole-row function is called.
    pub whole_row: bool,
    /// Names (lower case, unqualified) of the functions called.
    pub functions: BTreeSet<String>,
    /// The relations read, lower case, as written (possibly schema-qualified).
    pub relations: BTreeSet<String>,
    /// The statement writes what it reads into another object or runs code
    /// Gate cannot see into: the reason, naming the construct.
    pub moves_data: Option<&'static str>,
    /// For a statement that moves data: the SQL of what it reads (a query:
    /// the source of an INSERT or CREATE … AS, the SET values of an UPDATE
    /// with its tables), or its whole text for code (functions, DO).
    pub read: Option<String>,
    /// For an UPDATE: each assignment's target column (lower case; empty for
    /// a tuple target) and value, and the tables it reads (its own and FROM).
    pub assignments: Vec<(String, String)>,
    pub update_tables: Option<String>,
    /// A `*` anywhere in the statement's queries (all columns of a table).
    pub wildcard: bool,
    /// The text could not be parsed: nothing can be traced.
    pub unparsed: bool,
}

impl Taint {
    /// Whether the statement reads planner statistics.
    pub fn reads_statistics(&self) -> bool {
        self.relations.iter().any(|r| {
            let name = r.rsplit('.').next().unwrap_or(r);
            STATISTICS.contains(&name)
        })
    }
}

/// The facts of one statement's text.
pub fn analyze(sql: &str) -> Taint {
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        // The parser knows no DO: procedural code is named by its first word.
        let first = sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let code = match first.as_str() {
            "DO" => Some("DO"),
            "CALL" => Some("CALL"),
            _ => None,
        };
        return Taint {
            unparsed: true,
            moves_data: code,
            read: code.map(|_| sql.to_owned()),
            ..Taint::default()
        };
    };
    let mut walker = Walker::default();
    for statement in &statements {
        if let Some(reason) = moves_data(statement)
            && walker.taint.moves_data.is_none()
        {
            walker.taint.moves_data = Some(reason);
            walker.taint.read = Some(read_part(statement));
            if let Statement::Update(update) = statement {
                walker.taint.assignments = update
                    .assignments
                    .iter()
                    .map(|a| {
                        let target = match &a.target {
                            sqlparser::ast::AssignmentTarget::ColumnName(name) => last(name),
                            sqlparser::ast::AssignmentTarget::Tuple(_) => String::new(),
                        };
                        (target, a.value.to_string())
                    })
                    .collect();
                walker.taint.update_tables = Some(update_tables(update));
            }
        }
        let _ = statement.visit(&mut walker);
        // The table a COPY reads is not a relation the visitor reports.
        if let Statement::Copy {
            source: sqlparser::ast::CopySource::Table { table_name, .. },
            ..
        } = statement
        {
            walker
                .taint
                .relations
                .insert(table_name.to_string().to_ascii_lowercase());
        }
    }
    // A name used as a value that is also a relation or alias read here is a whole row.
    let mut taint = walker.taint;
    if walker.values.iter().any(|v| walker.names.contains(v)) {
        taint.whole_row = true;
    }
    taint
}

/// What writes the statement's reads somewhere else, if anything.
fn moves_data(statement: &Statement) -> Option<&'static str> {
    let reason = match statement {
        Statement::CreateTable(create) if create.query.is_some() => "CREATE TABLE … AS",
        Statement::CreateView(view) if view.materialized => "CREATE MATERIALIZED VIEW",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::Insert(insert) => {
            // A query source, or VALUES with a subquery in it.
            let reads = insert.source.as_ref().is_some_and(|q| {
                !matches!(*q.body, SetExpr::Values(_))
                    || q.to_string().to_ascii_uppercase().contains("SELECT")
            });
            if !reads {
                return None;
            }
            "INSERT … SELECT"
        }
        Statement::Update(_) => "UPDATE … SET",
        Statement::Merge(_) => "MERGE",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::CreateProcedure { .. } => "CREATE PROCEDURE",
        Statement::CreateTrigger(_) => "CREATE TRIGGER",
        Statement::Query(query) => match &*query.body {
            SetExpr::Select(select) if select.into.is_some() => "SELECT … INTO",
            // WITH … INSERT / UPDATE / DELETE … RETURNING.
            SetExpr::Insert(inner) | SetExpr::Update(inner) | SetExpr::Delete(inner) => {
                return moves_data(inner).or(Some("WITH … INSERT"));
            }
            _ => return None,
        },
        Statement::Copy { .. } => return None,
        _ => {
            let text = statement.to_string().to_ascii_uppercase();
            if text.starts_with("CREATE RULE") || text.starts_with("CREATE OR REPLACE RULE") {
                "CREATE RULE"
            } else if text.starts_with("DO ") || text == "DO" {
                "DO"
            } else if text.starts_with("CALL ") {
                "CALL"
            } else {
                return None;
            }
        }
    };
    Some(reason)
}

/// The SQL of what a data-moving statement reads.
fn read_part(statement: &Statement) -> String {
    match statement {
        // A CTE feeding a write: everything it reads.
        Statement::Query(_) => statement.to_string(),
        Statement::CreateTable(create) => match &create.query {
            Some(query) => query.to_string(),
            None => statement.to_string(),
        },
        Statement::CreateView(view) => view.query.to_string(),
        Statement::Insert(insert) => match &insert.source {
            Some(query) => query.to_string(),
            None => statement.to_string(),
        },
        Statement::Update(update) => {
            let values: Vec<String> = update
                .assignments
                .iter()
                .map(|a| a.value.to_string())
                .collect();
            format!(
                "SELECT {} FROM {}",
                values.join(", "),
                update_tables(update)
            )
        }
        _ => statement.to_string(),
    }
}

/// The tables an UPDATE reads: its own and those of its FROM.
fn update_tables(update: &sqlparser::ast::Update) -> String {
    let mut tables = vec![update.table.to_string()];
    if let Some(
        sqlparser::ast::UpdateTableFromKind::BeforeSet(from)
        | sqlparser::ast::UpdateTableFromKind::AfterSet(from),
    ) = &update.from
    {
        tables.extend(from.iter().map(ToString::to_string));
    }
    tables.join(", ")
}

#[derive(Default)]
struct Walker {
    taint: Taint,
    /// Relation names (last part) and aliases read.
    names: BTreeSet<String>,
    /// Bare identifiers, and the qualifier of `x.*`, used as values.
    values: BTreeSet<String>,
}

impl Walker {
    fn function_args(&mut self, args: &FunctionArguments) {
        let FunctionArguments::List(list) = args else {
            return;
        };
        for arg in &list.args {
            let expr = match arg {
                FunctionArg::Named { arg, .. }
                | FunctionArg::ExprNamed { arg, .. }
                | FunctionArg::Unnamed(arg) => arg,
            };
            if let FunctionArgExpr::QualifiedWildcard(name) = expr {
                self.values.insert(last(name));
            }
        }
    }
}

fn last(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
        .unwrap_or_default()
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.taint
            .relations
            .insert(relation.to_string().to_ascii_lowercase());
        self.names.insert(last(relation));
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. }
            | TableFactor::Derived { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::UNNEST { alias, .. } => alias.as_ref(),
            _ => None,
        };
        if let Some(alias) = alias {
            self.names.insert(alias.name.value.to_ascii_lowercase());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = &*query.body {
            for item in &select.projection {
                if matches!(
                    item,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                ) {
                    self.taint.wildcard = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => {
                self.values.insert(ident.value.to_ascii_lowercase());
            }
            Expr::QualifiedWildcard(name, _) => {
                self.values.insert(last(name));
            }
            Expr::Function(function) => {
                let name = last(&function.name);
                if WHOLE_ROW_FUNCTIONS.contains(&name.as_str()) {
                    self.taint.whole_row = true;
                }
                self.function_args(&function.args);
                self.taint.functions.insert(name);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_or_alias_used_as_a_value_is_a_whole_row() {
        for sql in [
            "select c from customers c",
            "select c::text from customers c",
            "select customers from customers",
            "select row_to_json(c) from customers c",
            "select (c.*)::text from customers c",
            "select format('%s', c) from customers c",
            "select x from (select * from customers) x",
            "select row(email) from customers",
        ] {
            assert!(analyze(sql).whole_row, "{sql}");
        }
        for sql in [
            "select id, name from customers c",
            "select c.id, upper(c.name) from customers c",
            "select * from customers",
            "select count(*) from customers",
        ] {
            assert!(!analyze(sql).whole_row, "{sql}");
        }
    }

    #[test]
    fn statements_that_move_data_say_how() {
        for (sql, how) in [
            (
                "create table copy as select * from customers",
                "CREATE TABLE … AS",
            ),
            ("select email into stash from customers", "SELECT … INTO"),
            (
                "insert into stash select email from customers",
                "INSERT … SELECT",
            ),
            ("update customers set name = email", "UPDATE … SET"),
            (
                "create view v as select email from customers",
                "CREATE VIEW",
            ),
            (
                "create materialized view v as select email from customers",
                "CREATE MATERIALIZED VIEW",
            ),
            (
                "create function f() returns text language sql as $$ select email from customers $$",
                "CREATE FUNCTION",
            ),
            (
                "do $$ begin raise notice '%', (select email from customers limit 1); end $$",
                "DO",
            ),
            ("call leak()", "CALL"),
        ] {
            assert_eq!(analyze(sql).moves_data, Some(how), "{sql}");
        }
        for sql in [
            "select email from customers",
            "insert into t values (1, 'a')",
            "delete from t where id = 1",
        ] {
            assert_eq!(analyze(sql).moves_data, None, "{sql}");
        }
    }

    #[test]
    fn the_read_part_of_an_update_is_its_values_and_tables() {
        let t = analyze("update customers set name = email, id = 1 where id = 2");
        assert_eq!(
            t.read.as_deref(),
            Some("SELECT email, 1 FROM customers"),
            "the assignment targets are not read"
        );
        let t = analyze("insert into stash (e) select email from customers");
        assert_eq!(t.read.as_deref(), Some("SELECT email FROM customers"));
    }

    #[test]
    fn functions_wildcards_and_statistics() {
        let t = analyze("select leak(id), lower(name) from public.customers");
        assert!(t.functions.contains("leak") && t.functions.contains("lower"));
        assert!(t.relations.contains("public.customers"));
        assert!(analyze("insert into s select * from customers").wildcard);
        assert!(analyze("select * from pg_catalog.pg_stats").reads_statistics());
        assert!(analyze("select most_common_vals from pg_stats").reads_statistics());
        assert!(!analyze("select * from customers").reads_statistics());
        assert!(analyze("this is not sql").unparsed);
        assert!(
            analyze("copy public.customers to stdout")
                .relations
                .contains("public.customers")
        );
    }
}
