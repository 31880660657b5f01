//! Lines set aside as dead letters (design §2.7).

use std::collections::BTreeMap;

use rusqlite::params;

use super::db::{Cached, Store, StoreError, has_table};
use super::types::*;

impl Store {
    // --- line dead letters ---------------------------------------------------------------------

    /// Records (or counts again) a line that cannot be processed for a reason of its own.
    pub fn line_dead_letter(&self, line: &str, lead: &str, bp: &str, reason: &str, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "INSERT INTO line_dead_letters (line_id, lead_id, borrower_program_id, reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (line_id) DO UPDATE SET reason = excluded.reason, attempts = attempts + 1,
                   updated_at = excluded.updated_at, retry = 0, lead_id = excluded.lead_id,
                   borrower_program_id = excluded.borrower_program_id",
                params![line, lead, bp, reason, now],
            )?;
            Ok(())
        })
    }

    /// Line dead letters not ignored, oldest first.
    pub fn line_dead_letters(&self) -> Result<Vec<LineDeadLetter>, StoreError> {
        self.line_letters("ignored_reason IS NULL")
    }

    /// Line dead letters an operator asked to process again.
    pub fn lines_to_retry(&self) -> Result<Vec<LineDeadLetter>, StoreError> {
        self.line_letters("retry = 1")
    }

    fn line_letters(&self, filter: &str) -> Result<Vec<LineDeadLetter>, StoreError> {
        let sql = format!(
            "SELECT line_id, lead_id, borrower_program_id, reason, attempts, created_at, updated_at
             FROM line_dead_letters WHERE {filter} ORDER BY created_at, line_id"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(LineDeadLetter {
                line_id: r.get(0)?,
                lead_id: r.get(1)?,
                borrower_program_id: r.get(2)?,
                reason: r.get(3)?,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The line was processed after all: its dead letter goes.
    pub fn clear_line_dead_letter(&self, line_id: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached("DELETE FROM line_dead_letters WHERE line_id = ?1", [line_id])?;
            Ok(())
        })
    }

    /// Operator: process the line again on the next run. False when no such dead letter.
    pub fn retry_line(&self, line_id: &str) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE line_dead_letters SET retry = 1, ignored_reason = NULL WHERE line_id = ?1",
                [line_id],
            )? > 0)
        })
    }

    /// Operator: set a line dead letter aside. False when no such dead letter.
    pub fn ignore_line(&self, line_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE line_dead_letters SET ignored_reason = ?2, retry = 0 WHERE line_id = ?1",
                params![line_id, reason],
            )? > 0)
        })
    }

    /// Notes who set a dead letter aside or sent it again, when and why.
    pub fn audit_dead_letter(
        &self,
        target: &str,
        action: &str,
        reason: Option<&str>,
        actor: &str,
        now: f64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            if !has_table(conn, "dead_letter_audit")? {
                // Not migrated to V7 yet (the daemon migrates at its next start): nothing to note in.
                return Ok(());
            }
            conn.exec_cached(
                "INSERT INTO dead_letter_audit (target, action, reason, actor, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![target, action, reason, actor, now],
            )?;
            Ok(())
        })
    }

    /// Every dead letter set aside now (payments, loans, lines), with why, and who and when
    /// from the audit — absent for one set aside before the audit was kept, or on a state the
    /// daemon has not migrated to V7 yet (operator commands do not migrate). Newest first.
    pub fn ignored_dead_letters(&self) -> Result<Vec<IgnoredLetter>, StoreError> {
        const IGNORED: &str = "WITH ignored (target, reason) AS (
                 SELECT 'payment:' || id, ignored_reason FROM ledger
                  WHERE state = 'dead' AND ignored_reason IS NOT NULL
                 UNION ALL
                 SELECT 'loan:' || loan_id, ignored_reason FROM loans WHERE ignored_reason IS NOT NULL
                 UNION ALL
                 SELECT 'line:' || line_id, ignored_reason FROM line_dead_letters WHERE ignored_reason IS NOT NULL
             )";
        let conn = self.read();
        let sql = if has_table(&conn, "dead_letter_audit")? {
            format!(
                "{IGNORED}
                 SELECT i.target, i.reason, a.actor, a.at FROM ignored i
                   LEFT JOIN dead_letter_audit a ON a.id =
                        (SELECT max(id) FROM dead_letter_audit WHERE target = i.target AND action = 'ignored')
                  ORDER BY a.at DESC NULLS LAST, i.target"
            )
        } else {
            format!("{IGNORED} SELECT target, reason, NULL, NULL FROM ignored ORDER BY target")
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(IgnoredLetter {
                target: r.get(0)?,
                reason: r.get(1)?,
                by: r.get(2)?,
                at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rejected loans not ignored.
    pub fn rejected_loans(&self) -> Result<Vec<RejectedLoan>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT loan_id, lead_id, borrower_program_id, last_error, updated_at FROM loans
             WHERE state = 'rejected' AND ignored_reason IS NULL ORDER BY loan_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RejectedLoan {
                loan_id: r.get(0)?,
                lead_id: r.get(1)?,
                borrower_program_id: r.get(2)?,
                error: r.get(3)?,
                updated_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operator: set a rejected loan aside. False when no such rejected loan.
    pub fn ignore_loan(&self, loan_id: &str, reason: &str) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE loans SET ignored_reason = ?2 WHERE loan_id = ?1 AND state = 'rejected'",
                params![loan_id, reason],
            )? > 0)
        })
    }

    /// Operator: send a rejected loan again on the next run (its line is read afresh). An upload
    /// whose outcome stayed unknown goes back to in doubt: it is looked up before anything else.
    pub fn resync_loan(&self, loan_id: &str) -> Result<bool, StoreError> {
        self.write(|c| {
            Ok(c.exec_cached(
                "UPDATE loans SET resync = 1, rejected_hash = NULL, ignored_reason = NULL, lookups = 0,
                        state = CASE WHEN pending_month IS NOT NULL THEN 'uploading' ELSE state END
                 WHERE loan_id = ?1 AND state = 'rejected'",
                params![loan_id],
            )? > 0)
        })
    }

    /// Asks for the loan's line to be read afresh once its in-doubt upload is settled.
    pub fn request_resync(&self, loan_id: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached("UPDATE loans SET resync = 1 WHERE loan_id = ?1", [loan_id])?;
            Ok(())
        })
    }

    /// Loans an operator asked to send again.
    pub fn loans_to_resync(&self) -> Result<Vec<ResyncRequest>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT loan_id, lead_id, borrower_program_id FROM loans WHERE resync = 1")?;
        let rows = stmt.query_map([], |r| {
            Ok(ResyncRequest {
                loan_id: r.get(0)?,
                lead_id: r.get(1)?,
                borrower_program_id: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn resync_done(&self, loan_id: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached("UPDATE loans SET resync = 0 WHERE loan_id = ?1", [loan_id])?;
            Ok(())
        })
    }

    /// Loans cured in the LMS while still open at Credgenics (no API closes them): for a person.
    pub fn cured_loans(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT loan_id FROM loans WHERE state = 'cured' ORDER BY loan_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `n` runs, newest first.
    pub fn last_runs(&self, n: u32) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached("SELECT id, job, started_at, finished_at, outcome FROM runs ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([n], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                job: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn loan_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM loans GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
