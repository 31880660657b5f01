//! Decisions carried out: settle, PATCH, upload (in flight first), rejections and dead letters.

use serde_json::{Map, Value, json};

use super::super::context::{Context, SyncError};
use crate::partners::credgenics::describe_rejection;
use crate::partners::crego::LineItem;
use crate::partners::http::ApiError;
use crate::store::{LoanRow, LoanState, PendingUpload};
use crate::telemetry;
use crate::telemetry::events;

use super::outcome::*;

/// A line that cannot be processed for a reason of its own: a dead letter (listed, retryable,
/// ignorable), and the stream moves on (design §2.7).
pub(super) fn dead_line(ctx: &Context, item: &LineItem, reason: &str) -> Result<Outcome, SyncError> {
    events::line_dead_letter(&item.id, &item.lead_id, &item.borrower_program_id, reason);
    if !ctx.dry_run {
        ctx.store.line_dead_letter(
            &item.id,
            &item.lead_id,
            &item.borrower_program_id,
            reason,
            ctx.now_secs(),
        )?;
    }
    Ok(Outcome::Dead)
}

/// A placed loan whose line is no longer overdue: cured, or closed at zero outstanding. No call.
pub(super) fn settle(ctx: &Context, mut loan: LoanRow, state: LoanState) -> Result<Outcome, SyncError> {
    let outcome = if state == LoanState::Closed {
        Outcome::Closed
    } else {
        Outcome::Cured
    };
    if !ctx.dry_run {
        loan.state = state;
        loan.updated_at = ctx.now_secs();
        ctx.store.move_loan(&loan, false)?;
    }
    telemetry::events::loan_state(&loan.loan_id, state.as_str());
    Ok(outcome)
}

/// Same allocation month, changed loan-level keys: PATCH them.
pub(super) async fn update(
    ctx: &Context,
    mut loan: LoanRow,
    payload: Value,
    hash: String,
    patch: Map<String, Value>,
) -> Result<Outcome, SyncError> {
    let keys: Vec<String> = patch.keys().cloned().collect();
    let patch = Value::Object(patch);
    if ctx.dry_run {
        ctx.print_dry_run("PATCH", &format!("/loan/{}", loan.loan_id), &patch);
        return Ok(Outcome::Updated);
    }
    match ctx.credgenics.update_loan(&loan.loan_id, &patch).await {
        Ok(()) => {
            loan.payload = Some(super::decide::held_payload(loan.payload.as_ref(), payload));
            loan.payload_hash = Some(hash);
            loan.rejected_hash = None;
            loan.last_error = None;
            loan.state = LoanState::Placed;
            loan.updated_at = ctx.now_secs();
            ctx.store.set_sent_payload(&loan, true)?;
            telemetry::events::loan_updated(&loan.loan_id, &keys);
            Ok(Outcome::Updated)
        }
        Err(ApiError::Rejected { status, body, .. }) => record_rejection(ctx, &mut loan, hash, status, &body),
        Err(ApiError::NotFound { .. }) => record_rejection(
            ctx,
            &mut loan,
            hash,
            404,
            "Credgenics no longer has this loan (PATCH answered 404)",
        ),
        Err(e) if e.stops_run() => Err(e.into()),
        Err(e) => {
            events::update_failed(&loan.loan_id, &e);
            Ok(Outcome::Failed)
        }
    }
}

/// First upload or a new allocation month: recorded as in flight, then POSTed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    ctx: &Context,
    existing: Option<LoanRow>,
    item: &LineItem,
    program: &Value,
    loan_id: &str,
    month: &str,
    payload: Value,
    hash: String,
) -> Result<Outcome, SyncError> {
    let new_allocation = existing.as_ref().is_some_and(|l| l.allocation_month.is_some());
    if ctx.dry_run {
        ctx.print_dry_run("POST", &format!("/loan/{loan_id}"), &payload);
        return Ok(Outcome::Placed { new_allocation });
    }
    let now = ctx.now_secs();
    let mut loan = existing.unwrap_or_else(|| new_loan_row(item, program, loan_id, now));
    loan.state = LoanState::Uploading;
    loan.pending = Some(PendingUpload {
        payload,
        month: month.to_string(),
    });
    loan.updated_at = now;
    // Placed from the moment its first upload is recorded in flight (design §2.5), even when its
    // acceptance is only confirmed by a look-up runs later: repayments booked from then on are not
    // part of the claim.
    loan.first_placed_at.get_or_insert(now);
    // Recorded as in flight (with the rest of the page's uploads) before it is sent.
    Ok(Outcome::UploadPlanned(Box::new((loan, hash))))
}

/// POSTs the pending upload of `loan` (already recorded as in flight) and records the outcome.
pub(super) async fn send_upload(ctx: &Context, loan: LoanRow, hash: String) -> Result<Outcome, SyncError> {
    let (outcome, confirmed) = send_upload_deferred(ctx, loan, hash).await?;
    if let Some(loan) = confirmed {
        ctx.store.confirm_uploads(&[&loan])?;
        placed_event(&loan, matches!(outcome, Outcome::Placed { new_allocation: true }));
    }
    Ok(outcome)
}

