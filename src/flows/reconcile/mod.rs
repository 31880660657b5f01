//! Reconcile (issue 14): do the two books agree, loan by loan? For each placed loan (or one, or
//! those changed since a date) both sides are read ([`read`]) and compared ([`compare`]); the
//! findings, the run's totals and its progress are kept in the state, one loan per transaction,
//! so a run stopped between loans (SIGTERM, a refused credential) resumes after the last loan it
//! checked. With `fix`, what the daemon can mend safely is mended through the ledger or flow A
//! ([`fix`]) and the loan is read again: what still disagrees is what is reported.

pub mod compare;
mod fix;
pub mod read;

use futures::StreamExt;
use serde::Serialize;

use super::context::{Context, SyncError};
use crate::ledger::deliver::deliver;
use crate::store::{Finding, LoanRow, ReconcileRun};
use crate::telemetry::events;

/// Which loans a run checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    All,
    /// Loans whose state or payments changed at or after this instant.
    Since(f64),
    Loan(String),
}

impl Scope {
    /// As the state keeps it: a stopped run resumes only for the same scope.
    pub fn key(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Since(t) => format!("since:{t}"),
            Scope::Loan(id) => format!("loan:{id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scope: Scope,
    pub fix: bool,
    /// Take Credgenics' side from the nightly poll's read of the loan when it is recent and
    /// nothing was written to the loan since (the nightly job), instead of reading it again.
    pub share_poll_reads: bool,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: ReconcileRun,
    /// Every finding of the run (a resumed run's too), mended ones marked `fixed`.
    pub findings: Vec<Finding>,
    /// Requests made on each API (Crego, Credgenics).
    pub requests: (u64, u64),
    /// Why it stopped before its end, if it did.
    pub error: Option<String>,
}

impl Report {
    /// Ran to its end and could read every loan.
    pub fn complete(&self) -> bool {
        self.run.finished_at.is_some() && self.run.unreadable == 0 && self.error.is_none()
    }

    /// Findings not mended.
    pub fn open(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.fixed)
    }
}

/// Loans read per batch (and concurrently, up to the partners' `max_in_flight`).
const BATCH: u32 = 200;

/// One reconcile run.
pub async fn run(ctx: &Context, opts: &Options) -> Result<Report, SyncError> {
    // A `--fix` run resumes only a `--fix` run: a run that stopped without fixing left its
    // earlier loans unmended.
    let scope = if opts.fix {
        format!("{}:fix", opts.scope.key())
    } else {
        opts.scope.key()
    };
    let now = ctx.now_secs();
    let resumable = !matches!(opts.scope, Scope::Loan(_));
    let mut run = match resumable
        .then(|| ctx.store.reconcile_unfinished(&scope))
        .transpose()?
        .flatten()
    {
        Some(run) => {
            events::reconcile_resumed(run.id, &run.cursor);
            run
        }
        None => ctx.store.reconcile_start(&scope, now)?,
    };
    let mut requests = (0, 0);
    let mut error = None;
    let concurrency = ctx
        .config
        .crego
        .limits
        .max_in_flight
        .min(ctx.config.credgenics.limits.max_in_flight)
        .max(1);
    'batches: loop {
        let loans: Vec<LoanRow> = match &opts.scope {
            Scope::Loan(id) => {
                if !run.cursor.is_empty() {
                    break;
                }
                // Only a placed loan has books to compare (as for every scope).
                ctx.store
                    .loan(id)?
                    .into_iter()
                    .filter(|l| l.first_placed_at.is_some() && l.allocation_month.is_some())
                    .collect()
            }
            Scope::All => ctx.store.loans_to_reconcile(None, &run.cursor, BATCH)?,
            Scope::Since(t) => ctx.store.loans_to_reconcile(Some(*t), &run.cursor, BATCH)?,
        };
        if loans.is_empty() {
            if let Scope::Loan(id) = &opts.scope
                && run.cursor.is_empty()
            {
                error = Some(format!("loan {id} is not in the state (never placed by this daemon)"));
            }
            break;
        }
        // Reads overlap up to the partners' concurrency, a chunk at a time, and every read of a
        // chunk ends before its loans are checked: a read left half-way while a fix sends would
        // hold a request slot the fix waits for. In order, so the cursor only passes loans
        // checked.
        for chunk in loans.chunks(concurrency * 4) {
            let reads: Vec<_> = futures::stream::iter(chunk.iter().cloned())
                .map(|loan| async move {
                    if ctx.stopping() {
                        return (loan, None);
                    }
                    let r = read::books(ctx, &loan, opts.share_poll_reads).await;
                    (loan, Some(r))
                })
                .buffered(concurrency)
                .collect()
                .await;
            for (loan, r) in reads {
                let Some(r) = r else { break 'batches };
                // A failure of the state stops the run; of a partner, only when it stops any run
                // (a refused credential, shutdown); else the loan is unreadable this time.
                let read = match r {
                    Ok(read) => read,
                    Err(SyncError::Api(e)) if e.stops_run() => {
                        error = Some(e.to_string());
                        break 'batches;
                    }
                    Err(SyncError::Api(e)) => {
                        events::reconcile_unreadable(&loan.loan_id, &e);
                        ctx.store.reconcile_loan(&mut run, &loan.loan_id, &[], None)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                requests.0 += read.requests.0;
                requests.1 += read.requests.1;
                let (findings, totals) = check(ctx, &loan, read, opts.fix, &mut requests).await?;
                ctx.store
                    .reconcile_loan(&mut run, &loan.loan_id, &findings, Some(totals))?;
                ctx.progressed(|| format!("reconcile: {} loans checked", run.loans_checked));
                if ctx.stopping() {
                    break 'batches;
                }
            }
        }
    }
    if error.is_none() && !ctx.stopping() {
        ctx.store.reconcile_finish(&mut run, ctx.now_secs())?;
    }
    let findings = ctx.store.reconcile_findings(run.id)?;
    events::ReconcileFinished {
        summary: summary(&run),
        findings: findings.iter().filter(|f| !f.fixed).count(),
    }
    .emit();
    Ok(Report {
        run,
        findings,
        requests,
        error,
    })
}

/// Every finding kind's name, for gauges that show zeros too.
const KINDS: [&str; crate::store::FindingKind::ALL.len()] = {
    let mut names = [""; crate::store::FindingKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = crate::store::FindingKind::ALL[i].as_str();
        i += 1;
    }
    names
};

/// A run as the telemetry reports it.
pub fn summary(run: &ReconcileRun) -> events::ReconcileSummary<'_> {
    events::ReconcileSummary {
        run: run.id,
        finished_at: run.finished_at,
        loans_checked: run.loans_checked,
        agreeing: run.agreeing,
        unreadable: run.unreadable,
        difference: (run.lms_total - run.credgenics_total).abs(),
        counts: &run.counts,
        kinds: &KINDS,
    }
}

/// One loan's findings (after mending what `fix` may) and its totals (LMS, Credgenics).
async fn check(
    ctx: &Context,
    loan: &LoanRow,
    read: read::Read,
    fix: bool,
    requests: &mut (u64, u64),
) -> Result<(Vec<Finding>, (rust_decimal::Decimal, rust_decimal::Decimal)), SyncError> {
    let first = compare::compare(&read.books);
    if !fix || ctx.dry_run || !first.findings.iter().any(|f| f.kind.fixable()) {
        return Ok((first.findings, (first.lms_total, first.credgenics_total)));
    }
    if fix::mend(ctx, loan, &read, &first.findings).await? {
        deliver(ctx, &crate::flows::repayments::Payments, &mut Default::default()).await?;
        deliver(ctx, &crate::flows::recoveries::Records, &mut Default::default()).await?;
    }
    // What is true now: the loan read again, Credgenics afresh.
    let loan = ctx.store.loan(&loan.loan_id)?.unwrap_or_else(|| loan.clone());
    let again = match read::books(ctx, &loan, false).await {
        Ok(r) => r,
        Err(SyncError::Api(e)) if !e.stops_run() => {
            return Ok((first.findings, (first.lms_total, first.credgenics_total)));
        }
        Err(e) => return Err(e),
    };
    requests.0 += again.requests.0;
    requests.1 += again.requests.1;
    let now = compare::compare(&again.books);
    let mut findings = now.findings;
    for f in first.findings {
        let still = findings
            .iter()
            .any(|n| n.kind == f.kind && n.reference == f.reference && n.month == f.month);
        // Only what --fix mends can be called fixed; any other finding gone on the re-read
        // (hidden by a new one of its month, say) stays reported as first found.
        if !still {
            findings.push(Finding {
                fixed: f.kind.fixable(),
                ..f
            });
        }
    }
    Ok((findings, (now.lms_total, now.credgenics_total)))
}
