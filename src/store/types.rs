//! The rows and states the store hands out.

use rust_decimal::Decimal;
use serde_json::Value;

/// `ToSql`/`FromSql` for a state enum stored as its name (`as_str`/`parse`), so SQL parameters
/// and columns take the enum itself and no state name is spelt outside its enum and the SQL.
macro_rules! sql_name_enum {
    ($t:ty, $what:literal) => {
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::Borrowed(
                    rusqlite::types::ValueRef::Text(self.as_str().as_bytes()),
                ))
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s)
                    .ok_or_else(|| rusqlite::types::FromSqlError::Other(format!("unknown {} `{s}`", $what).into()))
            }
        }
    };
}
pub(super) use sql_name_enum;

/// One read of a loan's line: its numbers, its `updated_at` (the partner's clock) and when the
/// daemon read it (its own clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineRead {
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub updated_at: f64,
    pub read_at: f64,
}

/// A loan whose last write Credgenics rejected (and no operator set aside).
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLoan {
    pub loan_id: String,
    pub lead_id: String,
    pub borrower_program_id: String,
    pub error: Option<String>,
    /// When it was refused (its row's last change).
    pub updated_at: f64,
}

/// A dead letter set aside: why, and who and when where the audit (`dead_letter_audit`, since
/// V7) has it.
#[derive(Debug, Clone, PartialEq)]
pub struct IgnoredLetter {
    /// `payment:<n>`, `loan:<id>` or `line:<id>`.
    pub target: String,
    pub reason: Option<String>,
    pub by: Option<String>,
    pub at: Option<f64>,
}

/// A loan an operator asked to send again: its line is read afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncRequest {
    pub loan_id: String,
    pub lead_id: String,
    pub borrower_program_id: String,
}

/// One recorded `--once` run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub job: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub outcome: Option<String>,
}

/// A change stream's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub stream: String,
    pub cursor: f64,
    /// When the cursor last moved.
    pub advanced_at: f64,
    /// When the stream was last read to its end.
    pub checked_at: Option<f64>,
}

/// A scheduled job's last slot and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub job: String,
    pub last_slot: f64,
    pub last_ok_at: Option<f64>,
    pub last_error: Option<String>,
}

/// Lifecycle of a loan at Credgenics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoanState {
    /// An upload was (or was about to be) sent and its outcome is unknown.
    Uploading,
    Placed,
    /// No longer overdue; Credgenics has no delete, so it stays there.
    Cured,
    /// Total outstanding reached 0.
    Closed,
    /// The last write was rejected by Credgenics; see `last_error`.
    Rejected,
}

impl LoanState {
    /// Every state, for gauges and listings that must show zeros too.
    pub const ALL: [LoanState; 5] = [
        LoanState::Uploading,
        LoanState::Placed,
        LoanState::Cured,
        LoanState::Closed,
        LoanState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoanState::Uploading => "uploading",
            LoanState::Placed => "placed",
            LoanState::Cured => "cured",
            LoanState::Closed => "closed",
            LoanState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

sql_name_enum!(LoanState, "loan state");

/// An upload recorded as in flight: the payload POSTed (or about to be) and its allocation month,
/// one value so neither can be there without the other.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload {
    pub payload: Value,
    pub month: String,
}

/// One loan as the state knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoanRow {
    pub loan_id: String,
    pub borrower_program_id: String,
    pub lead_id: String,
    pub program_id: Option<String>,
    pub allocation_month: Option<String>,
    pub state: LoanState,
    pub payload: Option<Value>,
    pub payload_hash: Option<String>,
    /// The upload recorded as in flight, while Credgenics is not yet seen to have it (state
    /// `uploading`), or set aside with the loan when its outcome stayed unknown (`rejected`).
    pub pending: Option<PendingUpload>,
    pub rejected_hash: Option<String>,
    pub last_error: Option<String>,
    pub first_placed_at: Option<f64>,
    pub updated_at: f64,
    /// The line's `due_amount` and `total_outstanding` as last seen by flow A.
    pub due_amount: Option<Decimal>,
    pub total_outstanding: Option<Decimal>,
    /// When the recoveries poll last read this loan's payment history.
    pub last_polled_at: Option<f64>,
    /// The line's `updated_at` at the read the numbers above come from (the partner's clock), and
    /// when the daemon made that read (its own clock).
    pub line_updated_at: Option<f64>,
    pub line_read_at: Option<f64>,
}

/// A line of the change stream that cannot be processed for a reason of its own (design §2.7).
#[derive(Debug, Clone, PartialEq)]
pub struct LineDeadLetter {
    pub line_id: String,
    pub lead_id: String,
    pub borrower_program_id: String,
    pub reason: String,
    pub attempts: i64,
    pub created_at: f64,
    pub updated_at: f64,
}

