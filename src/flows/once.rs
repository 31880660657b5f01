//! The `--once` cycle: every flow once, in order A, C, B, and the outcome it comes to.

use serde::Serialize;
use serde_json::{Value, json};

use super::context::Context;
use super::jobs;
use super::loans::FlowAStats;
use super::recoveries::{FlowBStats, Poll};
use super::repayments::FlowCStats;
use crate::partners::http::ApiClient;
use crate::store::{Store, StoreError};
use crate::telemetry::events;

/// Options of one cycle.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--since`: read the change streams from this instant (epoch seconds) instead of the cursors.
    pub since: Option<f64>,
    /// Which loans the recoveries poll reads; `None`: those not read since the poll schedule's
    /// last slot (so a second `--once` right after the first polls nothing).
    pub poll: Option<Poll>,
}

/// What one cycle did.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub place_loans: FlowAStats,
    pub push_repayments: FlowCStats,
    pub pull_recoveries: FlowBStats,
    /// Requests made per API (including retries).
    pub requests: serde_json::Map<String, Value>,
    /// Why the cycle stopped early, if it did.
    pub error: Option<String>,
    /// What needs attention after the run: loans in doubt or rejected, payments pending, in doubt
    /// or dead (and not ignored).
    pub unresolved: u64,
    pub outcome: RunOutcome,
}

/// How a cycle ended (design §3 gives each its exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Nothing pending, in doubt, rejected or dead.
    Clear,
    /// Something needs attention after the run.
    Attention,
    /// The cycle stopped early ([`RunReport::error`] says why).
    Incomplete,
}

/// The `--once` cycle: every job once, in order A, C, B, then its outcome: clear when nothing is
/// pending, in doubt, rejected or dead, attention otherwise, incomplete when it stopped early.
pub async fn run_once(ctx: &Context, opts: &RunOptions) -> RunReport {
    let started = ctx.now_secs();
    let run_id = if ctx.dry_run {
        None
    } else {
        ctx.store.start_run("once", started).ok()
    };
    let mut a = FlowAStats::default();
    let mut c = FlowCStats::default();
    let mut b = FlowBStats::default();
    let poll = opts.poll.unwrap_or_else(|| {
        if opts.since.is_some() {
            Poll::All
        } else {
            last_poll_slot(ctx)
        }
    });
    let result = async {
        jobs::place_loans(ctx, opts.since, &mut a).await?;
        if ctx.stopping() {
            return Ok(());
        }
        jobs::push_repayments(ctx, opts.since, &mut c).await?;
        if ctx.stopping() {
            return Ok(());
        }
        jobs::pull_recoveries(ctx, poll, &mut b).await
    }
    .await;
    let error = match result {
        Err(e) if e.is_cancelled() => {
            events::run_interrupted();
            None
        }
        r => r.err().map(|e| e.to_string()),
    };
    if let Some(e) = &error {
        events::run_stopped(e);
    }
    let unresolved = unresolved(&ctx.store).unwrap_or(u64::MAX);
    let outcome = if error.is_some() {
        RunOutcome::Incomplete
    } else if unresolved > 0 {
        RunOutcome::Attention
    } else {
        RunOutcome::Clear
    };
    let report = RunReport {
        place_loans: a,
        push_repayments: c,
        pull_recoveries: b,
        requests: request_counts([ctx.crego.http(), ctx.credgenics.http()]),
        error,
        unresolved,
        outcome,
    };
    if let Some(id) = run_id {
        let outcome = if report.outcome == RunOutcome::Clear {
            "ok"
        } else {
            "attention"
        };
        let summary = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Err(e) = ctx.store.finish_run(id, ctx.now_secs(), outcome, &summary) {
            events::run_not_recorded(&e);
        }
        if let Err(e) = super::retention::prune(ctx) {
            events::prune_failed(&e);
        }
    }
    report
}

/// Loans (or credit-line transactions) whose last write is in doubt or was rejected, plus
/// payments still owed.
pub fn unresolved(store: &Store) -> Result<u64, StoreError> {
    Ok(store.loans_unresolved()? + store.cl_unresolved()? + store.ledger_unresolved()?)
}

/// The poll reads loans not read since the poll schedule's last slot.
fn last_poll_slot(ctx: &Context) -> Poll {
    let now = ctx.clock.now_zoned();
    match ctx
        .config
        .sync
        .schedules
        .poll_recoveries
        .find_previous_occurrence(&now, true)
    {
        Ok(slot) => Poll::NotSince(slot.timestamp().as_millisecond() as f64 / 1000.0),
        Err(_) => Poll::All,
    }
}

fn request_counts<'a>(clients: impl IntoIterator<Item = &'a ApiClient>) -> serde_json::Map<String, Value> {
    clients
        .into_iter()
        .map(|c| {
            let by_status = c.stats.by_status();
            (
                c.api().name().to_string(),
                json!({
                    "requests": c.stats.requests(),
                    "retries": c.stats.retries.load(std::sync::atomic::Ordering::Relaxed),
                    "rate_limited": c.stats.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
                    "by_status": by_status,
                }),
            )
        })
        .collect()
}
