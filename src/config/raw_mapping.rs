//! The `[mapping]` section as written (see [`super::raw`]): field expressions per section.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::mapping;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    /// Wall time one expression may take for one item before the item is a dead letter.
    #[serde(default = "d_budget_ms")]
    pub budget_ms: u64,
    #[serde(default)]
    pub loan: BTreeMap<String, String>,
    #[serde(default)]
    pub default: BTreeMap<String, String>,
    #[serde(default)]
    pub payment: BTreeMap<String, String>,
    #[serde(default)]
    pub record: BTreeMap<String, String>,
    /// Which fields link a line item to its lead and borrower-program, and a record to its
    /// borrower-program (jq; design §5).
    #[serde(default)]
    pub link: BTreeMap<String, String>,
    /// Credit-line mode: a drawdown read as a transaction (design §8).
    #[serde(default)]
    pub transaction: BTreeMap<String, String>,
}

fn d_budget_ms() -> u64 {
    mapping::budget::DEFAULT_BUDGET.as_millis() as u64
}

impl Default for RawMapping {
    fn default() -> Self {
        Self {
            budget_ms: d_budget_ms(),
            loan: BTreeMap::new(),
            default: BTreeMap::new(),
            payment: BTreeMap::new(),
            record: BTreeMap::new(),
            link: BTreeMap::new(),
            transaction: BTreeMap::new(),
        }
    }
}
