//! Field mapping: every outgoing field is a jq expression (compiled once with jaq) evaluated over an
//! input document. Owns the built-in default expressions, the jq prelude of helper functions, and
//! the conversion between `serde_json` values and jaq values.
//!
//! A field whose expression yields `null` (or nothing) is omitted from the payload; an expression
//! that errors or yields more than one value fails the whole payload for that one item, naming the
//! field and its expression, so one odd loan never stops a run.

mod bounded;
pub mod budget;
mod defaults;
pub mod samples;

pub mod jq;
pub mod link;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub use defaults::{DEFAULT_DEFAULT, DEFAULT_LOAN, DEFAULT_PAYMENT, DEFAULT_RECORD, DEFAULT_TRANSACTION};
pub use jq::{EvalEnv, Field, Input, JqFilterHandle, MappingError, compile};

/// The mapped fields of one set.
pub type Payload = Map<String, Value>;

/// The fields of one payload kind, in key order, and the wall time each may take per item.
#[derive(Debug)]
pub struct FieldSet {
    fields: Arc<[Field]>,
    budget: Duration,
}

impl Default for FieldSet {
    fn default() -> Self {
        Self {
            fields: Arc::from(Vec::new()),
            budget: budget::DEFAULT_BUDGET,
        }
    }
}

impl FieldSet {
    /// Compiles a set from the built-in defaults overlaid by the user's overrides. Returns every
    /// field that failed to compile as (key, error).
    pub fn build(
        defaults: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut exprs: BTreeMap<String, String> =
            defaults.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (k, v) in overrides {
            exprs.insert(k.clone(), v.clone());
        }
        let mut fields = Vec::new();
        let mut errors = Vec::new();
        for (key, expr) in exprs {
            match compile(&expr) {
                Ok(JqFilterHandle(filter)) => {
                    let bounded = bounded::is_bounded(&expr);
                    fields.push(Field {
                        key,
                        expr,
                        filter,
                        bounded,
                    })
                }
                Err(e) => errors.push((key, e)),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                fields: fields.into(),
                budget: budget::DEFAULT_BUDGET,
            })
        } else {
            Err(errors)
        }
    }

    /// The same set with `budget` of wall time per expression (`mapping.budget_ms`).
    pub fn with_budget(self, budget: Duration) -> Self {
        Self { budget, ..self }
    }

    /// `(key, expression)` of every field, in key order.
    pub fn exprs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|f| (f.key.as_str(), f.expr.as_str()))
    }

    /// Evaluates every field over `input`, each within the budget. Fields yielding null are omitted.
    pub fn eval(&self, input: &Value, env: &EvalEnv) -> Result<Map<String, Value>, MappingError> {
        self.eval_prepared(&Input::new(input), env)
    }

    /// [`Self::eval`] on an input already converted, for field sets that share one input.
    pub fn eval_prepared(&self, input: &Input, env: &EvalEnv) -> Result<Map<String, Value>, MappingError> {
        budget::eval_fields(&self.fields, 0..self.fields.len(), input.0.clone(), env, self.budget).map_err(|f| f.error)
    }

    /// [`Self::eval_prepared`] of this set and `other` over one input, in one job (one hop to a
    /// worker thread per item instead of two); each set keeps its own budget per expression.
    pub fn eval_both(
        &self,
        other: &FieldSet,
        input: &Input,
        env: &EvalEnv,
    ) -> Result<(Payload, Payload), MappingError> {
        let segments = vec![
            (self.fields.clone(), 0..self.fields.len()),
            (other.fields.clone(), 0..other.fields.len()),
        ];
        let budget = self.budget.max(other.budget);
        let mut maps = budget::eval_segments(segments, input.0.clone(), env, budget).map_err(|f| f.error)?;
        let second = maps.pop().unwrap_or_default();
        let first = maps.pop().unwrap_or_default();
        Ok((first, second))
    }

    /// Evaluates every field on its own over `input` (a failing field does not hide the next),
    /// calling `before` with each key first: each failure, and whether it overran the budget.
    pub fn check_each(&self, input: &Value, env: &EvalEnv, mut before: impl FnMut(&str)) -> Vec<(MappingError, bool)> {
        let input = Input::new(input);
        let mut found = Vec::new();
        for (i, field) in self.fields.iter().enumerate() {
            before(&field.key);
            if let Err(f) = budget::eval_fields(&self.fields, i..i + 1, input.0.clone(), env, self.budget) {
                found.push((f.error, f.overran));
            }
        }
        found
    }
}
