//! Flow A in credit-line mode (design §8): each overdue drawdown of a changed line placed as a
//! transaction of the line's customer.
//!
//! The change stream is flow A's (line details): a drawdown's dues move its line, so every
//! drawdown change shows up as a line change. Per changed line that is overdue or has
//! transactions: the lead, its programs and the line's drawdowns are read; each drawdown is
//! decided as a lending loan is — first time or a new month: Upload Transaction
//! (`POST /loan/{transaction_id}`, recorded `uploading` before it is sent); same month and
//! changed: Update Transaction of the changed loan-level keys (the claim is a snapshot); no
//! longer overdue: `cured`, or `closed` at zero outstanding. An upload whose outcome is unknown is
//! looked up (`GET /loan/{client_customer_id}`) before it is sent again.

use serde_json::Value;

use crate::clock;
use crate::flows::context::{Context, SyncError};
use crate::flows::loans::{FlowAStats, STREAM, payload_hash};
use crate::partners::credgenics::describe_rejection;
use crate::partners::crego::LineItem;
use crate::partners::crego::stream::{Stream, StreamReader};
use crate::partners::http::ApiError;
use crate::runtime::heartbeat::waiting;
use crate::store::{ClCustomerRow, DrawdownRead, LoanState, PendingUpload, TransactionRow};
use crate::telemetry::events;

use super::drawdown::{self, Drawdown};

/// What one line (or one of its drawdowns) came to: the stream may pass it; or it may, but as a
/// dead letter with this reason (listed, retried when the line changes, counted as needing
/// attention); or it must be read again.
enum LineDone {
    Done,
    Dead(String),
    Retry,
}

impl LineDone {
    /// A line's outcome from its drawdowns': read again if any must be, else the first reason.
    fn and(self, other: LineDone) -> LineDone {
        match (self, other) {
            (LineDone::Retry, _) | (_, LineDone::Retry) => LineDone::Retry,
            (LineDone::Dead(r), _) | (_, LineDone::Dead(r)) => LineDone::Dead(r),
            _ => LineDone::Done,
        }
    }
}

pub async fn run(ctx: &Context, since: Option<f64>, stats: &mut FlowAStats) -> Result<(), SyncError> {
    let _flow = waiting(ctx.locks.flow_a.lock()).await;
    if !ctx.dry_run {
        resolve_in_doubt(ctx, stats).await?;
    }
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let (from, covers_window) = crate::flows::context::read_start(ctx, STREAM, since)?;
    let read_started = clock::wall_secs();
    let mut reader = StreamReader::new(&ctx.crego, Stream::LineDetails, from);
    let mut blocked_at: Option<f64> = None;
    let dead_lines: std::collections::HashSet<String> = if ctx.dry_run {
        Default::default()
    } else {
        ctx.store.line_dead_letters()?.into_iter().map(|d| d.line_id).collect()
    };
    while let Some(results) = reader.next_page().await? {
        let mut done = Vec::new();
        let mut page_max: Option<f64> = None;
        for raw in results {
            let item = match LineItem::from_value(raw, &ctx.config.mapping.link) {
                Ok(i) => i,
                Err(e) => {
                    events::line_detail_unreadable(&e);
                    stats.skipped += 1;
                    continue;
                }
            };
            stats.scanned += 1;
            page_max = Some(page_max.map_or(item.updated_at, |m: f64| m.max(item.updated_at)));
            if since.is_none()
                && ctx
                    .store
                    .seen(STREAM, &item.id)?
                    .is_some_and(|at| at >= item.updated_at)
            {
                done.push((item.id.clone(), item.updated_at));
                continue;
            }
            match process_line(ctx, &item, stats).await? {
                LineDone::Done => {
                    if dead_lines.contains(&item.id) && !ctx.dry_run {
                        ctx.store.clear_line_dead_letter(&item.id)?;
                    }
                    done.push((item.id.clone(), item.updated_at));
                }
                LineDone::Dead(reason) => {
                    stats.dead_letters += 1;
                    events::line_dead_letter(&item.id, &item.lead_id, &item.borrower_program_id, &reason);
                    if !ctx.dry_run {
                        let now = ctx.now_secs();
                        ctx.store
                            .line_dead_letter(&item.id, &item.lead_id, &item.borrower_program_id, &reason, now)?;
                    }
                    done.push((item.id.clone(), item.updated_at));
                }
                LineDone::Retry => {
                    stats.failed += 1;
                    blocked_at = Some(blocked_at.map_or(item.updated_at, |b| b.min(item.updated_at)));
                }
            }
            if ctx.stopping() {
                break;
            }
        }
        if !ctx.dry_run {
            let cursor = match (page_max, blocked_at) {
                (Some(m), Some(b)) => Some(m.min(b)),
                (m, None) => m,
                (None, Some(b)) => Some(b),
            };
            ctx.store.commit_page(STREAM, cursor, &done, overlap, ctx.now_secs())?;
        }
        ctx.progressed(|| {
            format!(
                "A: {} lines read, {} transactions placed, {} updated",
                stats.scanned,
                stats.placed + stats.new_allocations,
                stats.updated
            )
        });
        if ctx.stopping() {
            return Ok(());
        }
    }
    if blocked_at.is_none() && covers_window && !ctx.dry_run {
        ctx.store.mark_stream_checked(STREAM, ctx.now_secs(), read_started)?;
    }
    Ok(())
}

/// A transient failure of one line's reads: the line is read again on the next run.
fn retry(item: &LineItem, e: &ApiError) -> LineDone {
    events::fetch_failed(&item.id, e);
    LineDone::Retry
}

