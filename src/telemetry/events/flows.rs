//! Log events (and their metrics) of flow A (loans) and flow C (repayments).

use std::fmt::Display;

use crate::telemetry::mask::{mask_digits, masked};
use crate::telemetry::metric;

/// The `target` of these lines (`RUST_LOG=ccsync::flows=debug` selects them).
const TARGET: &str = "ccsync::flows";

pub fn loan_placed(loan_id: &str, allocation_month: &str, new_allocation: bool) {
    metrics::counter!(metric::LOANS_PLACED).increment(1);
    tracing::info!(
        target: TARGET, event = "loan_placed",
        loan_id,
        allocation_month,
        new_allocation,
        "loan placed"
    );
}

pub fn loan_updated(loan_id: &str, keys: &[String]) {
    metrics::counter!(metric::LOANS_UPDATED).increment(1);
    tracing::info!(target: TARGET, event = "loan_updated", loan_id, keys = %keys.join(","), "loan updated");
}

pub fn loan_rejected(loan_id: &str, reason: &str) {
    metrics::counter!(metric::LOANS_REJECTED).increment(1);
    let reason = mask_digits(reason);
    tracing::warn!(target: TARGET, event = "loan_rejected", loan_id, reason, "loan rejected");
}

pub fn loan_state(loan_id: &str, state: &str) {
    tracing::info!(target: TARGET, event = "loan_state", loan_id, state, "loan state changed");
}

pub fn loan_in_doubt(loan_id: &str, err: &dyn Display) {
    tracing::warn!(target: TARGET, event = "loan_in_doubt", loan_id, error = %masked(err), "upload outcome unknown; will look before resending");
}

pub fn page_done(stream: &str, page: u32, items: usize, cursor: f64) {
    tracing::debug!(target: TARGET, event = "page_done", stream, page, items, cursor, "page committed");
}

pub fn line_detail_unreadable(error: &dyn Display) {
    tracing::error!(target: TARGET, event = "line_detail_unreadable", error = %masked(error), "line detail skipped");
}

pub fn fetch_failed(line: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "fetch_failed", line, error = %masked(error), "line will be read again next run");
}

pub fn line_dead_letter(line: &str, lead: &str, borrower_program: &str, reason: &str) {
    metrics::counter!(metric::LINES_DEAD).increment(1);
    tracing::error!(target: TARGET, event = "line_dead_letter", line, lead, borrower_program, reason = %mask_digits(reason),
        "line set aside as a dead letter");
}

pub fn update_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "update_failed", loan_id, error = %masked(error), "update will be retried next run");
}

pub fn upload_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "upload_failed", loan_id, error = %masked(error), "upload will be retried next run");
}

pub fn upload_dead_letter(loan_id: &str, lookups: u32, error: &dyn Display) {
    tracing::error!(target: TARGET, event = "upload_dead_letter", loan_id, lookups, error = %masked(error),
        "upload outcome still unknown: set aside as a dead letter");
}

pub fn lookup_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "lookup_failed", loan_id, error = %masked(error), "in-doubt upload stays in doubt");
}

/// An operator resync could not read the line: gone for good (`reason`) or for now (`error`).
pub fn resync_line_gone(lead: &str, borrower_program: &str, reason: &str) {
    tracing::error!(
        target: TARGET, event = "resync_failed",
        lead,
        borrower_program,
        reason,
        "line not readable"
    );
}

pub fn resync_deferred(lead: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "resync_failed", lead, error = %masked(error), "left for the next run");
}

pub fn record_unreadable() {
    tracing::error!(target: TARGET, event = "record_unreadable", "record without id or updated_at skipped");
}

pub fn line_read_failed(loan_id: &str, error: Option<&dyn Display>) {
    match error {
        Some(e) => {
            tracing::warn!(target: TARGET, event = "line_read_failed", loan_id, error = %masked(e), "line not read; the payment waits")
        }
        None => tracing::warn!(
            target: TARGET, event = "line_read_failed",
            loan_id,
            "the lead's programs do not show this loan's line"
        ),
    }
}
