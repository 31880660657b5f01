//! The rows and states the store hands out.

use rust_decimal::Decimal;
use serde_json::Value;

/// One read of a loan's line: its numbers, its `updated_at` (the partner's clock) and when the
/// daemon read it (its own clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineRead {
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub updated_at: f64,
    pub read_at: f64,
}

/// A rejected loan: (loan id, lead id, borrower-program id, error).
pub type RejectedLoan = (String, String, String, Option<String>);
/// A run: (id, job, started, finished, outcome).
pub type RunRow = (i64, String, f64, Option<f64>, Option<String>);
/// A stream: (name, cursor, when the cursor last moved, when last read to its end).
pub type StreamRow = (String, f64, f64, Option<f64>);
/// A job: (name, last slot, last success, last error).
pub type JobRow = (String, f64, Option<f64>, Option<String>);

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
    pub fn as_str(self) -> &'static str {
        match self {
            LoanState::Uploading => "uploading",
            LoanState::Placed => "placed",
            LoanState::Cured => "cured",
            LoanState::Closed => "closed",
            LoanState::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "uploading" => LoanState::Uploading,
            "placed" => LoanState::Placed,
            "cured" => LoanState::Cured,
            "closed" => LoanState::Closed,
            "rejected" => LoanState::Rejected,
            other => {
                return Err(rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("unknown loan state {other}").into(),
                ));
            }
        })
    }
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
    pub pending_payload: Option<Value>,
    pub pending_month: Option<String>,
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
