//! Flow C (design §1C): LMS repayments out to Credgenics as payment entries.
//!
//! The change stream is `GET /v1/lms/records/?type=repayment&updated_at__gte=`, read by key. A
//! record travels when it is a processed repayment on a placed loan, dated at or after the loan's
//! first placement, and was not written by flow B (no echoes). Each becomes one ledger row keyed by
//! the record id, committed with the page's cursor, then delivered as
//! `PATCH /payments/{loan_id}?allocation_month=<the loan's latest month>` with a `final_status`
//! decided when it is sent ([`prepare`], design §1C), never when it is read.

pub mod status;

use crate::runtime::heartbeat::waiting;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::context::{Context, SyncError};
use crate::ledger::deliver::{DeliveryStats, Outbound, Prepared, Ready, deliver};
use crate::mapping::EvalEnv;
use crate::money;
use crate::partners::credgenics::round_amounts;
use crate::partners::crego::stream::{Stream, StreamReader};
use crate::store::{Direction, LedgerRow, LedgerState, LineRead, LoanRow, LoanState, NewLedgerRow};

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
    /// On a loan whose upload is in flight (flow A running meanwhile): queued, and sent once the
    /// upload settles.
    pub held: u64,
    pub delivery: DeliveryStats,
}

/// One run of flow C: read the stream into the ledger, then deliver.
pub async fn run(ctx: &Context, since: Option<f64>, stats: &mut FlowCStats) -> Result<(), SyncError> {
    let flow = waiting(ctx.locks.flow_c.lock()).await;
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let (from, covers_window) = super::context::read_start(ctx, STREAM, since)?;
    let read_started = crate::clock::wall_secs();
    let mut reader = StreamReader::new(&ctx.crego, Stream::Repayments, from);
    while let Some(records) = reader.next_page().await? {
        stats.scanned += records.len() as u64;
        let mut seen = Vec::new();
        let mut candidates: Vec<(Value, LoanRow)> = Vec::new();
        let mut page_max: Option<f64> = None;
        for record in records {
            let (Some(id), Some(updated_at)) = (record["id"].as_str(), record["updated_at"].as_f64()) else {
                crate::telemetry::events::record_unreadable();
                continue;
            };
            page_max = Some(page_max.map_or(updated_at, |m| m.max(updated_at)));
            seen.push((id.to_string(), updated_at));
            if since.is_none() && ctx.store.seen(STREAM, id)?.is_some_and(|at| at >= updated_at) {
                continue;
            }
            if let Some(loan) = eligible(ctx, &record, stats)? {
                candidates.push((record, loan));
            }
        }
        let rows = build_rows(ctx, candidates, stats)?;
        if ctx.dry_run {
            for r in &rows {
                print_dry_run(ctx, r)?;
            }
        } else {
            stats.queued += ctx
                .store
                .commit_page_with_rows(STREAM, page_max, &seen, &rows, overlap, ctx.now_secs())?
                as u64;
        }
        ctx.progressed(|| format!("C: {} records read, {} payments queued", stats.scanned, stats.queued));
        if ctx.stopping() {
            return Ok(());
        }
    }
    if !ctx.dry_run && covers_window {
        ctx.store.mark_stream_checked(STREAM, ctx.now_secs(), read_started)?;
    }
    drop(flow);
    deliver(ctx, &Payments, &mut stats.delivery).await
}

/// What a dry run would send for a new row: its payload with the status decided from the line
/// as last read (a dry run reads nothing more and writes nothing).
fn print_dry_run(ctx: &Context, row: &NewLedgerRow) -> Result<(), SyncError> {
    let Some(loan) = ctx.store.loan(&row.loan_id)? else {
        return Ok(());
    };
    let closed = loan.due_amount.is_some_and(|d| d.is_zero());
    let month = send_month(&loan).unwrap_or_default();
    match map_payment(ctx, &row.source, &loan, closed, &month) {
        Ok(p) => ctx.print_dry_run(
            "PATCH",
            &format!("/payments/{}?allocation_month={month}", row.loan_id),
            &p,
        ),
        Err(reason) => println!(
            "{}",
            json!({"dry_run": true, "dead_letter": row.source_key, "reason": reason})
        ),
    }
    Ok(())
}

