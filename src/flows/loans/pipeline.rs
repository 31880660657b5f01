//! The page pipeline: each changed line decided ([`super::decide`]) and the decision applied;
//! a page's uploads recorded in flight together, sent, and recorded as they come back.

use futures::StreamExt;

use super::super::context::{Context, SyncError};
use crate::clock;
use crate::partners::crego::LineItem;
use crate::partners::http::ApiError;
use crate::store::{LineRead, LoanRow, LoanState};

use super::apply::*;
use super::decide::{Decision, Triage, decide, triage};
use super::map::*;
use super::outcome::*;

/// Processes one page as a pipeline: lines are decided concurrently (reads from Crego); the
/// uploads they call for are recorded as in flight in small batches (one durable commit each) and
/// sent while later lines are still being decided, so both partners stay busy; the accepted
/// uploads are recorded together at the end of the page. A crash before that leaves them in
/// doubt, resolved by a look-up at the next start.
pub(super) async fn run_page(
    ctx: &Context,
    items: &[LineItem],
    backfill: bool,
    concurrency: usize,
    tally: &mut PageTally,
    stats: &mut FlowAStats,
) -> Result<(), SyncError> {
    use futures::stream::FuturesUnordered;
    let mut deciding = futures::stream::iter(0..items.len())
        .map(|idx| async move { (idx, process_line(ctx, &items[idx], backfill).await) })
        .buffer_unordered(concurrency);
    let mut deciding_done = items.is_empty();
    let mut sending = FuturesUnordered::new();
    let mut to_mark: Vec<(usize, Box<(LoanRow, String)>)> = Vec::new();
    let mut confirmed: Vec<(LoanRow, bool)> = Vec::new();
    loop {
        // Record the uploads decided so far as in flight, then send them: at once when nothing
        // is being sent (the pipe would sit idle), else in batches of a few (fewer commits).
        if !to_mark.is_empty()
            && tally.first_error.is_none()
            && tally.auth_error.is_none()
            && (sending.is_empty() || deciding_done || to_mark.len() >= MARK_BATCH)
        {
            let batch = std::mem::take(&mut to_mark);
            let marks: Vec<(&LoanRow, bool)> = batch.iter().map(|(_, p)| (&p.0, false)).collect();
            if let Err(e) = ctx.store.save_loans(&marks) {
                tally.first_error.get_or_insert(e.into());
            } else {
                for (idx, p) in batch {
                    let (loan, hash) = *p;
                    sending.push(async move { (idx, send_upload_deferred(ctx, loan, hash).await) });
                }
            }
        }
        if deciding_done && sending.is_empty() {
            break;
        }
        tokio::select! {
            next = deciding.next(), if !deciding_done => match next {
                Some((idx, outcome)) => {
                    if let Some(p) = tally.settle(&items[idx], outcome, stats) {
                        to_mark.push((idx, p));
                    }
                }
                None => deciding_done = true,
            },
            Some((idx, r)) = sending.next(), if !sending.is_empty() => {
                let r = r.map(|(o, row)| {
                    if let (Some(row), Outcome::Placed { new_allocation }) = (row, &o) {
                        confirmed.push((row, *new_allocation));
                    }
                    o
                });
                tally.settle(&items[idx], r, stats);
            }
        }
    }
    // Decided but never recorded nor sent (an error stopped the page): nothing happened to them.
    drop(to_mark);
    let rows: Vec<&LoanRow> = confirmed.iter().map(|(l, _)| l).collect();
    ctx.store.confirm_uploads(&rows)?;
    for (loan, new_allocation) in &confirmed {
        placed_event(loan, *new_allocation);
    }
    Ok(())
}

/// Carries out an upload `process_line` planned, on its own (outside a page's pipeline): recorded
/// as in flight, then sent.
pub(super) async fn carry_out(ctx: &Context, outcome: Outcome) -> Result<Outcome, SyncError> {
    match outcome {
        Outcome::UploadPlanned(p) => {
            let (loan, hash) = *p;
            ctx.store.save_loan(&loan, false)?;
            send_upload(ctx, loan, hash).await
        }
        o => Ok(o),
    }
}

/// Uploads recorded as in flight per commit while others are being sent.
pub(super) const MARK_BATCH: usize = 8;

/// What the lines of one page came to, as their outcomes arrive.
#[derive(Default)]
pub(super) struct PageTally {
    /// Lines done with (the stream may move past them).
    pub(super) done: Vec<(String, f64)>,
    /// Of those, the lines that became dead letters, and those not looked at (already seen).
    pub(super) dead: std::collections::HashSet<String>,
    /// The earliest line that failed transiently: the cursor stays before it.
    pub(super) blocked_at: Option<f64>,
    pub(super) auth_error: Option<ApiError>,
    pub(super) first_error: Option<SyncError>,
}

impl PageTally {
    /// Counts an outcome; an upload decided but not yet sent is handed back.
    fn settle(
        &mut self,
        item: &LineItem,
        outcome: Result<Outcome, SyncError>,
        stats: &mut FlowAStats,
    ) -> Option<Box<(LoanRow, String)>> {
        match outcome {
            Ok(Outcome::UploadPlanned(p)) => return Some(p),
            Ok(o) => {
                if matches!(o, Outcome::Failed) {
                    self.blocked_at = Some(self.blocked_at.map_or(item.updated_at, |b| b.min(item.updated_at)));
                } else {
                    if matches!(o, Outcome::Dead | Outcome::Seen) {
                        self.dead.insert(item.id.clone());
                    }
                    self.done.push((item.id.clone(), item.updated_at));
                }
                stats.count(&o);
            }
            Err(SyncError::Api(e)) if e.stops_run() => self.auth_error = Some(e),
            Err(e) => {
                self.first_error.get_or_insert(e);
            }
        }
        None
    }
}

