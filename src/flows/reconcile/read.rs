//! Reads one loan's two books for [`super::compare`]: the LMS records of its account and its
//! line (two Crego reads), what Credgenics holds (one read — or none, when the nightly poll's
//! full read is newer than any write to the loan), and the ledger's rows for it.

use rust_decimal::Decimal;
use serde_json::Value;

use super::compare::{Books, CgBooks, CgPayment, LedgerFact, LineNow, LmsRecord};
use crate::flows::context::{Context, SyncError};
use crate::money;
use crate::partners::http::ApiError;
use crate::store::{Direction, LedgerState, LoanRow};

/// A poll's read older than this is read again (the nightly poll runs shortly before the nightly
/// reconcile; a read from the day before is not what Credgenics holds now).
const SHARED_READ_MAX_AGE_SECS: f64 = 3.0 * 3600.0;

/// Both books of `loan` with the raw items behind them (for `--fix`), or the read that failed.
pub struct Read {
    pub books: Books,
    /// LMS records and Credgenics entries as read, by id / position.
    pub lms_raw: Vec<Value>,
    pub cg_raw: Vec<Value>,
    /// Requests made (Crego, Credgenics).
    pub requests: (u64, u64),
}

/// `share`: take Credgenics' side from the poll's recent read when nothing was written to the
/// loan since (the nightly job); otherwise read it now.
pub async fn books(ctx: &Context, loan: &LoanRow, share: bool) -> Result<Read, SyncError> {
    let link = &ctx.config.mapping.link;
    let bp = loan.borrower_program_id.clone();
    let on_account = |r: &Value| link.record_program(r).is_ok_and(|p| p == bp);
    // Credgenics and the ledger first, the LMS last: a payment flow C sends in between then has
    // its record in the LMS read (at worst it shows as not sent yet), never a payment whose
    // record seems gone — which would advise reversing a genuine payment by hand.
    let (cg, cg_reads) = credgenics(ctx, loan, share).await?;
    let pushed = facts(ctx, loan, Direction::ToCredgenics)?;
    let written = facts(ctx, loan, Direction::ToCrego)?;
    let (records, programs) = tokio::join!(
        crate::partners::crego::stream::records_of_account(&ctx.crego, &loan.borrower_program_id, on_account),
        ctx.crego.programs(&loan.lead_id)
    );
    let records = records?;
    let line = match programs {
        Ok(programs) => programs
            .iter()
            .find(|p| p["id"] == loan.borrower_program_id.as_str())
            .and_then(|p| line_now(&p["line_detail"])),
        // A lead or program gone: the money is still compared; the status checks are not.
        Err(ApiError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let lms: Vec<LmsRecord> = records
        .iter()
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_string();
            let utr = r["utr"].as_str().unwrap_or_default().to_string();
            // The reference a payment of it carries: as sent when it was, else design §1C's.
            let reference = pushed
                .iter()
                .find(|p| p.key == format!("C:{id}"))
                .map(|p| p.reference.clone())
                .unwrap_or_else(|| {
                    Some(utr.as_str())
                        .filter(|u| !u.is_empty())
                        .or(r["ref_id"].as_str())
                        .unwrap_or(&id)
                        .to_string()
                });
            Some(LmsRecord {
                id,
                utr,
                reference,
                amount: money::from_json(&r["amount"])?,
                date: r["date"].as_f64().unwrap_or(0.0),
                created_at: r["created_at"].as_f64().unwrap_or(0.0),
                processed: r["type"] == "repayment" && r["status"] == "processed",
            })
        })
        .collect();
    let (cg_books, cg_raw) = match cg {
        None => (None, Vec::new()),
        Some(v) => {
            let (books, raw) = cg_books(&loan.loan_id, &v);
            (Some(books), raw)
        }
    };
    Ok(Read {
        books: Books {
            loan_id: loan.loan_id.clone(),
            placed_at: loan.first_placed_at.unwrap_or(0.0),
            allocation_month: loan.allocation_month.clone(),
            month_now: crate::clock::allocation_month(ctx.clock.today()),
            min_dpd: ctx.config.sync.min_dpd,
            payment_decimals: ctx.config.credgenics.payment_amount_decimals,
            line,
            lms,
            cg: cg_books,
            pushed,
            written,
        },
        lms_raw: records,
        cg_raw,
        requests: (2, cg_reads),
    })
}

fn line_now(l: &Value) -> Option<LineNow> {
    Some(LineNow {
        dpd: l["dpd"].as_i64()?,
        due_amount: money::from_json(&l["due_amount"])?,
    })
}

/// The loan as Credgenics holds it: the poll's read when nothing was written to the loan since
/// and it is recent, else a read now (kept for the next one). `None` when it is absent.
async fn credgenics(ctx: &Context, loan: &LoanRow, share: bool) -> Result<(Option<Value>, u64), ApiError> {
    let now = ctx.now_secs();
    if share
        && let Ok(Some((read_at, body))) = ctx.store.credgenics_read(&loan.loan_id)
        && now - read_at <= SHARED_READ_MAX_AGE_SECS
        && ctx
            .store
            .last_credgenics_write(&loan.loan_id)
            .is_ok_and(|w| w < read_at)
    {
        return Ok((Some(body), 0));
    }
    let read = ctx.credgenics.full_loan(&loan.loan_id).await?;
    if let Some(body) = &read
        && !ctx.dry_run
    {
        let _ = ctx.store.save_credgenics_read(&loan.loan_id, body, now);
    }
    Ok((read, 1))
}

/// Allocations and payments of a Credgenics loan (`GET /loan/{id}?fields=loan,payment`).
fn cg_books(loan_id: &str, v: &Value) -> (CgBooks, Vec<Value>) {
    let defaults = v["defaults"]
        .as_array()
        .or(v["loan_details"]["defaults"].as_array())
        .cloned()
        .unwrap_or_default();
    let allocations = defaults
        .iter()
        .filter_map(|d| {
            Some((
                d["allocation_month"].as_str()?.to_string(),
                money::from_json(&d["total_claim_amount"]),
            ))
        })
        .collect();
    let raw: Vec<Value> = v["payment_history"].as_array().cloned().unwrap_or_default();
    let history = raw
        .iter()
        .enumerate()
        .map(|(i, p)| CgPayment {
            key: crate::flows::recoveries::recovery_key(loan_id, p),
            reference: crate::flows::recoveries::payment_reference(p).to_string(),
            amount: money::from_json(&p["amount_recovered"]).unwrap_or(Decimal::ZERO),
            month: p["allocation_month"].as_str().unwrap_or_default().to_string(),
            final_status: p["final_status"].as_str().unwrap_or_default().to_string(),
            position: i,
        })
        .collect();
    (CgBooks { allocations, history }, raw)
}

fn facts(ctx: &Context, loan: &LoanRow, direction: Direction) -> Result<Vec<LedgerFact>, crate::store::StoreError> {
    Ok(ctx
        .store
        .ledger_for_loan(direction, &loan.loan_id)?
        .into_iter()
        .map(|r| LedgerFact {
            sent: matches!(r.state, LedgerState::Done | LedgerState::InFlight),
            key: r.source_key,
            reference: r.reference,
            amount: r.amount,
            month: r.allocation_month,
        })
        .collect())
}
