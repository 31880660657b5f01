//! `preview --lead ID` / `preview --record ID`: fetch the live source data, map it, and show the input
//! document, the payload(s), the preflight verdict per field and the difference from what was
//! last sent — writing nothing anywhere. Personal data is masked unless `--reveal`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::clock;
use crate::flows::Context;
use crate::flows::loans::{changed_keys, frozen_claim_changes, is_overdue, loan_input, map_loan_input};
use crate::partners::credgenics::{flatten_errors, rules};
use crate::partners::crego::LineItem;

fn shown(ctx: &Context, v: &Value) -> String {
    let v = if ctx.reveal {
        v.clone()
    } else {
        crate::telemetry::mask_payload(v)
    };
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Every field of `payload` (nested ones as `list.i.key`) with `ok` or why it fails.
fn verdicts(payload: &Value, errors: &serde_json::Map<String, Value>) -> String {
    let failing = flatten_errors(errors);
    let mut fields = Vec::new();
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                walk(
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    v,
                    out,
                )
            }),
            Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(&format!("{prefix}.{i}"), v, out)),
            _ => out.push(prefix.to_string()),
        }
    }
    walk("", payload, &mut fields);
    fields.extend(
        failing
            .keys()
            .filter(|k| !fields.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let width = fields.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for f in fields {
        let verdict = failing
            .get(&f)
            .map(|m| format!("FAIL: {}", crate::telemetry::mask_digits(m)))
            .unwrap_or("ok".into());
        let _ = writeln!(out, "  {f:<width$}  {verdict}");
    }
    out
}

/// The preview of one lead's borrower-programs, as text.
pub async fn lead(ctx: &Context, lead_id: &str) -> Result<String, String> {
    let lead = ctx.crego.lead(lead_id).await.map_err(|e| e.to_string())?;
    let programs = ctx.crego.programs(lead_id).await.map_err(|e| e.to_string())?;
    let month = clock::allocation_month(ctx.clock.today());
    let mut out = String::new();
    for program in programs.iter().filter(|p| p["line_detail"].is_object()) {
        let bp = program["id"].as_str().unwrap_or_default();
        let mut line = program["line_detail"].clone();
        line["lead_id"] = json!(lead_id);
        line["borrower_program_id"] = json!(bp);
        let item = LineItem::with_links(line, lead_id.to_string(), bp.to_string())?;
        let overdue = is_overdue(ctx, &item);
        let input = loan_input(ctx, &lead, program, &item, &month);
        let env = crate::mapping::EvalEnv {
            tz_offset_secs: ctx.clock.utc_offset_secs(),
        };
        let _ = writeln!(
            out,
            "== borrower-program {bp} (dpd {}, due {}: {})",
            item.dpd,
            item.due_amount,
            if overdue { "overdue" } else { "not overdue" }
        );
        let _ = writeln!(out, "input document:\n{}", shown(ctx, &input));
        let payload = match map_loan_input(&ctx.config, env, &input) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(out, "mapping FAILED: {e}\n");
                continue;
            }
        };
        let loan_id = payload["loan_id"].as_str().unwrap_or_default().to_string();
        let _ = writeln!(out, "payload (Upload Loan, /loan/{loan_id}):\n{}", shown(ctx, &payload));
        let errors = rules::check_upload(&loan_id, &payload);
        let _ = writeln!(
            out,
            "preflight: {}\n{}",
            if errors.is_empty() { "passes" } else { "FAILS" },
            verdicts(&payload, &errors)
        );
        let last = ctx.store.loan_by_program(bp).map_err(|e| e.to_string())?;
        match last.as_ref().and_then(|l| l.payload.as_ref().map(|p| (l, p))) {
            None => {
                let _ = writeln!(
                    out,
                    "last sent: never{}",
                    if overdue { " — the next run uploads it" } else { "" }
                );
            }
            Some((l, sent)) => {
                let same_month = l.allocation_month.as_deref() == Some(month.as_str());
                let patch = changed_keys(sent, &payload);
                let frozen = frozen_claim_changes(sent, &payload);
                let _ = writeln!(
                    out,
                    "last sent: allocation {} (state {})",
                    l.allocation_month.as_deref().unwrap_or("-"),
                    l.state.as_str()
                );
                if !overdue {
                    let _ = writeln!(
                        out,
                        "  no longer overdue: the next run marks it cured (closed at zero outstanding), no call"
                    );
                } else if !same_month {
                    let _ = writeln!(out, "  a new month: the next run uploads a new allocation {month}");
                } else if patch.is_empty() {
                    let _ = writeln!(out, "  unchanged: no call");
                } else {
                    let _ = writeln!(
                        out,
                        "  changed keys (the next run PATCHes them):\n{}",
                        shown(ctx, &Value::Object(patch))
                    );
                }
                if overdue && same_month && !frozen.is_empty() {
                    let _ = writeln!(
                        out,
                        "  frozen for {month} (the claim is a snapshot; repayments go as payments): {}",
                        frozen.join(", ")
                    );
                }
            }
        }
        out.push('\n');
    }
    if out.is_empty() {
        out = format!("lead {lead_id} has no borrower-program with a line detail\n");
    }
    Ok(out)
}

