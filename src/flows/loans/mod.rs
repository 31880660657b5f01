//! Flow A (design §1A): overdue Crego lines out to Credgenics.
//!
//! The change stream is `GET /v1/lms/line-details/?updated_at__gte=`. Each changed line that is
//! overdue (`dpd >= sync.min_dpd` and `due_amount > 0`) or already placed is mapped to an Upload
//! Loan payload with one `defaults[]` entry for the current allocation month (IST by default):
//! first time → POST; same month and changed → PATCH of the changed keys; same hash → no call;
//! new month → POST again (a new allocation); placed but no longer overdue → `cured`, or `closed`
//! at zero outstanding.
//!
//! An upload is recorded as `uploading` before it is sent; one whose outcome is unknown stays so
//! and is resolved at the start of the next run by looking at `GET /loan/{id}` first.
//!
//! - [`run`](mod@run): one run; [`pipeline`]: a page's lines decided and applied;
//! - [`decide`]: the choice per line, pure; [`apply`]: decisions carried out;
//! - [`map`]: the mapping of a line's loan; [`resolve`]: in-doubt uploads and operator resyncs;
//! - [`outcome`]: what a line came to, and the counts.

pub mod apply;
pub mod decide;
pub mod map;
pub mod outcome;
pub mod pipeline;
pub mod resolve;
pub mod run;

pub use decide::{CLAIM_KEY, allocation_of, changed_keys, frozen_claim_changes};
pub use map::{is_overdue, line_of, loan_input, map_loan_input, payload_hash};
pub use outcome::{FlowAStats, STREAM};
pub use run::run;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn patch_holds_only_changed_loan_level_keys_never_the_claim() {
        let old = json!({"loan_id": "L1", "applicant_name": "A", "total_loan_amount": 10,
            "defaults": [{"allocation_month": "2026-11-01", "total_claim_amount": 5, "late_fee": 1}]});
        let new = json!({"loan_id": "L1", "applicant_name": "B", "total_loan_amount": 10,
            "defaults": [{"allocation_month": "2026-11-01", "total_claim_amount": 7, "late_fee": 1}]});
        let p = changed_keys(&old, &new);
        // Design §1A: the claim is a snapshot for the month; only loan-level keys are PATCHed.
        assert_eq!(Value::Object(p), json!({"applicant_name": "B"}));
        assert_eq!(frozen_claim_changes(&old, &new), vec!["total_claim_amount".to_string()]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}