/// [`send_upload`] leaving an accepted upload's row for the caller to record (with others).
pub(super) async fn send_upload_deferred(
    ctx: &Context,
    mut loan: LoanRow,
    hash: String,
) -> Result<(Outcome, Option<LoanRow>), SyncError> {
    let payload = loan
        .pending
        .as_ref()
        .expect("an upload has a pending payload")
        .payload
        .clone();
    let new_allocation = loan.allocation_month.is_some();
    let outcome = match ctx.credgenics.upload_loan(&loan.loan_id, &payload).await {
        Ok(()) => {
            confirmed(ctx, &mut loan, hash);
            return Ok((Outcome::Placed { new_allocation }, Some(loan)));
        }
        Err(ApiError::Rejected { status, body, .. }) => record_rejection(ctx, &mut loan, hash, status, &body),
        Err(e) if e.stops_run() => {
            // Refused before anything was done: the upload is not in doubt.
            restore_after_refusal(ctx, &mut loan)?;
            Err(e.into())
        }
        Err(e) if e.in_doubt() => {
            let error = format!("upload in doubt: {e}");
            ctx.store.note_loan_error(&loan.loan_id, &error)?;
            loan.last_error = Some(error);
            telemetry::events::loan_in_doubt(&loan.loan_id, &e);
            Ok(Outcome::InDoubt)
        }
        Err(e) => {
            // Provably not acted on (rate limit or connection refused, retries exhausted).
            restore_after_refusal(ctx, &mut loan)?;
            events::upload_failed(&loan.loan_id, &e);
            Ok(Outcome::Failed)
        }
    };
    outcome.map(|o| (o, None))
}

pub(super) fn confirm_upload(ctx: &Context, loan: &mut LoanRow, hash: String) -> Result<(), SyncError> {
    let new_allocation = loan.allocation_month.is_some();
    confirmed(ctx, loan, hash);
    ctx.store.confirm_uploads(&[loan])?;
    placed_event(loan, new_allocation);
    Ok(())
}

pub(super) fn placed_event(loan: &LoanRow, new_allocation: bool) {
    telemetry::events::loan_placed(
        &loan.loan_id,
        loan.allocation_month.as_deref().unwrap_or(""),
        new_allocation,
    );
}

/// The row of an upload Credgenics accepted (not yet recorded).
pub(super) fn confirmed(ctx: &Context, loan: &mut LoanRow, hash: String) {
    let now = ctx.now_secs();
    if let Some(PendingUpload { payload, month }) = loan.pending.take() {
        loan.payload = Some(payload);
        loan.allocation_month = Some(month);
    }
    loan.payload_hash = Some(hash);
    loan.rejected_hash = None;
    loan.last_error = None;
    loan.state = LoanState::Placed;
    loan.first_placed_at.get_or_insert(now);
    // A new loan has no recoveries yet: the poll reads it from the next poll slot on.
    loan.last_polled_at.get_or_insert(now);
    loan.updated_at = now;
}

/// Credgenics refused the payload (a 4xx with its reasons): the loan is rejected, and this very
/// payload is not sent again.
pub(super) fn record_rejection(
    ctx: &Context,
    loan: &mut LoanRow,
    hash: String,
    status: u16,
    body: &str,
) -> Result<Outcome, SyncError> {
    let reason = describe_rejection(status, body);
    loan.pending = None;
    loan.rejected_hash = Some(hash);
    loan.last_error = Some(reason.clone());
    loan.state = LoanState::Rejected;
    if loan.allocation_month.is_none() {
        // Never placed: a later upload is its first placement.
        loan.first_placed_at = None;
    }
    loan.updated_at = ctx.now_secs();
    ctx.store.reject_loan(loan)?;
    telemetry::events::loan_rejected(&loan.loan_id, &reason);
    Ok(Outcome::Rejected)
}

/// Undoes the in-flight mark of an upload Credgenics provably did not act on: back to what the
/// loan was, or forgotten when it was never placed, so the next run treats it afresh.
pub(super) fn restore_after_refusal(ctx: &Context, loan: &mut LoanRow) -> Result<(), SyncError> {
    if loan.allocation_month.is_none() {
        ctx.store.delete_loan(&loan.loan_id)?;
        return Ok(());
    }
    loan.pending = None;
    loan.state = LoanState::Placed;
    loan.updated_at = ctx.now_secs();
    ctx.store.move_loan(loan, false)?;
    Ok(())
}

/// The state's first row for a borrower-program.
pub(super) fn new_loan_row(item: &LineItem, program: &Value, loan_id: &str, now: f64) -> LoanRow {
    LoanRow {
        loan_id: loan_id.to_string(),
        borrower_program_id: item.borrower_program_id.clone(),
        lead_id: item.lead_id.clone(),
        program_id: program["program_id"].as_str().map(str::to_string),
        allocation_month: None,
        state: LoanState::Rejected,
        payload: None,
        payload_hash: None,
        pending: None,
        rejected_hash: None,
        last_error: None,
        first_placed_at: None,
        updated_at: now,
        due_amount: Some(item.due_amount),
        total_outstanding: Some(item.total_outstanding),
        last_polled_at: None,
        line_updated_at: Some(item.updated_at),
        line_read_at: Some(now),
    }
}

/// A payload the mapping could not produce: recorded as rejected with the reason, no call.
pub(super) fn reject_unmapped(
    ctx: &Context,
    existing: Option<LoanRow>,
    item: &LineItem,
    program: &Value,
    loan_id: &str,
    reason: String,
) -> Result<Outcome, SyncError> {
    telemetry::events::loan_rejected(loan_id, &reason);
    if ctx.dry_run {
        println!("{}", json!({"dry_run": true, "rejected": loan_id, "reason": reason}));
        return Ok(Outcome::Rejected);
    }
    let mut loan = existing.unwrap_or_else(|| new_loan_row(item, program, loan_id, ctx.now_secs()));
    loan.state = LoanState::Rejected;
    if loan.allocation_month.is_none() {
        loan.first_placed_at = None;
    }
    loan.last_error = Some(reason);
    loan.rejected_hash = None;
    loan.updated_at = ctx.now_secs();
    ctx.store.save_loan(&loan, false)?;
    Ok(Outcome::Rejected)
}
