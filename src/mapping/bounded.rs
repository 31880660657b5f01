//! Which expressions are bounded by their form, so they may run inline without a budget.
//!
//! The budget ([`super::budget`]) costs a hop to a worker thread per item (≈ 55 µs a job on the
//! benchmark machine, more than the mapping itself), because jaq cannot be interrupted. Most
//! mappings are field reads, string functions and `if`s, which end in time linear in their
//! input however the input looks. Those run on the caller's thread; anything whose cost the data
//! could drive further goes to the budgeted pool. The test is conservative: a false "unbounded"
//! only costs the hop.
//!
//! Linear means: every value an expression makes is at most a constant (set by the expression)
//! times the input, and it makes a constant number of them. So none of these:
//! - loops and recursion: definitions, `reduce`/`foreach`, `..`, `label`;
//! - generators whose count the data sets — `.[]` (iteration; slices are fine), `splits`,
//!   `match`/`capture` — since each output may carry a copy of the whole input (`select(.xs[] >
//!   0)`, `{a: ., b: .xs[]}`), and two of them multiply (`{a: .xs[], b: .xs[]}`);
//! - variable bindings (`. as $d | .xs | map($d)` copies the input once per element);
//! - built-ins not listed below, or listed ones whose pattern argument comes from the data (a
//!   separator or regex as long as the input, or a `gsub` replacement that yields several values,
//!   which `gsub`'s `reduce` multiplies per match);
//! - string repetition beyond a constant: jaq's `"s" * n` repeats, so `*` is allowed once, with
//!   a number literal on one side and, on the other, something numeric by construction (`floor`,
//!   `length`, arithmetic of those) — `.dpd * 86400` with `dpd` a long string would allocate
//!   86 400 copies of it.
//!
//! `map(f)` and the like are fine: with none of the above in `f`, `f` sees one element and makes
//! a constant number of values of its size. `tonumber` and `fromjson` are left out: they parse
//! JSON recursively, and a deeply nested string from the input could overflow the caller's
//! (smaller) stack.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::Math;
use jaq_core::path::Part;

/// Built-ins (name, arity) whose time is about linear in their input, which evaluate each argument
/// a constant number of times per element of it, and make one value (or a constant number);
/// ours (`local_date`, `mobile10`, `dpd_bracket`) are plain expressions over these (a unit test
/// checks their bodies).
const BOUNDED_CALLS: &[(&str, usize)] = &[
    ("true", 0),
    ("false", 0),
    ("null", 0),
    ("not", 0),
    ("empty", 0),
    ("error", 0),
    ("error", 1),
    ("length", 0),
    ("utf8bytelength", 0),
    ("keys", 0),
    ("keys_unsorted", 0),
    ("values", 0),
    ("nulls", 0),
    ("booleans", 0),
    ("numbers", 0),
    ("strings", 0),
    ("arrays", 0),
    ("objects", 0),
    ("iterables", 0),
    ("scalars", 0),
    ("type", 0),
    ("tostring", 0),
    ("tojson", 0),
    ("ascii_downcase", 0),
    ("ascii_upcase", 0),
    ("trim", 0),
    ("ltrim", 0),
    ("rtrim", 0),
    ("floor", 0),
    ("ceil", 0),
    ("round", 0),
    ("fabs", 0),
    ("abs", 0),
    ("sqrt", 0),
    ("add", 0),
    ("add", 1),
    ("reverse", 0),
    ("sort", 0),
    ("unique", 0),
    ("min", 0),
    ("max", 0),
    ("first", 0),
    ("last", 0),
    ("first", 1),
    ("last", 1),
    ("any", 0),
    ("all", 0),
    ("any", 1),
    ("all", 1),
    ("any", 2),
    ("all", 2),
    ("isempty", 1),
    ("limit", 2),
    ("to_entries", 0),
    ("from_entries", 0),
    ("with_entries", 1),
    ("explode", 0),
    ("implode", 0),
    ("select", 1),
    ("map", 1),
    ("map_values", 1),
    ("has", 1),
    ("ltrimstr", 1),
    ("rtrimstr", 1),
    ("startswith", 1),
    ("endswith", 1),
    ("split", 1),
    ("split", 2),
    ("join", 1),
    ("test", 1),
    ("test", 2),
    ("sub", 2),
    ("sub", 3),
    ("gsub", 2),
    ("gsub", 3),
    ("sort_by", 1),
    ("group_by", 1),
    ("unique_by", 1),
    ("min_by", 1),
    ("max_by", 1),
    ("strftime", 1),
    ("strptime", 1),
    ("mktime", 0),
    ("gmtime", 0),
    ("todate", 0),
    ("fromdate", 0),
    ("todateiso8601", 0),
    ("fromdateiso8601", 0),
    ("local_date", 0),
    ("mobile10", 0),
    ("dpd_bracket", 0),
];

