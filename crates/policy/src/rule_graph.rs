//! Which rules and functions of a policy refer to which, found from the syntax
//! tree: a cycle (recursion, direct or mutual) is a compile error, as in OPA,
//! and so is a chain of rules deeper than evaluation can safely follow.
//!
//! A rule is named by its package and the first part of its head (`a` for
//! `a`, `a[x]`, `a.b.c` and `a(x)`). A body refers to a rule by its bare name
//! (in the same package) or by `data.<package>.<name>`; names declared locally
//! (`:=`, `some`, `every`, function arguments) are not references.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Expr, Module, Rule, RuleHead, Span};

use crate::ast_walk::{Visit, walk_expr, walk_rule};

use crate::reads::dotted_name;

/// The longest chain of rules one evaluation may follow (each rule calling the
/// next); evaluation recurses once per link.
pub const MAX_RULE_CHAIN: usize = 32;

/// A rule, as `package.name` (`gate.read_only.pre_request`).
type RuleId = String;

/// One reference from a rule to another, with where it is written.
#[derive(Debug, Clone)]
struct Edge {
    to: RuleId,
    at: String,
}

/// Rules and the references between them, for the modules of one policy.
#[derive(Debug, Default)]
pub(crate) struct RuleGraph {
    edges: BTreeMap<RuleId, Vec<Edge>>,
}

impl RuleGraph {
    pub(crate) fn of_modules<'a>(modules: impl IntoIterator<Item = &'a Module>) -> Self {
        let modules: Vec<&Module> = modules.into_iter().collect();
        let packages: BTreeSet<String> = modules
            .iter()
            .filter_map(|m| dotted_name(&m.package.refr))
            .map(|p| p.strip_prefix("data.").unwrap_or(&p).to_owned())
            .collect();
        let mut rules: BTreeSet<RuleId> = BTreeSet::new();
        for module in &modules {
            let Some(package) = package_of(module) else {
                continue;
            };
            for rule in &module.policy {
                if let Some(name) = rule_name(rule) {
                    rules.insert(format!("{package}.{name}"));
                }
            }
        }
        let mut graph = Self::default();
        for module in &modules {
            let Some(package) = package_of(module) else {
                continue;
            };
            for rule in &module.policy {
                let Some(name) = rule_name(rule) else {
                    continue;
                };
                let mut walk = Walk::default();
                walk_rule(rule, &mut walk);
                let from = format!("{package}.{name}");
                let edges = graph.edges.entry(from).or_default();
                for (reference, span) in walk.references {
                    let target = match reference {
                        Reference::Bare(n) if walk.locals.contains(&n) => continue,
                        Reference::Bare(n) => format!("{package}.{n}"),
                        Reference::Data(path) => match data_rule(&path, &packages) {
                            Some(target) => target,
                            None => continue,
                        },
                    };
                    if rules.contains(&target) {
                        edges.push(Edge {
                            to: target,
                            at: location(&span),
                        });
                    }
                }
            }
        }
        graph
    }

    /// The first cycle found, as `file:line:col: …` naming the rules in order.
    pub(crate) fn recursion(&self) -> Option<String> {
        // Iterative depth-first search (a policy may have thousands of rules).
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for start in self.edges.keys() {
            if done.contains(start.as_str()) {
                continue;
            }
            let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            let mut on_path: BTreeSet<&str> = BTreeSet::from([start.as_str()]);
            while let Some((node, next)) = path.last().copied() {
                let edges = self.edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
                let Some(edge) = edges.get(next) else {
                    path.pop();
                    on_path.remove(node);
                    done.insert(node);
                    continue;
                };
                if let Some(top) = path.last_mut() {
                    top.1 += 1;
                }
                let to = edge.to.as_str();
                if on_path.contains(to) {
                    let first = path.iter().position(|(n, _)| *n == to).unwrap_or(0);
                    let mut names: Vec<&str> = path[first..].iter().map(|(n, _)| *n).collect();
                    names.push(to);
                    return Some(format!(
                        "{}: recursion is not allowed: {}",
                        edge.at,
                        names.join(" -> ")
                    ));
                }
                if !done.contains(to) {
                    on_path.insert(to);
                    path.push((to, 0));
                }
            }
        }
        None
    }

    /// The longest chain of references (rules followed one inside another),
    /// and where its deepest link is written; call only on a graph without cycles.
    pub(crate) fn longest_chain(&self) -> (usize, Option<String>) {
        let mut depth: BTreeMap<&str, (usize, Option<&str>)> = BTreeMap::new();
        // Post-order, iteratively: a node's depth is 1 + its deepest callee's.
        for start in self.edges.keys() {
            let mut stack: Vec<(&str, bool)> = vec![(start.as_str(), false)];
            while let Some((node, expanded)) = stack.pop() {
                if depth.contains_key(node) {
                    continue;
                }
                let edges = self.edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
                if expanded {
                    let deepest = edges
                        .iter()
                        .filter_map(|e| depth.get(e.to.as_str()).map(|d| (d.0, e.at.as_str())))
                        .max_by_key(|d| d.0);
                    let entry = match deepest {
                        Some((d, at)) => (d + 1, Some(at)),
                        None => (1, None),
                    };
                    depth.insert(node, entry);
                } else {
                    stack.push((node, true));
                    for edge in edges {
                        if !depth.contains_key(edge.to.as_str()) {
                            stack.push((edge.to.as_str(), false));
                        }
                    }
                }
            }
        }
        depth
            .values()
            .max_by_key(|d| d.0)
            .map(|(d, at)| (*d, at.map(str::to_owned)))
            .unwrap_or((0, None))
    }
}