/// Decides and carries out what one changed line needs.
pub(super) async fn process_line(ctx: &Context, item: &LineItem, backfill: bool) -> Result<Outcome, SyncError> {
    if !backfill
        && ctx
            .store
            .seen(STREAM, &item.id)?
            .is_some_and(|at| at >= item.updated_at)
    {
        return Ok(Outcome::Seen);
    }
    let mut existing = ctx.store.loan_by_program(&item.borrower_program_id)?;
    if let Some(loan) = existing.as_mut()
        && !ctx.dry_run
        && loan.line_updated_at.is_none_or(|at| at <= item.updated_at)
    {
        // Flow C decides `Closed` from these: keep them current whatever else happens.
        let read = LineRead {
            due_amount: item.due_amount,
            total_outstanding: item.total_outstanding,
            updated_at: item.updated_at,
            read_at: ctx.now_secs(),
        };
        ctx.store.set_line_numbers(&loan.loan_id, &read)?;
        loan.due_amount = Some(item.due_amount);
        loan.total_outstanding = Some(item.total_outstanding);
        loan.line_updated_at = Some(read.updated_at);
        loan.line_read_at = Some(read.read_at);
    }
    let line = line_of(item);
    let min_dpd = ctx.config.sync.min_dpd;
    let month = clock::allocation_month(ctx.clock.today());
    match triage(&line, min_dpd, existing.as_ref()) {
        Triage::Map => {}
        Triage::Defer => {
            // Its last upload is in doubt: the look-up at the start of a run settles it, and the
            // line is then read afresh from the lead's programs. The stream moves on meanwhile.
            if !ctx.dry_run
                && let Some(loan) = &existing
            {
                ctx.store.request_resync(&loan.loan_id)?;
            }
            return Ok(Outcome::Deferred);
        }
        Triage::Settle(state) => return settle(ctx, existing.expect("a settled loan exists"), state),
        Triage::Skip => return Ok(Outcome::Skipped),
    }

    let fetched = tokio::try_join!(ctx.crego.programs(&item.lead_id), ctx.crego.lead(&item.lead_id));
    let (programs, lead) = match fetched {
        Ok(x) => x,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(ApiError::NotFound { .. }) => {
            return dead_line(
                ctx,
                item,
                "the lead of this overdue line is not found at Crego (404, or as crego.absent_statuses says)",
            );
        }
        Err(e) => {
            crate::telemetry::events::fetch_failed(&item.id, &e);
            return Ok(Outcome::Failed);
        }
    };
    let Some(program) = programs
        .into_iter()
        .find(|p| p["id"] == item.borrower_program_id.as_str())
    else {
        return dead_line(
            ctx,
            item,
            "the lead's programs do not list this line's borrower-program",
        );
    };

    let mapped = map_loan(ctx, &lead, &program, item, &month).map_err(|reason| {
        format!(
            "{reason} (input: lead {}, borrower-program {}, line {})",
            item.lead_id, item.borrower_program_id, item.id
        )
    });
    let hash = mapped.as_ref().map(payload_hash).unwrap_or_default();
    let decision = decide(existing.as_ref(), &month, &mapped, &hash, preflight);
    let payload = mapped.unwrap_or_default();
    match decision {
        Decision::Reject(reason) => {
            // Recorded against the loan already placed, else the id the mapping gave, else the
            // borrower-program's own.
            let loan_id = existing
                .as_ref()
                .map(|l| l.loan_id.clone())
                .or_else(|| {
                    payload["loan_id"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
                .or_else(|| program["ref_id"].as_str().map(str::to_string))
                .unwrap_or_else(|| item.borrower_program_id.clone());
            reject_unmapped(ctx, existing, item, &program, &loan_id, reason)
        }
        Decision::AlreadyRefused => Ok(Outcome::Unchanged),
        Decision::Unchanged { reactivate } => {
            if let Some(mut loan) = existing.filter(|_| reactivate && !ctx.dry_run) {
                loan.state = LoanState::Placed;
                loan.last_error = None;
                loan.updated_at = ctx.now_secs();
                ctx.store.move_loan(&loan, true)?;
            }
            Ok(Outcome::Unchanged)
        }
        Decision::Remember => {
            // Only keys dropped by the mapping: Credgenics has no way to unset them.
            if let Some(mut loan) = existing.filter(|_| !ctx.dry_run) {
                loan.payload = Some(super::decide::held_payload(loan.payload.as_ref(), payload));
                loan.payload_hash = Some(hash);
                loan.state = LoanState::Placed;
                loan.updated_at = ctx.now_secs();
                ctx.store.set_sent_payload(&loan, false)?;
            }
            Ok(Outcome::Unchanged)
        }
        Decision::Patch(patch) => {
            let loan = existing.expect("a patched loan exists");
            update(ctx, loan, payload, hash, patch).await
        }
        Decision::Upload { .. } => {
            let loan_id = payload["loan_id"].as_str().unwrap_or_default().to_string();
            upload(ctx, existing, item, &program, &loan_id, &month, payload, hash).await
        }
    }
}
