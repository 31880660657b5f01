//! Stream reads, job slots and runs.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::db::{Cached, Store, StoreError};
use super::types::*;

impl Store {
    // --- streams, jobs ----------------------------------------------------------------------------

    /// Notes that `stream` was just read to its end with nothing left behind.
    /// When the last read of `stream` that reached its end started, by the real wall clock.
    pub fn stream_read_started_at(&self, stream: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .read()
            .query_row_cached("SELECT read_started_at FROM cursors WHERE stream = ?1", [stream], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// Records a read of `stream` to its end: at `now` by the daemon's clock (readiness), started
    /// at `read_started` by the wall clock (the next read's overlap).
    pub fn mark_stream_checked(&self, stream: &str, now: f64, read_started: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "INSERT INTO cursors (stream, value, advanced_at, checked_at, read_started_at) VALUES (?1, 0, ?2, ?2, ?3)
                 ON CONFLICT (stream) DO UPDATE SET checked_at = ?2, read_started_at = ?3",
                params![stream, now, read_started],
            )?;
            Ok(())
        })
    }

    /// Every stream's cursor, by name.
    pub fn streams(&self) -> Result<Vec<StreamRow>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT stream, value, advanced_at, checked_at FROM cursors ORDER BY stream")?;
        let rows = stmt.query_map([], |r| {
            Ok(StreamRow {
                stream: r.get(0)?,
                cursor: r.get(1)?,
                advanced_at: r.get(2)?,
                checked_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn last_slot(&self, job: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .read()
            .query_row_cached("SELECT last_slot FROM job_slots WHERE job = ?1", [job], |r| r.get(0))
            .optional()?)
    }

    /// Records that `job` ran for `slot`, and how it went.
    pub fn record_job(&self, job: &str, slot: f64, error: Option<&str>, now: f64) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "INSERT INTO job_slots (job, last_slot, last_ok_at, last_error) VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?4 END, ?3)
                 ON CONFLICT (job) DO UPDATE SET last_slot = max(last_slot, ?2),
                   last_ok_at = CASE WHEN ?3 IS NULL THEN ?4 ELSE last_ok_at END, last_error = ?3",
                params![job, slot, error, now],
            )?;
            Ok(())
        })
    }

    /// Every job's last slot, by name.
    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT job, last_slot, last_ok_at, last_error FROM job_slots ORDER BY job")?;
        let rows = stmt.query_map([], |r| {
            Ok(JobRow {
                job: r.get(0)?,
                last_slot: r.get(1)?,
                last_ok_at: r.get(2)?,
                last_error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // --- runs ----------------------------------------------------------------------------------

    pub fn start_run(&self, job: &str, now: f64) -> Result<i64, StoreError> {
        self.write(|conn| {
            conn.exec_cached("INSERT INTO runs (job, started_at) VALUES (?1, ?2)", params![job, now])?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn finish_run(&self, id: i64, now: f64, outcome: &str, summary: &Value) -> Result<(), StoreError> {
        self.write(|c| {
            c.exec_cached(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
                params![id, now, outcome, summary.to_string()],
            )?;
            Ok(())
        })
    }
}
