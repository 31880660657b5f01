//! Log events (and their metrics) of the credit-line flows (design §8): transactions placed,
//! refused, in doubt; drawdowns that cannot be read; recoveries attributed to a transaction.

use std::fmt::Display;

use crate::telemetry::mask::{mask_digits, masked};
use crate::telemetry::metric;

const TARGET: &str = "ccsync::flows";

pub fn transaction_placed(transaction_id: &str, customer_id: &str, allocation_month: &str) {
    metrics::counter!(metric::LOANS_PLACED).increment(1);
    tracing::info!(target: TARGET, event = "transaction_placed", transaction_id, customer_id, allocation_month,
        "transaction placed");
}

pub fn transaction_rejected(transaction_id: &str, reason: &str) {
    metrics::counter!(metric::LOANS_REJECTED).increment(1);
    let reason = mask_digits(reason);
    tracing::warn!(target: TARGET, event = "transaction_rejected", transaction_id, reason, "transaction rejected");
}

pub fn transaction_moved(transaction_id: &str, was: &str, now: &str) {
    tracing::error!(target: TARGET, event = "transaction_moved", transaction_id, was, now,
        "the mapping puts a placed transaction under another customer; not sent");
}

pub fn drawdown_unreadable(line: &str, reason: &str) {
    tracing::error!(target: TARGET, event = "drawdown_unreadable", line, reason = %mask_digits(reason),
        "drawdown skipped: [mapping.transaction] cannot read it");
}

pub fn upload_in_doubt(transaction_id: &str, err: &dyn Display) {
    tracing::warn!(target: TARGET, event = "transaction_in_doubt", transaction_id, error = %masked(err),
        "upload outcome unknown; will look before resending");
}
