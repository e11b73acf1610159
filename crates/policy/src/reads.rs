//! Which parts of `input` a policy can read, found from its syntax tree, so a
//! verdict can be reused for a request whose input differs only elsewhere.
//!
//! The analysis is conservative: every `input` reference counts as a read of
//! the longest literal path it names (`input.query.type` reads
//! `query.type`; `input.query[x]` reads all of `query`; a bare `input`, as in
//! `f(input)` or `q := input`, reads everything). `object.get(input, [..], d)`
//! with a literal path reads that path. Builtins whose result can change
//! between two evaluations of the same input (the clock, randomness, the
//! network) make a policy's verdicts never reusable.

use std::collections::BTreeSet;

use regorus::Value;
use regorus::unstable::{Expr, Module};

use crate::ast_walk::{Visit, walk_expr, walk_rule};

/// Builtins whose result is not a function of `input` and `data` alone.
const UNSTABLE_BUILTINS: &[&str] = &[
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "opa.runtime",
    "http.send",
    "net.lookup_ip_addr",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
];

/// Top-level `input` parts that change from one request to the next; the
/// rest (`resource`, `user`, `connection`, `grant`, `stage`) is fixed for a
/// session and stage.
const REQUEST_PARTS: &[&str] = &["time", "query", "http", "mcp", "ssh", "response"];
/// Parts of `input.time` that change at most once a second.
const PER_SECOND_TIME: &[&str] = &["hour", "weekday", "rfc3339"];

/// Whether a verdict can be reused for another request of the same session
/// and stage whose keyed input parts are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The policies read request parts outside the key, or call a clock,
    /// random or network builtin: evaluate every request.
    Never,
    /// Only within the same wall-clock second (the policies read
    /// `input.time.hour`, `weekday` or `rfc3339`).
    WithinSecond,
    Always,
}

/// The parts of `input` one policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputReads {
    /// Each path read, with everything below it; the empty path is the whole input.
    paths: BTreeSet<Vec<String>>,
    /// Calls a builtin whose result can change for the same input.
    unstable: bool,
}

impl InputReads {
    /// The reads of every module of one policy.
    pub(crate) fn of_modules<'a>(modules: impl IntoIterator<Item = &'a Module>) -> Self {
        let mut reads = Self::default();
        for module in modules {
            for import in &module.imports {
                walk_expr(&import.refr, &mut reads);
            }
            for rule in &module.policy {
                walk_rule(rule, &mut reads);
            }
        }
        reads
    }

    /// Merge another policy's reads into these.
    pub(crate) fn extend(&mut self, other: &Self) {
        self.paths.extend(other.paths.iter().cloned());
        self.unstable |= other.unstable;
    }

    /// Whether a builtin makes evaluations of the same input differ.
    pub fn unstable(&self) -> bool {
        self.unstable
    }

    /// The paths read, each as its keys (the empty path is the whole input).
    pub fn paths(&self) -> impl Iterator<Item = &[String]> {
        self.paths.iter().map(Vec::as_slice)
    }

    /// Whether a verdict is reusable for requests that agree on every
    /// `keyed` path (dotted, like `query.type`) and on the session parts.
    pub fn reuse(&self, keyed: &[&str]) -> Reuse {
        if self.unstable {
            return Reuse::Never;
        }
        let mut reuse = Reuse::Always;
        for path in &self.paths {
            let Some(root) = path.first() else {
                return Reuse::Never;
            };
            if !REQUEST_PARTS.contains(&root.as_str()) {
                continue;
            }
            let covered = keyed.iter().any(|k| {
                let key: Vec<&str> = k.split('.').collect();
                path.len() >= key.len() && path.iter().zip(&key).all(|(p, k)| p == k)
            });
            if covered {
                continue;
            }
            if root == "time"
                && path
                    .get(1)
                    .is_some_and(|f| PER_SECOND_TIME.contains(&f.as_str()))
            {
                reuse = Reuse::WithinSecond;
                continue;
            }
            return Reuse::Never;
        }
        reuse
    }
}