/// The placed loan a record travels to, or why it does not travel (counted in `stats`).
pub(crate) fn eligible(ctx: &Context, record: &Value, stats: &mut FlowCStats) -> Result<Option<LoanRow>, SyncError> {
    if record["type"] != "repayment" || record["status"] != "processed" {
        stats.not_eligible += 1;
        return Ok(None);
    }
    // A record the link cannot read is on no loan of ours.
    let Ok(account) = ctx.config.mapping.link.record_program(record) else {
        stats.unplaced += 1;
        return Ok(None);
    };
    let Some(loan) = ctx.store.loan_by_program(&account)? else {
        stats.unplaced += 1;
        return Ok(None);
    };
    // Placed from the moment its first upload was recorded in flight (design §2.5).
    let Some(placed_at) = loan.first_placed_at else {
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
    if loan.state == LoanState::Uploading {
        // Queued now; sent once the upload settles (its status and month are decided then).
        stats.held += 1;
    }
    Ok(Some(loan))
}

/// The allocation month a payment on `loan` goes to: its latest (also for a cured or closed loan).
fn send_month(loan: &LoanRow) -> Option<String> {
    loan.allocation_month.clone()
}

/// The one payment-mapping path (flow C, `preview`, `mapping test`): the `[mapping.payment]`
/// fields over the record and its loan, amounts rounded as Credgenics demands, then the
/// documented rules. A reason naming the field when any step fails.
pub fn map_payment(ctx: &Context, record: &Value, loan: &LoanRow, closed: bool, month: &str) -> Result<Value, String> {
    let id = record["id"].as_str().unwrap_or_default();
    let utr = record["utr"].as_str().filter(|u| !u.is_empty());
    let reference = utr.or(record["ref_id"].as_str()).unwrap_or(id);
    let input = json!({
        "record": record,
        "loan": {"loan_id": loan.loan_id, "account": loan.borrower_program_id, "allocation_month": month},
        "allocation": crate::flows::loans::allocation_of(loan),
        "line_detail": {"due_amount": loan.due_amount.map(money::to_json), "total_outstanding": loan.total_outstanding.map(money::to_json)},
        "closed": closed,
        "reference": reference,
        "today": ctx.clock.today().to_string(),
    });
    map_payment_input(
        &ctx.config,
        EvalEnv {
            tz_offset_secs: ctx.clock.utc_offset_secs(),
        },
        &input,
        month,
    )
}

/// [`map_payment`] of a prepared input document (what `mapping test` runs).
pub fn map_payment_input(
    config: &crate::config::Config,
    env: EvalEnv,
    input: &Value,
    month: &str,
) -> Result<Value, String> {
    let mut p = Value::Object(config.mapping.payment.eval(input, &env).map_err(|e| e.to_string())?);
    round_amounts(&mut p, config.credgenics.payment_amount_decimals)?;
    let mut errors = crate::partners::credgenics::rules::check_payment(&p);
    if p["final_status"]
        .as_str()
        .is_some_and(|s| config.credgenics.extra_final_statuses.iter().any(|x| x == s))
    {
        errors.remove("final_status");
    }
    if !crate::partners::credgenics::rules::is_allocation_month(month) {
        errors.insert(
            "allocation_month".into(),
            Value::String(format!("`{month}` is not YYYY-M-01")),
        );
    }
    if p["payment_reference_number"]
        .as_str()
        .is_none_or(|r| r.trim().is_empty())
    {
        errors.insert(
            "payment_reference_number".into(),
            Value::String("is empty: it is needed to recognise this payment later".into()),
        );
    }
    match crate::partners::credgenics::preflight(errors) {
        None => Ok(p),
        Some(reason) => Err(reason),
    }
}

/// The page's eligible records as ledger rows. Their payload is made when they are sent, with
/// the `final_status` decided then (design §1C); here the mapping is run once to find the
/// reference the payment will carry and to set aside, as a dead letter, a record it cannot map.
pub(crate) fn build_rows(
    ctx: &Context,
    candidates: Vec<(Value, LoanRow)>,
    stats: &mut FlowCStats,
) -> Result<Vec<NewLedgerRow>, SyncError> {
    let mut rows = Vec::new();
    for (record, loan) in candidates {
        let id = record["id"].as_str().unwrap_or_default().to_string();
        let date = record["date"].as_f64().unwrap_or(0.0);
        let amount = money::from_json(&record["amount"]).unwrap_or(Decimal::ZERO);
        // The month is only known for sure at send time; a first upload in flight has its own.
        let month = send_month(&loan)
            .or_else(|| loan.pending.as_ref().map(|p| p.month.clone()))
            .unwrap_or_default();
        let (reference, dead_reason) = match map_payment(ctx, &record, &loan, false, &month) {
            // The reference actually sent is what the echo check and the look-up match on.
            Ok(p) => (
                p["payment_reference_number"].as_str().unwrap_or_default().to_string(),
                None,
            ),
            Err(e) => {
                stats.unmapped += 1;
                let utr = record["utr"].as_str().filter(|u| !u.is_empty());
                (utr.unwrap_or(&id).to_string(), Some(e))
            }
        };
        rows.push(NewLedgerRow {
            direction: Direction::ToCredgenics,
            source_key: repayment_key(&id),
            loan_id: loan.loan_id.clone(),
            amount,
            reference,
            allocation_month: None,
            payload: None,
            origin: "crego_record",
            source: record,
            event_at: date,
            dead_reason,
        });
    }
    Ok(rows)
}

/// The ledger key of an LMS repayment record (design §2.1).
pub fn repayment_key(record_id: &str) -> String {
    format!("C:{record_id}")
}

/// Flow C's side of delivery: repayments to Credgenics as payments.
pub struct Payments;

impl Outbound for Payments {
    const DIRECTION: Direction = Direction::ToCredgenics;

    async fn prepare(&self, ctx: &Context, row: &LedgerRow) -> Result<Prepared, SyncError> {
        prepare(ctx, row).await
    }
}

/// Decides a pending repayment's `final_status` now (design §1C) and maps its payload.
pub(crate) async fn prepare(ctx: &Context, row: &LedgerRow) -> Result<Prepared, SyncError> {
    let Some(mut loan) = ctx.store.loan(&row.loan_id)? else {
        return Ok(Prepared::Dead(format!("loan {} is not in the state", row.loan_id)));
    };
    if loan.state == LoanState::Uploading || (loan.allocation_month.is_none() && loan.pending.is_some()) {
        // In flight, or its outcome unknown (a dead letter an operator may retry): where and
        // whether the payment goes is known once that settles.
        return Ok(Prepared::Wait("its loan's upload is in flight".into()));
    }
    let Some(month) = send_month(&loan) else {
        return Ok(Prepared::Dead(format!(
            "loan {} was never placed at Credgenics (its upload was refused)",
            loan.loan_id
        )));
    };
    let known = ctx.store.ledger_for_loan(Direction::ToCredgenics, &row.loan_id)?;
    let order = |r: &LedgerRow| status::RepaymentOrder::of(r.event_at, &r.source);
    let is_latest = known
        .iter()
        .filter(|r| r.ignored_reason.is_none())
        .map(order)
        .max()
        .is_none_or(|latest| order(row) >= latest);
    let closed_already = known.iter().any(|r| {
        r.id != row.id
            && matches!(r.state, LedgerState::InFlight | LedgerState::Done)
            && r.allocation_month.as_deref() == Some(month.as_str())
            && r.payload.as_ref().is_some_and(|p| p["final_status"] == status::CLOSED)
    });
    // When the LMS applied the record to the line: `settled_at`; null means not yet; an LMS that
    // does not report it at all is taken at its booking.
    let booked = row.source["created_at"]
        .as_f64()
        .or(row.source["updated_at"].as_f64())
        .unwrap_or(row.event_at);
    // A back-dated record can carry a `settled_at` (its value date) before its booking: the line
    // cannot reflect it before it was booked, so the later of the two counts.
    let (settled, booked_at) = match row.source.get("settled_at") {
        Some(Value::Null) => (false, booked),
        Some(v) => (true, v.as_f64().map_or(booked, |s| s.max(booked))),
        None => (true, booked),
    };
    let recovered_not_in_lms: Decimal = ctx
        .store
        .ledger_for_loan(Direction::ToCrego, &row.loan_id)?
        .iter()
        // Pending only: a row in flight may already be written into the LMS (in doubt).
        .filter(|r| r.state == LedgerState::Pending)
        .map(|r| r.amount)
        .sum();
    let now = ctx.now_secs();
    let mut facts = status::Facts {
        is_latest,
        closed_already,
        line: current_read(&loan),
        recovered_not_in_lms,
        row_read_at: row.created_at,
        booked_at,
        settled,
        waited: now - row.created_at,
        line_wait_secs: ctx.config.sync.line_wait_secs,
        fresh: false,
    };
    let mut decision = status::decide(&facts);
    if decision == status::Status::ReadLine {
        match read_line(ctx, &loan).await? {
            Some(read) => {
                ctx.store.set_line_numbers(&loan.loan_id, &read)?;
                if loan.line_updated_at.is_none_or(|at| at <= read.updated_at) {
                    loan.due_amount = Some(read.due_amount);
                    loan.total_outstanding = Some(read.total_outstanding);
                    loan.line_updated_at = Some(read.updated_at);
                    loan.line_read_at = Some(read.read_at);
                }
                facts.line = current_read(&loan);
                facts.fresh = true;
            }
            // Not readable (its lead or program gone, a failed request): the newest read the
            // state holds decides once the payment has waited long enough.
            None if facts.waited >= ctx.config.sync.line_wait_secs => facts.fresh = true,
            None => return Ok(Prepared::Wait("its line could not be read this time".into())),
        }
        decision = status::decide(&facts);
    }
    let closed = match decision {
        status::Status::Closed => true,
        status::Status::PartiallyRecovered => false,
        status::Status::Wait | status::Status::ReadLine => {
            return Ok(Prepared::Wait(
                "the latest repayment waits for a read of its line that reflects it".into(),
            ));
        }
    };
    match map_payment(ctx, &row.source, &loan, closed, &month) {
        Ok(payload) => {
            let reference = payload["payment_reference_number"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let amount = money::from_json(&payload["amount_recovered"]).unwrap_or(row.amount);
            Ok(Prepared::Send(Ready {
                payload,
                reference,
                month: Some(month),
                amount,
            }))
        }
        Err(reason) => Ok(Prepared::Dead(reason)),
    }
}

fn current_read(loan: &LoanRow) -> Option<LineRead> {
    Some(LineRead {
        due_amount: loan.due_amount?,
        total_outstanding: loan.total_outstanding?,
        updated_at: loan.line_updated_at?,
        read_at: loan.line_read_at?,
    })
}

/// Reads the loan's line now, from its lead's programs (`None` when it cannot be read this time).
async fn read_line(ctx: &Context, loan: &LoanRow) -> Result<Option<LineRead>, SyncError> {
    let programs = match ctx.crego.programs(&loan.lead_id).await {
        Ok(p) => p,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(e) => {
            crate::telemetry::events::line_read_failed(&loan.loan_id, Some(&e));
            return Ok(None);
        }
    };
    let line = programs
        .iter()
        .find(|p| p["id"] == loan.borrower_program_id.as_str())
        .map(|p| &p["line_detail"]);
    let read = line.and_then(|l| {
        Some(LineRead {
            due_amount: money::from_json(&l["due_amount"])?,
            total_outstanding: money::from_json(&l["total_outstanding"])?,
            updated_at: l["updated_at"].as_f64()?,
            read_at: ctx.now_secs(),
        })
    });
    if read.is_none() {
        crate::telemetry::events::line_read_failed(&loan.loan_id, None);
    }
    Ok(read)
}
