//! The sync flows and the cycle that runs them.
//!
//! - [`place_loans`]: flow A, overdue Crego lines placed in Credgenics.
//! - [`push_repayments`]: flow C, LMS repayments pushed as Credgenics payments.
//! - [`pull_recoveries`]: flow B, Credgenics recoveries (webhook and poll) written as LMS records.
//! - [`deliver`]: effectively-once delivery of the payment ledger, shared by B and C.
//! - [`status`]: the `final_status` of a repayment, decided when it is sent.
//!
//! [`Context`] carries what every flow needs (config, state, both clients, the clock, and whether
//! this is a dry run); [`run_once`] is the `--once` cycle and decides its exit code.

pub mod decide;
pub mod deliver;
pub mod place_loans;
pub mod pull_recoveries;
pub mod push_repayments;
pub mod status;

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::Config;
use crate::credgenics::CredgenicsClient;
use crate::crego::CregoClient;
use crate::http::{ApiClient, ApiError};
use crate::store::{Store, StoreError};

pub use place_loans::FlowAStats;
pub use pull_recoveries::{FlowBStats, Poll};
pub use push_repayments::FlowCStats;

/// Everything a flow needs.
pub struct Context {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub crego: CregoClient,
    pub credgenics: CredgenicsClient,
    pub clock: Clock,
    /// `--dry-run`: fetch and map, print what would be sent, write nothing anywhere.
    pub dry_run: bool,
    /// `--reveal`: print personal data in dry-run payloads unmasked.
    pub reveal: bool,
    /// Serialises the runs that may not overlap: flow A (place loans and reconcile share it) and
    /// each delivery direction.
    pub locks: Locks,
    /// Fired by the shutdown path: flows stop between pages and items, every wait of both
    /// clients (rate limit, retry pause, `Retry-After`, token renewal) ends at once, unsent rows
    /// stay pending.
    pub cancel: CancellationToken,
    /// Each job's liveness (the systemd watchdog is fed only while every running job moves).
    pub beats: Arc<crate::runtime::heartbeat::Beats>,
    /// The terminal progress bar of `--once`, when there is a terminal.
    pub progress: Option<indicatif::ProgressBar>,
}

/// The mutual exclusions between jobs.
#[derive(Default)]
pub struct Locks {
    pub flow_a: tokio::sync::Mutex<()>,
    pub flow_c: tokio::sync::Mutex<()>,
    pub poll: tokio::sync::Mutex<()>,
    pub deliver_credgenics: tokio::sync::Mutex<()>,
    pub deliver_crego: tokio::sync::Mutex<()>,
}

impl Context {
    pub fn new(config: Arc<Config>, store: Arc<Store>, clock: Clock) -> Result<Self, SyncError> {
        let cancel = CancellationToken::new();
        let crego =
            CregoClient::with_cancel(&config.crego, cancel.clone()).map_err(|e| SyncError::Setup(e.to_string()))?;
        let credgenics = CredgenicsClient::with_cancel(&config.credgenics, cancel.clone())
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        Ok(Self {
            config,
            store,
            crego,
            credgenics,
            clock,
            dry_run: false,
            reveal: false,
            locks: Locks::default(),
            cancel,
            beats: Default::default(),
            progress: None,
        })
    }

    /// Whether a shutdown was asked for: stop at the next safe point.
    pub fn stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Marks progress of the job this runs under (watchdog) and shows `message` on the progress
    /// bar, if any.
    pub fn progressed(&self, message: impl FnOnce() -> String) {
        crate::runtime::heartbeat::progressed();
        if let Some(pb) = &self.progress {
            pb.set_message(message());
            pb.tick();
        }
    }

    /// Epoch seconds of "now" as the state records times.
    pub fn now_secs(&self) -> f64 {
        self.clock.now().as_millisecond() as f64 / 1000.0
    }

    /// Prints one would-be request of a dry run (personal data masked unless `--reveal`).
    pub fn print_dry_run(&self, method: &str, path: &str, payload: &Value) {
        let shown = if self.reveal {
            payload.clone()
        } else {
            crate::telemetry::mask_payload(payload)
        };
        println!(
            "{}",
            json!({"dry_run": true, "method": method, "path": path, "payload": shown})
        );
    }
}