/// Built-ins whose arguments (every one) must be string literals: a separator, a regex, its flags
/// or a replacement taken from the data could make them quadratic or worse.
const LITERAL_ARGS: &[&str] = &["join", "split", "test", "sub", "gsub"];

/// Built-ins whose value is a number or an error, never a string (the operand of a `*`).
const NUMERIC_CALLS: &[&str] = &["floor", "ceil", "round", "fabs", "sqrt", "length", "utf8bytelength"];

/// True when `expr` parses and its cost is bounded by its form (see the module header).
pub fn is_bounded(expr: &str) -> bool {
    jaq_core::load::parse(expr, |p| p.term()).is_some_and(|t| term_is_bounded(&t))
}

fn term_is_bounded(t: &Term<&str>) -> bool {
    let mut walk = Walk { muls: 0 };
    walk.term(t) && walk.muls <= 1
}

struct Walk {
    /// `*` operators seen (each must have a number literal operand).
    muls: usize,
}

/// A string literal without interpolation.
fn literal(t: &Term<&str>) -> bool {
    matches!(t, Term::Str(None, parts) if parts.iter().all(|p| !matches!(p, StrPart::Term(_))))
}

/// A number, or an error, whatever the input: never a string jaq's `*` would repeat.
fn numeric(t: &Term<&str>) -> bool {
    match t {
        Term::Num(_) => true,
        Term::Neg(t) => numeric(t),
        Term::Call(name, args) => args.is_empty() && NUMERIC_CALLS.contains(name),
        Term::BinOp(_, BinaryOp::Pipe(None), r) => numeric(r),
        Term::BinOp(l, BinaryOp::Math(Math::Add | Math::Sub | Math::Div | Math::Rem), r) => numeric(l) && numeric(r),
        _ => false,
    }
}

