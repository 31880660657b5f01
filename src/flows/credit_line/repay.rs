//! Flow C in credit-line mode (design §8): an LMS repayment on a line, shared across the line's
//! transactions ([`super::split`]) and pushed as one Update Payment per share
//! (`PATCH /payments/{transaction_id}?allocation_month=` naming the `client_customer_id`).
//!
//! Which records travel is flow C's rule per transaction: a processed repayment, not written by
//! flow B, dated at or after the transaction was first placed. The split is made once, when the
//! record is first read, and kept: each share is a ledger row keyed `C:<record id>:<transaction
//! id>`, committed with the page's cursor; a record read again (settled later, touched) is never
//! split again. Every share carries `<utr>/<transaction id>` as its reference, so each one is
//! recognised on its own in the customer's payment history, whatever else the customer was paid
//! under the same utr (the look-up of a share in doubt, and the echo check of flow B). `final_status` is decided per transaction at send time:
//! `Closed` on the latest share of a transaction whose drawdown a current read shows without
//! dues.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::flows::context::{Context, SyncError};
use crate::flows::repayments::{FlowCStats, STREAM, map_payment};
use crate::ledger::deliver::{Outbound, Prepared, Ready, deliver};
use crate::money;
use crate::partners::crego::stream::{Stream, StreamReader};
use crate::runtime::heartbeat::waiting;
use crate::store::{Direction, LedgerRow, LoanRow, LoanState, NewLedgerRow, TransactionRow};

use super::split::split;

pub async fn run(ctx: &Context, since: Option<f64>, stats: &mut FlowCStats) -> Result<(), SyncError> {
    let flow = waiting(ctx.locks.flow_c.lock()).await;
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let (from, covers_window) = crate::flows::context::read_start(ctx, STREAM, since)?;
    let read_started = crate::clock::wall_secs();
    let mut reader = StreamReader::new(&ctx.crego, Stream::Repayments, from);
    while let Some(records) = reader.next_page().await? {
        stats.scanned += records.len() as u64;
        let mut seen = Vec::new();
        let mut rows = Vec::new();
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
            rows.extend(shares_of(ctx, &record, &rows, stats)?);
        }
        if ctx.dry_run {
            for r in &rows {
                ctx.print_dry_run(
                    "PATCH",
                    &format!(
                        "/payments/{}?allocation_month={}",
                        r.loan_id,
                        r.allocation_month.clone().unwrap_or_default()
                    ),
                    &json!({"share_of": r.source["id"], "amount_recovered": money::to_json(r.amount),
                            "payment_reference_number": r.reference}),
                );
            }
        } else {
            stats.queued += ctx
                .store
                .commit_page_with_rows(STREAM, page_max, &seen, &rows, overlap, ctx.now_secs())?
                as u64;
        }
        ctx.progressed(|| {
            format!(
                "C: {} records read, {} payment shares queued",
                stats.scanned, stats.queued
            )
        });
        if ctx.stopping() {
            return Ok(());
        }
    }
    if !ctx.dry_run && covers_window {
        ctx.store.mark_stream_checked(STREAM, ctx.now_secs(), read_started)?;
    }
    drop(flow);
    deliver(ctx, &TransactionPayments, &mut stats.delivery).await
}

