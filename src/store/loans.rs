//! Placed loans: their state, payloads, line numbers and look-ups.

use rusqlite::{OptionalExtension, params};

use super::db::{Cached, Store, StoreError};
use super::ledger::{self, NewLedgerRow};
use super::types::*;

impl Store {
    // --- loans ---------------------------------------------------------------------------------

    pub(super) const LOAN_COLS: &'static str = "loan_id, borrower_program_id, lead_id, program_id, allocation_month, state, \
         payload, payload_hash, rejected_hash, last_error, first_placed_at, updated_at, pending_payload, pending_month, \
         due_amount, total_outstanding, last_polled_at, line_updated_at, line_read_at";

    pub(super) fn loan_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoanRow> {
        let payload: Option<String> = r.get(6)?;
        Ok(LoanRow {
            loan_id: r.get(0)?,
            borrower_program_id: r.get(1)?,
            lead_id: r.get(2)?,
            program_id: r.get(3)?,
            allocation_month: r.get(4)?,
            state: r.get(5)?,
            payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
            payload_hash: r.get(7)?,
            rejected_hash: r.get(8)?,
            last_error: r.get(9)?,
            first_placed_at: r.get(10)?,
            updated_at: r.get(11)?,
            pending: r
                .get::<_, Option<String>>(12)?
                .and_then(|p| serde_json::from_str(&p).ok())
                .zip(r.get::<_, Option<String>>(13)?)
                .map(|(payload, month)| PendingUpload { payload, month }),
            due_amount: r.get::<_, Option<String>>(14)?.and_then(|d| d.parse().ok()),
            total_outstanding: r.get::<_, Option<String>>(15)?.and_then(|d| d.parse().ok()),
            last_polled_at: r.get(16)?,
            line_updated_at: r.get(17)?,
            line_read_at: r.get(18)?,
        })
    }

    pub fn loan_by_program(&self, borrower_program_id: &str) -> Result<Option<LoanRow>, StoreError> {
        let sql = format!("SELECT {} FROM loans WHERE borrower_program_id = ?1", Self::LOAN_COLS);
        Ok(self
            .read()
            .query_row_cached(&sql, [borrower_program_id], Self::loan_from_row)
            .optional()?)
    }

    pub fn loan(&self, loan_id: &str) -> Result<Option<LoanRow>, StoreError> {
        let sql = format!("SELECT {} FROM loans WHERE loan_id = ?1", Self::LOAN_COLS);
        Ok(self
            .read()
            .query_row_cached(&sql, [loan_id], Self::loan_from_row)
            .optional()?)
    }

