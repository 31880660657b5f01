//! Both books of one loan side by side (issue 14): pure — no HTTP, no SQLite, no clock — so each
//! kind of disagreement is a table test. The caller reads the LMS records of the loan's account,
//! its line, what Credgenics holds (allocations and `payment_history`) and the ledger's rows for
//! the loan; [`compare`] says where they disagree, with both sides' figures and the action that
//! fixes each.
//!
//! Which money belongs where (design §1B, §1C, §2.5):
//! - an LMS repayment travels when it is processed, dated at or after the first placement, and
//!   not a record flow B wrote; it must be exactly one Credgenics entry with its reference;
//! - any other Credgenics entry is a recovery (an agent's collection) and must be exactly one
//!   LMS record, found by the utr flow B writes for it;
//! - a paid-off line's latest payment pushed in the current allocation is `Closed`, and only then.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::store::{Finding, FindingKind};

/// An LMS repayment record of the loan's account.
#[derive(Debug, Clone)]
pub struct LmsRecord {
    pub id: String,
    pub utr: String,
    /// The reference a payment of it carries: the utr, else the record's `ref_id`, else its id.
    pub reference: String,
    pub amount: Decimal,
    pub date: f64,
    /// When the LMS booked it (the tie-break of repayments sharing a date, design §1C).
    pub created_at: f64,
    /// `type == repayment` and `status == processed`.
    pub processed: bool,
}

/// One Credgenics `payment_history` entry.
#[derive(Debug, Clone)]
pub struct CgPayment {
    /// Flow B's key for it (design §2.1), when it can have one.
    pub key: Option<String>,
    pub reference: String,
    pub amount: Decimal,
    pub month: String,
    pub final_status: String,
    /// Its place in the history (the order Credgenics lists them).
    pub position: usize,
}

/// What Credgenics holds of the loan.
#[derive(Debug, Clone, Default)]
pub struct CgBooks {
    /// Allocation months with their claim (`total_claim_amount`), as held.
    pub allocations: Vec<(String, Option<Decimal>)>,
    pub history: Vec<CgPayment>,
}

/// A ledger row of the loan, as reconcile needs it.
#[derive(Debug, Clone)]
pub struct LedgerFact {
    /// Flow C: the record id (`C:<id>`); flow B: the recovery key.
    pub key: String,
    pub reference: String,
    /// As sent.
    pub amount: Decimal,
    pub month: Option<String>,
    pub sent: bool,
}

/// The line as read now.
#[derive(Debug, Clone, Copy)]
pub struct LineNow {
    pub dpd: i64,
    pub due_amount: Decimal,
}

/// Everything about one loan both sides say.
#[derive(Debug, Clone)]
pub struct Books {
    pub loan_id: String,
    /// When its first upload was sent (design §2.5).
    pub placed_at: f64,
    /// Its allocation month in the state, and the month now.
    pub allocation_month: Option<String>,
    pub month_now: String,
    pub min_dpd: i64,
    /// Decimals `amount_recovered` is sent with.
    pub payment_decimals: u32,
    pub line: Option<LineNow>,
    pub lms: Vec<LmsRecord>,
    /// `None`: Credgenics does not have the loan.
    pub cg: Option<CgBooks>,
    /// Flow C rows (LMS repayments pushed) and flow B rows (recoveries written).
    pub pushed: Vec<LedgerFact>,
    pub written: Vec<LedgerFact>,
}

/// The findings and both sides' totals for the loan.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    pub findings: Vec<Finding>,
    pub lms_total: Decimal,
    pub credgenics_total: Decimal,
}

/// Flow B's utr for a recovery without a reference (design §2.1).
pub fn hashed_utr(key: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("CG-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16])
}

struct Out<'a> {
    books: &'a Books,
    findings: Vec<Finding>,
}

impl Out<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: FindingKind,
        month: Option<&str>,
        reference: Option<&str>,
        lms: Option<Decimal>,
        cg: Option<Decimal>,
        detail: String,
        action: &str,
    ) {
        self.findings.push(Finding {
            loan_id: self.books.loan_id.clone(),
            kind,
            month: month.map(str::to_string),
            reference: reference.map(str::to_string),
            lms,
            credgenics: cg,
            detail,
            action: action.to_string(),
            fixed: false,
        });
    }
}

