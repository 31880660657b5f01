//! Adding rows to the ledger: the one insert every intake goes through (the change streams, the
//! poll, the webhook, reconcile's mending) — a row whose key is known adds nothing — and the
//! webhook's event log. New dead letters are announced only after their transaction commits.

use rusqlite::{Transaction, params};
use serde_json::Value;

use super::db::{Cached, Store, StoreError};
use super::ledger::{Direction, LedgerState, NewLedgerRow};

/// What [`insert_rows`] added: how many rows, and those added as dead letters — said (logged and
/// counted) by [`Added::announce`] once the transaction has committed, not before.
#[must_use]
pub(super) struct Added {
    count: usize,
    dead: Vec<(&'static str, String, String)>,
}

impl Added {
    /// After the commit: each new dead letter's line and counter; how many rows were added.
    pub(super) fn announce(self) -> usize {
        for (direction, loan_id, reason) in &self.dead {
            crate::telemetry::events::payment_dead(direction, loan_id, reason);
        }
        self.count
    }
}

/// Inserts rows whose key is new.
pub(super) fn insert_rows(tx: &Transaction<'_>, rows: &[NewLedgerRow], now: f64) -> Result<Added, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO ledger (direction, source_key, loan_id, amount, reference, allocation_month, payload,
                                       state, dead_reason, origin, source, event_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?;
    // A repayment read again (settled since, say) refreshes a row not sent yet: its status is
    // decided from the record as it is now.
    let mut refresh = tx.prepare_cached(
        "UPDATE ledger SET source = ?2, event_at = ?3 WHERE source_key = ?1 AND state = 'pending'
           AND direction = 'credgenics' AND source != ?2",
    )?;
    let mut added = Added {
        count: 0,
        dead: Vec::new(),
    };
    for row in rows {
        if row.direction == Direction::ToCredgenics && row.dead_reason.is_none() {
            refresh.execute(params![row.source_key, row.source.to_string(), row.event_at])?;
        }
        let state = if row.dead_reason.is_some() {
            LedgerState::Dead
        } else {
            LedgerState::Pending
        };
        let n = stmt.execute(params![
            row.direction,
            row.source_key,
            row.loan_id,
            row.amount.to_string(),
            row.reference,
            row.allocation_month,
            row.payload.as_ref().map(Value::to_string),
            state,
            row.dead_reason,
            row.origin,
            row.source.to_string(),
            row.event_at,
            now,
        ])?;
        // Said once, as the row is added (a record or recovery read again adds nothing).
        if let (1, Some(reason)) = (n, &row.dead_reason) {
            added
                .dead
                .push((row.direction.as_str(), row.loan_id.clone(), reason.clone()));
        }
        added.count += n;
    }
    Ok(added)
}

impl Store {
    /// Stores a webhook event and the ledger row it produced, in one transaction (before the 200).
    pub fn record_webhook(
        &self,
        event: &str,
        body: &str,
        row: Option<&NewLedgerRow>,
        now: f64,
    ) -> Result<bool, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let added = match row {
                Some(r) => Some(insert_rows(&tx, std::slice::from_ref(r), now)?),
                None => None,
            };
            tx.exec_cached(
                "INSERT INTO webhook_events (received_at, event, body, ledger_key) VALUES (?1, ?2, ?3, ?4)",
                params![now, event, body, row.map(|r| r.source_key.as_str())],
            )?;
            tx.commit()?;
            Ok(added.is_some_and(|a| a.announce() > 0))
        })
    }

    pub fn webhook_event_count(&self) -> Result<usize, StoreError> {
        Ok(self
            .read()
            .query_row_cached("SELECT count(*) FROM webhook_events", [], |r| r.get::<_, i64>(0))? as usize)
    }
}
