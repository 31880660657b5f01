//! Flow C (design §1C): LMS repayments out to Credgenics as payment entries.
//!
//! The change stream is `GET /v1/lms/records/?type=repayment&updated_at__gte=`. A record travels
//! when it is a processed repayment on a placed loan, dated at or after the loan's first placement,
//! and was not written by flow B (no echoes). Each becomes one ledger row keyed by the record id,
//! committed with the page's cursor, then delivered as
//! `PATCH /payments/{loan_id}?allocation_month=<the loan's latest month>`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::deliver::{DeliveryStats, deliver};
use super::{Context, SyncError};
use crate::credgenics::round_amounts;
use crate::mapping::EvalEnv;
use crate::money;
use crate::store::{Direction, LoanRow, NewLedgerRow};

pub const STREAM: &str = "records";

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct FlowCStats {
    /// Records read from the stream.
    pub scanned: u64,
    /// New ledger rows (payments to push).
    pub queued: u64,
    /// Not processed yet, or not a repayment.
    pub not_eligible: u64,
    /// On loans never placed.
    pub unplaced: u64,
    /// Dated before the loan was placed (already part of the claim).
    pub before_placement: u64,
    /// Written by flow B: never sent back.
    pub echoes: u64,
    /// Rows the mapping could not produce (dead letters).
    pub unmapped: u64,
    /// On a loan whose upload is in flight (flow A running meanwhile): read again next run.
    pub held: u64,
    pub delivery: DeliveryStats,
}

/// One run of flow C: read the stream into the ledger, then deliver.
pub async fn run(ctx: &Context, since: Option<f64>, stats: &mut FlowCStats) -> Result<(), SyncError> {
    let flow = ctx.locks.flow_c.lock().await;
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let (from, covers_window) = super::read_start(ctx, STREAM, since)?;
    let read_started = crate::clock::wall_secs();
    let mut blocked_at: Option<f64> = None;
    let mut page = 1u32;
    loop {
        let p = ctx.crego.records_page(from, page).await?;
        stats.scanned += p.results.len() as u64;
        let mut seen = Vec::new();
        let mut candidates: Vec<(Value, LoanRow)> = Vec::new();
        let mut page_max: Option<f64> = None;
        for record in p.results {
            let (Some(id), Some(updated_at)) = (record["id"].as_str(), record["updated_at"].as_f64()) else {
                tracing::error!(event = "record_unreadable", "record without id or updated_at skipped");
                continue;
            };
            page_max = Some(page_max.map_or(updated_at, |m| m.max(updated_at)));
            if since.is_none() && ctx.store.seen(STREAM, id)?.is_some_and(|at| at >= updated_at) {
                seen.push((id.to_string(), updated_at));
                continue;
            }
            let id = id.to_string();
            let held = stats.held;
            match eligible(ctx, &record, stats)? {
                Some(loan) => candidates.push((record, loan)),
                // Its loan is being uploaded: whether and where it travels is known once that
                // settles, so the stream must not move past it.
                None if stats.held > held => {
                    blocked_at = Some(blocked_at.map_or(updated_at, |b: f64| b.min(updated_at)));
                    continue;
                }
                None => {}
            }
            seen.push((id, updated_at));
        }
        let page_max = match (page_max, blocked_at) {
            (Some(m), Some(b)) => Some(m.min(b)),
            (m, b) => m.or(b),
        };
        let rows = build_rows(ctx, candidates, stats)?;
        if ctx.dry_run {
            for r in &rows {
                if let Some(p) = &r.payload {
                    let month = r.allocation_month.as_deref().unwrap_or_default();
                    ctx.print_dry_run("PATCH", &format!("/payments/{}?allocation_month={month}", r.loan_id), p);
                }
            }
        } else {
            stats.queued += ctx
                .store
                .commit_page_with_rows(STREAM, page_max, &seen, &rows, overlap, ctx.now_secs())?
                as u64;
        }
        ctx.progressed(|| format!("C: {} records read, {} payments queued", stats.scanned, stats.queued));
        if !p.has_next {
            if !ctx.dry_run && blocked_at.is_none() && covers_window {
                ctx.store.mark_stream_checked(STREAM, ctx.now_secs(), read_started)?;
            }
            break;
        }
        if ctx.stopping() {
            return Ok(());
        }
        page += 1;
    }
    drop(flow);
    deliver(ctx, Direction::ToCredgenics, &mut stats.delivery).await
}

