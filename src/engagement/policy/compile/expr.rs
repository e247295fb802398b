//! Static analysis of a compiled CEL expression, walking its AST: the variables it reads, the string literals it
//! compares them with, and a type check that catches operators applied to types they never accept.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::{BUILT_INS, Compiler, Slot};

/// The identifiers an expression reads from the context, in order of appearance: comprehension variables
/// (`reasons.exists(r, ...)`) and the macros' internal `@` names excluded.
pub(super) fn free_identifiers<'e>(
    e: &'e IdedExpr,
    bound: &mut Vec<&'e str>,
    out: &mut Vec<&'e str>,
) {
    match &e.expr {
        Expr::Ident(name) => {
            let name = name.as_str();
            if !name.starts_with('@') && !bound.contains(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
        Expr::Call(call) => {
            for arg in call.target.iter().map(AsRef::as_ref).chain(&call.args) {
                free_identifiers(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            free_identifiers(&c.iter_range, bound, out);
            free_identifiers(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.extend([c.iter_var.as_str(), c.accu_var.as_str()]);
            bound.extend(c.iter_var2.as_deref());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                free_identifiers(part, bound, out);
            }
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                free_identifiers(element, bound, out);
            }
        }
        Expr::Map(m) => entries(&m.entries, bound, out),
        Expr::Struct(s) => entries(&s.entries, bound, out),
        Expr::Select(select) => free_identifiers(&select.operand, bound, out),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entries<'e>(
    entries: &'e [cel::common::ast::IdedEntryExpr],
    bound: &mut Vec<&'e str>,
    out: &mut Vec<&'e str>,
) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::StructField(f) => free_identifiers(&f.value, bound, out),
            EntryExpr::MapEntry(m) => {
                free_identifiers(&m.key, bound, out);
                free_identifiers(&m.value, bound, out);
            }
        }
    }
}

/// Static types, as far as they are known without running the expression (`Dyn`: not known).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ty {
    Bool,
    Int,
    UInt,
    Double,
    String,
    List,
    Null,
    Dyn,
}

impl Ty {
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::UInt | Ty::Double)
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a bool",
            Ty::Int => "an int",
            Ty::UInt => "a uint",
            Ty::Double => "a double",
            Ty::String => "a string",
            Ty::List => "a list",
            Ty::Null => "null",
            Ty::Dyn => "a value",
        }
    }
}

impl Compiler<'_> {
    /// Infers the type of `e` and records operators applied to types they never accept (`risk > 3`,
    /// `lifetime_value * 3`, `tenure_months && ...`), even where evaluation would short-circuit past them.
    pub(super) fn type_of<'e>(
        &self,
        e: &'e IdedExpr,
        bound: &mut Vec<&'e str>,
        out: &mut Vec<String>,
    ) -> Ty {
        match &e.expr {
            Expr::Ident(name) if bound.contains(&name.as_str()) => Ty::Dyn,
            Expr::Ident(name) => match BUILT_INS.iter().find(|(n, _)| n == name) {
                Some((_, Slot::Known)) => Ty::Bool,
                Some((_, Slot::ChurnProbability)) => Ty::Double,
                Some((_, Slot::OfferCount)) => Ty::Int,
                Some((_, Slot::Reasons)) => Ty::List,
                Some(_) => Ty::String,
                None if self.vocab.features.contains(name) => Ty::Double,
                None => Ty::Dyn,
            },
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::UInt(_) => Ty::UInt,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::Null => Ty::Null,
                LiteralValue::Bytes(_) => Ty::Dyn,
            },
            Expr::List(l) => {
                for x in &l.elements {
                    self.type_of(x, bound, out);
                }
                Ty::List
            }
            Expr::Comprehension(c) => {
                self.type_of(&c.iter_range, bound, out);
                let depth = bound.len();
                bound.extend([c.iter_var.as_str(), c.accu_var.as_str()]);
                bound.extend(c.iter_var2.as_deref());
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.type_of(part, bound, out);
                }
                bound.truncate(depth);
                Ty::Dyn
            }
            Expr::Call(call) => {
                let args: Vec<Ty> = (call.target.iter().map(AsRef::as_ref).chain(&call.args))
                    .map(|a| self.type_of(a, bound, out))
                    .collect();
                let mut wrong = |what: String| out.push(format!("'{}' {what}", show(e)));
                let known = |t: Ty| t != Ty::Dyn;
                match (call.func_name.as_str(), args.as_slice()) {
                    ("_<_" | "_<=_" | "_>_" | "_>=_", &[a, b]) => {
                        if known(a)
                            && known(b)
                            && !(a.numeric() && b.numeric())
                            && !(a == b && matches!(a, Ty::String | Ty::Bool))
                        {
                            wrong(format!("compares {} with {}", a.name(), b.name()));
                        }
                        Ty::Bool
                    }
                    ("_==_" | "_!=_", &[a, b]) => {
                        if known(a)
                            && known(b)
                            && a != b
                            && a != Ty::Null
                            && b != Ty::Null
                            && !(a.numeric() && b.numeric())
                        {
                            wrong(format!(
                                "compares {} with {}: they are never equal",
                                a.name(),
                                b.name()
                            ));
                        }
                        Ty::Bool
                    }
                    ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", &[a, b]) if known(a) && known(b) => {
                        let ok = a == b
                            && (a.numeric()
                                || (call.func_name == "_+_" && matches!(a, Ty::String | Ty::List)));
                        if !ok {
                            let hint = if a.numeric() && b.numeric() {
                                " (CEL does not mix int and double: write 3.0, not 3)"
                            } else {
                                ""
                            };
                            wrong(format!(
                                "applies '{}' to {} and {}{hint}",
                                op(&call.func_name),
                                a.name(),
                                b.name()
                            ));
                            return Ty::Dyn;
                        }
                        a
                    }
                    ("-_", &[a]) => a,
                    ("!_" | "_&&_" | "_||_", args) => {
                        for &a in args {
                            if known(a) && a != Ty::Bool {
                                wrong(format!("needs bools, not {}", a.name()));
                                break;
                            }
                        }
                        Ty::Bool
                    }
                    ("@in", &[_, b]) => {
                        if known(b) && b != Ty::List {
                            wrong(format!("looks for a value in {}, not in a list", b.name()));
                        }
                        Ty::Bool
                    }
                    ("size" | "int", _) => Ty::Int,
                    ("double", _) => Ty::Double,
                    ("string", _) => Ty::String,
                    ("_?_:_", &[_, a, b]) if a == b => a,
                    _ => Ty::Dyn,
                }
            }
            Expr::Map(_) | Expr::Struct(_) | Expr::Select(_) | Expr::Unspecified => Ty::Dyn,
        }
    }
}

