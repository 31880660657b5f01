//! Carrying out flow A's decision for one transaction (credit-line mode, design §8): Upload
//! Transaction recorded in flight first and confirmed, refused or left in doubt; Update
//! Transaction of the changed loan-level keys; in-doubt uploads looked up before any resend. And
//! what a line (or one of its drawdowns) came to.

use serde_json::Value;

use crate::flows::context::{Context, SyncError};
use crate::flows::loans::{FlowAStats, payload_hash};
use crate::partners::credgenics::describe_rejection;
use crate::partners::crego::LineItem;
use crate::partners::http::ApiError;
use crate::store::{ClCustomerRow, LoanState, PendingUpload, TransactionRow};
use crate::telemetry::events;

use super::drawdown::{self, Drawdown};

/// What one line (or one of its drawdowns) came to: the stream may pass it; or it may, but as a
/// dead letter with this reason (listed, retried when the line changes, counted as needing
/// attention); or it must be read again.
pub(super) enum LineDone {
    Done,
    Dead(String),
    Retry,
}

impl LineDone {
    /// A line's outcome from its drawdowns': read again if any must be, else the first reason.
    pub(super) fn and(self, other: LineDone) -> LineDone {
        match (self, other) {
            (LineDone::Retry, _) | (_, LineDone::Retry) => LineDone::Retry,
            (LineDone::Dead(r), _) | (_, LineDone::Dead(r)) => LineDone::Dead(r),
            _ => LineDone::Done,
        }
    }
}

/// A transient failure of one line's reads: the line is read again on the next run.
pub(super) fn retry(item: &LineItem, e: &ApiError) -> LineDone {
    events::fetch_failed(&item.id, e);
    LineDone::Retry
}

/// Upload Transaction for `month` (a new transaction, or a new allocation), recorded in flight
/// first.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    ctx: &Context,
    item: &LineItem,
    lead: &Value,
    program: &Value,
    d: &Drawdown,
    mut t: TransactionRow,
    month: &str,
    stats: &mut FlowAStats,
) -> Result<LineDone, SyncError> {
    let now = ctx.now_secs();
    let payload = match drawdown::map_upload(ctx, lead, program, d, month) {
        Ok(p) => p,
        Err(reason) => return reject(ctx, t, None, &reason, stats),
    };
    let hash = payload_hash(&payload);
    if t.rejected_hash.as_deref() == Some(hash.as_str()) {
        // Refused as it is: not sent again until the mapping or the drawdown changes.
        stats.unchanged += 1;
        return Ok(LineDone::Done);
    }
    if ctx.dry_run {
        ctx.print_dry_run("POST", &format!("/loan/{}", d.transaction_id), &payload);
        return Ok(LineDone::Done);
    }
    // One customer is one line, both ways: a mapping that gives two lines one customer (or one
    // line two customers) would send one line's repayments under the other's.
    if let Some(other) = ctx.store.cl_customer(&d.customer_id)?
        && other.borrower_program_id != item.borrower_program_id
    {
        return Ok(LineDone::Dead(format!(
            "customer {} is already the line {}: [mapping.transaction].client_customer_id must give each line its own",
            d.customer_id, other.borrower_program_id
        )));
    }
    if let Some(other) = ctx.store.cl_customer_by_program(&item.borrower_program_id)?
        && other.customer_id != d.customer_id
    {
        return Ok(LineDone::Dead(format!(
            "this line is already customer {}; [mapping.transaction].client_customer_id now gives {}",
            other.customer_id, d.customer_id
        )));
    }
    let customer = ClCustomerRow {
        customer_id: d.customer_id.clone(),
        borrower_program_id: item.borrower_program_id.clone(),
        lead_id: item.lead_id.clone(),
        last_polled_at: None,
    };
    ctx.store.cl_save_customer(&customer, now)?;
    let before = t.clone();
    t.state = LoanState::Uploading;
    t.pending = Some(PendingUpload {
        payload: payload.clone(),
        month: month.to_string(),
    });
    t.first_placed_at = t.first_placed_at.or(Some(now));
    ctx.store.cl_save_transaction(&t, None, now)?;
    match ctx.credgenics.upload_transaction(&d.transaction_id, &payload).await {
        Ok(()) => {
            if before.allocation_month.is_some() {
                stats.new_allocations += 1;
            } else {
                stats.placed += 1;
            }
            confirm(ctx, t, ctx.now_secs())?;
            Ok(LineDone::Done)
        }
        Err(e) if e.stops_run() => {
            restore(ctx, before)?;
            Err(e.into())
        }
        Err(ApiError::Rejected { status, body, .. }) => {
            let reason = describe_rejection(status, &body);
            reject(ctx, before, Some(hash), &reason, stats)
        }
        Err(e) if e.in_doubt() => {
            // Left `uploading`: looked up before it is ever sent again.
            events::upload_in_doubt(&d.transaction_id, &e);
            stats.in_doubt += 1;
            Ok(LineDone::Done)
        }
        Err(e) => {
            // Provably not sent (refused before it was read): as it was, and read again.
            restore(ctx, before)?;
            Ok(retry(item, &e))
        }
    }
}

