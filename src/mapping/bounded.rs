//! Which expressions are bounded by their form, so they may run inline without a budget.
//!
//! The budget ([`super::budget`]) costs a hop to a worker thread per item (≈ 55 µs a job on the
//! benchmark machine, more than the mapping itself), because jaq cannot be interrupted. Most
//! mappings are field reads, string functions and `if`s, which end within a small multiple of
//! their input's size however the input looks. Those run on the caller's thread; anything whose
//! cost the data can drive without bound goes to the budgeted pool.
//!
//! The test is conservative (a false "unbounded" only costs the hop). Bounded means no loop can
//! run: no definitions (the only way to recurse), no `reduce`/`foreach`, no `..`, no `label`, and
//! calls only to the built-ins listed below, each of which is linear-ish in its input and calls
//! its arguments a bounded number of times. String repetition (`"s" * n`, jaq's `*`) is the one
//! operator whose cost a value sets: one `*` is allowed when an operand is a number literal, so
//! its output is at most that constant times what reaches it; a second `*` could multiply that,
//! so an expression with two goes to the pool. `fromjson` is left out: a deeply nested string
//! from the input could overflow the caller's (smaller) stack.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::ops::Math;
use jaq_core::path::Part;

/// Built-ins (name, arity) that run in time about linear in their input and evaluate each
/// argument at most once per element of it; ours (`local_date`, `mobile10`, `dpd_bracket`) are
/// plain expressions over these.
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
    ("tonumber", 0),
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
    ("contains", 1),
    ("inside", 1),
    ("index", 1),
    ("rindex", 1),
    ("indices", 1),
    ("ltrimstr", 1),
    ("rtrimstr", 1),
    ("startswith", 1),
    ("endswith", 1),
    ("split", 1),
    ("split", 2),
    ("splits", 1),
    ("splits", 2),
    ("join", 1),
    ("test", 1),
    ("test", 2),
    ("match", 1),
    ("match", 2),
    ("capture", 1),
    ("capture", 2),
    ("sub", 2),
    ("sub", 3),
    ("gsub", 2),
    ("gsub", 3),
    ("sort_by", 1),
    ("group_by", 1),
    ("unique_by", 1),
    ("min_by", 1),
    ("max_by", 1),
    ("getpath", 1),
    ("del", 1),
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

/// True when `expr` parses and its cost is bounded by its form (see the module header).
pub fn is_bounded(expr: &str) -> bool {
    let Some(term) = jaq_core::load::parse(expr, |p| p.term()) else {
        return false;
    };
    let mut walk = Walk { muls: 0 };
    walk.term(&term) && walk.muls <= 1
}

struct Walk {
    /// `*` operators seen (each must have a number literal operand).
    muls: usize,
}

impl Walk {
    fn all<'a>(&mut self, terms: impl IntoIterator<Item = &'a Term<&'a str>>) -> bool {
        terms.into_iter().all(|t| self.term(t))
    }

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
            Term::Call(name, args) => BOUNDED_CALLS.contains(&(*name, args.len())) && self.all(args.iter()),
            Term::Path(base, path) => {
                self.term(base)
                    && path.0.iter().all(|(part, _)| match part {
                        Part::Index(i) => self.term(i),
                        Part::Range(from, to) => {
                            from.as_ref().is_none_or(|t| self.term(t)) && to.as_ref().is_none_or(|t| self.term(t))
                        }
                    })
            }
            Term::BinOp(l, op, r) => {
                let ok = match op {
                    BinaryOp::Pipe(pattern) => pattern.as_ref().is_none_or(|p| self.pattern(p)),
                    BinaryOp::Math(Math::Mul) | BinaryOp::UpdateMath(Math::Mul) => {
                        self.muls += 1;
                        matches!(**l, Term::Num(_)) || matches!(**r, Term::Num(_))
                    }
                    _ => true,
                };
                ok && self.term(l) && self.term(r)
            }
        }
    }

    fn pattern(&mut self, p: &Pattern<&str>) -> bool {
        match p {
            Pattern::Var(_) => true,
            Pattern::Arr(ps) => ps.iter().all(|p| self.pattern(p)),
            Pattern::Obj(entries) => entries.iter().all(|(k, p)| self.term(k) && self.pattern(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_bounded;
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

    #[test]
    fn anything_the_data_can_drive_without_bound_goes_to_the_budget() {
        for expr in [
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
            ".name * .amount",
            "(.name * 1000) * 1000",
            ".a * 10 | . * 10",
            ".x | fromjson",
            "input",
            "env",
            "map(def h: h; h)",
            ".[] as [$a] | range($a)",
            "\"\\(range(10))\"",
            "{(range(3) | tostring): 1}",
            ".[range(1e9)]",
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
            ".line_detail.dpd * 86400",
            "[.a, .b] | map(select(. != null)) | join(\",\")",
            "(.record.bank_date // .record.date) | local_date",
            "{a: .b, \"c\": [.d[0:2][]?]}",
            ".x as {a: $a} | $a + 1",
            "try (.a | tonumber) catch null",
            "\"loan \\(.id)\" | ascii_downcase | gsub(\"-\"; \"\")",
            "-.amount | floor",
        ] {
            assert!(is_bounded(expr), "{expr}");
        }
    }
}
