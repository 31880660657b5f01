//! jaq underneath the mapping: compiling an expression with the prelude (and without what a
//! mapping may not reach: the environment, the process's input), evaluating one field, and
//! converting between `serde_json` and jaq values.

use std::fmt;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

type JqFilter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// Helper functions every expression may call. Kept small and documented in README ("Mapping").
pub(super) const PRELUDE: &str = r#"
def local_date: if . == null then error("local_date of null: the field is missing") else (. + $tz_offset_secs) | floor | strftime("%Y-%m-%d") end;
def mobile10: if . == null then null else tostring | gsub("[ ()-]"; "") | ltrimstr("+91")
  | if length == 12 and startswith("91") then .[2:] elif length == 11 and startswith("0") then .[1:] else . end end;
def dpd_bracket: if . == null then null elif . <= 0 then "0" elif . <= 30 then "1-30" elif . <= 60 then "31-60"
  elif . <= 90 then "61-90" elif . <= 120 then "91-120" elif . <= 180 then "121-180" else "180+" end;
"#;

/// Names of the global variables every expression sees (values given per evaluation).
const GLOBAL_VARS: [&str; 1] = ["$tz_offset_secs"];

/// One compiled field.
pub struct Field {
    pub key: String,
    pub expr: String,
    pub(super) filter: JqFilter,
    /// Bounded by its form ([`super::bounded`]): evaluated inline, without the budget's hop.
    pub(super) bounded: bool,
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}", self.key, self.expr)
    }
}

/// Why a field could not be mapped for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingError {
    pub field: String,
    pub expr: String,
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mapping of `{}` (expression `{}`) failed: {}",
            self.field, self.expr, self.message
        )
    }
}

impl std::error::Error for MappingError {}

/// Native filters a mapping may not call.
const WALLED_OFF: &[&str] = &["env", "input", "inputs", "input_filename"];

/// Compiles one expression, with the prelude, into a filter. The error text names what jaq found.
pub fn compile(expr: &str) -> Result<JqFilterHandle, String> {
    let code = format!("{PRELUDE}\n{expr}");
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    // A mapping sees its input document and nothing else: not the process environment (where the
    // tokens are), not the process's input. (`halt` is only an error value to the library.)
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|f| !WALLED_OFF.contains(&f.0));
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: code.as_str(),
                path: (),
            },
        )
        .map_err(|errs| describe_load_errors(&errs))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(GLOBAL_VARS)
        .compile(modules)
        .map_err(|errs| {
            errs.into_iter()
                .flat_map(|(_, es)| es)
                .map(|(name, undefined)| format!("undefined {} `{}`", undefined.as_str(), name))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    Ok(JqFilterHandle(filter))
}

/// A compiled filter, opaque outside this module.
pub struct JqFilterHandle(pub(super) JqFilter);

fn describe_load_errors<P>(errs: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_, e) in errs {
        match e {
            Error::Io(items) => out.extend(items.iter().map(|(p, m)| format!("cannot load {p}: {m}"))),
            Error::Lex(items) => out.extend(
                items
                    .iter()
                    .map(|(expect, at)| format!("expected {} at `{}`", expect.as_str(), snippet(at))),
            ),
            Error::Parse(items) => out.extend(
                items
                    .iter()
                    .map(|(expect, at)| format!("expected {} at `{}`", expect.as_str(), snippet(at))),
            ),
        }
    }
    if out.is_empty() {
        "syntax error".into()
    } else {
        out.join("; ")
    }
}

fn snippet(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        return "end of expression".into();
    }
    s.chars().take(24).collect()
}

/// Values for the global variables of the prelude.
#[derive(Debug, Clone, Copy)]
pub struct EvalEnv {
    /// Offset of the configured time zone from UTC, at "now", in seconds.
    pub tz_offset_secs: i32,
}

pub(super) fn eval_one(field: &Field, input: Val, env: &EvalEnv) -> Result<Option<Value>, MappingError> {
    let err = |message: String| MappingError {
        field: field.key.clone(),
        expr: field.expr.clone(),
        message,
    };
    let vars = Vars::new([Val::from(env.tz_offset_secs as isize)]);
    let ctx = Ctx::<data::JustLut<Val>>::new(&field.filter.lut, vars);
    let mut outs = field.filter.id.run((ctx, input)).map(unwrap_valr);
    let first = match outs.next() {
        None => return Ok(None),
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(err(e.to_string())),
    };
    if outs.next().is_some() {
        return Err(err("expression yields more than one value".into()));
    }
    let v = from_val(&first).map_err(|e| err(format!("result is not JSON: {e}")))?;
    Ok(if v.is_null() { None } else { Some(v) })
}

/// An input document in jaq's form, converted once for all the fields (and field sets) that read
/// it; cloning it for each field shares the tree.
pub struct Input(pub(super) Val);

impl Input {
    pub fn new(v: &Value) -> Self {
        Self(to_val(v))
    }

    /// The object of these members, as [`Self::new`] of it would give (keys in sorted order, as
    /// serde_json keeps them), without building the JSON object first.
    pub fn object<'a>(members: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let mut members: Vec<_> = members.into_iter().collect();
        members.sort_by_key(|(k, _)| *k);
        let mut out = jaq_json::Map::default();
        for (k, v) in members {
            out.insert(Val::from(k.to_string()), to_val(v));
        }
        Self(Val::obj(out))
    }
}