/// What reconcile found wrong with one loan (issue 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An LMS repayment since placement has no Credgenics payment entry.
    PaymentMissingAtCredgenics,
    /// A Credgenics recovery the daemon did not push has no LMS record.
    RecoveryMissingInLms,
    /// The two sides of one payment differ in amount.
    AmountMismatch,
    /// One LMS repayment has more than one Credgenics payment entry.
    DuplicateAtCredgenics,
    /// One Credgenics recovery has more than one LMS record.
    DuplicateInLms,
    /// A payment this daemon pushed whose LMS record is no longer a processed repayment.
    PaymentWithoutSource,
    /// An allocation month's totals differ, with no single payment to blame.
    TotalMismatch,
    /// The line is paid off, but the latest payment pushed is not `Closed`.
    NotClosed,
    /// The latest payment pushed is `Closed`, but the line still has dues.
    ClosedButDue,
    /// Paid off without a repayment (a waiver, an adjustment), still open at Credgenics.
    CuredStillOpen,
    /// The line is overdue, but Credgenics has no allocation for this month.
    AllocationMissing,
    /// Credgenics holds an allocation whose claim says the line was not overdue.
    UploadedNotOverdue,
    /// A placed loan Credgenics does not have.
    LoanMissingAtCredgenics,
}

impl FindingKind {
    pub const ALL: [FindingKind; 13] = [
        FindingKind::PaymentMissingAtCredgenics,
        FindingKind::RecoveryMissingInLms,
        FindingKind::AmountMismatch,
        FindingKind::DuplicateAtCredgenics,
        FindingKind::DuplicateInLms,
        FindingKind::PaymentWithoutSource,
        FindingKind::TotalMismatch,
        FindingKind::NotClosed,
        FindingKind::ClosedButDue,
        FindingKind::CuredStillOpen,
        FindingKind::AllocationMissing,
        FindingKind::UploadedNotOverdue,
        FindingKind::LoanMissingAtCredgenics,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::PaymentMissingAtCredgenics => "payment_missing_at_credgenics",
            FindingKind::RecoveryMissingInLms => "recovery_missing_in_lms",
            FindingKind::AmountMismatch => "amount_mismatch",
            FindingKind::DuplicateAtCredgenics => "duplicate_at_credgenics",
            FindingKind::DuplicateInLms => "duplicate_in_lms",
            FindingKind::PaymentWithoutSource => "payment_without_source",
            FindingKind::TotalMismatch => "total_mismatch",
            FindingKind::NotClosed => "not_closed",
            FindingKind::ClosedButDue => "closed_but_due",
            FindingKind::CuredStillOpen => "cured_still_open",
            FindingKind::AllocationMissing => "allocation_missing",
            FindingKind::UploadedNotOverdue => "uploaded_not_overdue",
            FindingKind::LoanMissingAtCredgenics => "loan_missing_at_credgenics",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// What `reconcile --fix` may mend: a write the daemon makes anyway, through the ledger or
    /// flow A (look-up before send). Duplicates and money it did not write are only reported.
    pub fn fixable(self) -> bool {
        matches!(
            self,
            FindingKind::PaymentMissingAtCredgenics
                | FindingKind::RecoveryMissingInLms
                | FindingKind::AllocationMissing
        )
    }
}

sql_name_enum!(FindingKind, "finding kind");

/// One finding: the loan, both sides' figures, and what fixes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub loan_id: String,
    pub kind: FindingKind,
    pub month: Option<String>,
    /// The payment reference (utr) concerned, when one payment is.
    pub reference: Option<String>,
    /// The LMS's figure and Credgenics' (None: nothing on that side).
    pub lms: Option<Decimal>,
    pub credgenics: Option<Decimal>,
    pub detail: String,
    pub action: String,
    /// `--fix` mended it in this run.
    pub fixed: bool,
}

/// One reconcile run: its scope, progress and totals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReconcileRun {
    pub id: i64,
    /// `all`, `since:<epoch>` or `loan:<id>`.
    pub scope: String,
    pub started_at: f64,
    /// `None` while it has not run to its end.
    pub finished_at: Option<f64>,
    /// The last loan id checked: a stopped run resumes after it.
    pub cursor: String,
    pub loans_checked: u64,
    pub agreeing: u64,
    /// Loans one side of which could not be read.
    pub unreadable: u64,
    pub lms_total: Decimal,
    pub credgenics_total: Decimal,
    pub counts: std::collections::BTreeMap<String, u64>,
}
