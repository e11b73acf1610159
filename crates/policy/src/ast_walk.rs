//! One walk over a regorus syntax tree, shared by the analyses of a policy
//! (what `input` it reads, which rules refer to which): each analysis
//! implements [`Visit`] and sees every expression, declaration and `with`.

use regorus::unstable::{AssignOp, Expr, Literal, Query, Rule, RuleHead, Span};

/// What an analysis does at each node; the defaults just walk on.
pub(crate) trait Visit: Sized {
    /// An expression; return `false` when the visitor handled it (and any
    /// children it wanted, with [`walk_expr`]) itself.
    fn expr(&mut self, _expr: &Expr) -> bool {
        true
    }

    /// An expression this walk does not know (a variant behind a regorus
    /// feature Gate does not enable).
    fn unknown(&mut self, _expr: &Expr) {}

    /// A pattern that declares local variables: a function argument, the
    /// left of `:=`, or the key or value of `some … in`.
    fn declare(&mut self, pattern: &Expr) {
        walk_expr(pattern, self);
    }

    /// A variable declared by name: `some x` or `every k, v in`.
    fn declare_name(&mut self, _name: &Span) {}

    /// The target of a `with` modifier (`with input.x as …`).
    fn with_target(&mut self, target: &Expr) {
        walk_expr(target, self);
    }
}

/// Walk one rule: the index expressions of its head, its arguments, values
/// and bodies.
pub(crate) fn walk_rule(rule: &Rule, v: &mut impl Visit) {
    match rule {
        Rule::Spec { head, bodies, .. } => {
            match head {
                RuleHead::Compr { refr, assign, .. } => {
                    head_indexes(refr, v);
                    if let Some(assign) = assign {
                        walk_expr(&assign.value, v);
                    }
                }
                RuleHead::Set { refr, key, .. } => {
                    head_indexes(refr, v);
                    if let Some(key) = key {
                        walk_expr(key, v);
                    }
                }
                RuleHead::Func {
                    refr, args, assign, ..
                } => {
                    head_indexes(refr, v);
                    args.iter().for_each(|a| v.declare(a));
                    if let Some(assign) = assign {
                        walk_expr(&assign.value, v);
                    }
                }
            }
            for body in bodies {
                if let Some(assign) = &body.assign {
                    walk_expr(&assign.value, v);
                }
                walk_query(&body.query, v);
            }
        }
        Rule::Default { args, value, .. } => {
            args.iter().for_each(|a| v.declare(a));
            walk_expr(value, v);
        }
    }
}

/// The root of a head names the rule itself; its `[index]` parts are read.
fn head_indexes(refr: &Expr, v: &mut impl Visit) {
    match refr {
        Expr::RefDot { refr, .. } => head_indexes(refr, v),
        Expr::RefBrack { refr, index, .. } => {
            head_indexes(refr, v);
            walk_expr(index, v);
        }
        _ => {}
    }
}

pub(crate) fn walk_query(query: &Query, v: &mut impl Visit) {
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { vars, .. } => vars.iter().for_each(|name| v.declare_name(name)),
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(key) = key {
                    v.declare(key);
                }
                v.declare(value);
                walk_expr(collection, v);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => walk_expr(expr, v),
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                if let Some(key) = key {
                    v.declare_name(key);
                }
                v.declare_name(value);
                walk_expr(domain, v);
                walk_query(query, v);
            }
        }
        for with in &stmt.with_mods {
            v.with_target(&with.refr);
            walk_expr(&with.r#as, v);
        }
    }
}

pub(crate) fn walk_expr(expr: &Expr, v: &mut impl Visit) {
    if !v.expr(expr) {
        return;
    }
    #[allow(unreachable_patterns)] // variants behind regorus features we do not enable
    match expr {
        Expr::String { .. }
        | Expr::RawString { .. }
        | Expr::Number { .. }
        | Expr::Bool { .. }
        | Expr::Null { .. }
        | Expr::Var { .. } => {}
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().for_each(|i| walk_expr(i, v));
        }
        Expr::Object { fields, .. } => {
            for (_, key, value) in fields {
                walk_expr(key, v);
                walk_expr(value, v);
            }
        }
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            walk_expr(term, v);
            walk_query(query, v);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            walk_expr(key, v);
            walk_expr(value, v);
            walk_query(query, v);
        }
        Expr::Call { fcn, params, .. } => {
            walk_expr(fcn, v);
            params.iter().for_each(|p| walk_expr(p, v));
        }
        Expr::UnaryExpr { expr, .. } => walk_expr(expr, v),
        Expr::RefDot { refr, .. } => walk_expr(refr, v),
        Expr::RefBrack { refr, index, .. } => {
            walk_expr(refr, v);
            walk_expr(index, v);
        }
        Expr::AssignExpr { op, lhs, rhs, .. } => {
            if matches!(op, AssignOp::ColEq) {
                v.declare(lhs);
            } else {
                walk_expr(lhs, v);
            }
            walk_expr(rhs, v);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. } => {
            walk_expr(lhs, v);
            walk_expr(rhs, v);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(key) = key {
                walk_expr(key, v);
            }
            walk_expr(value, v);
            walk_expr(collection, v);
        }
        other => v.unknown(other),
    }
}
