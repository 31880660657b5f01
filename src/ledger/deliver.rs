//! Delivery of ledger rows, effectively once (design §2): a row is marked `in_flight` (committed)
//! before its request; success makes it `done`, a validation rejection `dead`, a failure that
//! proves nothing was written sends it back to `pending` with a growing delay, and anything else
//! leaves it in doubt. An in-doubt row is never resent blindly: the other side is looked at first
//! (Crego records by `utr`; the loan's Credgenics `payment_history` by reference).

use crate::runtime::heartbeat::waiting;
use crate::telemetry::events;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use rust_decimal::Decimal;

use crate::flows::context::{Context, SyncError};
use crate::partners::credgenics::describe_rejection;
use crate::partners::http::ApiError;
use crate::store::{Direction, LedgerRow, LedgerState, Sending};

/// Counts of one delivery pass.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct DeliveryStats {
    /// Requests that created the payment on the other side.
    pub sent: u64,
    /// In-doubt rows found already written by a look-up.
    pub confirmed: u64,
    /// Rejected for good (dead letters).
    pub dead: u64,
    /// Failed provably unsent: retried on a later cycle.
    pub retry_later: u64,
    /// Outcome unknown: looked up on a later cycle.
    pub in_doubt: u64,
    /// Repayments whose status waits for a read of their line (or for their loan's upload).
    pub waiting: u64,
}

enum Sent {
    Done(Option<String>),
    Dead(String),
    RetryLater(String),
    InDoubt(String),
    /// Not sent yet, and not an attempt: looked at again on the next pass.
    Wait(String),
    /// Another delivery took the row first.
    Taken,
}

/// What travels in one direction, as delivery needs it. The flows implement it (flow C for
/// payments to Credgenics, flow B for records to the LMS), so delivery depends on no flow.
pub trait Outbound: Sync {
    const DIRECTION: Direction;

    /// A pending row made ready to send — its status decided, mapped (again) from its source —
    /// or why not yet, or never.
    fn prepare(&self, ctx: &Context, row: &LedgerRow) -> impl Future<Output = Result<Prepared, SyncError>> + Send;
}

/// What a pending row comes to at send time.
pub enum Prepared {
    Send(Ready),
    /// Not yet: looked at again on a later pass.
    Wait(String),
    /// Never: a dead letter with this reason.
    Dead(String),
}

/// What a row is sent as.
pub struct Ready {
    pub payload: Value,
    pub reference: String,
    pub month: Option<String>,
    pub amount: Decimal,
}

impl Ready {
    /// The row as stored: what was (or is to be) sent.
    pub fn stored(row: &LedgerRow, payload: &Value) -> Self {
        Self {
            payload: payload.clone(),
            reference: row.reference.clone(),
            month: row.allocation_month.clone(),
            amount: row.amount,
        }
    }
}

/// Resolves in-doubt rows of `out`'s direction, then sends every due pending one.
pub async fn deliver<O: Outbound>(ctx: &Context, out: &O, stats: &mut DeliveryStats) -> Result<(), SyncError> {
    let direction = O::DIRECTION;
    if ctx.dry_run {
        return Ok(());
    }
    // One delivery per direction at a time, whichever job asks: a row is never sent twice by
    // two runs reading it as pending together.
    let _one = match direction {
        Direction::ToCredgenics => waiting(ctx.locks.deliver_credgenics.lock()).await,
        Direction::ToCrego => waiting(ctx.locks.deliver_crego.lock()).await,
    };
    let now = ctx.now_secs();
    let mut after = 0;
    loop {
        let rows = ctx
            .store
            .ledger_in_state(direction, LedgerState::InFlight, now, after, BATCH)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        resolve_in_flight(ctx, out, rows, stats).await?;
    }
    let mut after = 0;
    loop {
        let rows = ctx
            .store
            .ledger_in_state(direction, LedgerState::Pending, now, after, BATCH)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        deliver_pending(ctx, out, rows, stats).await?;
        if ctx.stopping() {
            break;
        }
    }
    Ok(())
}

/// Ledger rows read per batch: delivery never holds more than this many payloads.
const BATCH: u32 = 500;

