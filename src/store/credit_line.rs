//! Credit-line state (design §8): customers (one per Crego line) and their transactions (one per
//! drawdown), with upload state as a lending loan has it, and the drawdown's numbers as last read.

use rusqlite::{OptionalExtension, params};
use rust_decimal::Decimal;
use serde_json::Value;

use super::db::{Cached, Store, StoreError};
use super::ledger::Direction;
use super::types::{LoanState, PendingUpload};

/// A Credgenics customer: the Crego line it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClCustomerRow {
    pub customer_id: String,
    pub borrower_program_id: String,
    pub lead_id: String,
    pub last_polled_at: Option<f64>,
}

/// A Credgenics transaction: one drawdown of a line, and where its upload stands.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionRow {
    pub transaction_id: String,
    pub customer_id: String,
    pub drawdown_id: String,
    pub kind: String,
    pub opened_at: f64,
    pub allocation_month: Option<String>,
    pub state: LoanState,
    pub payload: Option<Value>,
    pub payload_hash: Option<String>,
    pub pending: Option<PendingUpload>,
    pub rejected_hash: Option<String>,
    pub last_error: Option<String>,
    pub first_placed_at: Option<f64>,
    pub due_amount: Option<Decimal>,
    pub total_outstanding: Option<Decimal>,
    pub drawdown_updated_at: Option<f64>,
    pub read_at: Option<f64>,
    pub updated_at: f64,
}

/// Credit-line mode at a glance (`status`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClStatus {
    pub customers: u64,
    pub by_state: Vec<(LoanState, u64)>,
    /// (transaction id, the reason it was refused)
    pub refused: Vec<(String, String)>,
}

/// A drawdown's numbers as read from Crego, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawdownRead {
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub updated_at: f64,
    pub read_at: f64,
}

const TXN_COLS: &str = "transaction_id, customer_id, drawdown_id, kind, opened_at, allocation_month, state, payload, \
     payload_hash, pending_payload, pending_month, rejected_hash, last_error, first_placed_at, due_amount, \
     total_outstanding, drawdown_updated_at, read_at, updated_at";