/// The upload in flight was accepted: placed for its month.
fn confirm(ctx: &Context, mut t: TransactionRow, now: f64) -> Result<(), SyncError> {
    let Some(p) = t.pending.take() else { return Ok(()) };
    t.payload_hash = Some(payload_hash(&p.payload));
    t.payload = Some(p.payload);
    t.allocation_month = Some(p.month.clone());
    t.state = LoanState::Placed;
    t.rejected_hash = None;
    t.last_error = None;
    ctx.store.cl_save_transaction(&t, Some(&p.month), now)?;
    events::transaction_placed(&t.transaction_id, &t.customer_id, &p.month);
    Ok(())
}

/// Back to what it was before an attempt that provably did not reach Credgenics. A transaction
/// never accepted is not placed: records dated meanwhile must not travel on it.
fn restore(ctx: &Context, before: TransactionRow) -> Result<(), SyncError> {
    if before.allocation_month.is_none() && before.payload.is_none() && before.state == LoanState::Uploading {
        let mut t = before;
        t.state = LoanState::Rejected;
        t.first_placed_at = None;
        t.last_error = Some("the first upload did not reach Credgenics; tried again on the next run".into());
        ctx.store.cl_save_transaction(&t, None, ctx.now_secs())?;
        return Ok(());
    }
    ctx.store.cl_save_transaction(&before, None, ctx.now_secs())?;
    Ok(())
}

/// Refused (by the documented rules before sending, or by Credgenics): kept with the reason; a
/// transaction already placed stays placed for its earlier month.
fn reject(
    ctx: &Context,
    mut t: TransactionRow,
    hash: Option<String>,
    reason: &str,
    stats: &mut FlowAStats,
) -> Result<LineDone, SyncError> {
    stats.rejected += 1;
    events::transaction_rejected(&t.transaction_id, reason);
    if ctx.dry_run {
        return Ok(LineDone::Done);
    }
    if t.allocation_month.is_none() {
        t.state = LoanState::Rejected;
        t.first_placed_at = None;
    }
    t.pending = None;
    t.rejected_hash = hash;
    t.last_error = Some(reason.to_string());
    ctx.store.cl_save_transaction(&t, None, ctx.now_secs())?;
    Ok(LineDone::Done)
}

