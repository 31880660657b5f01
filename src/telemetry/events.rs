//! Every log event the daemon emits, in one place: its name, level, fields and message, and —
//! where it has one — its metric, emitted by the same call so the two cannot drift (vector's
//! `internal_events`). Call sites name an event; they do not spell `event = "…"` themselves.
//!
//! Text that may quote personal data — partner reasons, and every error's message (a partner's
//! answer can be quoted in it) — is masked here, once, by value (`mask_digits`).

use std::fmt::Display;
use std::time::Duration;

use super::mask::mask_digits;
use super::metric;

/// An error's message with personal data masked by value.
fn masked(e: &dyn Display) -> String {
    mask_digits(&e.to_string())
}

// ----- partners -----------------------------------------------------------------------------

/// A request failed in a way worth another try, after `delay`.
pub struct HttpRetry<'a> {
    pub api: &'static str,
    pub method: &'a str,
    pub path: &'a str,
    pub error: &'a dyn Display,
    pub delay: Duration,
}

impl HttpRetry<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::HTTP_RETRIES, "api" => self.api).increment(1);
        tracing::warn!(event = "http_retry", api = self.api, method = self.method, path = self.path,
            error = %masked(self.error), delay_ms = self.delay.as_millis() as u64, "retrying request");
    }
}

pub fn token_retry(api: &dyn Display, attempt: u32, error: &dyn Display) {
    tracing::warn!(event = "token_retry", api = %api, attempt, error = %masked(error), "token endpoint busy; trying again");
}

// ----- mapping ------------------------------------------------------------------------------

/// An expression overran `mapping.budget_ms`; its worker holds a core until it ends.
pub struct MappingRunaway<'a> {
    pub field: &'a str,
    pub budget: Duration,
    pub runaways: usize,
}

impl MappingRunaway<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::MAPPING_RUNAWAYS).increment(1);
        tracing::error!(
            event = "mapping_runaway",
            field = self.field,
            budget_ms = self.budget.as_millis() as u64,
            runaways = self.runaways,
            "a mapping expression overran its budget; its item is a dead letter"
        );
    }
}

// ----- flow A: loans ------------------------------------------------------------------------

pub fn loan_placed(loan_id: &str, allocation_month: &str, new_allocation: bool) {
    tracing::info!(
        event = "loan_placed",
        loan_id,
        allocation_month,
        new_allocation,
        "loan placed"
    );
}

pub fn loan_updated(loan_id: &str, keys: &[String]) {
    tracing::info!(event = "loan_updated", loan_id, keys = %keys.join(","), "loan updated");
}

pub fn loan_rejected(loan_id: &str, reason: &str) {
    let reason = mask_digits(reason);
    tracing::warn!(event = "loan_rejected", loan_id, reason, "loan rejected");
}

pub fn loan_state(loan_id: &str, state: &str) {
    tracing::info!(event = "loan_state", loan_id, state, "loan state changed");
}

pub fn loan_in_doubt(loan_id: &str, err: &dyn Display) {
    tracing::warn!(event = "loan_in_doubt", loan_id, error = %masked(err), "upload outcome unknown; will look before resending");
}

pub fn page_done(stream: &str, page: u32, items: usize, cursor: f64) {
    tracing::debug!(event = "page_done", stream, page, items, cursor, "page committed");
}

pub fn line_detail_unreadable(error: &dyn Display) {
    tracing::error!(event = "line_detail_unreadable", error = %masked(error), "line detail skipped");
}

pub fn fetch_failed(line: &str, error: &dyn Display) {
    tracing::warn!(event = "fetch_failed", line, error = %masked(error), "line will be read again next run");
}

pub fn line_dead_letter(line: &str, lead: &str, borrower_program: &str, reason: &str) {
    tracing::error!(event = "line_dead_letter", line, lead, borrower_program, reason = %mask_digits(reason),
        "line set aside as a dead letter");
}

pub fn update_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "update_failed", loan_id, error = %masked(error), "update will be retried next run");
}

pub fn upload_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "upload_failed", loan_id, error = %masked(error), "upload will be retried next run");
}

pub fn upload_dead_letter(loan_id: &str, lookups: u32, error: &dyn Display) {
    tracing::error!(event = "upload_dead_letter", loan_id, lookups, error = %masked(error),
        "upload outcome still unknown: set aside as a dead letter");
}