fn package_of(module: &Module) -> Option<String> {
    let package = dotted_name(&module.package.refr)?;
    Some(package.strip_prefix("data.").unwrap_or(&package).to_owned())
}

/// `data.a.b.c.rest…` → `a.b.c` when `a.b` is one of the packages.
fn data_rule(path: &str, packages: &BTreeSet<String>) -> Option<RuleId> {
    let path = path.strip_prefix("data.")?;
    packages.iter().find_map(|package| {
        let rest = path.strip_prefix(package.as_str())?.strip_prefix('.')?;
        let name = rest.split('.').next()?;
        Some(format!("{package}.{name}"))
    })
}

fn location(span: &Span) -> String {
    format!("{}:{}:{}", span.source.file(), span.line, span.col)
}

/// The first part of a rule's head: `a` for `a`, `a[x]`, `a.b` and `a(x)`.
fn rule_name(rule: &Rule) -> Option<String> {
    let refr = match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
            RuleHead::Func { refr, .. } => refr,
        },
        Rule::Default { refr, .. } => refr,
    };
    root_var(refr)
}

fn root_var(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.to_string()),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => root_var(refr),
        _ => None,
    }
}

enum Reference {
    /// A bare name, possibly a rule of the same package.
    Bare(String),
    /// A dotted path rooted at `data`.
    Data(String),
}

/// Collects the references and local declarations of one rule.
#[derive(Default)]
struct Walk {
    references: Vec<(Reference, Span)>,
    locals: BTreeSet<String>,
}

impl Visit for Walk {
    fn expr(&mut self, expr: &Expr) -> bool {
        match expr {
            Expr::Var { value, span, .. } => {
                if let Ok(name) = value.as_string() {
                    self.references
                        .push((Reference::Bare(name.to_string()), span.clone()));
                }
                false
            }
            Expr::RefDot { span, .. } => match dotted_name(expr) {
                Some(path) if path.starts_with("data.") => {
                    self.references.push((Reference::Data(path), span.clone()));
                    false
                }
                _ => true,
            },
            _ => true,
        }
    }

    /// Every variable inside a declaration pattern is local.
    fn declare(&mut self, pattern: &Expr) {
        match pattern {
            Expr::Var { value, .. } => {
                if let Ok(name) = value.as_string() {
                    self.locals.insert(name.to_string());
                }
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| self.declare(i));
            }
            Expr::Object { fields, .. } => fields.iter().for_each(|(_, _, v)| self.declare(v)),
            other => walk_expr(other, self),
        }
    }

    fn declare_name(&mut self, name: &Span) {
        self.locals.insert(name.text().to_owned());
    }

    /// `with data.p.r as …` replaces a rule; it does not call it.
    fn with_target(&mut self, _target: &Expr) {}
}