/// Where the two books of `books` disagree.
pub fn compare(books: &Books) -> Comparison {
    let mut out = Out {
        books,
        findings: Vec::new(),
    };
    let Some(cg) = &books.cg else {
        let lms_total = travelling(books).map(|(_, a)| a).sum();
        out.push(
            FindingKind::LoanMissingAtCredgenics,
            books.allocation_month.as_deref(),
            None,
            Some(lms_total),
            None,
            format!("placed loan {} is not at Credgenics", books.loan_id),
            "re-place it: dead-letters retry loan:<id> reads its line afresh (or check credgenics.loan_path)",
        );
        return Comparison {
            findings: out.findings,
            lms_total,
            credgenics_total: Decimal::ZERO,
        };
    };
    let mut by_ref: BTreeMap<&str, Vec<&CgPayment>> = BTreeMap::new();
    for p in &cg.history {
        by_ref.entry(p.reference.as_str()).or_default().push(p);
    }
    let mut consumed: BTreeSet<usize> = BTreeSet::new();
    // LMS side per month, for the totals.
    let mut lms_months: BTreeMap<String, Decimal> = BTreeMap::new();
    let fallback_month = books.allocation_month.clone().unwrap_or_default();

    // 1. Each LMS repayment: exactly one Credgenics entry, same amount.
    let repayments: Vec<(&LmsRecord, Decimal)> = travelling(books).collect();
    for (r, expected) in &repayments {
        let pushed = books.pushed.iter().find(|p| p.key == format!("C:{}", r.id));
        let entries: Vec<&CgPayment> = by_ref
            .get(r.reference.as_str())
            .map(|v| v.iter().filter(|p| !consumed.contains(&p.position)).copied().collect())
            .unwrap_or_default();
        let month = entries
            .first()
            .map(|p| p.month.clone())
            .or_else(|| pushed.and_then(|p| p.month.clone()))
            .unwrap_or_else(|| fallback_month.clone());
        *lms_months.entry(month.clone()).or_default() += *expected;
        match entries.as_slice() {
            [] => out.push(
                FindingKind::PaymentMissingAtCredgenics,
                Some(&month),
                Some(&r.reference),
                Some(*expected),
                None,
                format!("LMS repayment {} has no payment at Credgenics", r.id),
                if pushed.is_some_and(|p| p.sent) {
                    "sent once and gone at Credgenics: reconcile --fix looks it up and sends it again if absent"
                } else {
                    "reconcile --fix sends it (or the next push_repayments run)"
                },
            ),
            [first, rest @ ..] => {
                consumed.extend(entries.iter().map(|p| p.position));
                if first.amount != *expected {
                    out.push(
                        FindingKind::AmountMismatch,
                        Some(&first.month),
                        Some(&r.reference),
                        Some(*expected),
                        Some(first.amount),
                        format!(
                            "LMS repayment {} is {expected}, its Credgenics payment {}",
                            r.id, first.amount
                        ),
                        "correct the payment at Credgenics (or the record in the LMS) by hand",
                    );
                }
                if !rest.is_empty() {
                    let extra: Decimal = rest.iter().map(|p| p.amount).sum();
                    out.push(
                        FindingKind::DuplicateAtCredgenics,
                        Some(&first.month),
                        Some(&r.reference),
                        Some(*expected),
                        Some(first.amount + extra),
                        format!("LMS repayment {} has {} payments at Credgenics", r.id, entries.len()),
                        "remove the extra payment at Credgenics by hand (never deleted by the daemon)",
                    );
                }
            }
        }
    }

    // 2. Every other entry: a payment this daemon pushed whose record no longer travels, or a
    // recovery that must be exactly one LMS record.
    let pushed_refs: BTreeSet<&str> = books.pushed.iter().map(|p| p.reference.as_str()).collect();
    for p in cg.history.iter().filter(|p| !consumed.contains(&p.position)) {
        if !p.reference.is_empty() && pushed_refs.contains(p.reference.as_str()) {
            out.push(
                FindingKind::PaymentWithoutSource,
                Some(&p.month),
                Some(&p.reference),
                None,
                Some(p.amount),
                format!(
                    "payment {} was pushed from an LMS record that is no longer a processed repayment since placement",
                    p.reference
                ),
                "the LMS record was reverted or changed: reverse the payment at Credgenics by hand",
            );
            continue;
        }
        let Some(key) = &p.key else { continue };
        let utr = books
            .written
            .iter()
            .find(|w| &w.key == key)
            .map(|w| w.reference.clone())
            .unwrap_or_else(|| {
                if p.reference.is_empty() {
                    hashed_utr(key)
                } else {
                    p.reference.clone()
                }
            });
        let records: Vec<&LmsRecord> = books.lms.iter().filter(|r| r.utr == utr).collect();
        let lms_amount: Decimal = records.iter().map(|r| r.amount).sum();
        *lms_months.entry(p.month.clone()).or_default() += lms_amount;
        match records.as_slice() {
            [] => out.push(
                FindingKind::RecoveryMissingInLms,
                Some(&p.month),
                Some(&utr),
                None,
                Some(p.amount),
                format!("Credgenics recovery {utr} has no LMS record"),
                "reconcile --fix writes it (or the next poll_recoveries run)",
            ),
            [one] if one.amount != p.amount => out.push(
                FindingKind::AmountMismatch,
                Some(&p.month),
                Some(&utr),
                Some(one.amount),
                Some(p.amount),
                format!(
                    "Credgenics recovery {utr} is {}, its LMS record {}",
                    p.amount, one.amount
                ),
                "correct the record in the LMS (or the payment at Credgenics) by hand",
            ),
            [_] => {}
            many => out.push(
                FindingKind::DuplicateInLms,
                Some(&p.month),
                Some(&utr),
                Some(lms_amount),
                Some(p.amount),
                format!("Credgenics recovery {utr} has {} LMS records", many.len()),
                "revert the extra record in the LMS by hand (never deleted by the daemon)",
            ),
        }
    }

    // 3. Totals per allocation month, where no single payment explains a difference.
    let mut cg_months: BTreeMap<String, Decimal> = BTreeMap::new();
    for p in &cg.history {
        *cg_months.entry(p.month.clone()).or_default() += p.amount;
    }
    let explained: BTreeSet<Option<String>> = out.findings.iter().map(|f| f.month.clone()).collect();
    let months: BTreeSet<&String> = lms_months.keys().chain(cg_months.keys()).collect();
    for m in months {
        let (l, c) = (
            lms_months.get(m).copied().unwrap_or_default(),
            cg_months.get(m).copied().unwrap_or_default(),
        );
        if l != c && !explained.contains(&Some(m.clone())) {
            out.push(
                FindingKind::TotalMismatch,
                Some(m),
                None,
                Some(l),
                Some(c),
                format!("allocation {m}: LMS {l}, Credgenics {c}"),
                "compare the month's payments on both sides by hand",
            );
        }
    }

    status(&mut out, cg, &repayments, &pushed_refs);
    allocation(&mut out, cg);
    Comparison {
        findings: out.findings,
        lms_total: lms_months.values().sum(),
        credgenics_total: cg_months.values().sum(),
    }
}

