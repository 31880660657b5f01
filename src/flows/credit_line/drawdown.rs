//! A drawdown of a line read as a Credgenics transaction (`[mapping.transaction]`), its upload
//! payload (`[mapping.loan]` + `[mapping.default]` over the line with the drawdown's numbers), and
//! the overdue rule applied to it.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::flows::context::Context;
use crate::mapping::EvalEnv;
use crate::money;

/// The keys of a transaction upload that are not the lending loan's (Upload Transaction example,
/// CG:1322–1323): the loan id becomes the pair of ids.
const LENDING_ONLY: &[&str] = &["loan_id"];

/// One drawdown as `[mapping.transaction]` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawdown {
    pub customer_id: String,
    pub transaction_id: String,
    pub drawdown_id: String,
    pub kind: &'static str,
    pub amount: Decimal,
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub dpd: i64,
    pub opened_at: f64,
    pub updated_at: f64,
    /// The item as listed.
    pub raw: Value,
}

impl Drawdown {
    /// Overdue as a line is (design §1A): `dpd >= sync.min_dpd` and dues left.
    pub fn is_overdue(&self, min_dpd: i64) -> bool {
        self.dpd >= min_dpd && self.due_amount > Decimal::ZERO
    }
}

fn env(ctx: &Context) -> EvalEnv {
    EvalEnv {
        tz_offset_secs: ctx.clock.utc_offset_secs(),
    }
}

/// Reads one listed drawdown through `[mapping.transaction]`; a reason naming the key otherwise.
pub fn read(ctx: &Context, lead: &Value, program: &Value, kind: &'static str, raw: Value) -> Result<Drawdown, String> {
    let input = json!({"lead": lead, "program": program, "drawdown": raw, "kind": kind});
    let m = ctx
        .config
        .mapping
        .transaction
        .eval(&input, &env(ctx))
        .map_err(|e| e.to_string())?;
    let text = |k: &str| -> Result<String, String> {
        match m.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            other => Err(format!(
                "mapping.transaction.{k} yields {} (expected a non-empty string)",
                other.cloned().unwrap_or(Value::Null)
            )),
        }
    };
    let amount = |k: &str| -> Result<Decimal, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Decimal::ZERO),
            Some(v) => {
                money::from_json(v).ok_or_else(|| format!("mapping.transaction.{k} yields {v} (expected an amount)"))
            }
        }
    };
    let number = |k: &str| -> Result<f64, String> {
        m.get(k).and_then(Value::as_f64).ok_or_else(|| {
            format!(
                "mapping.transaction.{k} yields {} (expected epoch seconds)",
                m.get(k).cloned().unwrap_or(Value::Null)
            )
        })
    };
    Ok(Drawdown {
        customer_id: text("client_customer_id")?,
        transaction_id: text("transaction_id")?,
        drawdown_id: text("drawdown_id")?,
        kind,
        amount: amount("amount")?,
        due_amount: amount("due_amount")?,
        total_outstanding: amount("total_outstanding")?,
        dpd: m
            .get("dpd")
            .and_then(Value::as_f64)
            .map(|d| d.floor() as i64)
            .unwrap_or(0),
        opened_at: number("opened_at")?,
        updated_at: number("updated_at")?,
        raw: input["drawdown"].clone(),
    })
}

/// A drawdown's identity and numbers only (flow C's read of its dues at send time), through the
/// same `[mapping.transaction]` keys: `(drawdown_id, due_amount, total_outstanding, updated_at)`.
pub fn numbers(ctx: &Context, kind: &'static str, raw: &Value) -> Option<(String, Decimal, Decimal, f64)> {
    let input = json!({"lead": null, "program": null, "drawdown": raw, "kind": kind});
    let m = ctx.config.mapping.transaction.eval(&input, &env(ctx)).ok()?;
    let id = match m.get("drawdown_id")? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let due = money::from_json(m.get("due_amount")?)?;
    let outstanding = m.get("total_outstanding").and_then(money::from_json).unwrap_or(due);
    Some((
        id,
        due,
        outstanding,
        m.get("updated_at").and_then(Value::as_f64).unwrap_or(0.0),
    ))
}

/// The line as the loan mapping reads it, with this drawdown's numbers in place of the line's:
/// the claim of a transaction is its drawdown's dues, not the line's.
fn line_of_drawdown(program: &Value, d: &Drawdown) -> Value {
    let mut ld = program["line_detail"].as_object().cloned().unwrap_or_default();
    let n = money::to_json;
    for (k, v) in [
        ("due_amount", n(d.due_amount)),
        ("total_outstanding", n(d.total_outstanding)),
        ("total_disbursed_amount", n(d.amount)),
        ("principal_outstanding", n(d.total_outstanding)),
        ("total_due_principal", n(d.due_amount)),
        ("total_due_interest", n(Decimal::ZERO)),
        ("total_due_penal", n(Decimal::ZERO)),
        ("dpd", json!(d.dpd)),
        ("updated_at", json!(d.updated_at)),
    ] {
        ld.insert(k.into(), v);
    }
    Value::Object(ld)
}

/// The Upload Transaction payload of a drawdown for `month`: the lending upload's keys without
/// `loan_id`, plus `client_customer_id` and `transaction_id`, checked by the documented rules.
pub fn map_upload(ctx: &Context, lead: &Value, program: &Value, d: &Drawdown, month: &str) -> Result<Value, String> {
    let item =
        crate::partners::crego::LineItem::with_links(line_of_drawdown(program, d), String::new(), String::new())?;
    let input = crate::flows::loans::loan_input(ctx, lead, program, &item, month);
    let mut payload = crate::flows::loans::map_loan_input(&ctx.config, env(ctx), &input)?;
    // The documented rules of an upload, read with the transaction id in the loan id's place.
    let mut checked = payload.clone();
    checked["loan_id"] = json!(d.transaction_id);
    if let Some(reason) = crate::partners::credgenics::preflight(crate::partners::credgenics::rules::check_upload(
        &d.transaction_id,
        &checked,
    )) {
        return Err(reason);
    }
    let obj = payload.as_object_mut().expect("an upload payload is an object");
    for k in LENDING_ONLY {
        obj.remove(*k);
    }
    obj.insert("client_customer_id".into(), json!(d.customer_id));
    obj.insert("transaction_id".into(), json!(d.transaction_id));
    Ok(payload)
}

/// Whether Credgenics' customer answer (`output`) has `transaction_id` allocated for `month`. The
/// document's sample names a transaction twice (outer and `data.transaction_id`) and once
/// differently (CG:1060 against CG:1089): either counts.
pub fn customer_has(output: &Value, transaction_id: &str, month: &str) -> bool {
    output["transactions_details"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            (t["transaction_id"].as_str() == Some(transaction_id)
                || t["data"]["transaction_id"].as_str() == Some(transaction_id))
                && t["data"]["defaults"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["allocation_month"].as_str() == Some(month))
        })
}

/// The loan-level keys of `new` that differ from `old` (the claim is a snapshot and the two ids
/// are the path's): what an Update Transaction sends.
pub fn patch_of(old: &Value, new: &Value) -> Map<String, Value> {
    let mut patch = crate::flows::loans::changed_keys(old, new);
    patch.remove("client_customer_id");
    patch.remove("transaction_id");
    patch
}
