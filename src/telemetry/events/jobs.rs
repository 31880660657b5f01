//! Log events (and their metrics) of runs, jobs and reconcile.

use std::fmt::Display;
use std::time::Duration;

use crate::telemetry::mask::{mask_digits, masked};
use crate::telemetry::metric;

/// The `target` of these lines (`RUST_LOG=ccsync::jobs=debug` selects them).
const TARGET: &str = "ccsync::jobs";

pub fn run_interrupted() {
    tracing::info!(
        target: TARGET, event = "run_interrupted",
        "shutdown: the run stopped early; unsent work stays pending"
    );
}

pub fn run_stopped(error: &dyn Display) {
    tracing::error!(target: TARGET, event = "run_stopped", error = %masked(error), "run stopped");
}

pub fn run_not_recorded(error: &dyn Display) {
    tracing::error!(target: TARGET, event = "run_not_recorded", error = %masked(error), "could not record the run");
}

pub fn job_started(job: &str, slot: &dyn Display) {
    tracing::info!(target: TARGET, event = "job_started", job, slot = %slot, "job started");
}

pub fn job_interrupted(job: &str) {
    tracing::info!(target: TARGET, event = "job_interrupted", job, "job stopped for shutdown");
}

pub fn job_catch_up(job: &str, slot: &dyn Display) {
    tracing::info!(target: TARGET, event = "job_catch_up", job, slot = %slot, "catching up a missed slot");
}

pub fn schedule_error(job: &str, error: &dyn Display) {
    tracing::error!(target: TARGET, event = "schedule_error", job, error = %masked(error), "no next slot; job stops");
}

pub fn job_not_recorded(job: &str, error: &dyn Display) {
    tracing::error!(target: TARGET, event = "job_not_recorded", job, error = %masked(error), "could not record the job's slot");
}

/// A job's run ended (not cut short by shutdown): its duration, outcome and last success.
pub struct JobFinished<'a> {
    pub job: &'static str,
    pub elapsed: Duration,
    pub error: Option<&'a str>,
    /// Epoch seconds now (the last-success gauge when it succeeded).
    pub now: f64,
}

impl JobFinished<'_> {
    pub fn emit(self) {
        let job = self.job;
        metrics::histogram!(metric::JOB_DURATION, "task" => job).record(self.elapsed.as_secs_f64());
        let outcome = if self.error.is_none() { "ok" } else { "error" };
        metrics::counter!(metric::JOB_RUNS, "task" => job, "outcome" => outcome).increment(1);
        match self.error {
            None => {
                metrics::gauge!(metric::JOB_LAST_SUCCESS, "task" => job).set(self.now);
                tracing::info!(
                    target: TARGET, event = "job_finished",
                    job,
                    ms = self.elapsed.as_millis() as u64,
                    "job finished"
                )
            }
            Some(e) => {
                tracing::error!(target: TARGET, event = "job_failed", job, error = %mask_digits(e), "job failed; next slot retries")
            }
        }
    }
}

pub fn reconcile_resumed(run: i64, cursor: &str) {
    tracing::info!(
        target: TARGET, event = "reconcile_resumed",
        run,
        after = cursor,
        "reconcile resumes a stopped run"
    );
}

pub fn reconcile_unreadable(loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "reconcile_unreadable", loan_id, error = %masked(error), "reconcile could not read a loan's books");
}

/// What a reconcile run came to (the store's run, as the telemetry needs it).
pub struct ReconcileSummary<'a> {
    pub run: i64,
    pub finished_at: Option<f64>,
    pub loans_checked: u64,
    pub agreeing: u64,
    pub unreadable: u64,
    /// |LMS total − Credgenics total|.
    pub difference: rust_decimal::Decimal,
    /// Findings by kind; `kinds` names every kind, so a gauge shows its zero too.
    pub counts: &'a std::collections::BTreeMap<String, u64>,
    pub kinds: &'a [&'static str],
}

/// A reconcile run ended (or stopped): its summary, and the gauges an alert fires on.
pub struct ReconcileFinished<'a> {
    pub summary: ReconcileSummary<'a>,
    /// Findings not mended.
    pub findings: usize,
}

impl ReconcileFinished<'_> {
    pub fn emit(self) {
        let r = &self.summary;
        if r.finished_at.is_some() {
            reconcile_gauges(r);
        }
        let difference = r.difference.to_string();
        if self.findings > 0 || r.unreadable > 0 {
            tracing::warn!(
                target: TARGET, event = "reconcile_finished",
                run = r.run,
                complete = r.finished_at.is_some(),
                loans = r.loans_checked,
                agreeing = r.agreeing,
                unreadable = r.unreadable,
                findings = self.findings,
                difference,
                "the books disagree"
            );
        } else {
            tracing::info!(
                target: TARGET, event = "reconcile_finished",
                run = r.run,
                complete = r.finished_at.is_some(),
                loans = r.loans_checked,
                agreeing = r.agreeing,
                "the books agree"
            );
        }
    }
}

/// The gauges of the latest finished reconcile run (also set from the state at each scrape).
pub fn reconcile_gauges(r: &ReconcileSummary<'_>) {
    for kind in r.kinds {
        let n = r.counts.get(*kind).copied().unwrap_or(0);
        metrics::gauge!(metric::RECONCILE_FINDINGS, "kind" => *kind).set(n as f64);
    }
    metrics::gauge!(metric::RECONCILE_LOANS_CHECKED).set(r.loans_checked as f64);
    metrics::gauge!(metric::RECONCILE_LOANS_UNREADABLE).set(r.unreadable as f64);
    let diff = r.difference.to_string().parse::<f64>().unwrap_or(f64::MAX);
    metrics::gauge!(metric::RECONCILE_MONEY_DIFFERENCE).set(diff);
    if let Some(at) = r.finished_at {
        metrics::gauge!(metric::RECONCILE_LAST_COMPLETED).set(at);
    }
}

/// A job's last success as the state remembers it, set at start: the gauge is right from the
/// first scrape after a restart, not only once the job has run again.
pub fn last_success_restored(job: &str, at: f64) {
    metrics::gauge!(metric::JOB_LAST_SUCCESS, "task" => job.to_string()).set(at);
}

/// The span of one cycle of a job (`once`, `reconcile`, a scheduled job): every line logged in
/// it carries its `job` and a fresh `run_id`, so one cycle's lines can be gathered.
pub fn cycle_span(job: &str) -> tracing::Span {
    let run_id = format!("{:08x}", rand::random::<u32>());
    // At error level so that no log level or filter drops it: a warning must keep its run id.
    tracing::error_span!(target: TARGET, "cycle", job, run_id)
}
