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

/// Which built-in sample a field set is evaluated on.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// The loan / default input document.
    Loan,
    /// The payment input document.
    Payment,
    /// The record input document.
    Record,
    /// A line-details item (the loan sample's `line_detail`), for the line links.
    LineItem,
    /// An LMS record (the payment sample's `record`), for the record link.
    LmsRecord,
}

/// Evaluates each `(section, set, sample)` on its sample, calling `before` with each field's
/// config key first (a crash — a stack overflow cannot be caught — is then pinned on the last key
/// named); every failure found.
pub fn check(sets: &[(&str, &FieldSet, Sample)], env: &EvalEnv, mut before: impl FnMut(&str)) -> Vec<Finding> {
    let parse = |text: &str| serde_json::from_str::<Value>(text).expect("built-in sample is JSON");
    let (loan_in, payment_in, record_in) = (parse(LOAN_INPUT), parse(PAYMENT_INPUT), parse(RECORD_INPUT));
    let input = |sample: Sample| match sample {
        Sample::Loan => &loan_in,
        Sample::Payment => &payment_in,
        Sample::Record => &record_in,
        Sample::LineItem => &loan_in["line_detail"],
        Sample::LmsRecord => &payment_in["record"],
    };
    sets.iter()
        .flat_map(|(section, set, sample)| {
            set.check_each(input(*sample), env, |key| before(&format!("mapping.{section}.{key}")))
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
        use super::super::link::{DEFAULT_LINE_LINK, DEFAULT_RECORD_LINK};
        let found = check(
            &[
                ("loan", &set(super::super::DEFAULT_LOAN, &[]), Sample::Loan),
                ("default", &set(super::super::DEFAULT_DEFAULT, &[]), Sample::Loan),
                ("payment", &set(super::super::DEFAULT_PAYMENT, &[]), Sample::Payment),
                ("record", &set(super::super::DEFAULT_RECORD, &[]), Sample::Record),
                ("link", &set(DEFAULT_LINE_LINK, &[]), Sample::LineItem),
                ("link", &set(DEFAULT_RECORD_LINK, &[]), Sample::LmsRecord),
            ],
            &ENV,
            |_| {},
        );
        assert!(found.is_empty(), "{found:?}");
    }

    /// Regression (issue 11): `def f: f; f` passed check-config and then froze the daemon.
    #[test]
    fn a_mapping_that_never_ends_is_found_and_named_and_the_next_field_still_checked() {
        let loan = set(
            super::super::DEFAULT_LOAN,
            &[("loan_id", "def f: f; f"), ("tags", ".nope | tonumber")],
        );
        let found = check(&[("loan", &loan, Sample::Loan)], &ENV, |_| {});
        let runaway: Vec<_> = found.iter().filter(|f| f.overran).map(|f| f.key.as_str()).collect();
        assert_eq!(runaway, ["mapping.loan.loan_id"], "{found:?}");
        assert!(
            found.iter().any(|f| !f.overran && f.key == "mapping.loan.tags"),
            "{found:?}"
        );
    }
}
