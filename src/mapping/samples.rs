//! Built-in sample inputs — the documented example shapes kept in `fixtures/mapping/` — on which
//! `check-config` evaluates every configured expression under the same budget as the daemon, so
//! a mapping that never ends is refused before go-live rather than found in production.

use serde_json::Value;

use super::FieldSet;
use super::jq::{EvalEnv, MappingError};

const LOAN_INPUT: &str = include_str!("../../fixtures/mapping/loan_input.json");
const PAYMENT_INPUT: &str = include_str!("../../fixtures/mapping/payment_input.json");
const RECORD_INPUT: &str = include_str!("../../fixtures/mapping/record_input.json");

/// One expression that failed on its sample.
#[derive(Debug)]
pub struct Finding {
    /// `mapping.<section>.<key>`, as the config names it.
    pub key: String,
    pub error: MappingError,
    /// It overran the budget (the config is refused); otherwise it errored on the sample, which
    /// real data may not (a warning).
    pub overran: bool,
}

/// Evaluates the four field sets on their samples, calling `before` with each field's config key
/// first (a crash — a stack overflow cannot be caught — is then pinned on the last key named);
/// every failure found.
pub fn check(
    loan: &FieldSet,
    default: &FieldSet,
    payment: &FieldSet,
    record: &FieldSet,
    env: &EvalEnv,
    mut before: impl FnMut(&str),
) -> Vec<Finding> {
    let parse = |text: &str| serde_json::from_str::<Value>(text).expect("built-in sample is JSON");
    let (loan_in, payment_in, record_in) = (parse(LOAN_INPUT), parse(PAYMENT_INPUT), parse(RECORD_INPUT));
    [
        ("loan", loan, &loan_in),
        ("default", default, &loan_in),
        ("payment", payment, &payment_in),
        ("record", record, &record_in),
    ]
    .into_iter()
    .flat_map(|(section, set, input)| {
        set.check_each(input, env, |key| before(&format!("mapping.{section}.{key}")))
            .into_iter()
            .map(move |(error, overran)| Finding {
                key: format!("mapping.{section}.{}", error.field),
                error,
                overran,
            })
            .collect::<Vec<_>>()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    const ENV: EvalEnv = EvalEnv { tz_offset_secs: 19800 };

    fn set(defaults: &[(&str, &str)], overrides: &[(&str, &str)]) -> FieldSet {
        let o: BTreeMap<String, String> = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        FieldSet::build(defaults, &o)
            .unwrap()
            .with_budget(Duration::from_millis(200))
    }

    #[test]
    fn the_built_in_mapping_passes_on_its_samples() {
        let found = check(
            &set(super::super::DEFAULT_LOAN, &[]),
            &set(super::super::DEFAULT_DEFAULT, &[]),
            &set(super::super::DEFAULT_PAYMENT, &[]),
            &set(super::super::DEFAULT_RECORD, &[]),
            &ENV,
            |_| {},
        );
        assert!(found.is_empty(), "{found:?}");
    }

    /// Regression (issue 11): `def f: f; f` passed check-config and then froze the daemon.
    #[test]
    fn a_mapping_that_never_ends_is_found_and_named_and_the_next_field_still_checked() {
        let found = check(
            &set(
                super::super::DEFAULT_LOAN,
                &[("loan_id", "def f: f; f"), ("tags", ".nope | tonumber")],
            ),
            &FieldSet::default(),
            &FieldSet::default(),
            &FieldSet::default(),
            &ENV,
            |_| {},
        );
        let runaway: Vec<_> = found.iter().filter(|f| f.overran).map(|f| f.key.as_str()).collect();
        assert_eq!(runaway, ["mapping.loan.loan_id"], "{found:?}");
        assert!(
            found.iter().any(|f| !f.overran && f.key == "mapping.loan.tags"),
            "{found:?}"
        );
    }
}
