//! `final_status` of an LMS repayment pushed to Credgenics, decided when the payment is sent
//! (design §1C), as a pure function of what is known then — testable without HTTP or SQLite.
//!
//! The allocation's claim is the overdue amount, so the latest repayment of a loan is `Closed`
//! when the line's current `due_amount` is 0, and every other one is `Partially Recovered`.
//! "Latest" is over all of the loan's known repayments by (`date`, `created_at`, `id`): exactly
//! one is latest. "Current" is a read of the line made after the record was read. A current read
//! with no dues decides `Closed` at once; one with dues left may not reflect the record yet (an
//! LMS moves a line some seconds after booking the record) when the record is not settled yet
//! (`settled_at` null) or the line's `updated_at` is before the record was applied (`settled_at`,
//! else `created_at`): the payment then waits for a newer read, at most `sync.line_wait_secs`.
//! (The line's `updated_at` alone cannot tell: an earlier repayment's late move stamps the line
//! after a later one was booked.) Recoveries Credgenics already holds that are not yet written
//! into the LMS (flow B's pending rows) count as paid: the claim's dues at Credgenics are the
//! line's less those. At most one `Closed` goes out per loan and allocation month.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::store::LineRead;

pub const CLOSED: &str = "Closed";
pub const PARTIALLY_RECOVERED: &str = "Partially Recovered";

/// The order of a loan's repayments: record `date`, then `created_at`, then `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct RepaymentOrder {
    date: f64,
    created_at: f64,
    id: String,
}

impl RepaymentOrder {
    /// Of a record (`date` as the ledger keeps it, the rest from the record itself).
    pub fn of(date: f64, record: &Value) -> Self {
        Self {
            date,
            created_at: record["created_at"].as_f64().unwrap_or(0.0),
            id: record["id"].as_str().unwrap_or_default().to_string(),
        }
    }
}

impl Eq for RepaymentOrder {}

impl PartialOrd for RepaymentOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RepaymentOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        self.date
            .total_cmp(&other.date)
            .then(self.created_at.total_cmp(&other.created_at))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// What is known when a repayment is about to be sent.
