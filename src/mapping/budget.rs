//! Bounded evaluation of mapping expressions: a budget of wall time per expression, enforced.
//!
//! jaq has no fuel and no way to interrupt a running filter (`def f: f; f` loops inside one
//! `next()`), so a field set is evaluated on a worker thread of a small pool while the caller
//! waits at most `budget` for each field's result. An expression that overruns names its field in
//! a [`MappingError`] (the item becomes a dead letter like any other mapping failure); its worker
//! is abandoned — it cannot be stopped; it ends when its evaluation does, or with the process —
//! and a fresh one serves the next item. While [`MAX_RUNAWAYS`] abandoned workers are still
//! running the evaluator refuses further work instead of spending more cores (a restart with a
//! mended mapping ends them). The caller's wait is `block_in_place` on a multi-threaded runtime,
//! so the listener and the other jobs keep their threads meanwhile.
//!
//! Expressions bounded by their form ([`super::bounded`]: no loops, no recursion, listed
//! built-ins) skip all of this and run on the caller's thread: the hop costs more than they do.
//!
//! Not bounded: an expression that recurses without end *outside* tail position overflows its
//! worker's stack, which aborts the process (Rust cannot catch it). `check-config` evaluates every
//! expression in a child process first, so that crash is found, and named, before go-live.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use jaq_json::Val;
use serde_json::{Map, Value};

use super::jq::{EvalEnv, Field, MappingError, eval_one};

/// Budget per expression when the config does not set `mapping.budget_ms`.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1000);
/// Abandoned (runaway) workers tolerated before the evaluator stops taking work.
pub const MAX_RUNAWAYS: usize = 4;
/// How long a caller waits in place before moving its runtime's other tasks off its thread.
const QUICK: Duration = Duration::from_millis(2);
/// A worker's stack: deep but finite recursion in a mapping is legitimate.
const WORKER_STACK: usize = 16 << 20;

/// The values of each of a job's field sets (key order, nulls omitted), or the first failure.
type Outcome = Result<Vec<Map<String, Value>>, MappingError>;

/// Field sets evaluated in one job, each over a range of its fields: one hop to a worker thread
/// for all of an item's sets (a loan's top-level keys and its claim).
pub(super) type Segments = Vec<(Arc<[Field]>, Range<usize>)>;

