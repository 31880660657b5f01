//! The link expressions (`[mapping.link]`, design §5): which fields of a Crego line-details item
//! name its lead and borrower-program, and which field of an LMS record names the
//! borrower-program it was booked on. The Crego documents give `line_detail` neither, so these
//! are a tenant's to say; the defaults are the flat ids the sandbox and our first guess use.
//!
//! A link must yield one string (a number is taken as its decimal text, for tenants with integer
//! keys); anything else is a reason naming the config key, so a line or record that cannot be
//! linked is skipped or set aside with the key that failed, never linked to the wrong loan.

use std::collections::BTreeMap;

use serde_json::Value;

use super::FieldSet;
use super::jq::{EvalEnv, Input};

/// `[mapping.link]` keys that read a line-details item.
pub const DEFAULT_LINE_LINK: &[(&str, &str)] = &[
    ("line_lead_id", ".lead_id"),
    ("line_borrower_program_id", ".borrower_program_id"),
];
/// `[mapping.link]` keys that read an LMS record.
pub const DEFAULT_RECORD_LINK: &[(&str, &str)] = &[("record_borrower_program_id", ".account")];

/// Every `[mapping.link]` key, for the config's check of unknown keys.
pub fn keys() -> impl Iterator<Item = &'static str> {
    DEFAULT_LINE_LINK.iter().chain(DEFAULT_RECORD_LINK).map(|(k, _)| *k)
}

/// The overrides of `all` that belong to the set with `defaults`.
pub fn overrides_for(defaults: &[(&str, &str)], all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| defaults.iter().any(|(d, _)| d == k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The compiled link expressions.
#[derive(Debug, Default)]
pub struct Links {
    pub line: FieldSet,
    pub record: FieldSet,
}

/// Links read ids only: no date helper depends on the time zone there.
const ENV: EvalEnv = EvalEnv { tz_offset_secs: 0 };

impl Links {
    /// `(lead id, borrower-program id)` of a line-details item.
    pub fn line_ids(&self, item: &Value) -> Result<(String, String), String> {
        let out = self
            .line
            .eval_prepared(&Input::new(item), &ENV)
            .map_err(|e| e.to_string())?;
        let get = |k: &str| id_of(out.get(k), k, self.expr(&self.line, k));
        Ok((get("line_lead_id")?, get("line_borrower_program_id")?))
    }

    /// The borrower-program id an LMS record is booked on.
    pub fn record_program(&self, record: &Value) -> Result<String, String> {
        let out = self
            .record
            .eval_prepared(&Input::new(record), &ENV)
            .map_err(|e| e.to_string())?;
        let k = "record_borrower_program_id";
        id_of(out.get(k), k, self.expr(&self.record, k))
    }

    fn expr<'a>(&self, set: &'a FieldSet, key: &str) -> &'a str {
        set.exprs().find(|(k, _)| *k == key).map_or("", |(_, e)| e)
    }
}

fn id_of(v: Option<&Value>, key: &str, expr: &str) -> Result<String, String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        None => Err(format!("mapping.link.{key} (`{expr}`) yields nothing")),
        Some(other) => Err(format!("mapping.link.{key} (`{expr}`) yields {other}, not an id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn links(overrides: &[(&str, &str)]) -> Links {
        let o: BTreeMap<String, String> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Links {
            line: FieldSet::build(DEFAULT_LINE_LINK, &overrides_for(DEFAULT_LINE_LINK, &o)).unwrap(),
            record: FieldSet::build(DEFAULT_RECORD_LINK, &overrides_for(DEFAULT_RECORD_LINK, &o)).unwrap(),
        }
    }

    #[test]
    fn defaults_read_the_flat_ids_and_a_missing_one_is_named() {
        let l = links(&[]);
        assert_eq!(
            l.line_ids(&json!({"lead_id": "L", "borrower_program_id": "B"}))
                .unwrap(),
            ("L".into(), "B".into())
        );
        let err = l.line_ids(&json!({"lead_id": "L"})).unwrap_err();
        assert!(err.contains("mapping.link.line_borrower_program_id"), "{err}");
        assert_eq!(l.record_program(&json!({"account": "B"})).unwrap(), "B");
        let err = l.record_program(&json!({"account": {"id": "B"}})).unwrap_err();
        assert!(err.contains("not an id"), "{err}");
    }

    #[test]
    fn configured_links_read_expanded_keys_and_numbers() {
        let l = links(&[
            ("line_lead_id", ".lead.id"),
            ("line_borrower_program_id", ".borrower_program.id"),
            ("record_borrower_program_id", ".account.id"),
        ]);
        let item = json!({"lead": {"id": 17}, "borrower_program": {"id": "B"}});
        assert_eq!(l.line_ids(&item).unwrap(), ("17".into(), "B".into()));
        assert_eq!(l.record_program(&json!({"account": {"id": "B"}})).unwrap(), "B");
    }
}