impl Walk {
    fn term(&mut self, t: &Term<&str>) -> bool {
        match t {
            Term::Id | Term::Num(_) | Term::Var(_) => true,
            Term::Recurse | Term::Label(..) | Term::Break(_) | Term::Fold(..) | Term::Def(..) => false,
            Term::Str(_, parts) => parts.iter().all(|p| match p {
                StrPart::Term(t) => self.term(t),
                StrPart::Str(_) | StrPart::Char(_) => true,
            }),
            Term::Arr(inner) => inner.as_deref().is_none_or(|t| self.term(t)),
            Term::Obj(entries) => entries
                .iter()
                .all(|(k, v)| self.term(k) && v.as_ref().is_none_or(|v| self.term(v))),
            Term::Neg(t) => self.term(t),
            Term::TryCatch(body, catch) => self.term(body) && catch.as_deref().is_none_or(|c| self.term(c)),
            Term::IfThenElse(branches, otherwise) => {
                branches.iter().all(|(c, t)| self.term(c) && self.term(t))
                    && otherwise.as_deref().is_none_or(|t| self.term(t))
            }
            Term::Call(name, args) => {
                BOUNDED_CALLS.contains(&(*name, args.len()))
                    && (!LITERAL_ARGS.contains(name) || args.iter().all(literal))
                    && args.iter().all(|a| self.term(a))
            }
            Term::Path(base, path) => {
                self.term(base)
                    && path.0.iter().all(|(part, _)| match part {
                        Part::Index(i) => self.term(i),
                        // `.[]`: as many values as the data has elements.
                        Part::Range(None, None) => false,
                        // A slice: one value.
                        Part::Range(from, to) => {
                            from.as_ref().is_none_or(|t| self.term(t)) && to.as_ref().is_none_or(|t| self.term(t))
                        }
                    })
            }
            Term::BinOp(l, op, r) => {
                let ok = match op {
                    // `… as $x | …`: a copy of the data wherever `$x` is used.
                    BinaryOp::Pipe(Some(_)) => false,
                    BinaryOp::Math(Math::Mul) | BinaryOp::UpdateMath(Math::Mul) => {
                        self.muls += 1;
                        (matches!(**l, Term::Num(_)) && numeric(r)) || (matches!(**r, Term::Num(_)) && numeric(l))
                    }
                    _ => true,
                };
                ok && self.term(l) && self.term(r)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_bounded, term_is_bounded};
    use crate::mapping::{DEFAULT_DEFAULT, DEFAULT_LOAN, DEFAULT_PAYMENT, DEFAULT_RECORD};

    #[test]
    fn every_built_in_expression_runs_inline() {
        for (key, expr) in DEFAULT_LOAN
            .iter()
            .chain(DEFAULT_DEFAULT)
            .chain(DEFAULT_PAYMENT)
            .chain(DEFAULT_RECORD)
        {
            assert!(is_bounded(expr), "{key} = {expr}");
        }
    }

    /// `local_date`, `mobile10` and `dpd_bracket` are listed as bounded by name: their bodies
    /// must pass the same test, or the list lies.
    #[test]
    fn the_prelude_helpers_listed_as_bounded_are() {
        let defs = jaq_core::load::parse(crate::mapping::jq::PRELUDE, |p| p.defs()).expect("prelude parses");
        assert_eq!(defs.len(), 3);
        for d in defs {
            assert!(
                super::BOUNDED_CALLS.contains(&(d.name, d.args.len())),
                "{} unlisted",
                d.name
            );
            assert!(term_is_bounded(&d.body), "{}", d.name);
        }
    }

    #[test]
    fn anything_the_data_can_drive_beyond_linear_goes_to_the_budget() {
        for expr in [
            // loops and recursion
            "def f: f; f",
            "def g: 1 + g; g",
            "last(range(1e12))",
            "[range(.amount)]",
            "reduce .[] as $x ([1]; . + .)",
            "foreach .[] as $x (0; . + 1)",
            "[..]",
            "repeat(.)",
            "until(false; .)",
            "while(true; .)",
            "recurse(.[])",
            "label $out | 1",
            "map(def h: h; h)",
            // generators the data sizes, and what they multiply
            "[.xs[]]",
            "[select(.xs[] > 0) | tojson] | length",
            "[{a: .xs[], b: .xs[], c: .xs[]}] | length",
            "{a: ., b: .xs[]?}",
            "[.s | splits(\",\")]",
            "[.s | match(\"a\"; \"g\")]",
            ".[range(1e9)]",
            "{(range(3) | tostring): 1}",
            "\"\\(range(10))\"",
            // variables: a copy of the data per use
            ". as $d | .xs | map($d | tojson)",
            ".[] as [$a] | range($a)",
            // arguments from the data, and multi-valued replacements
            ".xs | join(tostring)",
            ".s | split(.sep)",
            ".s | test(.re)",
            "[.lead.name | gsub(\" \"; \"\", \"_\")] | length",
            ".name | gsub(\"a\"; \"\\(.x)\")",
            // string repetition
            ".name * .amount",
            ".line_detail.dpd * 86400",
            "(.name * 1000) * 1000",
            "(.a | floor) * 10 | . * 10",
            // recursive parsers on a smaller stack, super-linear searches
            ".x | fromjson",
            "try (.a | tonumber) catch null",
            ".a | contains(.b)",
            ".a | indices(.b)",
            // not jq, or not allowed at all
            "input",
            "env",
            "not a jq expression (",
        ] {
            assert!(!is_bounded(expr), "{expr}");
        }
    }

    #[test]
    fn ordinary_mappings_are_bounded() {
        for expr in [
            ".lead.name",
            ".a // .b // \"x\"",
            "if .x then \"Closed\" elif .y then 1 else null end",
            "(.line_detail.dpd | floor) * 86400",
            "86400 * (.a | length)",
            "[.a, .b] | map(select(. != null)) | join(\",\")",
            "(.record.bank_date // .record.date) | local_date",
            "{a: .b, \"c\": [.d[0:2]]}",
            ".rows | map(.cells | map(tostring))",
            "try (.a | floor) catch null",
            "\"loan \\(.id)\" | ascii_downcase | gsub(\"-\"; \"\")",
            "-.amount | floor",
            ".s | split(\",\") | first",
        ] {
            assert!(is_bounded(expr), "{expr}");
        }
    }
}