/// `preview --loan`: the lead of a placed loan, by the loan id logs and Credgenics use.
pub async fn loan(ctx: &Context, loan_id: &str) -> Result<String, String> {
    let Some(row) = ctx.store.loan(loan_id).map_err(|e| e.to_string())? else {
        return Err(format!(
            "loan `{loan_id}` is not in the state: --loan finds loans this daemon placed; \
             give the Crego lead id with --lead instead"
        ));
    };
    let text = lead(ctx, &row.lead_id).await?;
    Ok(format!(
        "loan {loan_id}: borrower-program {} of lead {}\n{text}",
        row.borrower_program_id, row.lead_id
    ))
}

/// The preview of one LMS record (flow C): whether it travels, its payment payload, the
/// preflight verdict and what the ledger already holds for it.
pub async fn record(ctx: &Context, id: &str) -> Result<String, String> {
    let record = ctx.crego.record(id).await.map_err(|e| e.to_string())?;
    let mut out = format!("record:\n{}\n", shown(ctx, &record));
    let mut stats = crate::flows::FlowCStats::default();
    let Some(loan) = crate::flows::repayments::eligible(ctx, &record, &mut stats).map_err(|e| e.to_string())? else {
        let why = if stats.not_eligible > 0 {
            "not a processed repayment"
        } else if stats.unplaced > 0 {
            "its account is not a loan placed by this daemon"
        } else if stats.echoes > 0 {
            "it was written by this daemon (flow B): never sent back"
        } else {
            "dated before the loan was placed (part of the claim)"
        };
        let _ = writeln!(out, "does not travel: {why}");
        return Ok(out);
    };
    let loan_id = loan.loan_id.clone();
    // The status as the line was last read; the daemon decides it again when it sends.
    let closed = loan.due_amount.is_some_and(|d| d.is_zero());
    let month = loan
        .allocation_month
        .clone()
        .or(loan.pending.as_ref().map(|p| p.month.clone()))
        .unwrap_or_default();
    match crate::flows::repayments::map_payment(ctx, &record, &loan, closed, &month) {
        Ok(p) => {
            let _ = writeln!(
                out,
                "payload (PATCH /payments/{loan_id}?allocation_month={month}; final_status decided again when sent):\n{}",
                shown(ctx, &p)
            );
            let errors = rules::check_payment(&p);
            let _ = writeln!(
                out,
                "preflight: {}\n{}",
                if errors.is_empty() { "passes" } else { "FAILS" },
                verdicts(&p, &errors)
            );
        }
        Err(reason) => {
            let _ = writeln!(
                out,
                "mapping or preflight FAILED: {}",
                crate::telemetry::mask_digits(&reason)
            );
        }
    }
    match ctx
        .store
        .ledger_by_key(&crate::flows::repayments::repayment_key(id))
        .map_err(|e| e.to_string())?
    {
        Some(r) => {
            let _ = writeln!(
                out,
                "ledger: payment:{} {}{}",
                r.id,
                r.state.as_str(),
                r.dead_reason
                    .map(|d| format!(" ({})", crate::telemetry::mask_digits(&d)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "ledger: not yet — the next run pushes it");
        }
    }
    Ok(out)
}
