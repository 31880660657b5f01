//! Flow B in credit-line mode (design §8): recoveries read from each customer's payment history
//! (`GET /loan/{client_customer_id}`, the documented `output` wrapper) and written to the LMS as
//! records on the line's account.
//!
//! The documented history sits at customer level and names no transaction (CG:1097–1124), so a
//! recovery is keyed by the customer (`B:<customer>:<reference or payment_id>`) and booked on the
//! line, never on a guess. It names its drawdown (in the record's `remark`) only when the
//! customer's answer singles one out: exactly one transaction whose recovered amount for the
//! payment's month exceeds what this daemon pushed to it by at least the payment.
//! Payments flow C pushed (their references, on any of the customer's transactions) are echoes
//! and never come back. The webhook's payment event names only a `loan_id`: in this mode it asks
//! for the named customer's (or transaction's customer's) history to be read on the next run.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::flows::context::{Context, SyncError};
use crate::flows::recoveries::{FlowBStats, Poll, Records, Recovery, payment_reference, payment_row, recovery_key};
use crate::ledger::deliver::deliver;
use crate::runtime::heartbeat::waiting;
use crate::store::{ClCustomerRow, Direction, NewLedgerRow, TransactionRow};
use crate::telemetry::events;

pub async fn run(ctx: &Context, poll: Poll, stats: &mut FlowBStats) -> Result<(), SyncError> {
    let since = match poll {
        Poll::Skip => None,
        Poll::NotSince(t) => Some(t),
        Poll::All => Some(f64::INFINITY),
    };
    {
        // The customers a payment webhook named, whatever the schedule.
        let _poll = waiting(ctx.locks.poll.lock()).await;
        let asked = ctx.store.cl_customers_poll_requested()?;
        for batch in asked.chunks(POLL_BATCH) {
            poll_batch(ctx, batch.to_vec(), stats).await?;
            if ctx.stopping() {
                return Ok(());
            }
        }
    }
    if let Some(since) = since {
        let _poll = waiting(ctx.locks.poll.lock()).await;
        let due: Vec<ClCustomerRow> = ctx
            .store
            .cl_customers_placed()?
            .into_iter()
            .filter(|c| c.last_polled_at.is_none_or(|at| at < since))
            .collect();
        for batch in due.chunks(POLL_BATCH) {
            poll_batch(ctx, batch.to_vec(), stats).await?;
            if ctx.stopping() {
                break;
            }
        }
    }
    deliver(ctx, &Records, &mut stats.delivery).await
}

const POLL_BATCH: usize = 200;