    pub fn loans_in_state(&self, state: LoanState) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE state = ?1 ORDER BY loan_id",
            Self::LOAN_COLS
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([state], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces a loan; when `new_allocation` is set, also records the allocation month.
    /// Flow A uses it only for rows that may not exist yet (an upload recorded in flight, a first
    /// refusal); its other moves are the targeted UPDATEs below.
    pub fn save_loan(&self, loan: &LoanRow, new_allocation: bool) -> Result<(), StoreError> {
        self.save_loans(std::slice::from_ref(&(loan, new_allocation)))
    }

    /// [`Self::save_loan`] for many loans in one transaction: one durable commit for a page's
    /// uploads (it was two per loan, a tenth of the daemon's CPU in fsync alone).
    pub fn save_loans(&self, loans: &[(&LoanRow, bool)]) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            for (loan, new_allocation) in loans {
                Self::upsert_loan(&tx, loan, *new_allocation)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Writes the loan's own columns. The line's numbers and the poll mark are not overwritten on
    /// an existing row: they have targeted updates of their own ([`Self::set_line_numbers`],
    /// [`Self::record_poll`]), and a row read earlier in a page must not undo a newer read made
    /// meanwhile by the other flow.
    fn upsert_loan(tx: &rusqlite::Transaction<'_>, loan: &LoanRow, new_allocation: bool) -> Result<(), StoreError> {
        tx.exec_cached(
            "INSERT INTO loans (loan_id, borrower_program_id, lead_id, program_id, allocation_month, state,
                                payload, payload_hash, rejected_hash, last_error, first_placed_at, updated_at,
                                pending_payload, pending_month, due_amount, total_outstanding, last_polled_at,
                                line_updated_at, line_read_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT (loan_id) DO UPDATE SET
               borrower_program_id = excluded.borrower_program_id, lead_id = excluded.lead_id,
               program_id = excluded.program_id, allocation_month = excluded.allocation_month,
               state = excluded.state, payload = excluded.payload, payload_hash = excluded.payload_hash,
               rejected_hash = excluded.rejected_hash, last_error = excluded.last_error,
               first_placed_at = excluded.first_placed_at, updated_at = excluded.updated_at,
               pending_payload = excluded.pending_payload, pending_month = excluded.pending_month,
               last_polled_at = coalesce(loans.last_polled_at, excluded.last_polled_at),
               lookups = CASE WHEN excluded.state = 'uploading' THEN loans.lookups ELSE 0 END",
            params![
                loan.loan_id,
                loan.borrower_program_id,
                loan.lead_id,
                loan.program_id,
                loan.allocation_month,
                loan.state,
                loan.payload.as_ref().map(|p| p.to_string()),
                loan.payload_hash,
                loan.rejected_hash,
                loan.last_error,
                loan.first_placed_at,
                loan.updated_at,
                loan.pending.as_ref().map(|p| p.payload.to_string()),
                loan.pending.as_ref().map(|p| &p.month),
                loan.due_amount.map(|d| d.to_string()),
                loan.total_outstanding.map(|d| d.to_string()),
                loan.last_polled_at,
                loan.line_updated_at,
                loan.line_read_at,
            ],
        )?;
        if new_allocation && let Some(month) = &loan.allocation_month {
            // recorded once, when Credgenics accepted the month
            tx.exec_cached(
                "INSERT OR IGNORE INTO allocations (loan_id, allocation_month, uploaded_at) VALUES (?1, ?2, ?3)",
                params![loan.loan_id, month, loan.updated_at],
            )?;
        }
        Ok(())
    }

    // --- flow A's moves: each a targeted UPDATE of the columns it changes, so a row read earlier
    // cannot undo what another writer changed meanwhile (the line's numbers, the poll mark, the
    // look-up count, an operator's resync or ignore). The whole-row upsert above is only for rows
    // that may not exist yet (an upload recorded in flight, a first refusal).

    /// Credgenics has these uploads: each loan's payload, month and hash as [`LoanRow`] now holds
    /// them (placed, no pending upload, no refusal), and each month recorded as an allocation.
    pub fn confirm_uploads(&self, loans: &[&LoanRow]) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            for loan in loans {
                tx.exec_cached(
                    "UPDATE loans SET state = ?2, payload = ?3, payload_hash = ?4, allocation_month = ?5,
                       pending_payload = NULL, pending_month = NULL, rejected_hash = NULL, last_error = NULL,
                       first_placed_at = coalesce(first_placed_at, ?6), last_polled_at = coalesce(last_polled_at, ?7),
                       updated_at = ?8, lookups = 0
                     WHERE loan_id = ?1",
                    params![
                        loan.loan_id,
                        loan.state,
                        loan.payload.as_ref().map(|p| p.to_string()),
                        loan.payload_hash,
                        loan.allocation_month,
                        loan.first_placed_at,
                        loan.last_polled_at,
                        loan.updated_at,
                    ],
                )?;
                if let Some(month) = &loan.allocation_month {
                    tx.exec_cached(
                        "INSERT OR IGNORE INTO allocations (loan_id, allocation_month, uploaded_at) VALUES (?1, ?2, ?3)",
                        params![loan.loan_id, month, loan.updated_at],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The loan's state and nothing else (settled as cured or closed, reactivated, or back to
    /// placed after a refused upload), its error cleared when `clear_error`; leaving `uploading`
    /// resets the look-up count.
    pub fn move_loan(&self, loan: &LoanRow, clear_error: bool) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE loans SET state = ?2, updated_at = ?3,
                   pending_payload = ?4, pending_month = ?5,
                   last_error = CASE WHEN ?6 THEN NULL ELSE last_error END,
                   lookups = CASE WHEN ?2 = 'uploading' THEN lookups ELSE 0 END
                 WHERE loan_id = ?1",
                params![
                    loan.loan_id,
                    loan.state,
                    loan.updated_at,
                    loan.pending.as_ref().map(|p| p.payload.to_string()),
                    loan.pending.as_ref().map(|p| &p.month),
                    clear_error,
                ],
            )?;
            Ok(())
        })
    }

    /// What Credgenics now holds for the loan within its month (a PATCH it accepted, or keys the
    /// mapping dropped): the payload and its hash, placed; the refusal and error cleared when
    /// `clear_refusal`.
    pub fn set_sent_payload(&self, loan: &LoanRow, clear_refusal: bool) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE loans SET state = ?2, payload = ?3, payload_hash = ?4, updated_at = ?5,
                   rejected_hash = CASE WHEN ?6 THEN NULL ELSE rejected_hash END,
                   last_error = CASE WHEN ?6 THEN NULL ELSE last_error END,
                   lookups = CASE WHEN ?2 = 'uploading' THEN lookups ELSE 0 END
                 WHERE loan_id = ?1",
                params![
                    loan.loan_id,
                    loan.state,
                    loan.payload.as_ref().map(|p| p.to_string()),
                    loan.payload_hash,
                    loan.updated_at,
                    clear_refusal,
                ],
            )?;
            Ok(())
        })
    }

    /// Credgenics refused the loan's payload: rejected, with the refused payload's hash and the
    /// reason; its pending upload dropped, and its first placement forgotten when it never was.
    pub fn reject_loan(&self, loan: &LoanRow) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE loans SET state = ?2, rejected_hash = ?3, last_error = ?4, first_placed_at = ?5,
                   updated_at = ?6, pending_payload = NULL, pending_month = NULL,
                   lookups = CASE WHEN ?2 = 'uploading' THEN lookups ELSE 0 END
                 WHERE loan_id = ?1",
                params![
                    loan.loan_id,
                    loan.state,
                    loan.rejected_hash,
                    loan.last_error,
                    loan.first_placed_at,
                    loan.updated_at,
                ],
            )?;
            Ok(())
        })
    }

    /// Why the loan's upload is in doubt (it stays `uploading`, to be looked up).
    pub fn note_loan_error(&self, loan_id: &str, error: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.exec_cached(
                "UPDATE loans SET last_error = ?2 WHERE loan_id = ?1",
                params![loan_id, error],
            )?;
            Ok(())
        })
    }

    /// Records a read of the loan's line (by flow A, or by flow C deciding a payment's status):
    /// its numbers, its `updated_at` and when it was read. A read of an older version of the
    /// line never overwrites a newer one.
    pub fn set_line_numbers(&self, loan_id: &str, line: &LineRead) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE loans SET due_amount = ?2, total_outstanding = ?3, line_updated_at = ?4, line_read_at = ?5
                 WHERE loan_id = ?1 AND (line_updated_at IS NULL OR line_updated_at <= ?4)",
                params![
                    loan_id,
                    line.due_amount.to_string(),
                    line.total_outstanding.to_string(),
                    line.updated_at,
                    line.read_at
                ],
            )?;
            Ok(())
        })
    }

    /// One more failed look-up of an in-doubt upload. After `max` of them the loan becomes a
    /// dead letter (its pending upload kept, so a retry looks it up again first); returns whether
    /// it did.
    pub fn lookup_failed(&self, loan_id: &str, max: u32, error: &str, now: f64) -> Result<bool, StoreError> {
        self.write(|conn| {
            let n: i64 = conn.query_row_cached(
                "UPDATE loans SET lookups = lookups + 1 WHERE loan_id = ?1 AND state = 'uploading' RETURNING lookups",
                [loan_id],
                |r| r.get(0),
            )?;
            if n < i64::from(max) {
                return Ok(false);
            }
            conn.exec_cached(
                "UPDATE loans SET state = 'rejected', updated_at = ?3,
                        last_error = 'upload outcome still unknown after ' || ?2 || ' look-ups (last: ' || ?4 || '); \
                                      a retry looks it up again before anything is sent'
                 WHERE loan_id = ?1 AND state = 'uploading'",
                params![loan_id, n, now, error],
            )?;
            Ok(true)
        })
    }

    /// A webhook without a payment reference: the loan's payment history is read on the next
    /// delivery pass of recoveries.
    pub fn request_poll(&self, loan_id: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached("UPDATE loans SET poll_requested = 1 WHERE loan_id = ?1", [loan_id])?;
            Ok(())
        })
    }

    /// Loans whose payment history a webhook asked to read, after `after`, at most `limit`.
    pub fn loans_poll_requested(&self, after: &str, limit: u32) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE poll_requested = 1 AND loan_id > ?1 ORDER BY loan_id LIMIT ?2",
            Self::LOAN_COLS
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, limit], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Loans open at Credgenics (placed or cured) whose payment history was not read since `since`.
    /// At most `limit` of them, after `after` in loan-id order: the poll walks the book in
    /// batches, never holding all of it.
    pub fn loans_to_poll(&self, since: f64, after: &str, limit: u32) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE state IN ('placed', 'cured') AND allocation_month IS NOT NULL
               AND (last_polled_at IS NULL OR last_polled_at < ?1) AND loan_id > ?2 ORDER BY loan_id LIMIT ?3",
            Self::LOAN_COLS
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![since, after, limit], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What a batch of the poll found, in one transaction: the new ledger rows, and the loans
    /// read (a crash before it only means reading them again; rows dedupe on their keys).
    pub fn record_poll(&self, rows: &[NewLedgerRow], polled: &[String], now: f64) -> Result<usize, StoreError> {
        self.record_poll_reads(rows, polled, &[], now)
    }

    /// [`Self::record_poll`] with each loan's full Credgenics read kept for reconcile.
    pub fn record_poll_reads(
        &self,
        rows: &[NewLedgerRow],
        polled: &[String],
        reads: &[(String, serde_json::Value)],
        now: f64,
    ) -> Result<usize, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            for (loan_id, body) in reads {
                tx.exec_cached(
                    "INSERT INTO credgenics_reads (loan_id, read_at, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (loan_id) DO UPDATE SET read_at = excluded.read_at, body = excluded.body",
                    params![loan_id, now, body.to_string()],
                )?;
            }
            for row in rows {
                ledger::claim_legacy(&tx, row)?;
            }
            let added = super::intake::insert_rows(&tx, rows, now)?;
            for loan_id in polled {
                tx.exec_cached(
                    "UPDATE loans SET last_polled_at = ?2, poll_requested = 0 WHERE loan_id = ?1",
                    params![loan_id, now],
                )?;
            }
            tx.commit()?;
            Ok(added.announce())
        })
    }

    /// Forgets a loan that was never placed (its first upload provably did not happen).
    pub fn delete_loan(&self, loan_id: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "DELETE FROM loans WHERE loan_id = ?1 AND allocation_month IS NULL",
                [loan_id],
            )?;
            Ok(())
        })
    }

    pub fn allocations(&self, loan_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT allocation_month FROM allocations WHERE loan_id = ?1 ORDER BY uploaded_at")?;
        let rows = stmt.query_map([loan_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Loans in doubt, or rejected and not ignored by an operator, and line dead letters not
    /// ignored.
    pub fn loans_unresolved(&self) -> Result<u64, StoreError> {
        Ok(self.read().query_row_cached(
            "SELECT (SELECT count(*) FROM loans
                      WHERE state = 'uploading' OR (state = 'rejected' AND ignored_reason IS NULL))
                  + (SELECT count(*) FROM line_dead_letters WHERE ignored_reason IS NULL)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
