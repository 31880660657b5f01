//! One run of flow A: in-doubt uploads and operator resyncs first, then the change stream.

use super::super::context::{Context, SyncError};
use crate::partners::crego::LineItem;
use crate::partners::crego::stream::{Stream, StreamReader};
use crate::runtime::heartbeat::waiting;
use crate::telemetry;

use super::map::is_overdue;
use super::outcome::*;
use super::pipeline::{PageTally, run_page};
use super::resolve::{resolve_in_doubt, resync_requested};

/// One run of flow A: in-doubt uploads first, then the change stream from the cursor (or from
/// `since`). A refused credential stops it with an error; everything else is counted.
pub async fn run(ctx: &Context, since: Option<f64>, stats: &mut FlowAStats) -> Result<(), SyncError> {
    // Place-loans and reconcile both run this flow: never at the same time.
    let _flow = waiting(ctx.locks.flow_a.lock()).await;
    if !ctx.dry_run {
        resolve_in_doubt(ctx, stats).await?;
        resync_requested(ctx, stats).await?;
    }
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let (from, covers_window) = super::super::context::read_start(ctx, STREAM, since)?;
    let read_started = crate::clock::wall_secs();
    let backfill = since.is_some();
    let concurrency = ctx
        .config
        .crego
        .limits
        .max_in_flight
        .max(ctx.config.credgenics.limits.max_in_flight)
        * 2;
    // The stream may not move past a line that failed transiently: it is read again next run.
    let mut blocked_at: Option<f64> = None;
    let dead_lines: std::collections::HashSet<String> = if ctx.dry_run {
        Default::default()
    } else {
        ctx.store.line_dead_letters()?.into_iter().map(|d| d.line_id).collect()
    };
    let mut reader = StreamReader::new(&ctx.crego, Stream::LineDetails, from);
    let mut page = 0u32;
    while let Some(results) = reader.next_page().await? {
        page += 1;
        let mut items = Vec::with_capacity(results.len());
        for raw in results {
            match LineItem::from_value(raw, &ctx.config.mapping.link) {
                Ok(i) => items.push(i),
                Err(e) => {
                    crate::telemetry::events::line_detail_unreadable(&e);
                    stats.skipped += 1;
                }
            }
        }
        stats.scanned += items.len() as u64;
        let page_max = items
            .iter()
            .map(|i| i.updated_at)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let mut tally = PageTally {
            blocked_at,
            ..PageTally::default()
        };
        for item in &items {
            if is_overdue(ctx, item) {
                stats.overdue += 1;
            }
        }
        run_page(ctx, &items, backfill, concurrency, &mut tally, stats).await?;
        let PageTally {
            done,
            dead,
            auth_error,
            first_error,
            blocked_at: blocked,
        } = tally;
        blocked_at = blocked;
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some(e) = auth_error {
            return Err(e.into());
        }
        if !ctx.dry_run {
            let cursor = crate::flows::context::page_cursor(page_max, blocked_at);
            ctx.store.commit_page(STREAM, cursor, &done, overlap, ctx.now_secs())?;
            for (line, _) in done.iter().filter(|(line, _)| dead_lines.contains(line)) {
                // Processed after all (its lead is back): no longer a dead letter.
                if !dead.contains(line) {
                    ctx.store.clear_line_dead_letter(line)?;
                }
            }
            telemetry::events::page_done(STREAM, page, items.len(), cursor.unwrap_or(from));
        }
        ctx.progressed(|| {
            format!(
                "A: {} lines read, {} placed, {} updated, {} rejected",
                stats.scanned,
                stats.placed + stats.new_allocations,
                stats.updated,
                stats.rejected
            )
        });
        if ctx.stopping() {
            // Shutting down: the page is committed; the rest is read on the next run.
            return Ok(());
        }
    }
    if blocked_at.is_none() && covers_window && !ctx.dry_run {
        ctx.store.mark_stream_checked(STREAM, ctx.now_secs(), read_started)?;
    }
    Ok(())
}