async fn poll_batch(ctx: &Context, customers: Vec<ClCustomerRow>, stats: &mut FlowBStats) -> Result<(), SyncError> {
    let concurrency = ctx.config.credgenics.limits.max_in_flight;
    let mut reads = futures::stream::iter(customers)
        .map(|c| async move {
            if ctx.stopping() {
                return (c, None);
            }
            let r = ctx.credgenics.get_customer(&c.customer_id).await;
            (c, Some(r))
        })
        .buffer_unordered(concurrency);
    let mut auth_error = None;
    let mut rows = Vec::new();
    let mut polled = Vec::new();
    while let Some((c, r)) = reads.next().await {
        let output = match r {
            None => continue,
            Some(Ok(Some(o))) => o,
            Some(Ok(None)) => Value::Null,
            Some(Err(e)) if e.stops_run() => {
                auth_error = Some(e);
                continue;
            }
            Some(Err(e)) => {
                events::poll_failed(&c.customer_id, &e);
                continue;
            }
        };
        stats.polled += 1;
        let transactions = ctx.store.cl_transactions_of(&c.customer_id)?;
        let history = output["payment_history"].as_array().cloned().unwrap_or_default();
        stats.payments_seen += history.len() as u64;
        for p in &history {
            if let Some(row) = recovery_row(ctx, &c, &transactions, &output, p, stats)? {
                rows.push(row);
            }
        }
        polled.push(c.customer_id.clone());
    }
    if !ctx.dry_run {
        stats.queued += ctx.store.record_poll_reads(&rows, &[], &[], ctx.now_secs())? as u64;
        for id in &polled {
            ctx.store.cl_set_polled(id, ctx.now_secs())?;
        }
    } else {
        for r in &rows {
            if let Some(p) = &r.payload {
                ctx.print_dry_run("POST", "/v1/lms/records/", p);
            }
        }
    }
    match auth_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// One entry of a customer's payment history as a ledger row, or none (an echo, or unidentifiable).
fn recovery_row(
    ctx: &Context,
    c: &ClCustomerRow,
    transactions: &[TransactionRow],
    output: &Value,
    payment: &Value,
    stats: &mut FlowBStats,
) -> Result<Option<NewLedgerRow>, SyncError> {
    let reference = payment_reference(payment);
    let ids: Vec<String> = transactions.iter().map(|t| t.transaction_id.clone()).collect();
    if !reference.is_empty()
        && ctx
            .store
            .wrote_reference_on_any(Direction::ToCredgenics, &ids, reference)?
    {
        stats.echoes += 1;
        return Ok(None);
    }
    let month = payment["allocation_month"].as_str().unwrap_or_default();
    // The history is read whole on every poll: a recovery already in the ledger needs no
    // attribution (its row stands; a second insert of its key is a no-op).
    let known = match recovery_key(&c.customer_id, payment) {
        Some(key) => ctx.store.ledger_by_key(&key)?.is_some(),
        None => false,
    };
    let attributed = if known {
        None
    } else {
        attribute(ctx, output, transactions, month, payment)?
    };
    // The customer seen as one loan by the record mapping: its id keys the recovery, its line is
    // the account, and the claim is the attributed transaction's when there is one.
    let loan = c.as_loan(Some(month), attributed.and_then(|t| t.payload.clone()));
    match payment_row(&ctx.config, &ctx.store, &ctx.clock, &loan, payment, "credgenics_poll")? {
        Recovery::Row(mut row) => {
            if let (Some(t), Some(Value::Object(p))) = (attributed, row.payload.as_mut())
                && let Some(Value::String(remark)) = p.get_mut("remark")
            {
                remark.push_str(&format!(" (transaction {})", t.transaction_id));
            }
            row.source = json!(payment);
            Ok(Some(*row))
        }
        Recovery::Echo => {
            stats.echoes += 1;
            Ok(None)
        }
        Recovery::NeedsHistory => {
            events::payment_unidentifiable(&c.customer_id);
            Ok(None)
        }
    }
}

/// The one transaction a recovery can be tied to, if the customer's answer singles it out: its
/// `defaults[]` entry for the payment's month reports more recovered than this daemon queued to
/// it, by at least the payment's amount. Several such, or none: not tied (the record names the
/// line only). The document does not say that amount is a running total; this only ever names a
/// drawdown in a remark, never moves money.
fn attribute<'a>(
    ctx: &Context,
    output: &Value,
    transactions: &'a [TransactionRow],
    month: &str,
    payment: &Value,
) -> Result<Option<&'a TransactionRow>, SyncError> {
    let Some(amount) = crate::money::from_json(&payment["amount_recovered"]) else {
        return Ok(None);
    };
    let details = output["transactions_details"].as_array().cloned().unwrap_or_default();
    let mut fits = Vec::new();
    for t in transactions {
        let reported = details
            .iter()
            .filter(|d| {
                d["transaction_id"].as_str() == Some(t.transaction_id.as_str())
                    || d["data"]["transaction_id"].as_str() == Some(t.transaction_id.as_str())
            })
            .flat_map(|d| d["data"]["defaults"].as_array().cloned().unwrap_or_default())
            .find(|e| e["allocation_month"].as_str() == Some(month))
            .and_then(|e| crate::money::from_json(&e["amount_recovered"]));
        let Some(reported) = reported else { continue };
        if reported - ctx.store.cl_queued_amount(&t.transaction_id, month)? >= amount {
            fits.push(t);
        }
    }
    Ok(match fits.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}