#[derive(Debug, Clone)]
pub struct Facts {
    /// It is the loan's latest known repayment.
    pub is_latest: bool,
    /// Another payment of this loan already went out `Closed` for this allocation month.
    pub closed_already: bool,
    /// The newest read of the loan's line the state holds.
    pub line: Option<LineRead>,
    /// Recoveries Credgenics already holds that the LMS line cannot reflect yet (flow B's rows
    /// not yet written into the LMS): the claim's dues at Credgenics are the line's less these.
    pub recovered_not_in_lms: Decimal,
    /// When the record was read (the ledger row written), by the daemon's clock.
    pub row_read_at: f64,
    /// When the LMS applied the record to the line (its `settled_at`; its `created_at` for an LMS
    /// that does not say), by the partner's clock.
    pub booked_at: f64,
    /// The record says it is applied to the line (`settled_at` set, or not reported at all).
    pub settled: bool,
    /// How long the payment has waited since it was read, seconds.
    pub waited: f64,
    pub line_wait_secs: f64,
    /// `line` was read just now, for this decision.
    pub fresh: bool,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Status {
    Closed,
    PartiallyRecovered,
    /// Read the line now, then decide again.
    ReadLine,
    /// Not yet: the line does not reflect the record; look again on a later pass.
    Wait,
}

pub fn decide(f: &Facts) -> Status {
    if !f.is_latest || f.closed_already {
        return Status::PartiallyRecovered;
    }
    let Some(line) = f.line.filter(|l| f.fresh || l.read_at >= f.row_read_at) else {
        return match (f.fresh, f.waited >= f.line_wait_secs) {
            (false, _) => Status::ReadLine,
            // Never read, and not readable for as long as a payment may wait.
            (true, true) => Status::PartiallyRecovered,
            (true, false) => Status::Wait,
        };
    };
    if line.due_amount - f.recovered_not_in_lms <= Decimal::ZERO {
        return Status::Closed;
    }
    if !f.settled || line.updated_at < f.booked_at {
        // Dues left, but the line may not reflect this record yet.
        return match (f.fresh, f.waited >= f.line_wait_secs) {
            (false, _) => Status::ReadLine,
            // Waited long enough: the newest read decides.
            (true, true) => Status::PartiallyRecovered,
            (true, false) => Status::Wait,
        };
    }
    Status::PartiallyRecovered
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(due: i64, updated_at: f64, read_at: f64) -> Option<LineRead> {
        Some(LineRead {
            due_amount: Decimal::from(due),
            total_outstanding: Decimal::from(due),
            updated_at,
            read_at,
        })
    }

    fn facts(line: Option<LineRead>, fresh: bool) -> Facts {
        Facts {
            is_latest: true,
            closed_already: false,
            line,
            recovered_not_in_lms: Decimal::ZERO,
            row_read_at: 100.0,
            booked_at: 50.0,
            settled: true,
            waited: 10.0,
            line_wait_secs: 900.0,
            fresh,
        }
    }

    #[test]
    fn only_the_latest_repayment_can_close_and_only_once() {
        let mut f = facts(line(0, 60.0, 110.0), false);
        assert_eq!(decide(&f), Status::Closed);
        f.is_latest = false;
        assert_eq!(decide(&f), Status::PartiallyRecovered);
        f.is_latest = true;
        f.closed_already = true;
        assert_eq!(decide(&f), Status::PartiallyRecovered);
    }

    #[test]
    fn a_read_older_than_the_record_is_not_current() {
        // Flow A read the line before the record was read: read it again.
        assert_eq!(decide(&facts(line(0, 60.0, 90.0), false)), Status::ReadLine);
        assert_eq!(decide(&facts(None, false)), Status::ReadLine);
        // Fresh reads decide.
        assert_eq!(decide(&facts(line(0, 60.0, 120.0), true)), Status::Closed);
        assert_eq!(decide(&facts(line(10, 60.0, 120.0), true)), Status::PartiallyRecovered);
    }

    #[test]
    fn dues_on_a_line_older_than_the_booking_wait_at_most_line_wait() {
        // The LMS has not moved the line since before the record was booked.
        assert_eq!(decide(&facts(line(10, 40.0, 120.0), false)), Status::ReadLine);
        assert_eq!(decide(&facts(line(10, 40.0, 120.0), true)), Status::Wait);
        let mut f = facts(line(10, 40.0, 120.0), true);
        f.waited = 900.0;
        assert_eq!(decide(&f), Status::PartiallyRecovered, "then the newest read decides");
        // No dues left decides at once, whatever the line's age.
        assert_eq!(decide(&facts(line(0, 40.0, 120.0), true)), Status::Closed);
    }

    #[test]
    fn a_recovery_credgenics_holds_but_the_lms_does_not_yet_counts_as_paid() {
        // An agent collected 40 (webhook stored, not yet written into the LMS); the LMS
        // repayment paid the other 60: the line still shows 40 due.
        let mut f = facts(line(40, 120.0, 130.0), true);
        f.recovered_not_in_lms = Decimal::from(40);
        assert_eq!(decide(&f), Status::Closed);
        f.recovered_not_in_lms = Decimal::from(30);
        assert_eq!(decide(&f), Status::PartiallyRecovered);
    }

    #[test]
    fn an_unsettled_record_waits_even_on_a_newer_line() {
        // An earlier repayment's late move stamped the line after this one was booked.
        let mut f = facts(line(10, 120.0, 130.0), true);
        f.settled = false;
        assert_eq!(decide(&f), Status::Wait);
        f.waited = 900.0;
        assert_eq!(decide(&f), Status::PartiallyRecovered);
        let mut f = facts(line(0, 120.0, 130.0), true);
        f.settled = false;
        assert_eq!(decide(&f), Status::Closed, "no dues left: Closed at once");
    }

    #[test]
    fn repayments_order_by_date_then_booking_then_id() {
        let a = RepaymentOrder::of(10.0, &json!({"created_at": 5.0, "id": "b"}));
        let b = RepaymentOrder::of(10.0, &json!({"created_at": 6.0, "id": "a"}));
        let c = RepaymentOrder::of(10.0, &json!({"created_at": 6.0, "id": "c"}));
        let d = RepaymentOrder::of(11.0, &json!({"created_at": 1.0, "id": "a"}));
        let mut v = vec![d.clone(), c.clone(), a.clone(), b.clone()];
        v.sort();
        assert_eq!(v, vec![a, b, c, d]);
    }
}
