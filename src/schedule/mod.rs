//! The scheduler: each job on its own cron expression (with seconds) in the configured time zone,
//! driven by a small loop of our own (design §3, issue "Run it as a service"):
//! - a job never overlaps itself: its loop awaits the run before computing the next slot, so a run
//!   that outlasts its interval skips the slots it covered instead of starting twice;
//! - the wall clock is re-read at least every 30 s while waiting, so clock steps and suspend do not
//!   skew the schedule;
//! - the slot each job last ran for is stored, and at start at most one missed slot (the latest)
//!   is caught up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

use crate::flows::{self, Context, Poll, SyncError};
use crate::telemetry::events;

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Flow A from the cursor.
    PlaceLoans,
    /// Flow C, and delivery of recoveries received by webhook (flow B without the poll).
    PushRepayments,
    /// Flow B's poll of every open loan's payment history, then delivery.
    PollRecoveries,
    /// Flow A over the whole line-details stream, ignoring the cursor.
    Reconcile,
}

impl Job {
    pub const ALL: [Job; 4] = [
        Job::PlaceLoans,
        Job::PushRepayments,
        Job::PollRecoveries,
        Job::Reconcile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::PlaceLoans => "place_loans",
            Job::PushRepayments => "push_repayments",
            Job::PollRecoveries => "poll_recoveries",
            Job::Reconcile => "reconcile",
        }
    }

    fn cron(self, ctx: &Context) -> &croner::Cron {
        let s = &ctx.config.sync.schedules;
        match self {
            Job::PlaceLoans => &s.place_loans,
            Job::PushRepayments => &s.push_repayments,
            Job::PollRecoveries => &s.poll_recoveries,
            Job::Reconcile => &s.reconcile,
        }
    }
}

fn secs(ts: Timestamp) -> f64 {
    ts.as_millisecond() as f64 / 1000.0
}

/// Runs `job` once for `slot`, recording its outcome, duration and metrics; its log lines carry
/// the job and a run id.
pub async fn run_job(ctx: &Context, job: Job, slot: Timestamp) -> Result<(), SyncError> {
    use tracing::Instrument;
    run_slot(ctx, job, slot)
        .instrument(events::cycle_span(job.name()))
        .await
}

async fn run_slot(ctx: &Context, job: Job, slot: Timestamp) -> Result<(), SyncError> {
    let started = Instant::now();
    events::job_started(job.name(), &slot);
    let result = match job {
        Job::PlaceLoans => flows::jobs::place_loans(ctx, None, &mut Default::default()).await,
        Job::PushRepayments => match flows::jobs::push_repayments(ctx, None, &mut Default::default()).await {
            Ok(()) => flows::jobs::pull_recoveries(ctx, Poll::Skip, &mut Default::default()).await,
            Err(e) => Err(e),
        },
        Job::PollRecoveries => {
            flows::jobs::pull_recoveries(ctx, Poll::NotSince(secs(slot)), &mut Default::default()).await
        }
        // The whole line-details stream (what a cursor missed), then both books compared.
        Job::Reconcile => match flows::jobs::place_loans(ctx, Some(0.0), &mut Default::default()).await {
            Ok(()) => {
                let opts = flows::reconcile::Options {
                    scope: flows::reconcile::Scope::All,
                    fix: false,
                    share_poll_reads: true,
                };
                // Reconcile compares lending loans; in credit-line mode the full scan is the job.
                let reconciled = if ctx.config.credgenics.mode == crate::config::CredgenicsMode::CreditLine {
                    Ok(())
                } else {
                    flows::reconcile::run(ctx, &opts).await.map(|_| ())
                };
                // The nightly job is also when the state sheds what finished work no longer needs.
                if let Err(e) = flows::retention::prune(ctx) {
                    events::prune_failed(&e);
                }
                reconciled
            }
            Err(e) => Err(e),
        },
    };
    let elapsed = started.elapsed();
    let now = ctx.now_secs();
    if matches!(&result, Err(e) if e.is_cancelled()) {
        // Shutdown cut it short: not a failure, and the slot is not recorded as run.
        events::job_interrupted(job.name());
        return result;
    }
    let error = result.as_ref().err().map(|e| e.to_string());
    if let Err(e) = ctx.store.record_job(job.name(), secs(slot), error.as_deref(), now) {
        events::job_not_recorded(job.name(), &e);
    }
    events::JobFinished {
        job: job.name(),
        elapsed,
        error: error.as_deref(),
        now,
    }
    .emit();
    result
}

/// One job's loop, until `shutdown` turns true.
pub async fn job_loop(ctx: Arc<Context>, job: Job, mut shutdown: watch::Receiver<bool>) {
    let beat = ctx.beats.job(job.name());
    let _alive = beat.alive_guard();
    let cron = job.cron(&ctx).clone();
    // Catch up the latest missed slot, once.
    if let Ok(Some(last)) = ctx.store.last_slot(job.name()) {
        let now = ctx.clock.now_zoned();
        if let Ok(prev) = cron.find_previous_occurrence(&now, true)
            && secs(prev.timestamp()) > last + 0.5
        {
            events::job_catch_up(job.name(), &prev.timestamp());
            let _ = beat.running(run_job(&ctx, job, prev.timestamp())).await;
        }
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = ctx.clock.now_zoned();
        let next = match cron.find_next_occurrence(&now, false) {
            Ok(n) => n.timestamp(),
            Err(e) => {
                events::schedule_error(job.name(), &e);
                return;
            }
        };
        loop {
            let remaining = next.duration_since(ctx.clock.now());
            if remaining.is_zero() || remaining.is_negative() {
                break;
            }
            let nap = remaining.unsigned_abs().min(Duration::from_secs(30));
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = shutdown.changed() => return,
            }
        }
        if *shutdown.borrow() {
            return;
        }
        let _ = beat.running(run_job(&ctx, job, next)).await;
    }
}