/// Why a flow stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up the HTTP clients: {0}")]
    Setup(String),
}

impl SyncError {
    /// The flow stopped because shutdown cut a wait short: nothing failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SyncError::Api(e) if e.is_cancelled())
    }
}

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
    pub exit_code: i32,
}

/// The `--once` cycle: every job once, in order A, C, B, then the exit code (design §3): 0 when
/// nothing is pending, in doubt, rejected or dead, 1 otherwise, 3 when the run could not complete.
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
        place_loans::run(ctx, opts.since, &mut a).await?;
        if ctx.stopping() {
            return Ok(());
        }
        push_repayments::run(ctx, opts.since, &mut c).await?;
        if ctx.stopping() {
            return Ok(());
        }
        pull_recoveries::run(ctx, poll, &mut b).await
    }
    .await;
    let error = match result {
        Err(e) if e.is_cancelled() => {
            tracing::info!(
                event = "run_interrupted",
                "shutdown: the run stopped early; unsent work stays pending"
            );
            None
        }
        r => r.err().map(|e| e.to_string()),
    };
    if let Some(e) = &error {
        tracing::error!(event = "run_stopped", error = %e, "run stopped");
    }
    let unresolved = unresolved(&ctx.store).unwrap_or(u64::MAX);
    let exit_code = if error.is_some() {
        crate::cli::EXIT_INCOMPLETE
    } else if unresolved > 0 {
        crate::cli::EXIT_ATTENTION
    } else {
        crate::cli::EXIT_OK
    };
    let report = RunReport {
        place_loans: a,
        push_repayments: c,
        pull_recoveries: b,
        requests: request_counts([ctx.crego.http(), ctx.credgenics.http()]),
        error,
        unresolved,
        exit_code,
    };
    if let Some(id) = run_id {
        let outcome = if report.exit_code == 0 { "ok" } else { "attention" };
        let summary = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Err(e) = ctx.store.finish_run(id, ctx.now_secs(), outcome, &summary) {
            tracing::error!(event = "run_not_recorded", error = %e, "could not record the run");
        }
    }
    report
}

/// Where a read of `stream` starts (`since` for a backfill, else [`incremental_start`]), and
/// whether reading it to its end covers everything an incremental read would: only then may the
/// read be recorded as complete (readiness, and the next read's overlap).
pub(crate) fn read_start(ctx: &Context, stream: &str, since: Option<f64>) -> Result<(f64, bool), StoreError> {
    let incremental = incremental_start(ctx, stream)?;
    Ok(match since {
        Some(s) => (s, s <= incremental),
        None => (incremental, true),
    })
}

/// Where an incremental read of `stream` starts. The overlap window before the cursor catches
/// items the partner committed late (an `updated_at` earlier than items already read). Only items
/// updated after (the start of the last complete read − the overlap) can have been invisible to
/// that read, so once that instant has passed the cursor a read starts at the cursor itself: a
/// quiet book costs one list request per stream, not a re-read of the last window of changes.
/// Never wider nor narrower than `[cursor − overlap, cursor]`; the overlap must still exceed the
/// partner's commit delay plus clock skew.
pub(crate) fn incremental_start(ctx: &Context, stream: &str) -> Result<f64, StoreError> {
    let overlap = ctx.config.sync.cursor_overlap_secs;
    let Some(cursor) = ctx.store.cursor(stream)? else {
        return Ok(0.0);
    };
    let from = match ctx.store.stream_read_started_at(stream)? {
        Some(read_started) => cursor.min(read_started - overlap).max(cursor - overlap),
        None => cursor - overlap,
    };
    Ok(from.max(0.0))
}

/// Loans whose last write is in doubt or was rejected, plus payments still owed.
pub fn unresolved(store: &Store) -> Result<u64, StoreError> {
    Ok(store.loans_unresolved()? + store.ledger_unresolved()?)
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
