//! What every flow is handed ([`Context`]: config, state, both clients, the clock, the shutdown
//! token, the locks between jobs), why a flow stops ([`SyncError`]), and where a read of a change
//! stream starts.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::partners::credgenics::CredgenicsClient;
use crate::partners::crego::CregoClient;
use crate::partners::http::ApiError;
use crate::store::{Store, StoreError};

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
    /// Requests a dry run printed instead of sending.
    pub dry_requests: std::sync::atomic::AtomicU64,
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
            dry_requests: Default::default(),
        })
    }

    /// The context of a dry run: nothing written anywhere; `reveal` prints personal data unmasked.
    pub fn dry(self, reveal: bool) -> Self {
        Self {
            dry_run: true,
            reveal,
            ..self
        }
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
        self.dry_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// Where flow A's cursor may move after a page: to the page's newest line, but never past the
/// earliest line that failed transiently (it is read again next run).
pub(crate) fn page_cursor(page_max: Option<f64>, blocked_at: Option<f64>) -> Option<f64> {
    match (page_max, blocked_at) {
        (Some(m), Some(b)) => Some(m.min(b)),
        (m, None) => m,
        (None, Some(b)) => Some(b),
    }
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
