//! The payment ledger (design §2): rows keyed by a deterministic source key, moving
//! `pending → in_flight → done`, or `dead` with the reason; the webhook event log.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use rust_decimal::Decimal;
use serde_json::Value;

use super::db::{Cached, Store, StoreError};

/// Where a payment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Flow C: an LMS repayment becomes a Credgenics payment entry.
    ToCredgenics,
    /// Flow B: a Credgenics recovery becomes a Crego record.
    ToCrego,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::ToCredgenics, Direction::ToCrego];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToCredgenics => "credgenics",
            Direction::ToCrego => "crego",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LedgerState {
    Pending,
    /// Sent or about to be: its outcome is in doubt until confirmed.
    InFlight,
    Done,
    Dead,
}

impl LedgerState {
    /// Every state, for gauges that must show zeros too.
    pub const ALL: [LedgerState; 4] = [
        LedgerState::Pending,
        LedgerState::InFlight,
        LedgerState::Done,
        LedgerState::Dead,
    ];
    /// Not a state: how counts name dead rows an operator set aside.
    pub const IGNORED: &'static str = "ignored";

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Pending => "pending",
            LedgerState::InFlight => "in_flight",
            LedgerState::Done => "done",
            LedgerState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

super::types::sql_name_enum!(Direction, "direction");
super::types::sql_name_enum!(LedgerState, "ledger state");

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, msg.into())
}

/// What a row is sent as, recorded with its move to `in_flight`.
#[derive(Debug, Clone)]
pub struct Sending<'a> {
    pub payload: &'a Value,
    pub reference: &'a str,
    pub allocation_month: Option<&'a str>,
    /// The amount as sent (rounded as the API demands).
    pub amount: Decimal,
}

/// A row to add. `dead_reason` set means it is born dead (the mapping could not produce it).
#[derive(Debug, Clone)]
pub struct NewLedgerRow {
    pub direction: Direction,
    pub source_key: String,
    pub loan_id: String,
    pub amount: Decimal,
    pub reference: String,
    pub allocation_month: Option<String>,
    pub payload: Option<Value>,
    pub origin: &'static str,
    pub source: Value,
    pub event_at: f64,
    pub dead_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub id: i64,
    pub direction: Direction,
    pub source_key: String,
    pub loan_id: String,
    pub amount: Decimal,
    pub reference: String,
    pub allocation_month: Option<String>,
    pub payload: Option<Value>,
    pub state: LedgerState,
    pub dead_reason: Option<String>,
    pub ignored_reason: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: f64,
    pub last_error: Option<String>,
    pub remote_id: Option<String>,
    pub origin: String,
    pub source: Value,
    pub event_at: f64,
    /// When the row was written (the source was read), by the daemon's clock.
    pub created_at: f64,
    /// Its last change (the last attempt, for a dead letter).
    pub updated_at: f64,
}

const COLS: &str = "id, direction, source_key, loan_id, amount, reference, allocation_month, payload, state, \
    dead_reason, ignored_reason, attempts, next_attempt_at, last_error, remote_id, origin, source, event_at, created_at, updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRow> {
    let amount: String = r.get(4)?;
    Ok(LedgerRow {
        id: r.get(0)?,
        direction: r.get(1)?,
        source_key: r.get(2)?,
        loan_id: r.get(3)?,
        amount: amount
            .parse()
            .map_err(|e| conversion(format!("amount {amount}: {e}")))?,
        reference: r.get(5)?,
        allocation_month: r.get(6)?,
        payload: r
            .get::<_, Option<String>>(7)?
            .and_then(|p| serde_json::from_str(&p).ok()),
        state: r.get(8)?,
        dead_reason: r.get(9)?,
        ignored_reason: r.get(10)?,
        attempts: r.get(11)?,
        next_attempt_at: r.get(12)?,
        last_error: r.get(13)?,
        remote_id: r.get(14)?,
        origin: r.get(15)?,
        source: serde_json::from_str(&r.get::<_, String>(16)?).unwrap_or(Value::Null),
        event_at: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
    })
}

