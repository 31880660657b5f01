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
use crate::flows::loans::{FlowAStats, STREAM};
use crate::partners::crego::LineItem;
use crate::partners::crego::stream::{Stream, StreamReader};
use crate::partners::http::ApiError;
use crate::runtime::heartbeat::waiting;
use crate::store::{DrawdownRead, LoanState, TransactionRow};
use crate::telemetry::events;

use super::drawdown::{self, Drawdown};
use super::transaction::{LineDone, resolve_in_doubt, retry, update, upload};

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
            let cursor = crate::flows::context::page_cursor(page_max, blocked_at);
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