/// The same value jaq's own JSON reader would make of `v`'s text, without the text: integers as
/// integers (big ones as big integers), other numbers as decimal strings, keys in order.
fn to_val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            let text = n.as_str();
            let integral = !text.contains(['.', 'e', 'E']);
            Val::Num(
                integral
                    .then(|| jaq_json::Num::from_str_radix(text, 10))
                    .flatten()
                    .unwrap_or_else(|| jaq_json::Num::Dec(text.to_string().into())),
            )
        }
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(m) => {
            let mut out = jaq_json::Map::default();
            for (k, v) in m {
                out.insert(Val::from(k.clone()), to_val(v));
            }
            Val::obj(out)
        }
    }
}

fn from_val(v: &Val) -> Result<Value, serde_json::Error> {
    serde_json::from_str(&v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::FieldSet;
    use serde_json::json;
    use std::collections::BTreeMap;

    const ENV: EvalEnv = EvalEnv { tz_offset_secs: 19800 };

    fn eval(expr: &str, input: Value) -> Result<Option<Value>, MappingError> {
        let f = FieldSet::build(&[("x", expr)], &BTreeMap::new()).unwrap();
        f.eval(&input, &ENV).map(|m| m.get("x").cloned())
    }

    /// The direct conversion must give jaq exactly what its own reader gives for the JSON text
    /// (it replaced a text round trip per loan).
    #[test]
    #[cfg(feature = "sandbox")]
    fn input_conversion_matches_jaqs_reader() {
        let programs: Value = serde_json::from_str(crate::sandbox::seed::PROGRAMS_EXAMPLE).unwrap();
        let odd: Value = serde_json::from_str(
            r#"{"z": 1, "a": [-5, 0, 12345678901234567890123, 1.50, -0.001, 1e5, 2E-3, 9223372036854775807],
                "s": "Śrī \"q\" \u0000", "n": null, "t": true, "f": false, "e": {}, "l": []}"#,
        )
        .unwrap();
        for v in [programs.clone(), odd.clone()] {
            let text = serde_json::to_vec(&v).unwrap();
            let by_reader = jaq_json::read::parse_single(&text).unwrap();
            assert_eq!(to_val(&v), by_reader, "{v}");
            assert_eq!(to_val(&v).to_string(), by_reader.to_string());
        }
        let whole = json!({"odd": odd, "programs": programs, "n": 7});
        let parts = Input::object([
            ("programs", &whole["programs"]),
            ("n", &whole["n"]),
            ("odd", &whole["odd"]),
        ]);
        assert_eq!(parts.0.to_string(), Input::new(&whole).0.to_string());
    }

    #[test]
    fn decimal_literals_pass_through_exactly() {
        let v: Value = serde_json::from_str(r#"{"a": 100.2347}"#).unwrap();
        assert_eq!(eval(".a", v).unwrap().unwrap().to_string(), "100.2347");
    }

    #[test]
    fn null_is_omitted_and_errors_name_the_field() {
        assert_eq!(eval(".missing", json!({})).unwrap(), None);
        let e = eval(".a | tonumber", json!({"a": "x"})).unwrap_err();
        assert_eq!(e.field, "x");
        assert_eq!(e.expr, ".a | tonumber");
    }

    #[test]
    fn more_than_one_value_is_an_error() {
        assert!(eval(".[]", json!([1, 2])).is_err());
    }

    /// Regression (issue 11): a mapping could read the environment
    /// (`env.CCSYNC_CREDGENICS__AUTH_TOKEN`) and send the token to Credgenics.
    #[test]
    fn a_mapping_cannot_read_the_environment_or_the_process_input() {
        for expr in ["env.HOME", "$ENV.HOME", "env | keys", "input", "[inputs]"] {
            let e = compile(expr).err().unwrap_or_else(|| panic!("`{expr}` compiled"));
            assert!(e.contains("undefined"), "{expr}: {e}");
        }
    }

    #[test]
    fn compile_errors_are_reported() {
        assert!(compile(".a |").is_err());
        let e = compile("nosuchfn(1)").err().unwrap();
        assert!(e.contains("nosuchfn"), "{e}");
    }

    #[test]
    fn prelude_helpers() {
        // 2024-05-23 08:09:19 UTC is 13:39 IST, same date
        assert_eq!(
            eval(". | local_date", json!(1716451759.041)).unwrap(),
            Some(json!("2024-05-23"))
        );
        // 20:00 UTC is the next day in IST
        assert_eq!(
            eval("local_date", json!(1716494400)).unwrap(),
            Some(json!("2024-05-24"))
        );
        assert_eq!(
            eval("mobile10", json!("+91 98052 65926")).unwrap(),
            Some(json!("9805265926"))
        );
        assert_eq!(
            eval("mobile10", json!("09805265926")).unwrap(),
            Some(json!("9805265926"))
        );
        assert_eq!(
            eval("mobile10", json!("919805265926")).unwrap(),
            Some(json!("9805265926"))
        );
        assert_eq!(eval("dpd_bracket", json!(95)).unwrap(), Some(json!("91-120")));
        assert_eq!(eval("dpd_bracket", json!(400)).unwrap(), Some(json!("180+")));
    }
}