/// A recovery found by the poll without a reference (keyed by its `payment_id`) may be one that a
/// webhook stored before identities were per `payment_id` (migration V5 set such rows aside under
/// a legacy key): the first legacy row of the same loan and amount becomes this row, so the
/// recovery is not written into the LMS a second time.
pub(super) fn claim_legacy(tx: &Transaction<'_>, row: &NewLedgerRow) -> Result<(), StoreError> {
    if row.direction != Direction::ToCrego || !row.source_key.contains(":pid:") {
        return Ok(());
    }
    let known = tx
        .query_row_cached("SELECT 1 FROM ledger WHERE source_key = ?1", [&row.source_key], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    if known {
        return Ok(());
    }
    let prefix = format!("B:{}:legacy:%", row.loan_id);
    let candidates: Vec<(i64, String)> = {
        let mut stmt = tx.prepare_cached("SELECT id, amount FROM ledger WHERE source_key LIKE ?1 ORDER BY id")?;
        let rows = stmt.query_map([&prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if let Some((id, _)) = candidates
        .iter()
        .find(|(_, a)| a.parse::<Decimal>().is_ok_and(|a| a == row.amount))
    {
        tx.exec_cached(
            "UPDATE ledger SET source_key = ?2 WHERE id = ?1",
            params![id, row.source_key],
        )?;
    }
    Ok(())
}

impl Store {
    pub fn ledger_by_key(&self, key: &str) -> Result<Option<LedgerRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM ledger WHERE source_key = ?1");
        Ok(self.read().query_row_cached(&sql, [key], from_row).optional()?)
    }

    /// Rows of `direction` in `state`, oldest first; for `pending`, only those due by `now`. At
    /// most `limit`, after row `after_id`: delivery walks them in batches.
    pub fn ledger_in_state(
        &self,
        direction: Direction,
        state: LedgerState,
        now: f64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM ledger WHERE direction = ?1 AND state = ?2 AND (?2 != 'pending' OR next_attempt_at <= ?3)
               AND id > ?4 ORDER BY id LIMIT ?5"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![direction, state, now, after_id, limit], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest `event_at` among one loan's rows in `direction` (the latest-payment decision),
    /// without reading the rows.
    pub fn latest_event_at(&self, direction: Direction, loan_id: &str) -> Result<Option<f64>, StoreError> {
        Ok(self.read().query_row_cached(
            "SELECT max(event_at) FROM ledger WHERE direction = ?1 AND loan_id = ?2",
            params![direction, loan_id],
            |r| r.get(0),
        )?)
    }

    /// All rows of one loan and direction (totals, latest-payment decisions).
    pub fn ledger_for_loan(&self, direction: Direction, loan_id: &str) -> Result<Vec<LedgerRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM ledger WHERE direction = ?1 AND loan_id = ?2 ORDER BY id");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![direction, loan_id], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether the daemon itself wrote `reference` to the other side for `loan_id` in `direction`
    /// (the echo check).
    pub fn wrote_reference(&self, direction: Direction, loan_id: &str, reference: &str) -> Result<bool, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT 1 FROM ledger WHERE direction = ?1 AND loan_id = ?2 AND reference = ?3 LIMIT 1",
                params![direction, loan_id, reference],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Marks a row in flight with what is about to be sent (payload, reference, allocation month
    /// and the amount as sent), committed before its request. A compare-and-set on the row's
    /// state: false when the row is no longer `from` (someone else took it), and then nothing may
    /// be sent.
    pub fn ledger_in_flight(
        &self,
        id: i64,
        from: LedgerState,
        from_attempts: i64,
        send: &Sending<'_>,
        now: f64,
    ) -> Result<bool, StoreError> {
        self.write(|c| {
            // A compare-and-set on the state *and* the attempt count: resending an in-doubt row goes
            // from in_flight to in_flight, so only the count (which every claim raises) tells a
            // second claimant that the row was taken since it read it.
            Ok(c.exec_cached(
                "UPDATE ledger SET state = 'in_flight', attempts = attempts + 1, updated_at = ?3,
                        payload = ?4, reference = ?5, allocation_month = ?6, amount = ?7
                 WHERE id = ?1 AND state = ?2 AND attempts = ?8",
                params![
                    id,
                    from,
                    now,
                    send.payload.to_string(),
                    send.reference,
                    send.allocation_month,
                    send.amount.to_string(),
                    from_attempts
                ],
            )? == 1)
        })
    }

    /// A pending row that is not to be sent yet (its status waits for a current read of its
    /// line): looked at again from `next_at`, without counting an attempt.
    pub fn ledger_wait(&self, id: i64, note: &str, next_at: f64, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET last_error = ?2, next_attempt_at = ?3, updated_at = ?4 WHERE id = ?1 AND state = 'pending'",
                params![id, note, next_at, now],
            )?;
            Ok(())
        })
    }

    pub fn ledger_done(&self, id: i64, remote_id: Option<&str>, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET state = 'done', remote_id = coalesce(?2, remote_id), last_error = NULL, updated_at = ?3
                 WHERE id = ?1",
                params![id, remote_id, now],
            )?;
            Ok(())
        })
    }

    pub fn ledger_dead(&self, id: i64, reason: &str, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET state = 'dead', dead_reason = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, reason, now],
            )?;
            Ok(())
        })
    }

    /// Back to pending, not before `next_at` (a failure that proves the write did not happen).
    pub fn ledger_retry(&self, id: i64, error: &str, next_at: f64, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET state = 'pending', last_error = ?2, next_attempt_at = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, error, next_at, now],
            )?;
            Ok(())
        })
    }

    /// Leaves a row in flight (in doubt) with the error and when to look again.
    pub fn ledger_in_doubt(&self, id: i64, error: &str, next_at: f64, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET last_error = ?2, next_attempt_at = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, error, next_at, now],
            )?;
            Ok(())
        })
    }

    /// Dead rows not ignored, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<LedgerRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM ledger WHERE state = 'dead' AND ignored_reason IS NULL ORDER BY id");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operator: a dead row goes back to pending, to be mapped again from its source and sent on
    /// the next run. False when no such dead row.
    pub fn retry_dead(&self, id: i64, now: f64) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE ledger SET state = 'pending', payload = NULL, next_attempt_at = 0,
                        last_error = dead_reason, dead_reason = NULL, ignored_reason = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'dead'",
                params![id, now],
            )? > 0)
        })
    }

    /// Operator: set a dead row aside (it stops counting as unresolved). False when no such row.
    pub fn ignore_dead(&self, id: i64, reason: &str, now: f64) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE ledger SET ignored_reason = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'dead'",
                params![id, reason, now],
            )? > 0)
        })
    }

    /// Stores a payload mapped again (after an operator's retry).
    pub fn ledger_set_payload(&self, id: i64, payload: &Value, reference: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET payload = ?2, reference = ?3 WHERE id = ?1",
                params![id, payload.to_string(), reference],
            )?;
            Ok(())
        })
    }

    /// Counts by (direction, state); ignored dead rows count as `ignored`.
    pub fn ledger_counts(&self) -> Result<BTreeMap<(String, String), u64>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT direction, CASE WHEN state = 'dead' AND ignored_reason IS NOT NULL THEN 'ignored' ELSE state END,
                    count(*) FROM ledger GROUP BY 1, 2",
        )?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows still owed: pending, in flight, or dead and not ignored.
    pub fn ledger_unresolved(&self) -> Result<u64, StoreError> {
        Ok(self.read().query_row_cached(
            "SELECT count(*) FROM ledger WHERE state IN ('pending', 'in_flight')
               OR (state = 'dead' AND ignored_reason IS NULL)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
