//! Reconcile's state (issue 14): each Credgenics loan as last read in full (shared by the poll
//! and reconcile), the runs with their totals and counts, and the findings of the latest runs.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use rust_decimal::Decimal;
use serde_json::Value;

use super::db::{Cached, Store, StoreError};
use super::types::{Finding, FindingKind, LoanRow, ReconcileRun};

/// Runs whose findings are kept (older ones keep their counts only).
const RUNS_WITH_FINDINGS: i64 = 2;

impl Store {
    /// Keeps what Credgenics held of a loan at a full read.
    pub fn save_credgenics_read(&self, loan_id: &str, body: &Value, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "INSERT INTO credgenics_reads (loan_id, read_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (loan_id) DO UPDATE SET read_at = excluded.read_at, body = excluded.body",
                params![loan_id, now, body.to_string()],
            )?;
            Ok(())
        })
    }

    /// The loan's last full Credgenics read: (when, what).
    pub fn credgenics_read(&self, loan_id: &str) -> Result<Option<(f64, Value)>, StoreError> {
        let conn = self.read();
        let row: Option<(f64, String)> = conn
            .query_row_cached(
                "SELECT read_at, body FROM credgenics_reads WHERE loan_id = ?1",
                [loan_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(at, body)| (at, serde_json::from_str(&body).unwrap_or(Value::Null))))
    }

    /// When the daemon last wrote to the loan at Credgenics (an upload, a PATCH, a payment sent
    /// or in flight): a read older than this is stale.
    pub fn last_credgenics_write(&self, loan_id: &str) -> Result<f64, StoreError> {
        let conn = self.read();
        Ok(conn.query_row_cached(
            "SELECT max(coalesce((SELECT updated_at FROM loans WHERE loan_id = ?1), 0),
                        coalesce((SELECT max(updated_at) FROM ledger WHERE loan_id = ?1
                                   AND direction = 'credgenics' AND state IN ('in_flight', 'done')), 0))",
            [loan_id],
            |r| r.get(0),
        )?)
    }

    /// Placed loans (ever uploaded) in loan-id order after `after`, at most `limit`; with `since`,
    /// only loans whose state or payments changed at or after it.
    pub fn loans_to_reconcile(&self, since: Option<f64>, after: &str, limit: u32) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE allocation_month IS NOT NULL AND first_placed_at IS NOT NULL
               AND loan_id > ?1
               AND (?2 IS NULL OR updated_at >= ?2 OR coalesce(line_read_at, 0) >= ?2
                    OR EXISTS (SELECT 1 FROM ledger WHERE ledger.loan_id = loans.loan_id AND ledger.updated_at >= ?2))
             ORDER BY loan_id LIMIT ?3",
            Self::LOAN_COLS
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![after, since, limit], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The run of `scope` to continue: the latest one, when it did not finish.
    pub fn reconcile_unfinished(&self, scope: &str) -> Result<Option<ReconcileRun>, StoreError> {
        let latest = self.reconcile_runs_where("scope = ?1", params![scope], 1)?;
        Ok(latest.into_iter().next().filter(|r| r.finished_at.is_none()))
    }

    /// Starts a run of `scope`.
    pub fn reconcile_start(&self, scope: &str, now: f64) -> Result<ReconcileRun, StoreError> {
        let id = self.write(|c| {
            c.exec_cached(
                "INSERT INTO reconcile_runs (scope, started_at) VALUES (?1, ?2)",
                params![scope, now],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(self.reconcile_runs_where("id = ?1", params![id], 1)?.remove(0))
    }

    /// One loan checked, in one transaction: its findings, the run's counts and totals, and the
    /// cursor past it.
    pub fn reconcile_loan(
        &self,
        run: &mut ReconcileRun,
        loan_id: &str,
        findings: &[Finding],
        totals: Option<(Decimal, Decimal)>,
    ) -> Result<(), StoreError> {
        run.cursor = loan_id.to_string();
        match totals {
            Some((lms, cg)) => {
                run.loans_checked += 1;
                run.lms_total += lms;
                run.credgenics_total += cg;
                if findings.iter().all(|f| f.fixed) {
                    run.agreeing += 1;
                }
            }
            None => run.unreadable += 1,
        }
        for f in findings.iter().filter(|f| !f.fixed) {
            *run.counts.entry(f.kind.as_str().to_string()).or_default() += 1;
        }
        let run = run.clone();
        self.write(|c| {
            let tx = c.transaction()?;
            for f in findings {
                tx.exec_cached(
                    "INSERT INTO reconcile_findings (run_id, loan_id, kind, month, reference, lms, credgenics,
                                                     detail, action, fixed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        run.id,
                        f.loan_id,
                        f.kind,
                        f.month,
                        f.reference,
                        f.lms.map(|d| d.to_string()),
                        f.credgenics.map(|d| d.to_string()),
                        f.detail,
                        f.action,
                        f.fixed,
                    ],
                )?;
            }
            tx.exec_cached(
                "UPDATE reconcile_runs SET cursor = ?2, loans_checked = ?3, agreeing = ?4, unreadable = ?5,
                   lms_total = ?6, credgenics_total = ?7, counts = ?8 WHERE id = ?1",
                params![
                    run.id,
                    run.cursor,
                    run.loans_checked as i64,
                    run.agreeing as i64,
                    run.unreadable as i64,
                    run.lms_total.to_string(),
                    run.credgenics_total.to_string(),
                    serde_json::to_string(&run.counts).unwrap_or_default(),
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The run reached its end; the findings of runs before the last few are dropped (their
    /// counts stay).
    pub fn reconcile_finish(&self, run: &mut ReconcileRun, now: f64) -> Result<(), StoreError> {
        run.finished_at = Some(now);
        let id = run.id;
        self.write(|c| {
            let tx = c.transaction()?;
            tx.exec_cached(
                "UPDATE reconcile_runs SET finished_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            // Only finished runs lose their findings, and only those older than the last few
            // finished: a stopped run resuming, or a one-loan run, never empties another's.
            tx.exec_cached(
                "DELETE FROM reconcile_findings WHERE run_id IN (
                   SELECT id FROM reconcile_runs WHERE finished_at IS NOT NULL
                    ORDER BY id DESC LIMIT -1 OFFSET ?1)",
                params![RUNS_WITH_FINDINGS],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The latest finished run.
    pub fn reconcile_last(&self) -> Result<Option<ReconcileRun>, StoreError> {
        Ok(self
            .reconcile_runs_where("finished_at IS NOT NULL", [], 1)?
            .into_iter()
            .next())
    }

    /// The latest `n` runs, newest first (the history of counts).
    pub fn reconcile_history(&self, n: u32) -> Result<Vec<ReconcileRun>, StoreError> {
        self.reconcile_runs_where("1 = 1", [], n)
    }

    /// The findings of a run, by loan.
    pub fn reconcile_findings(&self, run_id: i64) -> Result<Vec<Finding>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT loan_id, kind, month, reference, lms, credgenics, detail, action, fixed
               FROM reconcile_findings WHERE run_id = ?1 ORDER BY loan_id, rowid",
        )?;
        let dec = |s: Option<String>| s.and_then(|s| s.parse::<Decimal>().ok());
        let rows = stmt.query_map([run_id], |r| {
            Ok(Finding {
                loan_id: r.get(0)?,
                kind: r.get::<_, FindingKind>(1)?,
                month: r.get(2)?,
                reference: r.get(3)?,
                lms: dec(r.get(4)?),
                credgenics: dec(r.get(5)?),
                detail: r.get(6)?,
                action: r.get(7)?,
                fixed: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn reconcile_runs_where<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
        limit: u32,
    ) -> Result<Vec<ReconcileRun>, StoreError> {
        let sql = format!(
            "SELECT id, scope, started_at, finished_at, cursor, loans_checked, agreeing, unreadable, lms_total,
                    credgenics_total, counts
               FROM reconcile_runs WHERE {filter} ORDER BY id DESC LIMIT {limit}"
        );
        let conn = self.read();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params, |r| {
            let dec = |s: String| s.parse::<Decimal>().unwrap_or_default();
            Ok(ReconcileRun {
                id: r.get(0)?,
                scope: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                cursor: r.get(4)?,
                loans_checked: r.get::<_, i64>(5)? as u64,
                agreeing: r.get::<_, i64>(6)? as u64,
                unreadable: r.get::<_, i64>(7)? as u64,
                lms_total: dec(r.get(8)?),
                credgenics_total: dec(r.get(9)?),
                counts: serde_json::from_str::<BTreeMap<String, u64>>(&r.get::<_, String>(10)?).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A row whose write the other side no longer shows (reconcile found it missing): back in
    /// flight, so delivery looks it up before sending it again — never a blind resend.
    pub fn ledger_reopen(&self, id: i64, note: &str, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE ledger SET state = 'in_flight', last_error = ?2, next_attempt_at = ?3, updated_at = ?3
                 WHERE id = ?1 AND state = 'done'",
                params![id, note, now],
            )?;
            Ok(())
        })
    }

    /// New ledger rows (reconcile's mends), deduplicated on their keys.
    pub fn ledger_add(&self, rows: &[super::NewLedgerRow], now: f64) -> Result<usize, StoreError> {
        self.write(|c| {
            let tx = c.transaction()?;
            let added = super::intake::insert_rows(&tx, rows, now)?;
            tx.commit()?;
            Ok(added.announce())
        })
    }
}