impl Visit for InputReads {
    fn expr(&mut self, expr: &Expr) -> bool {
        if let Some((path, dynamic)) = input_path(expr) {
            self.paths.insert(path);
            dynamic.into_iter().for_each(|index| walk_expr(index, self));
            return false;
        }
        match expr {
            Expr::Var { value, .. } if is_name(value, "input") => {
                self.paths.insert(Vec::new());
                false
            }
            Expr::Call { fcn, params, .. } => {
                let name = dotted_name(fcn);
                if name
                    .as_deref()
                    .is_some_and(|n| UNSTABLE_BUILTINS.contains(&n))
                {
                    self.unstable = true;
                }
                // object.get(input, ["a", "b"], default) reads input.a.b.
                if name.as_deref() == Some("object.get")
                    && let [object, path, rest @ ..] = params.as_slice()
                    && matches!(&**object, Expr::Var { value, .. } if is_name(value, "input"))
                    && let Some(path) = literal_path(path)
                {
                    self.paths.insert(path);
                    rest.iter().for_each(|p| walk_expr(p, self));
                    return false;
                }
                true
            }
            _ => true,
        }
    }

    /// Anything this analysis does not know reads everything.
    fn unknown(&mut self, _expr: &Expr) {
        self.paths.insert(Vec::new());
    }
}

fn is_name(value: &Value, name: &str) -> bool {
    value.as_string().is_ok_and(|s| &**s == name)
}

fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::String { value, .. } | Expr::RawString { value, .. } => {
            value.as_string().ok().map(|s| s.to_string())
        }
        _ => None,
    }
}

/// `["a", "b"]` or `"a"` as a path; `None` when any part is not a literal string.
fn literal_path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Array { items, .. } => items.iter().map(|i| string_literal(i)).collect(),
        _ => string_literal(expr).map(|s| vec![s]),
    }
}

/// `a.b.c` of a call like `a.b.c(x)`.
pub(crate) fn dotted_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.to_string()),
        Expr::RefDot { refr, field, .. } => {
            let field = field.1.as_string().ok()?;
            Some(format!("{}.{field}", dotted_name(refr)?))
        }
        _ => None,
    }
}

