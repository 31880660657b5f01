//! A line's loan mapped: the input document, the Upload Loan payload (mapped, rounded), its hash,
//! and the overdue predicate.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::context::Context;
use crate::mapping::EvalEnv;
use crate::partners::credgenics::round_amounts;
use crate::partners::crego::LineItem;

use super::decide::Line;

/// The numbers [`decide`] reads from a line item.
pub fn line_of(item: &LineItem) -> Line {
    Line {
        dpd: item.dpd,
        due_amount: item.due_amount,
        total_outstanding: item.total_outstanding,
    }
}

/// The documented rules of an Upload Loan payload, as `decide` asks them.
pub(super) fn preflight(loan_id: &str, payload: &Value) -> Option<String> {
    crate::partners::credgenics::preflight(crate::partners::credgenics::rules::check_upload(loan_id, payload))
}

/// Whether a line is overdue (design §1A), for the flow and for `preview`: [`Line::is_overdue`].
pub fn is_overdue(ctx: &Context, item: &LineItem) -> bool {
    line_of(item).is_overdue(ctx.config.sync.min_dpd)
}

/// The Upload Loan payload: loan fields plus one `defaults[]` entry, amounts rounded.
pub(super) fn map_loan(
    ctx: &Context,
    lead: &Value,
    program: &Value,
    item: &LineItem,
    month: &str,
) -> Result<Value, String> {
    // Converted straight from the parts: copying them into one JSON document first cost more
    // than the mapping itself (BENCHMARKS.md).
    let input = with_input_members(ctx, lead, program, item, month, |m| crate::mapping::Input::object(m));
    map_loan_prepared(
        &ctx.config,
        EvalEnv {
            tz_offset_secs: ctx.clock.utc_offset_secs(),
        },
        &input,
        month,
    )
}

/// The members of the loan mapping's input document, in one place for the daemon's path and for
/// `loan_input` (preview, `mapping test` fixtures).
pub(super) fn with_input_members<R>(
    ctx: &Context,
    lead: &Value,
    program: &Value,
    item: &LineItem,
    month: &str,
    f: impl FnOnce([(&str, &Value); 7]) -> R,
) -> R {
    let today = ctx.clock.today();
    let today_epoch = today
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0);
    let (month, today) = (json!(month), json!(today.to_string()));
    let (today_epoch, min_dpd) = (json!(today_epoch), json!(ctx.config.sync.min_dpd));
    f([
        ("lead", lead),
        ("program", program),
        ("line_detail", &item.raw),
        ("allocation_month", &month),
        ("today", &today),
        ("today_epoch", &today_epoch),
        ("min_dpd", &min_dpd),
    ])
}

/// The input document of the loan mapping.
pub fn loan_input(ctx: &Context, lead: &Value, program: &Value, item: &LineItem, month: &str) -> Value {
    with_input_members(ctx, lead, program, item, month, |members| {
        Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    })
}

/// The Upload Loan payload of one input document (also what `mapping test` runs).
pub fn map_loan_input(config: &crate::config::Config, env: EvalEnv, input: &Value) -> Result<Value, String> {
    let month = input["allocation_month"].as_str().unwrap_or_default();
    map_loan_prepared(config, env, &crate::mapping::Input::new(input), month)
}

pub(super) fn map_loan_prepared(
    config: &crate::config::Config,
    env: EvalEnv,
    prepared: &crate::mapping::Input,
    month: &str,
) -> Result<Value, String> {
    let (mut loan, default) = config
        .mapping
        .loan
        .eval_both(&config.mapping.default, prepared, &env)
        .map_err(|e| e.to_string())?;
    match loan.get("loan_id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Number(n)) => {
            let s = n.to_string();
            loan.insert("loan_id".into(), Value::String(s));
        }
        _ => return Err("mapping of `loan_id` yields no id (expected a non-empty string)".into()),
    }
    if default.get("allocation_month").and_then(Value::as_str) != Some(month) {
        return Err(format!(
            "mapping of `defaults.allocation_month` must yield the current month `{month}`"
        ));
    }
    loan.insert("defaults".into(), Value::Array(vec![Value::Object(default)]));
    let mut payload = Value::Object(loan);
    round_amounts(&mut payload, config.credgenics.amount_decimals)?;
    Ok(payload)
}

/// SHA-256 of the canonical JSON (serde_json maps are key-sorted).
pub fn payload_hash(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}