/// The LMS repayments that travel to Credgenics, with the amount a payment of each carries.
fn travelling(books: &Books) -> impl Iterator<Item = (&LmsRecord, Decimal)> {
    let written: BTreeSet<&str> = books.written.iter().map(|w| w.reference.as_str()).collect();
    books
        .lms
        .iter()
        .filter(move |r| r.processed && r.date >= books.placed_at && !written.contains(r.utr.as_str()))
        .map(|r| {
            let pushed = books.pushed.iter().find(|p| p.key == format!("C:{}", r.id) && p.sent);
            let amount = pushed
                .map(|p| p.amount)
                .unwrap_or_else(|| crate::money::round(r.amount, books.payment_decimals));
            (r, amount)
        })
}

/// `Closed` iff paid off, on the latest payment pushed in the current allocation (design §1C).
fn status(out: &mut Out<'_>, cg: &CgBooks, repayments: &[(&LmsRecord, Decimal)], pushed_refs: &BTreeSet<&str>) {
    let books = out.books;
    let (Some(line), Some(month)) = (books.line, books.allocation_month.as_deref()) else {
        return;
    };
    let in_month: Vec<&CgPayment> = cg.history.iter().filter(|p| p.month == month).collect();
    let ours = |p: &CgPayment| pushed_refs.contains(p.reference.as_str());
    // The latest repayment is the latest by record date (design §1C), whatever order the
    // payments went out in: a back-dated or same-date record may be sent after the latest.
    let order = |r: &LmsRecord| (r.date, r.created_at, r.id.clone());
    let latest = in_month
        .iter()
        .filter_map(|p| {
            let (r, _) = repayments.iter().find(|(r, _)| r.reference == p.reference)?;
            Some((order(r), *p))
        })
        .max_by(|(a, _), (b, _)| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then_with(|| a.2.cmp(&b.2))
        })
        .map(|(_, p)| p);
    let paid_off = line.due_amount <= Decimal::ZERO;
    // On a loan an agent also collected, the last rupee may have come through Credgenics itself
    // (known to the daemon only after its payment went out): Credgenics then holds the
    // recovery, and no `Closed` is owed (as the money property has it).
    let agent_collected = cg.history.iter().any(|p| !ours(p));
    match latest {
        Some(p) if paid_off && p.final_status != "Closed" && !agent_collected => out.push(
            FindingKind::NotClosed,
            Some(month),
            Some(&p.reference),
            Some(line.due_amount),
            Some(p.amount),
            format!(
                "the line is paid off; the latest payment ({}) is `{}`",
                p.reference, p.final_status
            ),
            "set the loan Closed at Credgenics by hand (a second payment would count the money twice)",
        ),
        Some(p) if !paid_off && p.final_status == "Closed" => out.push(
            FindingKind::ClosedButDue,
            Some(month),
            Some(&p.reference),
            Some(line.due_amount),
            Some(p.amount),
            format!(
                "the latest payment ({}) is Closed, yet the line owes {}",
                p.reference, line.due_amount
            ),
            "reopen the loan at Credgenics by hand; check the LMS for a reverted repayment",
        ),
        None if paid_off && repayments.is_empty() && in_month.is_empty() => out.push(
            FindingKind::CuredStillOpen,
            Some(month),
            None,
            Some(line.due_amount),
            cg.allocations
                .iter()
                .find(|(m, _)| m == month)
                .and_then(|(_, claim)| *claim),
            format!("the line is paid off without a repayment (a waiver, an adjustment); allocation {month} is open"),
            "close it at Credgenics by hand (no API closes a loan)",
        ),
        _ => {}
    }
}

/// The allocation of this month exists while the line is overdue; none claims nothing.
fn allocation(out: &mut Out<'_>, cg: &CgBooks) {
    let books = out.books;
    let month = books.month_now.as_str();
    let held = cg.allocations.iter().find(|(m, _)| m == month);
    if let Some(line) = books.line {
        let overdue = crate::flows::loans::decide::Line {
            dpd: line.dpd,
            due_amount: line.due_amount,
            total_outstanding: line.due_amount,
        }
        .is_overdue(books.min_dpd);
        if overdue && held.is_none() {
            out.push(
                FindingKind::AllocationMissing,
                Some(month),
                None,
                Some(line.due_amount),
                None,
                format!(
                    "the line is overdue (dpd {}), and Credgenics has no allocation {month}",
                    line.dpd
                ),
                "reconcile --fix uploads it (or the next place_loans run)",
            );
        }
    }
    if let Some((m, Some(claim))) = held
        && *claim <= Decimal::ZERO
    {
        out.push(
            FindingKind::UploadedNotOverdue,
            Some(m),
            None,
            None,
            Some(*claim),
            format!("allocation {m} claims {claim}: it was uploaded for a line not overdue"),
            "check the allocation at Credgenics by hand",
        );
    }
}
