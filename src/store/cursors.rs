//! Stream cursors and the ids seen at them.

use rusqlite::{OptionalExtension, params};

use super::db::{Cached, Store, StoreError};
use super::ledger::NewLedgerRow;

impl Store {
    // --- cursors -------------------------------------------------------------------------------

    pub fn cursor(&self, stream: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .read()
            .query_row_cached("SELECT value FROM cursors WHERE stream = ?1", [stream], |r| r.get(0))
            .optional()?)
    }

    /// The `updated_at` at which `item_id` was last processed on `stream`, if inside the window.
    pub fn seen(&self, stream: &str, item_id: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .read()
            .query_row_cached(
                "SELECT updated_at FROM stream_seen WHERE stream = ?1 AND item_id = ?2",
                [stream, item_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records a processed page in one transaction: the items as seen, the cursor moved forward to
    /// `cursor` (never backwards), and seen-entries older than the overlap window pruned.
    pub fn commit_page(
        &self,
        stream: &str,
        cursor: Option<f64>,
        items: &[(String, f64)],
        overlap_secs: f64,
        now: f64,
    ) -> Result<(), StoreError> {
        self.commit_page_with_rows(stream, cursor, items, &[], overlap_secs, now)
            .map(|_| ())
    }

    /// [`Self::commit_page`] plus the ledger rows the page produced, in the same transaction: a
    /// crash redoes at most the page, and its rows dedupe on their keys. Returns how many rows
    /// were new.
    pub fn commit_page_with_rows(
        &self,
        stream: &str,
        cursor: Option<f64>,
        items: &[(String, f64)],
        rows: &[NewLedgerRow],
        overlap_secs: f64,
        now: f64,
    ) -> Result<usize, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let inserted = super::intake::insert_rows(&tx, rows, now)?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO stream_seen (stream, item_id, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (stream, item_id) DO UPDATE SET updated_at = excluded.updated_at
                       WHERE excluded.updated_at > stream_seen.updated_at",
                )?;
                for (id, at) in items {
                    ins.execute(params![stream, id, at])?;
                }
            }
            if let Some(c) = cursor {
                tx.exec_cached(
                    "INSERT INTO cursors (stream, value, advanced_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (stream) DO UPDATE SET
                       advanced_at = excluded.advanced_at,
                       value = excluded.value
                     WHERE excluded.value > cursors.value",
                    params![stream, c, now],
                )?;
                tx.exec_cached(
                    "DELETE FROM stream_seen WHERE stream = ?1
                       AND updated_at < (SELECT value FROM cursors WHERE stream = ?1) - ?2",
                    params![stream, overlap_secs],
                )?;
            }
            tx.commit()?;
            Ok(inserted.announce())
        })
    }
}