/// The placed loan a record travels to, or why it does not travel.
pub(crate) fn eligible(ctx: &Context, record: &Value, stats: &mut FlowCStats) -> Result<Option<LoanRow>, SyncError> {
    if record["type"] != "repayment" || record["status"] != "processed" {
        stats.not_eligible += 1;
        return Ok(None);
    }
    let account = record["account"].as_str().unwrap_or_default();
    let Some(loan) = ctx.store.loan_by_program(account)? else {
        stats.unplaced += 1;
        return Ok(None);
    };
    if loan.state == crate::store::LoanState::Uploading {
        stats.held += 1;
        return Ok(None);
    }
    let (Some(placed_at), Some(_)) = (loan.first_placed_at, &loan.allocation_month) else {
        stats.unplaced += 1;
        return Ok(None);
    };
    let utr = record["utr"].as_str().unwrap_or_default();
    if !utr.is_empty() && ctx.store.wrote_reference(Direction::ToCrego, &loan.loan_id, utr)? {
        stats.echoes += 1;
        return Ok(None);
    }
    if record["date"].as_f64().is_none_or(|d| d < placed_at) {
        stats.before_placement += 1;
        return Ok(None);
    }
    Ok(Some(loan))
}

/// Maps the page's eligible records into ledger rows. The latest repayment of a loan (by record
/// date) whose line is no longer due is `Closed`; every other one is `Partially Recovered`.
pub(crate) fn build_rows(
    ctx: &Context,
    candidates: Vec<(Value, LoanRow)>,
    stats: &mut FlowCStats,
) -> Result<Vec<NewLedgerRow>, SyncError> {
    let mut latest: BTreeMap<String, f64> = BTreeMap::new();
    for (record, loan) in &candidates {
        let d = record["date"].as_f64().unwrap_or(0.0);
        let e = latest.entry(loan.loan_id.clone()).or_insert(f64::MIN);
        *e = e.max(d);
    }
    for (loan_id, max) in latest.iter_mut() {
        if let Some(at) = ctx.store.latest_event_at(Direction::ToCredgenics, loan_id)? {
            *max = max.max(at);
        }
    }
    let env = EvalEnv {
        tz_offset_secs: ctx.clock.utc_offset_secs(),
    };
    let mut rows = Vec::new();
    for (record, loan) in candidates {
        let id = record["id"].as_str().unwrap_or_default().to_string();
        let date = record["date"].as_f64().unwrap_or(0.0);
        let amount = money::from_json(&record["amount"]).unwrap_or(Decimal::ZERO);
        let closed =
            loan.due_amount.is_some_and(|d| d.is_zero()) && latest.get(&loan.loan_id).is_some_and(|m| date >= *m);
        let utr = record["utr"].as_str().filter(|u| !u.is_empty());
        let reference = utr.or(record["ref_id"].as_str()).unwrap_or(&id).to_string();
        let input = json!({
            "record": record,
            "loan": {"loan_id": loan.loan_id, "account": loan.borrower_program_id, "allocation_month": loan.allocation_month},
            "line_detail": {"due_amount": loan.due_amount.map(money::to_json), "total_outstanding": loan.total_outstanding.map(money::to_json)},
            "closed": closed,
            "reference": reference,
            "today": ctx.clock.today().to_string(),
        });
        let mapped = ctx
            .config
            .mapping
            .payment
            .eval(&input, &env)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let mut v = Value::Object(m);
                round_amounts(&mut v, ctx.config.credgenics.amount_decimals)?;
                Ok(v)
            });
        let mapped = mapped.and_then(|p| {
            let mut errors = crate::credgenics::rules::check_payment(&p);
            let month = loan.allocation_month.clone().unwrap_or_default();
            if !crate::credgenics::rules::is_allocation_month(&month) {
                errors.insert(
                    "allocation_month".into(),
                    Value::String(format!("`{month}` is not YYYY-M-01")),
                );
            }
            match crate::credgenics::preflight(errors) {
                None => Ok(p),
                Some(reason) => Err(reason),
            }
        });
        let (payload, dead_reason, reference) = match mapped {
            Ok(p) => match p["payment_reference_number"].as_str().filter(|r| !r.is_empty()) {
                // The reference actually sent is what the echo check and the look-up match on.
                Some(r) => (Some(p.clone()), None, r.to_string()),
                None => (
                    Some(p),
                    Some("payment_reference_number is empty: it is needed to recognise this payment later".into()),
                    reference,
                ),
            },
            Err(e) => (None, Some(e), reference),
        };
        if dead_reason.is_some() {
            stats.unmapped += 1;
        }
        rows.push(NewLedgerRow {
            direction: Direction::ToCredgenics,
            source_key: format!("C:{id}"),
            loan_id: loan.loan_id.clone(),
            amount,
            reference,
            allocation_month: loan.allocation_month.clone(),
            payload,
            origin: "crego_record",
            source: record,
            event_at: date,
            dead_reason,
        });
    }
    Ok(rows)
}