/// Rows left in flight by an earlier run: looked up on the other side first, sent only if absent.
async fn resolve_in_flight<O: Outbound>(
    ctx: &Context,
    out: &O,
    rows: Vec<LedgerRow>,
    stats: &mut DeliveryStats,
) -> Result<(), SyncError> {
    for row in rows {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| format!("resolving {} in doubt", row.direction.as_str()));
        match lookup(ctx, &row).await {
            Ok(Some(remote_id)) => {
                ctx.store.ledger_done(row.id, remote_id.as_deref(), ctx.now_secs())?;
                stats.confirmed += 1;
            }
            Ok(None) => {
                let outcome = send(ctx, out, &row).await?;
                record(ctx, &row, outcome, stats)?;
            }
            Err(e) if e.stops_run() => return Err(e.into()),
            Err(e) => {
                events::ledger_lookup_failed(row.id, &e);
                stats.in_doubt += 1;
            }
        }
    }
    Ok(())
}

/// Sends a batch of pending rows, recording each outcome as soon as it is known.
async fn deliver_pending<O: Outbound>(
    ctx: &Context,
    out: &O,
    pending: Vec<LedgerRow>,
    stats: &mut DeliveryStats,
) -> Result<(), SyncError> {
    let direction = O::DIRECTION;
    let concurrency = match direction {
        Direction::ToCredgenics => ctx.config.credgenics.limits.max_in_flight,
        Direction::ToCrego => ctx.config.crego.limits.max_in_flight,
    };
    let mut results = futures::stream::iter(pending)
        .map(|row| async move {
            if ctx.stopping() {
                // Shutting down: unsent rows simply stay pending.
                return (row, None);
            }
            let r = send(ctx, out, &row).await;
            (row, Some(r))
        })
        .buffer_unordered(concurrency);
    let mut first_error = None;
    // Each outcome is recorded as soon as it is known, not at the end of the batch.
    while let Some((row, r)) = results.next().await {
        match r {
            None => {}
            Some(Ok(outcome)) => record(ctx, &row, outcome, stats)?,
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
        ctx.progressed(|| format!("delivering to {}: {} sent", direction.as_str(), stats.sent));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Makes the row ready (a repayment's status is decided now), marks it in flight with what is
/// sent, sends it, and classifies the answer. A refused credential is an error (the row goes back
/// to pending: a 401 proves nothing was written).
async fn send<O: Outbound>(ctx: &Context, out: &O, row: &LedgerRow) -> Result<Sent, SyncError> {
    let prepared = match (row.state, &row.payload) {
        // In doubt and absent on the other side: the very request is sent again.
        (LedgerState::InFlight, Some(p)) => Ready::stored(row, p),
        _ => match out.prepare(ctx, row).await? {
            Prepared::Send(ready) => ready,
            Prepared::Wait(why) => return Ok(Sent::Wait(why)),
            Prepared::Dead(reason) => return Ok(Sent::Dead(reason)),
        },
    };
    let sending = Sending {
        payload: &prepared.payload,
        reference: &prepared.reference,
        allocation_month: prepared.month.as_deref(),
        amount: prepared.amount,
    };
    if !ctx
        .store
        .ledger_in_flight(row.id, row.state, row.attempts, &sending, ctx.now_secs())?
    {
        // Taken meanwhile by someone else: whatever it came to is theirs to record.
        return Ok(Sent::Taken);
    }
    // The look-up after a rejection searches by what was actually sent.
    let row = &LedgerRow {
        payload: Some(prepared.payload.clone()),
        reference: prepared.reference.clone(),
        allocation_month: prepared.month.clone(),
        amount: prepared.amount,
        state: LedgerState::InFlight,
        ..row.clone()
    };
    let payload = &prepared.payload;
    let result = match row.direction {
        Direction::ToCredgenics => {
            let month = row.allocation_month.as_deref().unwrap_or_default();
            ctx.credgenics
                .add_payment(&row.loan_id, month, payload)
                .await
                .map(|()| None)
        }
        Direction::ToCrego => ctx
            .crego
            .create_record(payload)
            .await
            .map(|v| v.get("id").and_then(Value::as_str).map(str::to_string)),
    };
    Ok(match result {
        Ok(remote) => Sent::Done(remote),
        Err(e) if e.stops_run() => {
            ctx.store.ledger_retry(row.id, &e.to_string(), 0.0, ctx.now_secs())?;
            return Err(e.into());
        }
        Err(ApiError::Rejected { status, body, .. }) => {
            // A duplicate utr at Crego may be this very record from an earlier attempt.
            if row.direction == Direction::ToCrego
                && let Ok(Some(remote)) = lookup(ctx, row).await
            {
                Sent::Done(remote)
            } else {
                Sent::Dead(describe_rejection(status, &body))
            }
        }
        Err(ApiError::NotFound { .. }) => Sent::Dead("the loan does not exist at Credgenics (404)".into()),
        Err(e) if e.in_doubt() => Sent::InDoubt(e.to_string()),
        Err(e) => Sent::RetryLater(e.to_string()),
    })
}

fn record(ctx: &Context, row: &LedgerRow, outcome: Sent, stats: &mut DeliveryStats) -> Result<(), SyncError> {
    let now = ctx.now_secs();
    match outcome {
        Sent::Done(remote) => {
            ctx.store.ledger_done(row.id, remote.as_deref(), now)?;
            stats.sent += 1;
            events::payment_delivered(row.direction.as_str(), &row.loan_id, &row.reference, row.amount);
        }
        Sent::Dead(reason) => {
            ctx.store.ledger_dead(row.id, &reason, now)?;
            stats.dead += 1;
            events::payment_dead(row.direction.as_str(), &row.loan_id, &reason);
        }
        Sent::RetryLater(error) => {
            let next = now + retry_delay(ctx, row.attempts + 1);
            ctx.store.ledger_retry(row.id, &error, next, now)?;
            stats.retry_later += 1;
        }
        Sent::InDoubt(error) => {
            ctx.store.ledger_in_doubt(row.id, &error, now, now)?;
            stats.in_doubt += 1;
            events::payment_in_doubt(row.direction.as_str(), &row.loan_id, &error);
        }
        Sent::Wait(why) => {
            // Looked at again on the next pass (this one walks the rows due when it started).
            ctx.store.ledger_wait(row.id, &why, now, now)?;
            stats.waiting += 1;
        }
        Sent::Taken => {}
    }
    Ok(())
}

/// Growing delay between attempts of a row, capped.
fn retry_delay(ctx: &Context, attempts: i64) -> f64 {
    let base = ctx.config.sync.retry_base_secs;
    let cap = ctx.config.sync.retry_max_secs;
    (base * 2f64.powi((attempts - 1).clamp(0, 30) as i32)).min(cap)
}

/// The customer a credit-line payment was sent for (its payload names it); `None` in lending mode.
fn customer_of<'a>(ctx: &Context, row: &'a LedgerRow) -> Option<&'a str> {
    if ctx.config.credgenics.mode != crate::config::CredgenicsMode::CreditLine {
        return None;
    }
    row.payload.as_ref()?.get("client_customer_id")?.as_str()
}

/// Looks on the other side for the write of `row`: `Some(remote id)` when it is there.
async fn lookup(ctx: &Context, row: &LedgerRow) -> Result<Option<Option<String>>, ApiError> {
    match row.direction {
        Direction::ToCredgenics => {
            let history = match customer_of(ctx, row) {
                // Credit-line mode (design §8): payments are listed per customer, not per
                // transaction; a split record's shares each carry their own reference.
                Some(customer) => ctx
                    .credgenics
                    .get_customer(customer)
                    .await?
                    .and_then(|o| o.get("payment_history").and_then(Value::as_array).cloned())
                    .unwrap_or_default(),
                None => ctx.credgenics.payment_history(&row.loan_id).await?.unwrap_or_default(),
            };
            // In credit-line mode the history is the customer's: the amount must match too.
            let credit_line = customer_of(ctx, row).is_some();
            let found = history.iter().any(|p| {
                p["payment_reference_number"].as_str() == Some(row.reference.as_str())
                    && (!credit_line || crate::money::from_json(&p["amount_recovered"]) == Some(row.amount))
                    && row
                        .allocation_month
                        .as_deref()
                        .is_none_or(|m| p["allocation_month"].as_str() == Some(m))
            });
            Ok(found.then_some(None))
        }
        Direction::ToCrego => {
            // The record found must be on this loan's borrower-program, read through the record
            // link as any LMS record is (a tenant may expand `account` on read).
            let program = match ctx.store.loan(&row.loan_id) {
                Ok(Some(loan)) => loan.borrower_program_id,
                _ => row
                    .payload
                    .as_ref()
                    .and_then(|p| p["account"].as_str())
                    .unwrap_or_default()
                    .to_string(),
            };
            let link = &ctx.config.mapping.link;
            let on_loan = |r: &Value| link.record_program(r).is_ok_and(|p| p == program);
            let found = ctx.crego.find_record_by_utr(&row.reference, on_loan).await?;
            Ok(found.map(|r| r["id"].as_str().map(str::to_string)))
        }
    }
}