fn txn_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransactionRow> {
    let json = |s: Option<String>| s.and_then(|p| serde_json::from_str::<Value>(&p).ok());
    let dec = |s: Option<String>| s.and_then(|d| d.parse::<Decimal>().ok());
    Ok(TransactionRow {
        transaction_id: r.get(0)?,
        customer_id: r.get(1)?,
        drawdown_id: r.get(2)?,
        kind: r.get(3)?,
        opened_at: r.get(4)?,
        allocation_month: r.get(5)?,
        state: r.get(6)?,
        payload: json(r.get(7)?),
        payload_hash: r.get(8)?,
        pending: json(r.get(9)?)
            .zip(r.get::<_, Option<String>>(10)?)
            .map(|(payload, month)| PendingUpload { payload, month }),
        rejected_hash: r.get(11)?,
        last_error: r.get(12)?,
        first_placed_at: r.get(13)?,
        due_amount: dec(r.get(14)?),
        total_outstanding: dec(r.get(15)?),
        drawdown_updated_at: r.get(16)?,
        read_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

fn customer_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClCustomerRow> {
    Ok(ClCustomerRow {
        customer_id: r.get(0)?,
        borrower_program_id: r.get(1)?,
        lead_id: r.get(2)?,
        last_polled_at: r.get(3)?,
    })
}

impl Store {
    /// Inserts the customer, or updates its line and lead (the poll mark is kept).
    pub fn cl_save_customer(&self, c: &ClCustomerRow, now: f64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "INSERT INTO cl_customers (customer_id, borrower_program_id, lead_id, last_polled_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (customer_id) DO UPDATE SET borrower_program_id = excluded.borrower_program_id,
                   lead_id = excluded.lead_id, updated_at = excluded.updated_at",
                params![c.customer_id, c.borrower_program_id, c.lead_id, c.last_polled_at, now],
            )?;
            Ok(())
        })
    }

    pub fn cl_customer(&self, customer_id: &str) -> Result<Option<ClCustomerRow>, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT customer_id, borrower_program_id, lead_id, last_polled_at FROM cl_customers WHERE customer_id = ?1",
                [customer_id],
                customer_from_row,
            )
            .optional()?)
    }

    pub fn cl_customer_by_program(&self, borrower_program_id: &str) -> Result<Option<ClCustomerRow>, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT customer_id, borrower_program_id, lead_id, last_polled_at FROM cl_customers
                 WHERE borrower_program_id = ?1",
                [borrower_program_id],
                customer_from_row,
            )
            .optional()?)
    }

    /// Every customer with a transaction Credgenics has (placed, cured or closed), by id.
    pub fn cl_customers_placed(&self) -> Result<Vec<ClCustomerRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT customer_id, borrower_program_id, lead_id, last_polled_at FROM cl_customers c
             WHERE EXISTS (SELECT 1 FROM cl_transactions t WHERE t.customer_id = c.customer_id
                           AND t.first_placed_at IS NOT NULL)
             ORDER BY customer_id",
        )?;
        let rows = stmt.query_map([], customer_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn cl_set_polled(&self, customer_id: &str, at: f64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE cl_customers SET last_polled_at = ?2, poll_requested = 0 WHERE customer_id = ?1",
                params![customer_id, at],
            )?;
            Ok(())
        })
    }

    pub fn cl_transaction(&self, transaction_id: &str) -> Result<Option<TransactionRow>, StoreError> {
        let sql = format!("SELECT {TXN_COLS} FROM cl_transactions WHERE transaction_id = ?1");
        Ok(self
            .read()
            .query_row_cached(&sql, [transaction_id], txn_from_row)
            .optional()?)
    }

    /// A customer's transactions, oldest drawdown first (the order shares are applied in).
    pub fn cl_transactions_of(&self, customer_id: &str) -> Result<Vec<TransactionRow>, StoreError> {
        let sql =
            format!("SELECT {TXN_COLS} FROM cl_transactions WHERE customer_id = ?1 ORDER BY opened_at, transaction_id");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([customer_id], txn_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn cl_transactions_in_state(&self, state: LoanState) -> Result<Vec<TransactionRow>, StoreError> {
        let sql = format!("SELECT {TXN_COLS} FROM cl_transactions WHERE state = ?1 ORDER BY transaction_id");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([state], txn_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What `status` shows of credit-line mode: customers, transactions per state (every state,
    /// zeros too), and the refused ones with their reason. `None` on a state without the tables.
    pub fn cl_status(&self) -> Result<Option<ClStatus>, StoreError> {
        let conn = self.read();
        if !super::db::has_table(&conn, "cl_transactions")? {
            return Ok(None);
        }
        let customers: i64 = conn.query_row_cached("SELECT count(*) FROM cl_customers", [], |r| r.get(0))?;
        let mut by_state: Vec<(LoanState, u64)> = LoanState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM cl_transactions GROUP BY state")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, LoanState>(0)?, r.get::<_, i64>(1)?)))? {
            let (state, n) = row?;
            if let Some(slot) = by_state.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n as u64;
            }
        }
        let mut stmt = conn.prepare_cached(
            "SELECT transaction_id, coalesce(last_error, '') FROM cl_transactions WHERE state = 'rejected'
             ORDER BY transaction_id",
        )?;
        let refused = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(Some(ClStatus {
            customers: customers as u64,
            by_state,
            refused,
        }))
    }

    /// Writes the transaction's own columns (its drawdown numbers have [`Self::cl_set_read`]); with
    /// `new_allocation`, also the allocation month as uploaded. One commit.
    pub fn cl_save_transaction(
        &self,
        t: &TransactionRow,
        new_allocation: Option<&str>,
        now: f64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.exec_cached(
                "INSERT INTO cl_transactions (transaction_id, customer_id, drawdown_id, kind, opened_at,
                    allocation_month, state, payload, payload_hash, pending_payload, pending_month, rejected_hash,
                    last_error, first_placed_at, due_amount, total_outstanding, drawdown_updated_at, read_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                 ON CONFLICT (transaction_id) DO UPDATE SET
                   customer_id = excluded.customer_id, drawdown_id = excluded.drawdown_id, kind = excluded.kind,
                   opened_at = excluded.opened_at, allocation_month = excluded.allocation_month,
                   state = excluded.state, payload = excluded.payload, payload_hash = excluded.payload_hash,
                   pending_payload = excluded.pending_payload, pending_month = excluded.pending_month,
                   rejected_hash = excluded.rejected_hash, last_error = excluded.last_error,
                   first_placed_at = excluded.first_placed_at,
                   updated_at = excluded.updated_at",
                params![
                    t.transaction_id,
                    t.customer_id,
                    t.drawdown_id,
                    t.kind,
                    t.opened_at,
                    t.allocation_month,
                    t.state,
                    t.payload.as_ref().map(|p| p.to_string()),
                    t.payload_hash,
                    t.pending.as_ref().map(|p| p.payload.to_string()),
                    t.pending.as_ref().map(|p| &p.month),
                    t.rejected_hash,
                    t.last_error,
                    t.first_placed_at,
                    t.due_amount.map(|d| d.to_string()),
                    t.total_outstanding.map(|d| d.to_string()),
                    t.drawdown_updated_at,
                    t.read_at,
                    now,
                ],
            )?;
            if let Some(month) = new_allocation {
                tx.exec_cached(
                    "INSERT OR IGNORE INTO cl_allocations (transaction_id, allocation_month, uploaded_at)
                     VALUES (?1, ?2, ?3)",
                    params![t.transaction_id, month, now],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The drawdown's numbers as read, unless a newer read is already stored.
    pub fn cl_set_read(&self, transaction_id: &str, read: &DrawdownRead) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE cl_transactions SET due_amount = ?2, total_outstanding = ?3, drawdown_updated_at = ?4,
                   read_at = ?5
                 WHERE transaction_id = ?1 AND (drawdown_updated_at IS NULL OR drawdown_updated_at <= ?4)",
                params![
                    transaction_id,
                    read.due_amount.to_string(),
                    read.total_outstanding.to_string(),
                    read.updated_at,
                    read.read_at
                ],
            )?;
            Ok(())
        })
    }

    /// The allocation months a transaction was uploaded for, oldest first.
    pub fn cl_allocations(&self, transaction_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT allocation_month FROM cl_allocations WHERE transaction_id = ?1 ORDER BY uploaded_at, allocation_month",
        )?;
        let rows = stmt.query_map([transaction_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The amount already queued to Credgenics on a transaction for one allocation month (every
    /// row but the dead): what the month's claim has left is the claim minus this.
    pub fn cl_queued_amount(&self, transaction_id: &str, month: &str) -> Result<Decimal, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT amount FROM ledger WHERE direction = ?1 AND loan_id = ?2 AND allocation_month = ?3
               AND state != 'dead'",
        )?;
        let rows = stmt.query_map(params![Direction::ToCredgenics, transaction_id, month], |r| {
            r.get::<_, String>(0)
        })?;
        let mut total = Decimal::ZERO;
        for a in rows {
            total += a?.parse::<Decimal>().unwrap_or_default();
        }
        Ok(total)
    }

    /// Whether `reference` was written in `direction` on any of `loan_ids` (a customer's
    /// transactions: the echo check of a customer-level payment history).
    pub fn wrote_reference_on_any(
        &self,
        direction: Direction,
        loan_ids: &[String],
        reference: &str,
    ) -> Result<bool, StoreError> {
        for id in loan_ids {
            if self.wrote_reference(direction, id, reference)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The source key of the latest row on a loan (or transaction) in `direction`: by the record's
    /// date, then its `created_at`, then its id (design §1C) — exactly one is latest.
    pub fn latest_source_key(&self, direction: Direction, loan_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT source_key FROM ledger WHERE direction = ?1 AND loan_id = ?2 AND state != 'dead'
                 ORDER BY event_at DESC, json_extract(source, '$.created_at') DESC,
                   json_extract(source, '$.id') DESC, source_key DESC LIMIT 1",
                params![direction, loan_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

impl Store {
    /// Whether any ledger row's key starts with `prefix` (a record already shared across
    /// transactions: its split is made once, whatever is read again later). `prefix` ends with
    /// `:`, so the keys are the range up to the same text ending with `;`.
    pub fn ledger_has_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        let upper = match prefix.strip_suffix(':') {
            Some(head) => format!("{head};"),
            None => format!("{prefix}\u{10FFFF}"),
        };
        Ok(self
            .read()
            .query_row_cached(
                "SELECT 1 FROM ledger WHERE source_key >= ?1 AND source_key < ?2 LIMIT 1",
                params![prefix, upper],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl Store {
    /// Transactions whose last upload is in doubt or was refused (what `--once` reports as
    /// needing attention). A state from before V9 has none.
    pub fn cl_unresolved(&self) -> Result<u64, StoreError> {
        let conn = self.read();
        if !super::db::has_table(&conn, "cl_transactions")? {
            return Ok(0);
        }
        Ok(conn.query_row_cached(
            "SELECT count(*) FROM cl_transactions
             WHERE state IN ('uploading', 'rejected') OR rejected_hash IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

impl Store {
    /// Whether a payment on `loan_id` for `month` other than `except` went out (or may have) as
    /// `Closed`: a transaction is closed once a month.
    pub fn closed_already(&self, loan_id: &str, month: &str, except: i64) -> Result<bool, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT 1 FROM ledger WHERE direction = ?1 AND loan_id = ?2 AND allocation_month = ?3
                   AND id != ?4 AND state IN ('in_flight', 'done')
                   AND json_extract(payload, '$.final_status') = 'Closed' LIMIT 1",
                params![Direction::ToCredgenics, loan_id, month, except],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl Store {
    /// A payment webhook named this customer, or one of its transactions (the documented event
    /// carries only a `loan_id`): its history is read on the next run of flow B. The customer's
    /// id, or `None` when the id is neither.
    pub fn cl_request_poll(&self, id: &str) -> Result<Option<String>, StoreError> {
        let customer = match self.cl_customer(id)? {
            Some(c) => Some(c.customer_id),
            None => self.cl_transaction(id)?.map(|t| t.customer_id),
        };
        if let Some(c) = &customer {
            self.write(|conn| {
                conn.exec_cached("UPDATE cl_customers SET poll_requested = 1 WHERE customer_id = ?1", [c])?;
                Ok(())
            })?;
        }
        Ok(customer)
    }

    /// Customers a webhook asked to be read.
    pub fn cl_customers_poll_requested(&self) -> Result<Vec<ClCustomerRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT customer_id, borrower_program_id, lead_id, last_polled_at FROM cl_customers
             WHERE poll_requested = 1 ORDER BY customer_id",
        )?;
        let rows = stmt.query_map([], customer_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Store {
    /// The loan a ledger row names: a lending loan, or in credit-line mode the customer (flow B
    /// keys recoveries by customer) seen as one, on its line, for `month`.
    pub fn loan_or_customer(&self, id: &str, month: Option<&str>) -> Result<Option<super::types::LoanRow>, StoreError> {
        if let Some(loan) = self.loan(id)? {
            return Ok(Some(loan));
        }
        if !super::db::has_table(&self.read(), "cl_customers")? {
            return Ok(None);
        }
        Ok(self.cl_customer(id)?.map(|c| c.as_loan(month, None)))
    }
}

impl ClCustomerRow {
    /// The customer seen as one lending loan by the record mapping (flow B keys recoveries by
    /// customer): its id, its line as the account, `month`, and the claim of `payload` (an
    /// attributed transaction's upload) when given.
    pub fn as_loan(&self, month: Option<&str>, payload: Option<Value>) -> super::types::LoanRow {
        super::types::LoanRow {
            loan_id: self.customer_id.clone(),
            borrower_program_id: self.borrower_program_id.clone(),
            lead_id: self.lead_id.clone(),
            program_id: None,
            allocation_month: month.filter(|m| !m.is_empty()).map(str::to_string),
            state: LoanState::Placed,
            payload,
            payload_hash: None,
            pending: None,
            rejected_hash: None,
            last_error: None,
            first_placed_at: None,
            updated_at: 0.0,
            due_amount: None,
            total_outstanding: None,
            last_polled_at: self.last_polled_at,
            line_updated_at: None,
            line_read_at: None,
        }
    }
}