/// For a reference chain rooted at `input`: its longest literal prefix, and
/// the index expressions that are not literals (they are read themselves).
fn input_path(expr: &Expr) -> Option<(Vec<String>, Vec<&Expr>)> {
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut dynamic = Vec::new();
    let mut current = expr;
    loop {
        match current {
            Expr::RefDot { refr, field, .. } => {
                keys.push(field.1.as_string().ok().map(|s| s.to_string()));
                current = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                let key = string_literal(index);
                if key.is_none() {
                    dynamic.push(&**index);
                }
                keys.push(key);
                current = refr;
            }
            Expr::Var { value, .. } if is_name(value, "input") && !keys.is_empty() => break,
            _ => return None,
        }
    }
    keys.reverse();
    let path = keys.into_iter().map_while(|k| k).collect();
    Some((path, dynamic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(source: &str) -> InputReads {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("test.rego".into(), source.into())
            .expect("test policy parses");
        let modules = engine.get_modules().clone();
        InputReads::of_modules(modules.iter().map(|m| &**m))
    }

    fn paths(source: &str) -> Vec<String> {
        reads(source).paths().map(|p| p.join(".")).collect()
    }

    const HEADER: &str = "package formal.v2\nimport rego.v1\n";

    #[test]
    fn literal_references_read_their_path() {
        let p = paths(&format!(
            "{HEADER}pre_request := {{\"action\": \"block\"}} if {{ input.query.type == \"drop\"; input[\"user\"][\"groups\"][_] == \"x\" }}"
        ));
        assert_eq!(p, ["query.type", "user.groups"]);
    }

    #[test]
    fn indirect_uses_read_everything_below_them() {
        // Through a variable, a function argument, a dynamic index, an import.
        assert_eq!(
            paths(&format!(
                "{HEADER}q := input.query\npre_request := {{}} if q.raw == \"x\""
            )),
            ["query"]
        );
        assert_eq!(
            paths(&format!(
                "{HEADER}f(x) := x.query.raw\npre_request := {{}} if f(input) == \"x\""
            )),
            [""]
        );
        assert_eq!(
            paths(&format!(
                "{HEADER}pre_request := {{}} if {{ some k; input.query[k] == \"x\" }}"
            )),
            ["query"]
        );
        assert_eq!(
            paths(
                "package formal.v2\nimport rego.v1\nimport input.query as q\npre_request := {} if q.raw == \"x\""
            ),
            ["query"]
        );
        assert_eq!(
            paths(&format!(
                "{HEADER}pre_request := {{}} if {{ walk(input, [p, v]); v == \"x\" }}"
            )),
            [""]
        );
    }

    #[test]
    fn object_get_with_a_literal_path_reads_that_path() {
        let p = paths(&format!(
            "{HEADER}post_request := {{}} if not \"admins\" in object.get(input, [\"user\", \"groups\"], [])"
        ));
        assert_eq!(p, ["user.groups"]);
        let p = paths(&format!(
            "{HEADER}k := \"user\"\npost_request := {{}} if object.get(input, [k], []) == []"
        ));
        assert_eq!(p, [""]);
    }

    #[test]
    fn references_inside_comprehensions_every_and_with_are_found() {
        let p = paths(&format!(
            "{HEADER}t := [x | some x in input.query.tables]\nok if every c in input.query.columns {{ c != \"ssn\" }}\npre_request := {{}} if {{ ok with input.time.hour as 3; count(t) > input.connection.client_port }}"
        ));
        assert_eq!(
            p,
            [
                "connection.client_port",
                "query.columns",
                "query.tables",
                "time.hour"
            ]
        );
    }

    #[test]
    fn clock_and_random_builtins_make_a_policy_unstable() {
        assert!(reads(&format!("{HEADER}pre_request := {{}} if time.now_ns() > 0")).unstable());
        assert!(
            reads(&format!(
                "{HEADER}pre_request := {{}} if rand.intn(\"x\", 10) > 0"
            ))
            .unstable()
        );
        assert!(
            !reads(&format!(
                "{HEADER}pre_request := {{}} if time.clock(input.time.unix_ns)[0] > 8"
            ))
            .unstable()
        );
    }

    #[test]
    fn reuse_depends_on_what_the_key_covers() {
        let keyed = ["query.type", "query.tables"];
        let reuse = |body: &str| {
            reads(&format!("{HEADER}pre_request := {{}} if {{ {body} }}")).reuse(&keyed)
        };
        assert_eq!(
            reuse("input.query.type == \"drop\"; input.user.name == \"a\""),
            Reuse::Always
        );
        assert_eq!(reuse("input.query.tables[_] == \"t\""), Reuse::Always);
        assert_eq!(reuse("contains(input.query.raw, \"x\")"), Reuse::Never);
        assert_eq!(reuse("input.query.statement != \"\""), Reuse::Never);
        assert_eq!(reuse("count(input.query) > 0"), Reuse::Never);
        assert_eq!(reuse("input.time.hour > 8"), Reuse::WithinSecond);
        assert_eq!(reuse("input.time.unix_ns > 8"), Reuse::Never);
        assert_eq!(
            reuse("input.time.hour > 8; input.http.path == \"/\""),
            Reuse::Never
        );
        assert_eq!(reuse("object.get(input, [], {}) != {}"), Reuse::Never);
        assert_eq!(reuse("time.now_ns() > 0"), Reuse::Never);
        assert_eq!(
            reuse("input.nothing == 1; input.stage == \"pre_request\""),
            Reuse::Always
        );
    }

    #[test]
    fn the_example_policy_reads_query_type_and_user_groups() {
        let source = include_str!("../../../policies/example.rego");
        assert_eq!(paths(source), ["query.type", "user.groups"]);
    }
}