async fn process_line(ctx: &Context, item: &LineItem, stats: &mut FlowAStats) -> Result<LineDone, SyncError> {
    let min_dpd = ctx.config.sync.min_dpd;
    let known = ctx.store.cl_customer_by_program(&item.borrower_program_id)?;
    let line_overdue = item.dpd >= min_dpd && item.due_amount > rust_decimal::Decimal::ZERO;
    if known.is_none() && !line_overdue {
        stats.skipped += 1;
        return Ok(LineDone::Done);
    }
    if line_overdue {
        stats.overdue += 1;
    }
    let fetched = tokio::try_join!(
        ctx.crego.programs(&item.lead_id),
        ctx.crego.lead(&item.lead_id),
        ctx.crego.drawdowns(&item.borrower_program_id)
    );
    let (programs, lead, listed) = match fetched {
        Ok(x) => x,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(ApiError::NotFound { .. }) => {
            // The lead is gone: nothing to place; its transactions stay as they are.
            return Ok(LineDone::Dead(
                "the lead of this line is not found at Crego (404, or as crego.absent_statuses says)".into(),
            ));
        }
        Err(e) => return Ok(retry(item, &e)),
    };
    let Some(program) = programs
        .iter()
        .find(|p| p["id"].as_str() == Some(item.borrower_program_id.as_str()))
    else {
        return Ok(LineDone::Dead(format!(
            "the lead's programs have no borrower-program {}",
            item.borrower_program_id
        )));
    };
    let mut outcome = LineDone::Done;
    for (kind, raw) in listed {
        let d = match drawdown::read(ctx, &lead, program, kind, raw) {
            Ok(d) => d,
            Err(reason) => {
                events::drawdown_unreadable(&item.borrower_program_id, &reason);
                outcome = outcome.and(LineDone::Dead(format!(
                    "a drawdown of this line cannot be read: {reason}"
                )));
                continue;
            }
        };
        outcome = outcome.and(place_drawdown(ctx, item, &lead, program, &d, stats).await?);
        if ctx.stopping() {
            // Shutting down between drawdowns: the line is read again, whole.
            return Ok(LineDone::Retry);
        }
    }
    Ok(outcome)
}

/// One drawdown decided and carried out.
async fn place_drawdown(
    ctx: &Context,
    item: &LineItem,
    lead: &Value,
    program: &Value,
    d: &Drawdown,
    stats: &mut FlowAStats,
) -> Result<LineDone, SyncError> {
    let now = ctx.now_secs();
    let existing = ctx.store.cl_transaction(&d.transaction_id)?;
    if let Some(t) = &existing
        && t.customer_id != d.customer_id
    {
        // A transaction belongs to the customer it was first uploaded under (the sandbox and, by
        // its silence, the document): a mapping that moved it is a person's to look at.
        events::transaction_moved(&d.transaction_id, &t.customer_id, &d.customer_id);
        return Ok(LineDone::Dead(format!(
            "[mapping.transaction] puts transaction {} under customer {}; it was placed under {}",
            d.transaction_id, d.customer_id, t.customer_id
        )));
    }
    if !ctx.dry_run && existing.is_some() {
        let read = DrawdownRead {
            due_amount: d.due_amount,
            total_outstanding: d.total_outstanding,
            updated_at: d.updated_at,
            read_at: now,
        };
        ctx.store.cl_set_read(&d.transaction_id, &read)?;
    }
    let overdue = d.is_overdue(ctx.config.sync.min_dpd);
    let month = clock::allocation_month(ctx.clock.today());
    let Some(mut t) = existing else {
        if !overdue {
            return Ok(LineDone::Done);
        }
        let fresh = TransactionRow {
            transaction_id: d.transaction_id.clone(),
            customer_id: d.customer_id.clone(),
            drawdown_id: d.drawdown_id.clone(),
            kind: d.kind.to_string(),
            opened_at: d.opened_at,
            allocation_month: None,
            state: LoanState::Uploading,
            payload: None,
            payload_hash: None,
            pending: None,
            rejected_hash: None,
            last_error: None,
            first_placed_at: None,
            due_amount: Some(d.due_amount),
            total_outstanding: Some(d.total_outstanding),
            drawdown_updated_at: Some(d.updated_at),
            read_at: Some(now),
            updated_at: now,
        };
        return upload(ctx, item, lead, program, d, fresh, &month, stats).await;
    };
    match t.state {
        // Its last upload is in doubt: the look-up at the start of the next run settles it.
        LoanState::Uploading => {
            stats.deferred += 1;
            Ok(LineDone::Done)
        }
        _ if !overdue => {
            let settled = if d.total_outstanding.is_zero() {
                LoanState::Closed
            } else {
                LoanState::Cured
            };
            if matches!(t.state, LoanState::Placed | LoanState::Cured) && t.state != settled {
                if settled == LoanState::Closed {
                    stats.closed += 1;
                } else {
                    stats.cured += 1;
                }
                if !ctx.dry_run {
                    t.state = settled;
                    ctx.store.cl_save_transaction(&t, None, now)?;
                }
            }
            Ok(LineDone::Done)
        }
        _ if t.allocation_month.as_deref() != Some(month.as_str()) => {
            upload(ctx, item, lead, program, d, t, &month, stats).await
        }
        _ => update(ctx, lead, program, d, t, &month, stats).await,
    }
}

/// Upload Transaction for `month` (a new transaction, or a new allocation), recorded in flight
/// first.
#[allow(clippy::too_many_arguments)]
async fn upload(
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
async fn update(
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
async fn resolve_in_doubt(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
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