fn op(func: &str) -> &str {
    func.trim_matches('_').trim_start_matches('@')
}

/// The source-like text of an operator call on identifiers and literals, for messages.
fn show(e: &IdedExpr) -> String {
    match &e.expr {
        Expr::Ident(n) => n.clone(),
        Expr::Literal(LiteralValue::String(s)) => format!("'{}'", s.inner()),
        Expr::Literal(LiteralValue::Int(i)) => i64::from(*i).to_string(),
        Expr::Literal(LiteralValue::Double(d)) => format!("{:?}", f64::from(*d)),
        Expr::Literal(LiteralValue::Boolean(b)) => bool::from(*b).to_string(),
        Expr::Literal(LiteralValue::Null) => "null".into(),
        Expr::Call(c)
            if c.target.is_none() && c.args.len() == 2 && c.func_name.starts_with(['_', '@']) =>
        {
            format!(
                "{} {} {}",
                show(&c.args[0]),
                op(&c.func_name),
                show(&c.args[1])
            )
        }
        Expr::Call(c) if c.func_name == "!_" && c.args.len() == 1 => {
            format!("!{}", show(&c.args[0]))
        }
        _ => "...".into(),
    }
}

/// `(variable, literal)` for every `var == 'lit'`, `var != 'lit'`, `var in ['lit', ...]` and `'lit' in var`.
pub(super) fn compared_literals<'e>(e: &'e IdedExpr, out: &mut Vec<(&'e str, &'e str)>) {
    let ident = |e: &'e IdedExpr| match &e.expr {
        Expr::Ident(n) => Some(n.as_str()),
        _ => None,
    };
    let strings = |e: &'e IdedExpr| -> Vec<&'e str> {
        match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => vec![s.inner()],
            Expr::List(l) => (l.elements.iter())
                .filter_map(|x| match &x.expr {
                    Expr::Literal(LiteralValue::String(s)) => Some(s.inner()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    if let Expr::Call(call) = &e.expr
        && let [a, b] = call.args.as_slice()
        && matches!(call.func_name.as_str(), "_==_" | "_!=_" | "@in")
    {
        for (var, lit) in [(a, b), (b, a)] {
            if let Some(var) = ident(var) {
                out.extend(strings(lit).into_iter().map(|l| (var, l)));
            }
        }
    }
    match &e.expr {
        Expr::Call(call) => {
            for arg in call.target.iter().map(AsRef::as_ref).chain(&call.args) {
                compared_literals(arg, out);
            }
        }
        Expr::Comprehension(c) => compared_literals(&c.iter_range, out),
        _ => {}
    }
}