/// Same month: Update Transaction of the changed loan-level keys, or nothing.
pub(super) async fn update(
    ctx: &Context,
    lead: &Value,
    program: &Value,
    d: &Drawdown,
    mut t: TransactionRow,
    month: &str,
    stats: &mut FlowAStats,
) -> Result<LineDone, SyncError> {
    let payload = match drawdown::map_upload(ctx, lead, program, d, month) {
        Ok(p) => p,
        Err(reason) => return reject(ctx, t, None, &reason, stats),
    };
    let old = t.payload.clone().unwrap_or(Value::Null);
    let patch = drawdown::patch_of(&old, &payload);
    let reopened = t.state != LoanState::Placed;
    if patch.is_empty() {
        stats.unchanged += 1;
        if reopened && !ctx.dry_run {
            // Overdue again within its month: its allocation is still there.
            t.state = LoanState::Placed;
            ctx.store.cl_save_transaction(&t, None, ctx.now_secs())?;
        }
        return Ok(LineDone::Done);
    }
    let patch = Value::Object(patch);
    if ctx.dry_run {
        ctx.print_dry_run(
            "PATCH",
            &format!("/transaction/{}/{}", t.customer_id, t.transaction_id),
            &patch,
        );
        return Ok(LineDone::Done);
    }
    match ctx
        .credgenics
        .update_transaction(&t.customer_id, &t.transaction_id, &patch)
        .await
    {
        Ok(()) => {
            stats.updated += 1;
            // What Credgenics now holds: the new loan-level keys with the month's claim as sent.
            let held = crate::flows::loans::decide::held_payload(Some(&old), payload);
            t.payload_hash = Some(payload_hash(&held));
            t.payload = Some(held);
            t.state = LoanState::Placed;
            ctx.store.cl_save_transaction(&t, None, ctx.now_secs())?;
            Ok(LineDone::Done)
        }
        Err(e) if e.stops_run() => Err(e.into()),
        Err(ApiError::Rejected { status, body, .. }) => {
            let reason = describe_rejection(status, &body);
            stats.rejected += 1;
            events::transaction_rejected(&t.transaction_id, &reason);
            t.last_error = Some(reason);
            ctx.store.cl_save_transaction(&t, None, ctx.now_secs())?;
            Ok(LineDone::Done)
        }
        Err(ApiError::NotFound { .. }) => Ok(LineDone::Dead(format!(
            "Credgenics no longer has transaction {} of customer {} (404 to Update Transaction)",
            t.transaction_id, t.customer_id
        ))),
        Err(e) => {
            // A PATCH sets values: sending it again is harmless, so the line is read again.
            events::upload_in_doubt(&t.transaction_id, &e);
            Ok(LineDone::Retry)
        }
    }
}

/// Uploads left in doubt by an earlier run: looked up at Credgenics (the customer's
/// transactions), confirmed when there, sent again only when absent.
pub(super) async fn resolve_in_doubt(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
    for t in ctx.store.cl_transactions_in_state(LoanState::Uploading)? {
        let Some(pending) = t.pending.clone() else { continue };
        let found = match ctx.credgenics.get_customer(&t.customer_id).await {
            Ok(Some(output)) => drawdown::customer_has(&output, &t.transaction_id, &pending.month),
            Ok(None) => false,
            Err(e) if e.stops_run() => return Err(e.into()),
            Err(e) => {
                events::upload_in_doubt(&t.transaction_id, &e);
                stats.in_doubt += 1;
                continue;
            }
        };
        if found {
            stats.resolved += 1;
            confirm(ctx, t, ctx.now_secs())?;
            continue;
        }
        match ctx
            .credgenics
            .upload_transaction(&t.transaction_id, &pending.payload)
            .await
        {
            Ok(()) => {
                stats.resolved += 1;
                confirm(ctx, t, ctx.now_secs())?;
            }
            Err(e) if e.stops_run() => return Err(e.into()),
            Err(ApiError::Rejected { status, body, .. }) => {
                let hash = payload_hash(&pending.payload);
                reject(ctx, t, Some(hash), &describe_rejection(status, &body), stats)?;
            }
            Err(e) => {
                events::upload_in_doubt(&t.transaction_id, &e);
                stats.in_doubt += 1;
            }
        }
    }
    Ok(())
}
