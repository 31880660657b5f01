//! Flow A (design §1A): overdue Crego lines out to Credgenics.
//!
//! The change stream is `GET /v1/lms/line-details/?updated_at__gte=`. Each changed line that is
//! overdue (`dpd >= sync.min_dpd` and `due_amount > 0`) or already placed is mapped to an Upload
//! Loan payload with one `defaults[]` entry for the current allocation month (IST by default):
//! first time → POST; same month and changed → PATCH of the changed keys; same hash → no call;
//! new month → POST again (a new allocation); placed but no longer overdue → `cured`, or `closed`
//! at zero outstanding.
//!
//! An upload is recorded as `uploading` before it is sent; one whose outcome is unknown stays so
//! and is resolved at the start of the next run by looking at `GET /loan/{id}` first.

use crate::runtime::heartbeat::waiting;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::context::{Context, SyncError};
pub use super::decide::{CLAIM_KEY, changed_keys, frozen_claim_changes};
use super::decide::{Decision, Line, decide};
use crate::clock;
use crate::credgenics::{describe_rejection, round_amounts};
use crate::crego::LineItem;
use crate::crego::stream::{Stream, StreamReader};
use crate::http::ApiError;
use crate::mapping::EvalEnv;
use crate::store::{LineRead, LoanRow, LoanState};
use crate::telemetry;

/// Name of the line-details stream in the cursor table.
pub const STREAM: &str = "line_details";

/// Counts of one run of flow A.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct FlowAStats {
    /// Line details read from the change stream.
    pub scanned: u64,
    /// Of those, overdue.
    pub overdue: u64,
    /// First uploads accepted.
    pub placed: u64,
    /// Uploads of a new allocation month for a loan already placed.
    pub new_allocations: u64,
    /// PATCHes of changed keys.
    pub updated: u64,
    /// Mapped payload unchanged: no call.
    pub unchanged: u64,
    /// Neither overdue nor placed, or already processed: no call.
    pub skipped: u64,
    pub cured: u64,
    pub closed: u64,
    /// Rejected by Credgenics or by the mapping.
    pub rejected: u64,
    /// Uploads whose outcome is unknown, left for the next run to look up.
    pub in_doubt: u64,
    /// In-doubt uploads from earlier runs resolved by a look-up.
    pub resolved: u64,
    /// Transient failures: the line is read again next run.
    pub failed: u64,
    /// Lines that cannot be processed for a reason of their own (lead or borrower-program gone):
    /// dead letters; the stream moves on.
    pub dead_letters: u64,
    /// Lines of loans whose upload is in doubt: processed again once the look-up settles it.
    pub deferred: u64,
}

/// What processing one line came to.
#[derive(Debug)]
enum Outcome {
    Skipped,
    Unchanged,
    Placed {
        new_allocation: bool,
    },
    Updated,
    Cured,
    Closed,
    Rejected,
    InDoubt,
    /// Transient: the stream must not move past this line.
    Failed,
    /// A dead letter of its own (design §2.7): recorded, and the stream moves on.
    Dead,
    /// Its loan's upload is in doubt: the line is read afresh once the look-up settles it.
    Deferred,
    /// Already processed at this `updated_at` (inside the overlap window): nothing looked at.
    Seen,
    /// An upload decided, not yet recorded nor sent: the page records all of its uploads as in
    /// flight in one transaction, sends them, and records what they came to in another.
    UploadPlanned(Box<(LoanRow, String)>),
}