/// Which field a worker is evaluating, and since when: the caller reads it only when the job is
/// slow, to tell which expression overran (one message per job, not one per field: a wake-up
/// per field cost more than the mapping itself).
#[derive(Default)]
struct Progress {
    segment: AtomicUsize,
    index: AtomicUsize,
    /// Nanoseconds since [`epoch`] when that field began.
    began: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

struct Job {
    segments: Segments,
    input: Val,
    env: EvalEnv,
    progress: Arc<Progress>,
    result: mpsc::Sender<Outcome>,
}

struct Worker {
    jobs: mpsc::Sender<Job>,
}

static IDLE: Mutex<Vec<Worker>> = Mutex::new(Vec::new());
static RUNAWAYS: AtomicUsize = AtomicUsize::new(0);

/// How many expressions overran their budget and are still running (each holds a thread).
pub fn runaways() -> usize {
    RUNAWAYS.load(Ordering::Relaxed)
}

fn run(job: &Job) -> Outcome {
    evaluate(&job.segments, &job.input, &job.env, Some(&job.progress))
}

/// Evaluates every segment in order, reporting each field's start to `progress` when watched.
fn evaluate(segments: &Segments, input: &Val, env: &EvalEnv, progress: Option<&Progress>) -> Outcome {
    let mut all = Vec::with_capacity(segments.len());
    for (s, (fields, range)) in segments.iter().enumerate() {
        let mut out = Map::new();
        for i in range.clone() {
            let field = &fields[i];
            if let Some(progress) = progress {
                progress
                    .began
                    .store(epoch().elapsed().as_nanos() as u64, Ordering::Relaxed);
                progress.segment.store(s, Ordering::Release);
                progress.index.store(i, Ordering::Release);
            }
            match eval_one(field, input.clone(), env) {
                Ok(Some(v)) => {
                    out.insert(field.key.clone(), v);
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        all.push(out);
    }
    Ok(all)
}

fn spawn() -> std::io::Result<Worker> {
    let (jobs, inbox) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("mapping-eval".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            for job in inbox {
                if job.result.send(run(&job)).is_err() {
                    // Abandoned after an overrun, and only now done: no longer a runaway. This
                    // worker was never handed back to the pool; it ends here.
                    RUNAWAYS.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            }
        })?;
    Ok(Worker { jobs })
}

fn checkout() -> std::io::Result<Worker> {
    // A poisoned pool only means a caller panicked while pushing: the workers are still sound.
    let idle = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop();
    match idle {
        Some(w) => Ok(w),
        None => spawn(),
    }
}

fn checkin(worker: Worker) {
    IDLE.lock().unwrap_or_else(|p| p.into_inner()).push(worker);
}

/// Why evaluation stopped: a field failed, or overran its budget.
pub(super) struct Failure {
    pub error: MappingError,
    pub overran: bool,
}

/// Evaluates `fields[range]` in order over `input`, each within `budget`. Fields yielding null
/// are omitted; the first failure (an error, several values, or an overrun) is returned.
pub(super) fn eval_fields(
    fields: &Arc<[Field]>,
    range: Range<usize>,
    input: Val,
    env: &EvalEnv,
    budget: Duration,
) -> Result<Map<String, Value>, Failure> {
    let range = range.start..range.end.min(fields.len());
    let mut maps = eval_segments(vec![(fields.clone(), range)], input, env, budget)?;
    Ok(maps.pop().unwrap_or_default())
}

/// [`eval_fields`] for several field sets in one job; their values in the same order.
pub(super) fn eval_segments(
    segments: Segments,
    input: Val,
    env: &EvalEnv,
    budget: Duration,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let Some(first) = segments
        .iter()
        .find(|(f, r)| !r.is_empty() && r.end <= f.len())
        .map(|(f, r)| (f[r.start].key.clone(), f[r.start].expr.clone()))
    else {
        return Ok(segments.iter().map(|_| Map::new()).collect());
    };
    let first = &first;
    let refuse = |(field, expr): &(String, String), message: String, overran: bool| Failure {
        error: MappingError {
            field: field.clone(),
            expr: expr.clone(),
            message,
        },
        overran,
    };
    if segments
        .iter()
        .all(|(fields, range)| fields.get(range.clone()).is_some_and(|fs| fs.iter().all(|f| f.bounded)))
    {
        // Bounded by its form: no budget to enforce, so no hop. A panic inside jaq is reported
        // as the pool reports it, not carried into the caller's task.
        let inline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluate(&segments, &input, env, None)));
        return match inline {
            Ok(Ok(values)) => Ok(values),
            Ok(Err(error)) => Err(Failure { error, overran: false }),
            Err(_) => Err(refuse(first, "the evaluation panicked".into(), false)),
        };
    }
    let stuck = runaways();
    if stuck >= MAX_RUNAWAYS {
        return Err(refuse(
            first,
            format!(
                "not evaluated: {stuck} mapping expressions overran their budget in this process and still \
                 hold a core each; mend the mapping and restart"
            ),
            true,
        ));
    }
    let (result, reply) = mpsc::channel();
    let progress = Arc::new(Progress::default());
    let start = segments.iter().position(|(_, r)| !r.is_empty()).unwrap_or(0);
    progress.segment.store(start, Ordering::Relaxed);
    progress.index.store(segments[start].1.start, Ordering::Relaxed);
    let at = |p: &Progress| {
        let (fields, _) = &segments[p.segment.load(Ordering::Acquire)];
        let f = &fields[p.index.load(Ordering::Acquire)];
        (f.key.clone(), f.expr.clone())
    };
    progress
        .began
        .store(epoch().elapsed().as_nanos() as u64, Ordering::Relaxed);
    let job = Job {
        segments: segments.clone(),
        input,
        env: *env,
        progress: progress.clone(),
        result,
    };
    let no_thread = |e: std::io::Error| refuse(first, format!("cannot start a mapping worker thread: {e}"), false);
    let worker = checkout().map_err(no_thread)?;
    // A worker whose thread has died (a panic inside jaq) refuses the job: use a fresh one.
    let worker = match worker.jobs.send(job) {
        Ok(()) => worker,
        Err(mpsc::SendError(job)) => {
            let fresh = spawn().map_err(no_thread)?;
            fresh
                .jobs
                .send(job)
                .map_err(|_| refuse(first, "the mapping worker thread died".into(), false))?;
            fresh
        }
    };
    // Nearly every job answers in microseconds: wait a moment in place; only a slow one pays for
    // handing this thread's other tasks to another (block_in_place) while it is watched.
    let outcome = match reply.recv_timeout(budget.min(QUICK)) {
        Err(RecvTimeoutError::Timeout) => crate::runtime::blocking::off_runtime(|| watch(&reply, &progress, budget)),
        other => other,
    };
    match outcome {
        Ok(Ok(values)) => {
            checkin(worker);
            Ok(values)
        }
        Ok(Err(error)) => {
            checkin(worker);
            Err(Failure { error, overran: false })
        }
        Err(RecvTimeoutError::Timeout) => {
            // The worker is left to run; it is never handed another job.
            let field = &at(&progress);
            let n = RUNAWAYS.fetch_add(1, Ordering::Relaxed) + 1;
            crate::telemetry::events::MappingRunaway {
                field: &field.0,
                budget,
                runaways: n,
            }
            .emit();
            Err(refuse(
                field,
                format!(
                    "did not finish within the budget of {} ms (mapping.budget_ms)",
                    budget.as_millis()
                ),
                true,
            ))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let field = &at(&progress);
            Err(refuse(field, "the evaluation panicked".into(), false))
        }
    }
}

/// Waits for a slow job's answer, until the field it is on has run for longer than `budget`.
fn watch(reply: &mpsc::Receiver<Outcome>, progress: &Progress, budget: Duration) -> Result<Outcome, RecvTimeoutError> {
    loop {
        let began = Duration::from_nanos(progress.began.load(Ordering::Relaxed));
        let running = epoch().elapsed().saturating_sub(began);
        let left = budget.saturating_sub(running);
        if left.is_zero() {
            return Err(RecvTimeoutError::Timeout);
        }
        match reply.recv_timeout(left) {
            Err(RecvTimeoutError::Timeout) => continue,
            other => return other,
        }
    }
}
