//! Log events (and their metrics) of flow B (recoveries and the webhook) and the ledger's deliveries.

use std::fmt::Display;

use crate::telemetry::mask::{mask_digits, masked};
use crate::telemetry::metric;

/// The `target` of these lines (`RUST_LOG=ccsync::payments=debug` selects them).
const TARGET: &str = "ccsync::payments";

/// How the webhook answered one request (`ccsync_webhooks_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Stored,
    Rejected,
    Ignored,
    Unauthorised,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
            Self::Unauthorised => "unauthorised",
        }
    }
}

/// One webhook request answered; `reason` for a rejected payment (kept as a dead letter).
pub struct WebhookAnswered<'a> {
    pub outcome: WebhookOutcome,
    pub reason: Option<&'a str>,
}

impl WebhookAnswered<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::WEBHOOKS, "outcome" => self.outcome.label()).increment(1);
        match self.outcome {
            WebhookOutcome::Unauthorised => {
                metrics::counter!(metric::WEBHOOK_REJECTIONS, "reason" => "token").increment(1)
            }
            WebhookOutcome::Rejected => {
                metrics::counter!(metric::WEBHOOK_REJECTIONS, "reason" => "payment_dead_letter").increment(1)
            }
            _ => {}
        }
        match self.outcome {
            WebhookOutcome::Unauthorised => {
                tracing::warn!(
                    target: TARGET, event = "webhook_unauthorised",
                    "webhook without the right token refused"
                )
            }
            WebhookOutcome::Rejected => tracing::warn!(target: TARGET, event = "webhook_rejected",
                reason = %mask_digits(self.reason.unwrap_or_default()), "payment webhook kept as a dead letter"),
            WebhookOutcome::Stored | WebhookOutcome::Ignored => {}
        }
    }
}

pub fn webhook_ignored(kind: &str) {
    tracing::debug!(target: TARGET, event = "webhook_ignored", kind, "webhook event ignored");
}

pub fn webhook_store_failed(error: &dyn Display) {
    tracing::error!(target: TARGET, event = "webhook_store_failed", error = %masked(error), "webhook not stored");
}

/// A recovery that contradicts one already recorded under its key (`ccsync_webhooks_total{outcome="conflict"}`).
pub struct RecoveryConflict<'a> {
    pub loan_id: &'a str,
    pub reason: &'a str,
}

impl RecoveryConflict<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::WEBHOOKS, "outcome" => "conflict").increment(1);
        tracing::warn!(target: TARGET, event = "recovery_conflict", loan_id = self.loan_id, reason = %mask_digits(self.reason),
            "recovery conflict");
    }
}

pub fn poll_failed(loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "poll_failed", loan_id, error = %masked(error), "payment history not read");
}

pub fn payment_unidentifiable(loan_id: &str) {
    tracing::error!(
        target: TARGET, event = "payment_unidentifiable",
        loan_id,
        "payment history entry with neither a reference nor a payment_id skipped"
    );
}

pub fn ledger_lookup_failed(row: i64, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "ledger_lookup_failed", row, error = %masked(error), "row stays in doubt");
}

pub fn payment_delivered(direction: &'static str, loan_id: &str, reference: &str, amount: rust_decimal::Decimal) {
    metrics::counter!(metric::PAYMENTS_DELIVERED, "direction" => direction).increment(1);
    let paise = (amount * rust_decimal::Decimal::ONE_HUNDRED).round();
    metrics::counter!(metric::MONEY_DELIVERED, "direction" => direction)
        .increment(rust_decimal::prelude::ToPrimitive::to_u64(&paise).unwrap_or(0));
    tracing::info!(
        target: TARGET, event = "payment_delivered",
        direction,
        loan_id,
        reference,
        amount = %amount,
        "payment delivered"
    );
}

/// A payment became a dead letter: refused by the partner, or refused before sending (its field
/// errors are in `reason`). Said once, when the row becomes dead.
pub fn payment_dead(direction: &'static str, loan_id: &str, reason: &str) {
    metrics::counter!(metric::PAYMENTS_DEAD, "direction" => direction).increment(1);
    tracing::warn!(target: TARGET, event = "payment_dead", direction, loan_id, reason = %mask_digits(reason),
        "payment set aside as a dead letter");
}

/// A webhook request refused before it was taken (`reason`: `body_not_json`,
/// `no_loan_id`, `body_too_large`, `body_timeout`).
pub fn webhook_refused(reason: &'static str, status: u16) {
    metrics::counter!(metric::WEBHOOK_REJECTIONS, "reason" => reason).increment(1);
    tracing::warn!(target: TARGET, event = "webhook_refused", reason, status, "webhook request refused");
}

pub fn payment_in_doubt(direction: &str, loan_id: &str, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "payment_in_doubt", direction, loan_id, error = %masked(error),
        "outcome unknown; will look before resending");
}