impl FlowAStats {
    fn count(&mut self, o: &Outcome) {
        match o {
            Outcome::Skipped | Outcome::Seen => self.skipped += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Placed { new_allocation: false } => self.placed += 1,
            Outcome::Placed { new_allocation: true } => self.new_allocations += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Cured => self.cured += 1,
            Outcome::Closed => self.closed += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::InDoubt => self.in_doubt += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Dead => self.dead_letters += 1,
            Outcome::Deferred => self.deferred += 1,
            Outcome::UploadPlanned(_) => {}
        }
    }
}

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
    let (from, covers_window) = super::context::read_start(ctx, STREAM, since)?;
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
            match LineItem::from_value(raw) {
                Ok(i) => items.push(i),
                Err(e) => {
                    tracing::error!(event = "line_detail_unreadable", error = %e, "line detail skipped");
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
            let cursor = match (page_max, blocked_at) {
                (Some(m), Some(b)) => Some(m.min(b)),
                (m, None) => m,
                (None, Some(b)) => Some(b),
            };
            ctx.store.commit_page(STREAM, cursor, &done, overlap, ctx.now_secs())?;
            for (line, _) in done.iter().filter(|(line, _)| dead_lines.contains(line)) {
                // Processed after all (its lead is back): no longer a dead letter.
                if !dead.contains(line) {
                    ctx.store.clear_line_dead_letter(line)?;
                }
            }
            telemetry::page_done(STREAM, page, items.len(), cursor.unwrap_or(from));
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

/// Processes one page as a pipeline: lines are decided concurrently (reads from Crego); the
/// uploads they call for are recorded as in flight in small batches (one durable commit each) and
/// sent while later lines are still being decided, so both partners stay busy; the accepted
/// uploads are recorded together at the end of the page. A crash before that leaves them in
/// doubt, resolved by a look-up at the next start.
async fn run_page(
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
    let rows: Vec<(&LoanRow, bool)> = confirmed.iter().map(|(l, _)| (l, true)).collect();
    ctx.store.save_loans(&rows)?;
    for (loan, new_allocation) in &confirmed {
        placed_event(loan, *new_allocation);
    }
    Ok(())
}

/// Carries out an upload `process_line` planned, on its own (outside a page's pipeline): recorded
/// as in flight, then sent.
async fn carry_out(ctx: &Context, outcome: Outcome) -> Result<Outcome, SyncError> {
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
const MARK_BATCH: usize = 8;

/// What the lines of one page came to, as their outcomes arrive.
#[derive(Default)]
struct PageTally {
    /// Lines done with (the stream may move past them).
    done: Vec<(String, f64)>,
    /// Of those, the lines that became dead letters, and those not looked at (already seen).
    dead: std::collections::HashSet<String>,
    /// The earliest line that failed transiently: the cursor stays before it.
    blocked_at: Option<f64>,
    auth_error: Option<ApiError>,
    first_error: Option<SyncError>,
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
async fn process_line(ctx: &Context, item: &LineItem, backfill: bool) -> Result<Outcome, SyncError> {
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
    match decide(&line, min_dpd, existing.as_ref(), &month, None, preflight) {
        Decision::Map => {}
        Decision::Defer => {
            // Its last upload is in doubt: the look-up at the start of a run settles it, and the
            // line is then read afresh from the lead's programs. The stream moves on meanwhile.
            if !ctx.dry_run
                && let Some(loan) = &existing
            {
                ctx.store.request_resync(&loan.loan_id)?;
            }
            return Ok(Outcome::Deferred);
        }
        Decision::Settle(state) => return settle(ctx, existing.expect("a settled loan exists"), state),
        _ => return Ok(Outcome::Skipped),
    }

    let fetched = tokio::try_join!(ctx.crego.programs(&item.lead_id), ctx.crego.lead(&item.lead_id));
    let (programs, lead) = match fetched {
        Ok(x) => x,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(ApiError::NotFound { .. }) => {
            return dead_line(ctx, item, "the lead of this overdue line is not found at Crego (404)");
        }
        Err(e) => {
            tracing::warn!(event = "fetch_failed", line = %item.id, error = %e, "line will be read again next run");
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
    let decision = decide(
        &line,
        min_dpd,
        existing.as_ref(),
        &month,
        Some((&mapped, &hash)),
        preflight,
    );
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
                ctx.store.save_loan(&loan, false)?;
            }
            Ok(Outcome::Unchanged)
        }
        Decision::Remember => {
            // Only keys dropped by the mapping: Credgenics has no way to unset them.
            if let Some(mut loan) = existing.filter(|_| !ctx.dry_run) {
                loan.payload = Some(payload);
                loan.payload_hash = Some(hash);
                loan.state = LoanState::Placed;
                loan.updated_at = ctx.now_secs();
                ctx.store.save_loan(&loan, false)?;
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
        Decision::Map | Decision::Defer | Decision::Skip | Decision::Settle(_) => {
            unreachable!("decided before mapping")
        }
    }
}

/// The numbers [`decide`] reads from a line item.
pub fn line_of(item: &LineItem) -> Line {
    Line {
        dpd: item.dpd,
        due_amount: item.due_amount,
        total_outstanding: item.total_outstanding,
    }
}

/// The documented rules of an Upload Loan payload, as `decide` asks them.
fn preflight(loan_id: &str, payload: &Value) -> Option<String> {
    crate::credgenics::preflight(crate::credgenics::rules::check_upload(loan_id, payload))
}

/// Whether a line is overdue (design §1A), for the flow and for `preview`: [`Line::is_overdue`].
pub fn is_overdue(ctx: &Context, item: &LineItem) -> bool {
    line_of(item).is_overdue(ctx.config.sync.min_dpd)
}

/// A line that cannot be processed for a reason of its own: a dead letter (listed, retryable,
/// ignorable), and the stream moves on (design §2.7).
fn dead_line(ctx: &Context, item: &LineItem, reason: &str) -> Result<Outcome, SyncError> {
    tracing::error!(event = "line_dead_letter", line = %item.id, lead = %item.lead_id,
        borrower_program = %item.borrower_program_id, reason, "line set aside as a dead letter");
    if !ctx.dry_run {
        ctx.store.line_dead_letter(
            &item.id,
            &item.lead_id,
            &item.borrower_program_id,
            reason,
            ctx.now_secs(),
        )?;
    }
    Ok(Outcome::Dead)
}

/// The Upload Loan payload: loan fields plus one `defaults[]` entry, amounts rounded.
fn map_loan(ctx: &Context, lead: &Value, program: &Value, item: &LineItem, month: &str) -> Result<Value, String> {
    // Converted straight from the parts: copying them into one JSON document first cost more
    // than the mapping itself (BENCHMARKS.md).
    let input = with_input_members(ctx, lead, program, item, month, |m| crate::mapping::Input::object(m));
    map_loan_prepared(
        &ctx.config,
        EvalEnv {
            tz_offset_secs: ctx.clock.utc_offset_secs(),
        },
        &input,
        month,
    )
}

/// The members of the loan mapping's input document, in one place for the daemon's path and for
/// `loan_input` (preview, `mapping test` fixtures).
fn with_input_members<R>(
    ctx: &Context,
    lead: &Value,
    program: &Value,
    item: &LineItem,
    month: &str,
    f: impl FnOnce([(&str, &Value); 7]) -> R,
) -> R {
    let today = ctx.clock.today();
    let today_epoch = today
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0);
    let (month, today) = (json!(month), json!(today.to_string()));
    let (today_epoch, min_dpd) = (json!(today_epoch), json!(ctx.config.sync.min_dpd));
    f([
        ("lead", lead),
        ("program", program),
        ("line_detail", &item.raw),
        ("allocation_month", &month),
        ("today", &today),
        ("today_epoch", &today_epoch),
        ("min_dpd", &min_dpd),
    ])
}

/// The input document of the loan mapping.
pub fn loan_input(ctx: &Context, lead: &Value, program: &Value, item: &LineItem, month: &str) -> Value {
    with_input_members(ctx, lead, program, item, month, |members| {
        Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    })
}

/// The Upload Loan payload of one input document (also what `mapping test` runs).
pub fn map_loan_input(config: &crate::config::Config, env: EvalEnv, input: &Value) -> Result<Value, String> {
    let month = input["allocation_month"].as_str().unwrap_or_default();
    map_loan_prepared(config, env, &crate::mapping::Input::new(input), month)
}

fn map_loan_prepared(
    config: &crate::config::Config,
    env: EvalEnv,
    prepared: &crate::mapping::Input,
    month: &str,
) -> Result<Value, String> {
    let mut loan = config
        .mapping
        .loan
        .eval_prepared(prepared, &env)
        .map_err(|e| e.to_string())?;
    let default = config
        .mapping
        .default
        .eval_prepared(prepared, &env)
        .map_err(|e| e.to_string())?;
    match loan.get("loan_id") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Number(n)) => {
            let s = n.to_string();
            loan.insert("loan_id".into(), Value::String(s));
        }
        _ => return Err("mapping of `loan_id` yields no id (expected a non-empty string)".into()),
    }
    if default.get("allocation_month").and_then(Value::as_str) != Some(month) {
        return Err(format!(
            "mapping of `defaults.allocation_month` must yield the current month `{month}`"
        ));
    }
    loan.insert("defaults".into(), Value::Array(vec![Value::Object(default)]));
    let mut payload = Value::Object(loan);
    round_amounts(&mut payload, config.credgenics.amount_decimals)?;
    Ok(payload)
}

/// SHA-256 of the canonical JSON (serde_json maps are key-sorted).
pub fn payload_hash(v: &Value) -> String {
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// A placed loan whose line is no longer overdue: cured, or closed at zero outstanding. No call.
fn settle(ctx: &Context, mut loan: LoanRow, state: LoanState) -> Result<Outcome, SyncError> {
    let outcome = if state == LoanState::Closed {
        Outcome::Closed
    } else {
        Outcome::Cured
    };
    if !ctx.dry_run {
        loan.state = state;
        loan.updated_at = ctx.now_secs();
        ctx.store.save_loan(&loan, false)?;
    }
    telemetry::loan_state(&loan.loan_id, state.as_str());
    Ok(outcome)
}

/// Same allocation month, changed loan-level keys: PATCH them.
async fn update(
    ctx: &Context,
    mut loan: LoanRow,
    payload: Value,
    hash: String,
    patch: Map<String, Value>,
) -> Result<Outcome, SyncError> {
    let keys: Vec<String> = patch.keys().cloned().collect();
    let patch = Value::Object(patch);
    if ctx.dry_run {
        ctx.print_dry_run("PATCH", &format!("/loan/{}", loan.loan_id), &patch);
        return Ok(Outcome::Updated);
    }
    match ctx.credgenics.update_loan(&loan.loan_id, &patch).await {
        Ok(()) => {
            loan.payload = Some(payload);
            loan.payload_hash = Some(hash);
            loan.rejected_hash = None;
            loan.last_error = None;
            loan.state = LoanState::Placed;
            loan.updated_at = ctx.now_secs();
            ctx.store.save_loan(&loan, false)?;
            telemetry::loan_updated(&loan.loan_id, &keys);
            Ok(Outcome::Updated)
        }
        Err(ApiError::Rejected { status, body, .. }) => record_rejection(ctx, &mut loan, hash, status, &body),
        Err(ApiError::NotFound { .. }) => record_rejection(
            ctx,
            &mut loan,
            hash,
            404,
            "Credgenics no longer has this loan (PATCH answered 404)",
        ),
        Err(e) if e.stops_run() => Err(e.into()),
        Err(e) => {
            tracing::warn!(event = "update_failed", loan_id = %loan.loan_id, error = %e, "update will be retried next run");
            Ok(Outcome::Failed)
        }
    }
}

/// First upload or a new allocation month: recorded as in flight, then POSTed.
#[allow(clippy::too_many_arguments)]
async fn upload(
    ctx: &Context,
    existing: Option<LoanRow>,
    item: &LineItem,
    program: &Value,
    loan_id: &str,
    month: &str,
    payload: Value,
    hash: String,
) -> Result<Outcome, SyncError> {
    let new_allocation = existing.as_ref().is_some_and(|l| l.allocation_month.is_some());
    if ctx.dry_run {
        ctx.print_dry_run("POST", &format!("/loan/{loan_id}"), &payload);
        return Ok(Outcome::Placed { new_allocation });
    }
    let now = ctx.now_secs();
    let mut loan = existing.unwrap_or_else(|| new_loan_row(item, program, loan_id, now));
    loan.state = LoanState::Uploading;
    loan.pending_payload = Some(payload);
    loan.pending_month = Some(month.to_string());
    loan.updated_at = now;
    // Placed from the moment its first upload is recorded in flight (design §2.5), even when its
    // acceptance is only confirmed by a look-up runs later: repayments booked from then on are not
    // part of the claim.
    loan.first_placed_at.get_or_insert(now);
    // Recorded as in flight (with the rest of the page's uploads) before it is sent.
    Ok(Outcome::UploadPlanned(Box::new((loan, hash))))
}

/// POSTs the pending upload of `loan` (already recorded as in flight) and records the outcome.
async fn send_upload(ctx: &Context, loan: LoanRow, hash: String) -> Result<Outcome, SyncError> {
    let (outcome, confirmed) = send_upload_deferred(ctx, loan, hash).await?;
    if let Some(loan) = confirmed {
        ctx.store.save_loan(&loan, true)?;
        placed_event(&loan, matches!(outcome, Outcome::Placed { new_allocation: true }));
    }
    Ok(outcome)
}

/// [`send_upload`] leaving an accepted upload's row for the caller to record (with others).
async fn send_upload_deferred(
    ctx: &Context,
    mut loan: LoanRow,
    hash: String,
) -> Result<(Outcome, Option<LoanRow>), SyncError> {
    let payload = loan.pending_payload.clone().expect("an upload has a pending payload");
    let new_allocation = loan.allocation_month.is_some();
    let outcome = match ctx.credgenics.upload_loan(&loan.loan_id, &payload).await {
        Ok(()) => {
            confirmed(ctx, &mut loan, hash);
            return Ok((Outcome::Placed { new_allocation }, Some(loan)));
        }
        Err(ApiError::Rejected { status, body, .. }) => record_rejection(ctx, &mut loan, hash, status, &body),
        Err(e) if e.stops_run() => {
            // Refused before anything was done: the upload is not in doubt.
            restore_after_refusal(ctx, &mut loan)?;
            Err(e.into())
        }
        Err(e) if e.in_doubt() => {
            loan.last_error = Some(format!("upload in doubt: {e}"));
            ctx.store.save_loan(&loan, false)?;
            telemetry::loan_in_doubt(&loan.loan_id, &e);
            Ok(Outcome::InDoubt)
        }
        Err(e) => {
            // Provably not acted on (rate limit or connection refused, retries exhausted).
            restore_after_refusal(ctx, &mut loan)?;
            tracing::warn!(event = "upload_failed", loan_id = %loan.loan_id, error = %e, "upload will be retried next run");
            Ok(Outcome::Failed)
        }
    };
    outcome.map(|o| (o, None))
}

fn confirm_upload(ctx: &Context, loan: &mut LoanRow, hash: String) -> Result<(), SyncError> {
    let new_allocation = loan.allocation_month.is_some();
    confirmed(ctx, loan, hash);
    ctx.store.save_loan(loan, true)?;
    placed_event(loan, new_allocation);
    Ok(())
}

fn placed_event(loan: &LoanRow, new_allocation: bool) {
    telemetry::loan_placed(
        &loan.loan_id,
        loan.allocation_month.as_deref().unwrap_or(""),
        new_allocation,
    );
}

/// The row of an upload Credgenics accepted (not yet recorded).
fn confirmed(ctx: &Context, loan: &mut LoanRow, hash: String) {
    let now = ctx.now_secs();
    loan.payload = loan.pending_payload.take();
    loan.allocation_month = loan.pending_month.take();
    loan.payload_hash = Some(hash);
    loan.rejected_hash = None;
    loan.last_error = None;
    loan.state = LoanState::Placed;
    loan.first_placed_at.get_or_insert(now);
    // A new loan has no recoveries yet: the poll reads it from the next poll slot on.
    loan.last_polled_at.get_or_insert(now);
    loan.updated_at = now;
}

/// Credgenics refused the payload (a 4xx with its reasons): the loan is rejected, and this very
/// payload is not sent again.
fn record_rejection(
    ctx: &Context,
    loan: &mut LoanRow,
    hash: String,
    status: u16,
    body: &str,
) -> Result<Outcome, SyncError> {
    let reason = describe_rejection(status, body);
    loan.pending_payload = None;
    loan.pending_month = None;
    loan.rejected_hash = Some(hash);
    loan.last_error = Some(reason.clone());
    loan.state = LoanState::Rejected;
    if loan.allocation_month.is_none() {
        // Never placed: a later upload is its first placement.
        loan.first_placed_at = None;
    }
    loan.updated_at = ctx.now_secs();
    ctx.store.save_loan(loan, false)?;
    telemetry::loan_rejected(&loan.loan_id, &reason);
    Ok(Outcome::Rejected)
}

/// Undoes the in-flight mark of an upload Credgenics provably did not act on: back to what the
/// loan was, or forgotten when it was never placed, so the next run treats it afresh.
fn restore_after_refusal(ctx: &Context, loan: &mut LoanRow) -> Result<(), SyncError> {
    if loan.allocation_month.is_none() {
        ctx.store.delete_loan(&loan.loan_id)?;
        return Ok(());
    }
    loan.pending_payload = None;
    loan.pending_month = None;
    loan.state = LoanState::Placed;
    loan.updated_at = ctx.now_secs();
    ctx.store.save_loan(loan, false)?;
    Ok(())
}

/// The state's first row for a borrower-program.
fn new_loan_row(item: &LineItem, program: &Value, loan_id: &str, now: f64) -> LoanRow {
    LoanRow {
        loan_id: loan_id.to_string(),
        borrower_program_id: item.borrower_program_id.clone(),
        lead_id: item.lead_id.clone(),
        program_id: program["program_id"].as_str().map(str::to_string),
        allocation_month: None,
        state: LoanState::Rejected,
        payload: None,
        payload_hash: None,
        pending_payload: None,
        pending_month: None,
        rejected_hash: None,
        last_error: None,
        first_placed_at: None,
        updated_at: now,
        due_amount: Some(item.due_amount),
        total_outstanding: Some(item.total_outstanding),
        last_polled_at: None,
        line_updated_at: Some(item.updated_at),
        line_read_at: Some(now),
    }
}

/// A payload the mapping could not produce: recorded as rejected with the reason, no call.
fn reject_unmapped(
    ctx: &Context,
    existing: Option<LoanRow>,
    item: &LineItem,
    program: &Value,
    loan_id: &str,
    reason: String,
) -> Result<Outcome, SyncError> {
    telemetry::loan_rejected(loan_id, &reason);
    if ctx.dry_run {
        println!("{}", json!({"dry_run": true, "rejected": loan_id, "reason": reason}));
        return Ok(Outcome::Rejected);
    }
    let mut loan = existing.unwrap_or_else(|| new_loan_row(item, program, loan_id, ctx.now_secs()));
    loan.state = LoanState::Rejected;
    if loan.allocation_month.is_none() {
        loan.first_placed_at = None;
    }
    loan.last_error = Some(reason);
    loan.rejected_hash = None;
    loan.updated_at = ctx.now_secs();
    ctx.store.save_loan(&loan, false)?;
    Ok(Outcome::Rejected)
}

/// Rejected loans an operator asked to send again (`dead-letters retry`), and loans whose line
/// was deferred while their upload was in doubt: their line is read afresh from the lead's
/// programs and processed as if it had changed. Then the line dead letters an operator asked to
/// retry, the same way.
async fn resync_requested(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
    for (loan_id, lead_id, bp) in ctx.store.loans_to_resync()? {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(outcome) = process_afresh(ctx, &lead_id, &bp, None).await? else {
            continue;
        };
        // A transient failure, or an upload still in doubt, keeps the request for the next run.
        if !matches!(outcome, Outcome::Failed | Outcome::Deferred) {
            ctx.store.resync_done(&loan_id)?;
        }
        stats.count(&outcome);
    }
    for letter in ctx.store.lines_to_retry()? {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(outcome) =
            process_afresh(ctx, &letter.lead_id, &letter.borrower_program_id, Some(&letter.line_id)).await?
        else {
            continue;
        };
        if !matches!(outcome, Outcome::Failed | Outcome::Dead) {
            ctx.store.clear_line_dead_letter(&letter.line_id)?;
        }
        stats.count(&outcome);
    }
    Ok(())
}

/// Reads one borrower-program's line from its lead's programs and processes it. `None` when it
/// could not be read this time (left for the next run). A lead or program that is gone makes the
/// line a dead letter (`line_id` names it when the line is not readable any more).
async fn process_afresh(
    ctx: &Context,
    lead_id: &str,
    bp: &str,
    line_id: Option<&str>,
) -> Result<Option<Outcome>, SyncError> {
    let gone = |reason: &str| -> Result<Option<Outcome>, SyncError> {
        tracing::error!(event = "resync_failed", lead = %lead_id, borrower_program = %bp, reason, "line not readable");
        if let Some(line) = line_id {
            ctx.store.line_dead_letter(line, lead_id, bp, reason, ctx.now_secs())?;
            return Ok(Some(Outcome::Dead));
        }
        Ok(None)
    };
    let programs = match ctx.crego.programs(lead_id).await {
        Ok(p) => p,
        Err(e) if e.stops_run() => return Err(e.into()),
        Err(ApiError::NotFound { .. }) => return gone("the lead is not found at Crego (404)"),
        Err(e) => {
            tracing::warn!(event = "resync_failed", lead = %lead_id, error = %e, "left for the next run");
            return Ok(None);
        }
    };
    let Some(mut line) = programs
        .into_iter()
        .find(|p| p["id"] == bp)
        .map(|p| p["line_detail"].clone())
    else {
        return gone("the borrower-program is no longer listed by its lead");
    };
    line["lead_id"] = Value::String(lead_id.to_string());
    line["borrower_program_id"] = Value::String(bp.to_string());
    match LineItem::from_value(line) {
        Ok(item) => Ok(Some(carry_out(ctx, process_line(ctx, &item, true).await?).await?)),
        Err(e) => gone(&format!("line unreadable: {e}")),
    }
}

/// Uploads left in doubt by an earlier run (a timeout, a 5xx, a crash): look at Credgenics first,
/// and send again only when the allocation month is not there.
async fn resolve_in_doubt(ctx: &Context, stats: &mut FlowAStats) -> Result<(), SyncError> {
    for loan in ctx.store.loans_in_state(LoanState::Uploading)? {
        if ctx.stopping() {
            return Ok(());
        }
        ctx.progressed(|| "A: resolving earlier work".into());
        let Some(month) = loan.pending_month.clone() else {
            continue;
        };
        let Some(payload) = loan.pending_payload.clone() else {
            continue;
        };
        let hash = payload_hash(&payload);
        let found = match ctx.credgenics.get_loan(&loan.loan_id, None).await {
            Ok(found) => found,
            Err(e) if e.stops_run() => return Err(e.into()),
            Err(e) => {
                let max = ctx.config.sync.max_lookups;
                if ctx
                    .store
                    .lookup_failed(&loan.loan_id, max, &e.to_string(), ctx.now_secs())?
                {
                    tracing::error!(event = "upload_dead_letter", loan_id = %loan.loan_id, lookups = max, error = %e,
                        "upload outcome still unknown: set aside as a dead letter");
                    stats.dead_letters += 1;
                } else {
                    tracing::warn!(event = "lookup_failed", loan_id = %loan.loan_id, error = %e, "in-doubt upload stays in doubt");
                }
                continue;
            }
        };
        let has_month = found.as_ref().is_some_and(|v| {
            v["loan_details"]["defaults"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["allocation_month"] == month.as_str()))
        });
        if has_month {
            let mut loan = loan;
            confirm_upload(ctx, &mut loan, hash)?;
            stats.resolved += 1;
        } else {
            let o = send_upload(ctx, loan, hash).await?;
            if !matches!(o, Outcome::InDoubt) {
                stats.resolved += 1;
            }
            stats.count(&o);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_holds_only_changed_loan_level_keys_never_the_claim() {
        let old = json!({"loan_id": "L1", "applicant_name": "A", "total_loan_amount": 10,
            "defaults": [{"allocation_month": "2026-11-01", "total_claim_amount": 5, "late_fee": 1}]});
        let new = json!({"loan_id": "L1", "applicant_name": "B", "total_loan_amount": 10,
            "defaults": [{"allocation_month": "2026-11-01", "total_claim_amount": 7, "late_fee": 1}]});
        let p = changed_keys(&old, &new);
        // Design §1A: the claim is a snapshot for the month; only loan-level keys are PATCHed.
        assert_eq!(Value::Object(p), json!({"applicant_name": "B"}));
        assert_eq!(frozen_claim_changes(&old, &new), vec!["total_claim_amount".to_string()]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}