/// The ledger rows of one record: its shares, or none (counted in `stats` by why).
fn shares_of(
    ctx: &Context,
    record: &Value,
    page_rows: &[NewLedgerRow],
    stats: &mut FlowCStats,
) -> Result<Vec<NewLedgerRow>, SyncError> {
    if record["type"] != "repayment" || record["status"] != "processed" {
        stats.not_eligible += 1;
        return Ok(Vec::new());
    }
    let id = record["id"].as_str().unwrap_or_default();
    let prefix = format!("C:{id}:");
    if ctx.store.ledger_has_prefix(&prefix)? || page_rows.iter().any(|r| r.source_key.starts_with(&prefix)) {
        // Split when first read; the split stands.
        return Ok(Vec::new());
    }
    let Ok(account) = ctx.config.mapping.link.record_program(record) else {
        stats.unplaced += 1;
        return Ok(Vec::new());
    };
    let Some(customer) = ctx.store.cl_customer_by_program(&account)? else {
        stats.unplaced += 1;
        return Ok(Vec::new());
    };
    let utr = record["utr"].as_str().unwrap_or_default().trim();
    if !utr.is_empty()
        && ctx
            .store
            .wrote_reference(Direction::ToCrego, &customer.customer_id, utr)?
    {
        stats.echoes += 1;
        return Ok(Vec::new());
    }
    let date = record["date"].as_f64();
    let named = named_drawdowns(record);
    let transactions: Vec<TransactionRow> = ctx
        .store
        .cl_transactions_of(&customer.customer_id)?
        .into_iter()
        .filter(|t| named.is_empty() || named.contains(&t.drawdown_id))
        .collect();
    let placed: Vec<&TransactionRow> = transactions
        .iter()
        .filter(|t| t.first_placed_at.is_some_and(|p| date.is_some_and(|d| d >= p)))
        .collect();
    if placed.is_empty() {
        if transactions.iter().any(|t| t.first_placed_at.is_some()) {
            stats.before_placement += 1;
        } else {
            stats.unplaced += 1;
        }
        return Ok(Vec::new());
    }
    let amount = money::from_json(&record["amount"]).filter(|a| *a > Decimal::ZERO);
    let Some(amount) = amount else {
        // Never dropped in silence: a dead letter on the oldest transaction, for a person.
        let t = placed[0];
        stats.unmapped += 1;
        return Ok(vec![NewLedgerRow {
            direction: Direction::ToCredgenics,
            source_key: format!("{prefix}{}", t.transaction_id),
            loan_id: t.transaction_id.clone(),
            amount: Decimal::ZERO,
            reference: format!("{}/{}", if utr.is_empty() { id } else { utr }, t.transaction_id),
            allocation_month: Some(month_of(t)),
            payload: None,
            origin: "crego_record",
            source: record.clone(),
            event_at: date.unwrap_or(0.0),
            dead_reason: Some(format!(
                "the record's amount {} is not an amount above 0",
                record["amount"]
            )),
        }]);
    };
    let mut room = Vec::new();
    for t in &placed {
        let month = month_of(t);
        let claim = t
            .payload
            .as_ref()
            .or(t.pending.as_ref().map(|p| &p.payload))
            .and_then(|p| money::from_json(&p["defaults"][0]["total_claim_amount"]))
            .unwrap_or(Decimal::ZERO);
        let queued = ctx.store.cl_queued_amount(&t.transaction_id, &month)?
            + page_rows
                .iter()
                .filter(|r| r.loan_id == t.transaction_id)
                .map(|r| r.amount)
                .sum::<Decimal>();
        room.push((t.transaction_id.clone(), claim - queued));
    }
    let shares = split(amount, &room, ctx.config.credgenics.payment_amount_decimals);
    let base = if utr.is_empty() {
        record["ref_id"].as_str().unwrap_or(id)
    } else {
        utr
    };
    let rows = shares
        .into_iter()
        .map(|(tid, share)| {
            let t = placed
                .iter()
                .find(|t| t.transaction_id == tid)
                .expect("a share is on a placed transaction");
            NewLedgerRow {
                direction: Direction::ToCredgenics,
                source_key: format!("{prefix}{tid}"),
                loan_id: tid.clone(),
                amount: share,
                reference: format!("{base}/{tid}"),
                allocation_month: Some(month_of(t)),
                payload: None,
                origin: "crego_record",
                source: record.clone(),
                event_at: date.unwrap_or(0.0),
                dead_reason: None,
            }
        })
        .collect();
    Ok(rows)
}

/// The drawdown ids a record names (`loans[]`, `topup`).
fn named_drawdowns(record: &Value) -> Vec<String> {
    let mut ids: Vec<String> = record["loans"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().or(l["id"].as_str()).map(str::to_string))
        .collect();
    if let Some(t) = record["topup"].as_str().or(record["topup"]["id"].as_str()) {
        ids.push(t.to_string());
    }
    ids
}

/// The allocation month a payment on a transaction goes to: its latest (an upload in flight: its
/// month).
fn month_of(t: &TransactionRow) -> String {
    t.allocation_month
        .clone()
        .or_else(|| t.pending.as_ref().map(|p| p.month.clone()))
        .unwrap_or_default()
}

/// The transaction seen as a lending loan by the payment mapping: its id, the line's account, its
/// latest month and claim, its drawdown's numbers.
pub(super) fn as_loan(t: &TransactionRow, account: &str, lead_id: &str) -> LoanRow {
    LoanRow {
        loan_id: t.transaction_id.clone(),
        borrower_program_id: account.to_string(),
        lead_id: lead_id.to_string(),
        program_id: None,
        allocation_month: t.allocation_month.clone(),
        state: t.state,
        payload: t.payload.clone(),
        payload_hash: t.payload_hash.clone(),
        pending: t.pending.clone(),
        rejected_hash: None,
        last_error: None,
        first_placed_at: t.first_placed_at,
        updated_at: t.updated_at,
        due_amount: t.due_amount,
        total_outstanding: t.total_outstanding,
        last_polled_at: None,
        line_updated_at: t.drawdown_updated_at,
        line_read_at: t.read_at,
    }
}

/// Flow C's side of delivery in credit-line mode: payment shares to Credgenics.
pub struct TransactionPayments;

impl Outbound for TransactionPayments {
    const DIRECTION: Direction = Direction::ToCredgenics;

