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
//! Not bounded: an expression that recurses without end *outside* tail position overflows its
//! worker's stack, which aborts the process (Rust cannot catch it). `check-config` evaluates every
//! expression in a child process first, so that crash is found, and named, before go-live.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jaq_json::Val;
use serde_json::{Map, Value};

use super::jq::{EvalEnv, Field, MappingError, eval_one};

/// Budget per expression when the config does not set `mapping.budget_ms`.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1000);
/// Abandoned (runaway) workers tolerated before the evaluator stops taking work.
pub const MAX_RUNAWAYS: usize = 4;
/// A worker's stack: deep but finite recursion in a mapping is legitimate.
const WORKER_STACK: usize = 16 << 20;

type Outcome = Result<Option<Value>, MappingError>;

struct Job {
    fields: Arc<[Field]>,
    range: Range<usize>,
    input: Val,
    env: EvalEnv,
    results: mpsc::Sender<Outcome>,
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

fn spawn() -> std::io::Result<Worker> {
    let (jobs, inbox) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("mapping-eval".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            for job in inbox {
                for field in &job.fields[job.range.clone()] {
                    let outcome = eval_one(field, job.input.clone(), &job.env);
                    let failed = outcome.is_err();
                    if job.results.send(outcome).is_err() {
                        // Abandoned after an overrun, and only now done: no longer a runaway.
                        // This worker was never handed back to the pool; it ends here.
                        RUNAWAYS.fetch_sub(1, Ordering::Relaxed);
                        return;
                    }
                    if failed {
                        break;
                    }
                }
            }
        })?;
    Ok(Worker { jobs })
}

/// Runs `wait` without holding up the async runtime: on a multi-threaded runtime its other tasks
/// (the listener, the other jobs) move to another thread meanwhile.
fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
        _ => wait(),
    }
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
    let mut out = Map::new();
    let range = range.start..range.end.min(fields.len());
    let start = range.start;
    let Some(first) = fields.get(start).filter(|_| !range.is_empty()) else {
        return Ok(out);
    };
    let fail = |_at: usize, error: MappingError| Failure { error, overran: false };
    let refuse = |field: &Field, message: String| MappingError {
        field: field.key.clone(),
        expr: field.expr.clone(),
        message,
    };
    let stuck = runaways();
    if stuck >= MAX_RUNAWAYS {
        return Err(Failure {
            overran: true,
            ..fail(
                start,
                refuse(
                    first,
                    format!(
                        "not evaluated: {stuck} mapping expressions overran their budget in this process and still \
                         hold a core each; mend the mapping and restart"
                    ),
                ),
            )
        });
    }
    let (results, replies) = mpsc::channel();
    let job = Job {
        fields: fields.clone(),
        range: range.clone(),
        input,
        env: *env,
        results,
    };
    let no_thread = |e: std::io::Error| {
        fail(
            start,
            refuse(first, format!("cannot start a mapping worker thread: {e}")),
        )
    };
    let worker = checkout().map_err(no_thread)?;
    // A worker whose thread has died (a panic inside jaq) refuses the job: use a fresh one.
    let worker = match worker.jobs.send(job) {
        Ok(()) => worker,
        Err(mpsc::SendError(job)) => {
            let fresh = spawn().map_err(no_thread)?;
            fresh
                .jobs
                .send(job)
                .map_err(|_| fail(start, refuse(first, "the mapping worker thread died".into())))?;
            fresh
        }
    };
    for (at, field) in fields.iter().enumerate().take(range.end).skip(start) {
        match blocking(|| replies.recv_timeout(budget)) {
            Ok(Ok(Some(v))) => {
                out.insert(field.key.clone(), v);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                checkin(worker);
                return Err(fail(at, e));
            }
            Err(RecvTimeoutError::Timeout) => {
                // The worker is left to spin; it is never handed another job.
                let n = RUNAWAYS.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!(crate::telemetry::metric::MAPPING_RUNAWAYS).increment(1);
                tracing::error!(
                    event = "mapping_runaway",
                    field = %field.key,
                    budget_ms = budget.as_millis() as u64,
                    runaways = n,
                    "a mapping expression overran its budget; its item is a dead letter"
                );
                return Err(Failure {
                    overran: true,
                    ..fail(
                        at,
                        refuse(
                            field,
                            format!(
                                "did not finish within the budget of {} ms (mapping.budget_ms)",
                                budget.as_millis()
                            ),
                        ),
                    )
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(fail(at, refuse(field, "the evaluation panicked".into())));
            }
        }
    }
    checkin(worker);
    Ok(out)
}