pub fn lookup_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "lookup_failed", loan_id, error = %masked(error), "in-doubt upload stays in doubt");
}

/// An operator resync could not read the line: gone for good (`reason`) or for now (`error`).
pub fn resync_line_gone(lead: &str, borrower_program: &str, reason: &str) {
    tracing::error!(
        event = "resync_failed",
        lead,
        borrower_program,
        reason,
        "line not readable"
    );
}

pub fn resync_deferred(lead: &str, error: &dyn Display) {
    tracing::warn!(event = "resync_failed", lead, error = %masked(error), "left for the next run");
}

// ----- flow C: repayments -------------------------------------------------------------------

pub fn record_unreadable() {
    tracing::error!(event = "record_unreadable", "record without id or updated_at skipped");
}

pub fn line_read_failed(loan_id: &str, error: Option<&dyn Display>) {
    match error {
        Some(e) => {
            tracing::warn!(event = "line_read_failed", loan_id, error = %masked(e), "line not read; the payment waits")
        }
        None => tracing::warn!(
            event = "line_read_failed",
            loan_id,
            "the lead's programs do not show this loan's line"
        ),
    }
}

// ----- flow B: recoveries -------------------------------------------------------------------

/// How the webhook answered one request (`ccsync_webhooks_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Stored,
    Rejected,
    Ignored,
    Unauthorised,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
            Self::Unauthorised => "unauthorised",
        }
    }
}

/// One webhook request answered; `reason` for a rejected payment (kept as a dead letter).
pub struct WebhookAnswered<'a> {
    pub outcome: WebhookOutcome,
    pub reason: Option<&'a str>,
}

impl WebhookAnswered<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::WEBHOOKS, "outcome" => self.outcome.label()).increment(1);
        match self.outcome {
            WebhookOutcome::Unauthorised => {
                tracing::warn!(
                    event = "webhook_unauthorised",
                    "webhook without the right token refused"
                )
            }
            WebhookOutcome::Rejected => tracing::warn!(event = "webhook_rejected",
                reason = %mask_digits(self.reason.unwrap_or_default()), "payment webhook kept as a dead letter"),
            WebhookOutcome::Stored | WebhookOutcome::Ignored => {}
        }
    }
}

pub fn webhook_ignored(kind: &str) {
    tracing::debug!(event = "webhook_ignored", kind, "webhook event ignored");
}

pub fn webhook_store_failed(error: &dyn Display) {
    tracing::error!(event = "webhook_store_failed", error = %masked(error), "webhook not stored");
}

/// A recovery that contradicts one already recorded under its key (`ccsync_webhooks_total{outcome="conflict"}`).
pub struct RecoveryConflict<'a> {
    pub loan_id: &'a str,
    pub reason: &'a str,
}

impl RecoveryConflict<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::WEBHOOKS, "outcome" => "conflict").increment(1);
        tracing::warn!(event = "recovery_conflict", loan_id = self.loan_id, reason = %mask_digits(self.reason),
            "recovery conflict");
    }
}

pub fn poll_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "poll_failed", loan_id, error = %masked(error), "payment history not read");
}

pub fn payment_unidentifiable(loan_id: &str) {
    tracing::error!(
        event = "payment_unidentifiable",
        loan_id,
        "payment history entry with neither a reference nor a payment_id skipped"
    );
}

// ----- the ledger ---------------------------------------------------------------------------

pub fn ledger_lookup_failed(row: i64, error: &dyn Display) {
    tracing::warn!(event = "ledger_lookup_failed", row, error = %masked(error), "row stays in doubt");
}

pub fn payment_delivered(direction: &str, loan_id: &str, reference: &str) {
    tracing::info!(
        event = "payment_delivered",
        direction,
        loan_id,
        reference,
        "payment delivered"
    );
}

pub fn payment_dead(direction: &str, loan_id: &str, reason: &str) {
    tracing::warn!(event = "payment_dead", direction, loan_id, reason = %mask_digits(reason),
        "payment rejected; moved to dead letters");
}

pub fn payment_in_doubt(direction: &str, loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "payment_in_doubt", direction, loan_id, error = %masked(error),
        "outcome unknown; will look before resending");
}

