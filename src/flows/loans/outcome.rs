//! What processing one line came to, and a run's counts of it.

use serde::Serialize;

use crate::store::LoanRow;

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
pub(super) enum Outcome {
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
    pub(super) fn count(&mut self, o: &Outcome) {
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
