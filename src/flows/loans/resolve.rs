//! Earlier work settled first: uploads left in doubt (looked up before any resend), loans and
//! lines an operator asked to retry.

use serde_json::Value;

use super::super::context::{Context, SyncError};
use crate::partners::crego::LineItem;
use crate::partners::http::ApiError;
use crate::store::{LoanState, PendingUpload, ResyncRequest};
use crate::telemetry::events;

use super::apply::*;
use super::map::payload_hash;
use super::outcome::*;
use super::pipeline::{carry_out, process_line};

/// Rejected loans an operator asked to send again (`dead-letters retry`), and loans whose line
/// was deferred while their upload was in doubt: their line is read afresh from the lead's
/// programs and processed as if it had changed. Then the line dead letters an operator asked to
/// retry, the same way.
pub(super) async fn resync_requested(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
    for ResyncRequest {
        loan_id,
        lead_id,
        borrower_program_id: bp,
    } in ctx.store.loans_to_resync()?
    {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(outcome) = process_afresh(ctx, &lead_id, &bp, None).await? else {
            continue;
        };
        // A transient failure, or an upload still in doubt, keeps the request for the next run.
        if !matches!(outcome, Outcome::Failed | Outcome::Deferred) {
            ctx.store.resync_done(&loan_id)?;
        }
        stats.count(&outcome);
    }
    for letter in ctx.store.lines_to_retry()? {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(outcome) =
            process_afresh(ctx, &letter.lead_id, &letter.borrower_program_id, Some(&letter.line_id)).await?
        else {
            continue;
        };
        if !matches!(outcome, Outcome::Failed | Outcome::Dead) {
            ctx.store.clear_line_dead_letter(&letter.line_id)?;
        }
        stats.count(&outcome);
    }
    Ok(())
}

/// Reads one borrower-program's line from its lead's programs and processes it. `None` when it
/// could not be read this time (left for the next run). A lead or program that is gone makes the
/// line a dead letter (`line_id` names it when the line is not readable any more).
pub(super) async fn process_afresh(
    ctx: &Context,
    lead_id: &str,
    bp: &str,
    line_id: Option<&str>,
) -> Result<Option<Outcome>, SyncError> {
    let gone = |reason: &str| -> Result<Option<Outcome>, SyncError> {
        events::resync_line_gone(lead_id, bp, reason);
        if let Some(line) = line_id {
            ctx.store.line_dead_letter(line, lead_id, bp, reason, ctx.now_secs())?;
            return Ok(Some(Outcome::Dead));
        }
        Ok(None)
    };
    let programs = match ctx.crego.programs(lead_id).await {
        Ok(p) => p,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(ApiError::NotFound { .. }) => {
            return gone("the lead is not found at Crego (404, or as crego.absent_statuses says)");
        }
        Err(e) => {
            events::resync_deferred(lead_id, &e);
            return Ok(None);
        }
    };
    let Some(mut line) = programs
        .into_iter()
        .find(|p| p["id"] == bp)
        .map(|p| p["line_detail"].clone())
    else {
        return gone("the borrower-program is no longer listed by its lead");
    };
    line["lead_id"] = Value::String(lead_id.to_string());
    line["borrower_program_id"] = Value::String(bp.to_string());
    match LineItem::with_links(line, lead_id.to_string(), bp.to_string()) {
        Ok(item) => Ok(Some(carry_out(ctx, process_line(ctx, &item, true).await?).await?)),
        Err(e) => gone(&format!("line unreadable: {e}")),
    }
}

/// A placed loan's line read afresh and processed as if it had changed (reconcile's mend of a
/// missing allocation): the upload goes through flow A's own path, recorded in flight first.
pub async fn place_again(ctx: &Context, loan: &crate::store::LoanRow) -> Result<(), SyncError> {
    let _flow = crate::runtime::heartbeat::waiting(ctx.locks.flow_a.lock()).await;
    process_afresh(ctx, &loan.lead_id, &loan.borrower_program_id, None).await?;
    Ok(())
}

/// Uploads left in doubt by an earlier run (a timeout, a 5xx, a crash): look at Credgenics first,
/// and send again only when the allocation month is not there.
pub(super) async fn resolve_in_doubt(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
    for loan in ctx.store.loans_in_state(LoanState::Uploading)? {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(PendingUpload { payload, month }) = loan.pending.clone() else {
            continue;
        };
        let hash = payload_hash(&payload);
        let found = match ctx.credgenics.get_loan(&loan.loan_id, None).await {
            Ok(found) => found,
            Err(e) if e.stops_run() => return Err(e.into()),
            Err(e) => {
                let max = ctx.config.sync.max_lookups;
                if ctx
                    .store
                    .lookup_failed(&loan.loan_id, max, &e.to_string(), ctx.now_secs())?
                {
                    events::upload_dead_letter(&loan.loan_id, max, &e);
                    stats.dead_letters += 1;
                } else {
                    events::lookup_failed(&loan.loan_id, &e);
                }
                continue;
            }
        };
        let has_month = found.as_ref().is_some_and(|v| {
            v["loan_details"]["defaults"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["allocation_month"] == month.as_str()))
        });
        if has_month {
            let mut loan = loan;
            confirm_upload(ctx, &mut loan, hash)?;
            stats.resolved += 1;
        } else {
            let o = send_upload(ctx, loan, hash).await?;
            if !matches!(o, Outcome::InDoubt) {
                stats.resolved += 1;
            }
            stats.count(&o);
        }
    }
    Ok(())
}