// ----- runs and jobs ------------------------------------------------------------------------

pub fn run_interrupted() {
    tracing::info!(
        event = "run_interrupted",
        "shutdown: the run stopped early; unsent work stays pending"
    );
}

pub fn run_stopped(error: &dyn Display) {
    tracing::error!(event = "run_stopped", error = %masked(error), "run stopped");
}

pub fn run_not_recorded(error: &dyn Display) {
    tracing::error!(event = "run_not_recorded", error = %masked(error), "could not record the run");
}

pub fn job_started(job: &str, slot: &dyn Display) {
    tracing::info!(event = "job_started", job, slot = %slot, "job started");
}

pub fn job_interrupted(job: &str) {
    tracing::info!(event = "job_interrupted", job, "job stopped for shutdown");
}

pub fn job_catch_up(job: &str, slot: &dyn Display) {
    tracing::info!(event = "job_catch_up", job, slot = %slot, "catching up a missed slot");
}

pub fn schedule_error(job: &str, error: &dyn Display) {
    tracing::error!(event = "schedule_error", job, error = %masked(error), "no next slot; job stops");
}

pub fn job_not_recorded(job: &str, error: &dyn Display) {
    tracing::error!(event = "job_not_recorded", job, error = %masked(error), "could not record the job's slot");
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
        metrics::histogram!(metric::JOB_DURATION, "job" => job).record(self.elapsed.as_secs_f64());
        let outcome = if self.error.is_none() { "ok" } else { "error" };
        metrics::counter!(metric::JOB_RUNS, "job" => job, "outcome" => outcome).increment(1);
        match self.error {
            None => {
                metrics::gauge!(metric::JOB_LAST_SUCCESS, "job" => job).set(self.now);
                tracing::info!(
                    event = "job_finished",
                    job,
                    ms = self.elapsed.as_millis() as u64,
                    "job finished"
                )
            }
            Some(e) => {
                tracing::error!(event = "job_failed", job, error = %mask_digits(e), "job failed; next slot retries")
            }
        }
    }
}

// ----- reconcile ----------------------------------------------------------------------------

pub fn reconcile_resumed(run: i64, cursor: &str) {
    tracing::info!(
        event = "reconcile_resumed",
        run,
        after = cursor,
        "reconcile resumes a stopped run"
    );
}

pub fn reconcile_unreadable(loan_id: &str, error: &dyn Display) {
    tracing::warn!(event = "reconcile_unreadable", loan_id, error = %masked(error), "reconcile could not read a loan's books");
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
                event = "reconcile_finished",
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
                event = "reconcile_finished",
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

// ----- the daemon and its state -------------------------------------------------------------

pub fn hangup_ignored() {
    tracing::warn!(
        event = "hangup_ignored",
        "SIGHUP ignored: logs go to stdout/journald and the config is read at start; restart to reload it"
    );
}

pub fn daemon_started(listen: &dyn std::fmt::Debug) {
    tracing::info!(event = "daemon_started", listen = ?listen, "daemon started");
}

pub fn daemon_stopping() {
    tracing::info!(
        event = "daemon_stopping",
        "shutdown requested: finishing the in-flight batch"
    );
}

pub fn daemon_grace_expired(grace: Duration) {
    tracing::warn!(
        event = "daemon_grace_expired",
        grace_secs = grace.as_secs(),
        "in-flight batch did not finish in time; unsent work stays in the state"
    );
}

pub fn daemon_stopped() {
    tracing::info!(event = "daemon_stopped", "daemon stopped");
}

pub fn watchdog_withheld(reason: &dyn Display) {
    tracing::error!(event = "watchdog_withheld", reason = %reason, "watchdog not fed");
}

pub fn clock_overridden(value: &str) {
    tracing::warn!(
        event = "clock_override",
        now = value,
        "CCSYNC_NOW is set: the process runs on a shifted clock"
    );
}

pub fn state_lock_recovered() {
    tracing::error!(
        event = "state_lock_recovered",
        "a task panicked while using the state; carrying on"
    );
}

pub fn state_file_tightened(path: &std::path::Path, was: u32) {
    tracing::warn!(event = "state_file_tightened", path = %path.display(), was = format!("{was:o}"),
        "the state file was readable by others: now 0600");
}
