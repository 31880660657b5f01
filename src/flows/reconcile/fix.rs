//! `reconcile --fix`: the disagreements the daemon can mend safely, mended the way it writes
//! anything — a ledger row (effectively once: look-up before any resend, dead letters), or flow
//! A for an allocation. A row already sent whose write the other side no longer shows goes back
//! in flight, so delivery looks for it before sending it again. Duplicates, amounts and money the
//! daemon did not write are only reported.

use serde_json::Value;

use super::compare::Books;
use super::read::Read;
use crate::flows::context::{Context, SyncError};
use crate::flows::recoveries::{Recovery, payment_row};
use crate::flows::repayments::{FlowCStats, build_rows, repayment_key};
use crate::store::{Finding, FindingKind, LedgerState, LoanRow};

/// Queues (or reopens) what mends `findings`; `true` when anything was queued or written.
pub async fn mend(ctx: &Context, loan: &LoanRow, read: &Read, findings: &[Finding]) -> Result<bool, SyncError> {
    let mut queued = false;
    let now = ctx.now_secs();
    for f in findings.iter().filter(|f| f.kind.fixable()) {
        match f.kind {
            FindingKind::PaymentMissingAtCredgenics => {
                let Some(record) = record_of(&read.books, &read.lms_raw, f) else {
                    continue;
                };
                let id = record["id"].as_str().unwrap_or_default();
                match ctx.store.ledger_by_key(&repayment_key(id))? {
                    Some(row) if row.state == LedgerState::Done => {
                        ctx.store
                            .ledger_reopen(row.id, "reconcile: not found at Credgenics", now)?;
                        queued = true;
                    }
                    // Pending or in flight: delivery below sends or resolves it. Dead: an
                    // operator's retry.
                    Some(row) => queued |= row.state != LedgerState::Dead,
                    None => {
                        let rows = build_rows(ctx, vec![(record.clone(), loan.clone())], &mut FlowCStats::default())?;
                        queued |= ctx.store.ledger_add(&rows, now)? > 0;
                    }
                }
            }
            FindingKind::RecoveryMissingInLms => {
                let Some(payment) = payment_of(read, f) else { continue };
                let Recovery::Row(row) = payment_row(&ctx.config, &ctx.store, &ctx.clock, loan, payment, "reconcile")?
                else {
                    continue;
                };
                match ctx.store.ledger_by_key(&row.source_key)? {
                    Some(known) if known.state == LedgerState::Done => {
                        ctx.store
                            .ledger_reopen(known.id, "reconcile: not found in the LMS", now)?;
                        queued = true;
                    }
                    Some(known) => queued |= known.state != LedgerState::Dead,
                    None => queued |= ctx.store.ledger_add(&[*row], now)? > 0,
                }
            }
            FindingKind::AllocationMissing => {
                crate::flows::loans::resolve::place_again(ctx, loan).await?;
                queued = true;
            }
            _ => {}
        }
    }
    Ok(queued)
}

/// The LMS record a payment finding names.
fn record_of<'a>(books: &Books, raw: &'a [Value], f: &Finding) -> Option<&'a Value> {
    let reference = f.reference.as_deref()?;
    let id = books.lms.iter().find(|r| r.reference == reference)?.id.clone();
    raw.iter().find(|r| r["id"] == id.as_str())
}

/// The Credgenics entry a recovery finding names (by the utr flow B writes for it).
fn payment_of<'a>(read: &'a Read, f: &Finding) -> Option<&'a Value> {
    let utr = f.reference.as_deref()?;
    let cg = read.books.cg.as_ref()?;
    let p = cg.history.iter().find(|p| {
        p.reference == utr
            || p.key.as_deref().is_some_and(|k| {
                super::compare::hashed_utr(k) == utr
                    || read.books.written.iter().any(|w| w.key == k && w.reference == utr)
            })
    })?;
    read.cg_raw.get(p.position)
}