    async fn prepare(&self, ctx: &Context, row: &LedgerRow) -> Result<Prepared, SyncError> {
        let Some(t) = ctx.store.cl_transaction(&row.loan_id)? else {
            return Ok(Prepared::Dead(format!(
                "transaction {} is not in the state",
                row.loan_id
            )));
        };
        if t.state == LoanState::Uploading {
            return Ok(Prepared::Wait("its transaction's upload is in doubt".into()));
        }
        if t.allocation_month.is_none() {
            return Ok(Prepared::Dead(format!(
                "transaction {} was never placed at Credgenics (its upload was refused: {}); place it, then retry",
                t.transaction_id,
                t.last_error.as_deref().unwrap_or("see the log")
            )));
        }
        let Some(customer) = ctx.store.cl_customer(&t.customer_id)? else {
            return Ok(Prepared::Dead(format!(
                "customer {} is not in the state",
                t.customer_id
            )));
        };
        let closed = match closes(ctx, row, &t, &customer.borrower_program_id).await? {
            Some(c) => c,
            None => {
                return Ok(Prepared::Wait(
                    "waiting for a read of the drawdown that shows this repayment applied".into(),
                ));
            }
        };
        let t = ctx.store.cl_transaction(&row.loan_id)?.unwrap_or(t);
        let month = month_of(&t);
        let mut record = row.source.clone();
        record["amount"] = money::to_json(row.amount);
        record["utr"] = json!(row.reference);
        let loan = as_loan(&t, &customer.borrower_program_id, &customer.lead_id);
        let mut payload = match map_payment(ctx, &record, &loan, closed, &month) {
            Ok(p) => p,
            Err(reason) => return Ok(Prepared::Dead(reason)),
        };
        payload["client_customer_id"] = json!(t.customer_id);
        let amount = money::from_json(&payload["amount_recovered"]).unwrap_or(row.amount);
        Ok(Prepared::Send(Ready {
            reference: payload["payment_reference_number"]
                .as_str()
                .unwrap_or(&row.reference)
                .to_string(),
            payload,
            month: Some(month),
            amount,
        }))
    }
}

/// Whether this share is `Closed` (design §1C per transaction): the latest share on its
/// transaction, none sent `Closed` on it this month already, and a read of the drawdown made now
/// shows no dues. `None`: not decided yet — the read shows dues but the record may not be applied
/// yet (the LMS moves dues some seconds after booking: the record is not settled, or the drawdown
/// was last moved before it), or the drawdown could not be read; so wait for a newer read, at
/// most `sync.line_wait_secs`, after which the newest read decides.
async fn closes(ctx: &Context, row: &LedgerRow, t: &TransactionRow, account: &str) -> Result<Option<bool>, SyncError> {
    if ctx
        .store
        .latest_source_key(Direction::ToCredgenics, &t.transaction_id)?
        .as_deref()
        != Some(row.source_key.as_str())
    {
        return Ok(Some(false));
    }
    let month = month_of(t);
    if ctx.store.closed_already(&t.transaction_id, &month, row.id)? {
        return Ok(Some(false));
    }
    let now = ctx.now_secs();
    let may_wait = now - row.created_at < ctx.config.sync.line_wait_secs;
    // The record as it is now (the row keeps it as first read), read before the drawdown: once
    // it is settled, a read of the drawdown made after shows its effect.
    let id = row.source["id"].as_str().unwrap_or_default();
    let record = match ctx.crego.record(id).await {
        Ok(r) => Some(r),
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(_) if may_wait => return Ok(None),
        Err(_) => None,
    };
    let settled_known = record.as_ref().is_some_and(|r| r.get("settled_at").is_some());
    if record.as_ref().is_some_and(|r| r["settled_at"].is_null()) && settled_known && may_wait {
        return Ok(None);
    }
    let listed = match ctx.crego.drawdowns(account).await {
        Ok(l) => l,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(_) if may_wait => return Ok(None),
        Err(_) => return Ok(Some(false)),
    };
    // A loan and a topup may share an id: the kind tells them apart.
    let Some((_, due, outstanding, updated_at)) = listed
        .iter()
        .filter(|(kind, _)| *kind == t.kind)
        .filter_map(|(kind, d)| super::drawdown::numbers(ctx, kind, d))
        .find(|(id, ..)| *id == t.drawdown_id)
    else {
        return Ok(Some(false));
    };
    let read = crate::store::DrawdownRead {
        due_amount: due,
        total_outstanding: outstanding,
        updated_at,
        read_at: now,
    };
    ctx.store.cl_set_read(&t.transaction_id, &read)?;
    if due.is_zero() {
        return Ok(Some(true));
    }
    // A tenant whose records carry no `settled_at`: a drawdown last moved before the record was
    // may not show it yet.
    let record_at = record
        .as_ref()
        .and_then(|r| r["updated_at"].as_f64())
        .unwrap_or_else(|| row.source["updated_at"].as_f64().unwrap_or(0.0));
    if !settled_known && updated_at < record_at && may_wait {
        return Ok(None);
    }
    Ok(Some(false))
}
