//! Durable state in SQLite: stream cursors, placed loans, allocation history and runs. All SQL of
//! the crate lives here. The schema is `migrations/*.sql`, applied by refinery at open.
//!
//! The file is created with mode 0600, runs in WAL mode with `synchronous=FULL` (a committed row is
//! on disk before the request it announces is sent), and a lock on the file itself (its inode) keeps a second daemon off the
//! same state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use rust_decimal::Decimal;
use serde_json::Value;

mod ledger;

/// Every statement goes through the connection's prepared-statement cache: parsing the same SQL
/// again for each loan was a sixth of the daemon's CPU per placed loan (BENCHMARKS.md).
pub(crate) trait Cached {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Applies the pending migrations, all in one transaction with their history rows. Refinery's
/// default applies a migration and records it in two transactions: a SIGKILL between them left a
/// state whose every later open failed ("duplicate column"), as the crash test found once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    embedded::migrations::runner().set_grouped(true).run(conn)?;
    Ok(())
}

/// More distinct statements than rusqlite's default cache of 16 holds.
const STATEMENT_CACHE: usize = 96;
pub use ledger::{Direction, LedgerRow, LedgerState, NewLedgerRow, Sending};

/// One read of a loan's line: its numbers, its `updated_at` (the partner's clock) and when the
/// daemon read it (its own clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineRead {
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub updated_at: f64,
    pub read_at: f64,
}

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "state file {path} is in use by another crego-credgenics-sync process (the lock on {lock} is \
         held); stop it first, or give this instance its own state.path"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("state schema migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// A rejected loan: (loan id, lead id, borrower-program id, error).
pub type RejectedLoan = (String, String, String, Option<String>);
/// A run: (id, job, started, finished, outcome).
pub type RunRow = (i64, String, f64, Option<f64>, Option<String>);
/// A stream: (name, cursor, when the cursor last moved, when last read to its end).
pub type StreamRow = (String, f64, f64, Option<f64>);
/// A job: (name, last slot, last success, last error).
pub type JobRow = (String, f64, Option<f64>, Option<String>);

/// Lifecycle of a loan at Credgenics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoanState {
    /// An upload was (or was about to be) sent and its outcome is unknown.
    Uploading,
    Placed,
    /// No longer overdue; Credgenics has no delete, so it stays there.
    Cured,
    /// Total outstanding reached 0.
    Closed,
    /// The last write was rejected by Credgenics; see `last_error`.
    Rejected,
}

impl LoanState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanState::Uploading => "uploading",
            LoanState::Placed => "placed",
            LoanState::Cured => "cured",
            LoanState::Closed => "closed",
            LoanState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "uploading" => LoanState::Uploading,
            "placed" => LoanState::Placed,
            "cured" => LoanState::Cured,
            "closed" => LoanState::Closed,
            "rejected" => LoanState::Rejected,
            other => {
                return Err(rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("unknown loan state {other}").into(),
                ));
            }
        })
    }
}

/// One loan as the state knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoanRow {
    pub loan_id: String,
    pub borrower_program_id: String,
    pub lead_id: String,
    pub program_id: Option<String>,
    pub allocation_month: Option<String>,
    pub state: LoanState,
    pub payload: Option<Value>,
    pub payload_hash: Option<String>,
    pub pending_payload: Option<Value>,
    pub pending_month: Option<String>,
    pub rejected_hash: Option<String>,
    pub last_error: Option<String>,
    pub first_placed_at: Option<f64>,
    pub updated_at: f64,
    /// The line's `due_amount` and `total_outstanding` as last seen by flow A.
    pub due_amount: Option<Decimal>,
    pub total_outstanding: Option<Decimal>,
    /// When the recoveries poll last read this loan's payment history.
    pub last_polled_at: Option<f64>,
    /// The line's `updated_at` at the read the numbers above come from (the partner's clock), and
    /// when the daemon made that read (its own clock).
    pub line_updated_at: Option<f64>,
    pub line_read_at: Option<f64>,
}

/// A line of the change stream that cannot be processed for a reason of its own (design §2.7).
#[derive(Debug, Clone, PartialEq)]
pub struct LineDeadLetter {
    pub line_id: String,
    pub lead_id: String,
    pub borrower_program_id: String,
    pub reason: String,
    pub attempts: i64,
    pub created_at: f64,
    pub updated_at: f64,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    // Held for the life of the store; the OS lock goes with the handle.
    _lock: Option<File>,
}

impl Store {
    /// Opens (creating if needed) the state file for a daemon or a run: takes the lock.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Created here so it is 0600 from its first byte (SQLite gives the -wal and -shm files
        // the same mode); an existing file readable by others is tightened.
        let file = create_private(path).map_err(io)?;
        tighten(&file, path).map_err(io)?;
        // One instance per state file whatever the path it is named by: the lock is taken on the
        // file itself (its inode), so a symlink or a hardlink to it meets the same lock. It is a
        // BSD lock (flock), independent of the POSIX locks SQLite takes; the handle stays open for
        // the life of the store (closing another descriptor of the file would drop SQLite's).
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: path.to_path_buf(),
                    lock: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        let lock = file;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&mut conn)?;
        Ok(Self::wrap(conn, path.to_path_buf(), Some(lock)))
    }

    /// Opens an existing state file without the lock and without writing (dry runs, `status`),
    /// or an empty in-memory state when the file does not exist yet.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Self::in_memory();
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(Self::wrap(conn, path.to_path_buf(), None))
    }

    /// Opens an existing state file for an operator command (`status`, `dead-letters`) while a
    /// daemon may be running: no lock file, no migration; SQLite serialises the writes.
    pub fn open_shared(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no state file here (has the daemon run yet?)",
                ),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Self::wrap(conn, path.to_path_buf(), None))
    }

    /// A fresh state in memory (tests, dry runs before the first real run).
    pub fn in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        Ok(Self::wrap(conn, PathBuf::from(":memory:"), None))
    }

    fn wrap(conn: Connection, path: PathBuf, lock: Option<File>) -> Self {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Self {
            conn: Mutex::new(conn),
            path,
            _lock: lock,
        }
    }

    /// Rows changed through this handle since it was opened (benchmarks count writes with it).
    pub fn total_changes(&self) -> u64 {
        self.conn().total_changes()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection. A panic while it was held does not condemn every later call: each write
    /// is its own transaction, which a panic unwinding through it rolls back (rusqlite's
    /// `Transaction` drop), so the connection is sound to use again.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| {
            tracing::error!(
                event = "state_lock_recovered",
                "a task panicked while using the state; carrying on"
            );
            self.conn.clear_poison();
            poisoned.into_inner()
        })
    }

    // --- cursors -------------------------------------------------------------------------------

    pub fn cursor(&self, stream: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn()
            .query_row_cached("SELECT value FROM cursors WHERE stream = ?1", [stream], |r| r.get(0))
            .optional()?)
    }

    /// The `updated_at` at which `item_id` was last processed on `stream`, if inside the window.
    pub fn seen(&self, stream: &str, item_id: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn()
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = ledger::insert_rows(&tx, rows, now)?;
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
        Ok(inserted)
    }

    // --- loans ---------------------------------------------------------------------------------

    const LOAN_COLS: &'static str = "loan_id, borrower_program_id, lead_id, program_id, allocation_month, state, \
         payload, payload_hash, rejected_hash, last_error, first_placed_at, updated_at, pending_payload, pending_month, \
         due_amount, total_outstanding, last_polled_at, line_updated_at, line_read_at";

    fn loan_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoanRow> {
        let payload: Option<String> = r.get(6)?;
        Ok(LoanRow {
            loan_id: r.get(0)?,
            borrower_program_id: r.get(1)?,
            lead_id: r.get(2)?,
            program_id: r.get(3)?,
            allocation_month: r.get(4)?,
            state: LoanState::parse(&r.get::<_, String>(5)?)?,
            payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
            payload_hash: r.get(7)?,
            rejected_hash: r.get(8)?,
            last_error: r.get(9)?,
            first_placed_at: r.get(10)?,
            updated_at: r.get(11)?,
            pending_payload: r
                .get::<_, Option<String>>(12)?
                .and_then(|p| serde_json::from_str(&p).ok()),
            pending_month: r.get(13)?,
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
            .conn()
            .query_row_cached(&sql, [borrower_program_id], Self::loan_from_row)
            .optional()?)
    }

    pub fn loan(&self, loan_id: &str) -> Result<Option<LoanRow>, StoreError> {
        let sql = format!("SELECT {} FROM loans WHERE loan_id = ?1", Self::LOAN_COLS);
        Ok(self
            .conn()
            .query_row_cached(&sql, [loan_id], Self::loan_from_row)
            .optional()?)
    }

    pub fn loans_in_state(&self, state: LoanState) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE state = ?1 ORDER BY loan_id",
            Self::LOAN_COLS
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([state.as_str()], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces a loan; when `new_allocation` is set, also records the allocation month.
    pub fn save_loan(&self, loan: &LoanRow, new_allocation: bool) -> Result<(), StoreError> {
        self.save_loans(std::slice::from_ref(&(loan, new_allocation)))
    }

    /// [`Self::save_loan`] for many loans in one transaction: one durable commit for a page's
    /// uploads (it was two per loan, a tenth of the daemon's CPU in fsync alone).
    pub fn save_loans(&self, loans: &[(&LoanRow, bool)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (loan, new_allocation) in loans {
            Self::upsert_loan(&tx, loan, *new_allocation)?;
        }
        tx.commit()?;
        Ok(())
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
                loan.state.as_str(),
                loan.payload.as_ref().map(|p| p.to_string()),
                loan.payload_hash,
                loan.rejected_hash,
                loan.last_error,
                loan.first_placed_at,
                loan.updated_at,
                loan.pending_payload.as_ref().map(|p| p.to_string()),
                loan.pending_month,
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

    /// Records a read of the loan's line (by flow A, or by flow C deciding a payment's status):
    /// its numbers, its `updated_at` and when it was read. A read of an older version of the
    /// line never overwrites a newer one.
    pub fn set_line_numbers(&self, loan_id: &str, line: &LineRead) -> Result<(), StoreError> {
        self.conn().exec_cached(
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
    }

    /// One more failed look-up of an in-doubt upload. After `max` of them the loan becomes a
    /// dead letter (its pending upload kept, so a retry looks it up again first); returns whether
    /// it did.
    pub fn lookup_failed(&self, loan_id: &str, max: u32, error: &str, now: f64) -> Result<bool, StoreError> {
        let conn = self.conn();
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
    }

    /// A webhook without a payment reference: the loan's payment history is read on the next
    /// delivery pass of recoveries.
    pub fn request_poll(&self, loan_id: &str) -> Result<(), StoreError> {
        self.conn()
            .exec_cached("UPDATE loans SET poll_requested = 1 WHERE loan_id = ?1", [loan_id])?;
        Ok(())
    }

    /// Loans whose payment history a webhook asked to read, after `after`, at most `limit`.
    pub fn loans_poll_requested(&self, after: &str, limit: u32) -> Result<Vec<LoanRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM loans WHERE poll_requested = 1 AND loan_id > ?1 ORDER BY loan_id LIMIT ?2",
            Self::LOAN_COLS
        );
        let conn = self.conn();
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
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![since, after, limit], Self::loan_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What a batch of the poll found, in one transaction: the new ledger rows, and the loans
    /// read (a crash before it only means reading them again; rows dedupe on their keys).
    pub fn record_poll(&self, rows: &[NewLedgerRow], polled: &[String], now: f64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for row in rows {
            ledger::claim_legacy(&tx, row)?;
        }
        let n = ledger::insert_rows(&tx, rows, now)?;
        for loan_id in polled {
            tx.exec_cached(
                "UPDATE loans SET last_polled_at = ?2, poll_requested = 0 WHERE loan_id = ?1",
                params![loan_id, now],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Forgets a loan that was never placed (its first upload provably did not happen).
    pub fn delete_loan(&self, loan_id: &str) -> Result<(), StoreError> {
        self.conn().exec_cached(
            "DELETE FROM loans WHERE loan_id = ?1 AND allocation_month IS NULL",
            [loan_id],
        )?;
        Ok(())
    }

    pub fn allocations(&self, loan_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT allocation_month FROM allocations WHERE loan_id = ?1 ORDER BY uploaded_at")?;
        let rows = stmt.query_map([loan_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Loans in doubt, or rejected and not ignored by an operator, and line dead letters not
    /// ignored.
    pub fn loans_unresolved(&self) -> Result<u64, StoreError> {
        Ok(self.conn().query_row_cached(
            "SELECT (SELECT count(*) FROM loans
                      WHERE state = 'uploading' OR (state = 'rejected' AND ignored_reason IS NULL))
                  + (SELECT count(*) FROM line_dead_letters WHERE ignored_reason IS NULL)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    // --- line dead letters ---------------------------------------------------------------------

    /// Records (or counts again) a line that cannot be processed for a reason of its own.
    pub fn line_dead_letter(&self, line: &str, lead: &str, bp: &str, reason: &str, now: f64) -> Result<(), StoreError> {
        self.conn().exec_cached(
            "INSERT INTO line_dead_letters (line_id, lead_id, borrower_program_id, reason, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (line_id) DO UPDATE SET reason = excluded.reason, attempts = attempts + 1,
               updated_at = excluded.updated_at, retry = 0, lead_id = excluded.lead_id,
               borrower_program_id = excluded.borrower_program_id",
            params![line, lead, bp, reason, now],
        )?;
        Ok(())
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
        let conn = self.conn();
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
        self.conn()
            .exec_cached("DELETE FROM line_dead_letters WHERE line_id = ?1", [line_id])?;
        Ok(())
    }

    /// Operator: process the line again on the next run. False when no such dead letter.
    pub fn retry_line(&self, line_id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().exec_cached(
            "UPDATE line_dead_letters SET retry = 1, ignored_reason = NULL WHERE line_id = ?1",
            [line_id],
        )? > 0)
    }

    /// Operator: set a line dead letter aside. False when no such dead letter.
    pub fn ignore_line(&self, line_id: &str, reason: &str) -> Result<bool, StoreError> {
        Ok(self.conn().exec_cached(
            "UPDATE line_dead_letters SET ignored_reason = ?2, retry = 0 WHERE line_id = ?1",
            params![line_id, reason],
        )? > 0)
    }

    /// Rejected loans not ignored: (loan id, lead id, borrower-program id, error).
    pub fn rejected_loans(&self) -> Result<Vec<RejectedLoan>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT loan_id, lead_id, borrower_program_id, last_error FROM loans
             WHERE state = 'rejected' AND ignored_reason IS NULL ORDER BY loan_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operator: set a rejected loan aside. False when no such rejected loan.
    pub fn ignore_loan(&self, loan_id: &str, reason: &str) -> Result<bool, StoreError> {
        Ok(self.conn().exec_cached(
            "UPDATE loans SET ignored_reason = ?2 WHERE loan_id = ?1 AND state = 'rejected'",
            params![loan_id, reason],
        )? > 0)
    }

    /// Operator: send a rejected loan again on the next run (its line is read afresh). An upload
    /// whose outcome stayed unknown goes back to in doubt: it is looked up before anything else.
    pub fn resync_loan(&self, loan_id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().exec_cached(
            "UPDATE loans SET resync = 1, rejected_hash = NULL, ignored_reason = NULL, lookups = 0,
                    state = CASE WHEN pending_month IS NOT NULL THEN 'uploading' ELSE state END
             WHERE loan_id = ?1 AND state = 'rejected'",
            params![loan_id],
        )? > 0)
    }

    /// Asks for the loan's line to be read afresh once its in-doubt upload is settled.
    pub fn request_resync(&self, loan_id: &str) -> Result<(), StoreError> {
        self.conn()
            .exec_cached("UPDATE loans SET resync = 1 WHERE loan_id = ?1", [loan_id])?;
        Ok(())
    }

    /// Loans an operator asked to send again: (loan id, lead id, borrower-program id).
    pub fn loans_to_resync(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT loan_id, lead_id, borrower_program_id FROM loans WHERE resync = 1")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn resync_done(&self, loan_id: &str) -> Result<(), StoreError> {
        self.conn()
            .exec_cached("UPDATE loans SET resync = 0 WHERE loan_id = ?1", [loan_id])?;
        Ok(())
    }

    /// Loans cured in the LMS while still open at Credgenics (no API closes them): for a person.
    pub fn cured_loans(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT loan_id FROM loans WHERE state = 'cured' ORDER BY loan_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `n` runs: (id, job, started, finished, outcome).
    pub fn last_runs(&self, n: u32) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, job, started_at, finished_at, outcome FROM runs ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn loan_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM loans GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // --- streams, jobs ----------------------------------------------------------------------------

    /// Notes that `stream` was just read to its end with nothing left behind.
    /// When the last read of `stream` that reached its end started, by the real wall clock.
    pub fn stream_read_started_at(&self, stream: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn()
            .query_row_cached("SELECT read_started_at FROM cursors WHERE stream = ?1", [stream], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// Records a read of `stream` to its end: at `now` by the daemon's clock (readiness), started
    /// at `read_started` by the wall clock (the next read's overlap).
    pub fn mark_stream_checked(&self, stream: &str, now: f64, read_started: f64) -> Result<(), StoreError> {
        self.conn().exec_cached(
            "INSERT INTO cursors (stream, value, advanced_at, checked_at, read_started_at) VALUES (?1, 0, ?2, ?2, ?3)
             ON CONFLICT (stream) DO UPDATE SET checked_at = ?2, read_started_at = ?3",
            params![stream, now, read_started],
        )?;
        Ok(())
    }

    /// Every stream: (name, cursor value, when the cursor last moved, when last read to its end).
    pub fn streams(&self) -> Result<Vec<StreamRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT stream, value, advanced_at, checked_at FROM cursors ORDER BY stream")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn last_slot(&self, job: &str) -> Result<Option<f64>, StoreError> {
        Ok(self
            .conn()
            .query_row_cached("SELECT last_slot FROM job_slots WHERE job = ?1", [job], |r| r.get(0))
            .optional()?)
    }

    /// Records that `job` ran for `slot`, and how it went.
    pub fn record_job(&self, job: &str, slot: f64, error: Option<&str>, now: f64) -> Result<(), StoreError> {
        self.conn().exec_cached(
            "INSERT INTO job_slots (job, last_slot, last_ok_at, last_error) VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?4 END, ?3)
             ON CONFLICT (job) DO UPDATE SET last_slot = max(last_slot, ?2),
               last_ok_at = CASE WHEN ?3 IS NULL THEN ?4 ELSE last_ok_at END, last_error = ?3",
            params![job, slot, error, now],
        )?;
        Ok(())
    }

    /// Every job: (name, last slot, last success, last error).
    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT job, last_slot, last_ok_at, last_error FROM job_slots ORDER BY job")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // --- runs ----------------------------------------------------------------------------------

    pub fn start_run(&self, job: &str, now: f64) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.exec_cached("INSERT INTO runs (job, started_at) VALUES (?1, ?2)", params![job, now])?;
        Ok(conn.last_insert_rowid())
    }

    pub fn finish_run(&self, id: i64, now: f64, outcome: &str, summary: &Value) -> Result<(), StoreError> {
        self.conn().exec_cached(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
            params![id, now, outcome, summary.to_string()],
        )?;
        Ok(())
    }
}

/// Makes an existing state file private (0600) if it is not, saying so.
fn tighten(file: &File, path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(event = "state_file_tightened", path = %path.display(), was = format!("{mode:o}"),
                "the state file was readable by others: now 0600");
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let first = Store::open(&path).unwrap();
        let err = Store::open(&path).err().expect("second open must fail");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another"));
        drop(first);
        Store::open(&path).expect("lock released with the first store");
    }

    #[cfg(unix)]
    #[test]
    fn state_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let _s = Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// Regression (issue 11, finding 7): an existing state file at 0644 stayed so, and a
    /// permission error did not name the file.
    #[cfg(unix)]
    #[test]
    fn an_existing_open_state_file_is_tightened_and_errors_name_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A folder the process may not write into (skipped as root, who may).
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        let inside = locked.join("state.db");
        if std::fs::File::create(locked.join("probe")).is_err() {
            let err = Store::open(&inside)
                .err()
                .expect("cannot create the state there")
                .to_string();
            assert!(err.contains(&inside.display().to_string()), "{err}");
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Under a path that is not a folder (fails for root too).
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let under = plain.join("state.db");
        let err = Store::open(&under).err().expect("not a folder").to_string();
        assert!(
            err.contains(&under.display().to_string()) || err.contains(&plain.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn cursor_never_moves_backwards_and_prunes_seen() {
        let s = Store::in_memory().unwrap();
        s.commit_page("ld", Some(100.0), &[("a".into(), 100.0)], 10.0, 1.0)
            .unwrap();
        s.commit_page("ld", Some(50.0), &[("b".into(), 50.0)], 10.0, 2.0)
            .unwrap();
        assert_eq!(s.cursor("ld").unwrap(), Some(100.0));
        assert_eq!(s.seen("ld", "a").unwrap(), Some(100.0));
        assert_eq!(s.seen("ld", "b").unwrap(), None, "older than the overlap window");
    }

    /// Regression (issue 10): a recovery without a reference was keyed by its webhook's
    /// `recovery_date` and by the poll's `created`, and became two LMS records. Migration V5 moves
    /// existing rows to the new identity, and a webhook row stored before it is claimed by the
    /// poll that finds its payment, instead of a second record.
    #[test]
    fn v5_moves_recoveries_to_one_identity_and_the_poll_claims_legacy_webhook_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        embedded::migrations::runner()
            .set_grouped(true)
            .set_target(refinery::Target::Version(4))
            .run(&mut conn)
            .unwrap();
        let insert = |key: &str, origin: &str, source: &str, amount: &str, state: &str| {
            conn.execute(
                "INSERT INTO ledger (direction, source_key, loan_id, amount, reference, state, origin, source,
                                     event_at, created_at, updated_at)
                 VALUES ('crego', ?1, 'L1', ?2, 'CG-' || ?1, ?3, ?4, ?5, 1, 1, 1)",
                params![key, amount, state, origin, source],
            )
            .unwrap();
        };
        // Found by the poll (payment 41), and one only a webhook told of (₹777, sent already).
        insert(
            "B:L1:500:2026-11-02T10:00:00",
            "credgenics_poll",
            r#"{"payment_id": 41, "amount_recovered": 500, "payment_reference_number": "", "created": "2026-11-02 10:00:00"}"#,
            "500",
            "done",
        );
        // The same payment 41 again under another old key (its amount corrected at Credgenics):
        // the migration must not trip on the unique key.
        insert(
            "B:L1:501:2026-11-02T10:00:00",
            "credgenics_poll",
            r#"{"payment_id": 41, "amount_recovered": 501, "payment_reference_number": "", "created": "2026-11-02 10:00:00"}"#,
            "501",
            "done",
        );
        insert(
            "B:L1:777:2026-11-03T09:00:00",
            "credgenics_webhook",
            r#"{"loan_id": "L1", "amount_recovered": 777, "reference_number": "", "recovery_date": "2026-11-03 09:00:00"}"#,
            "777",
            "done",
        );
        insert(
            "B:L1:REF-9",
            "credgenics_webhook",
            r#"{"loan_id": "L1", "amount_recovered": 10, "reference_number": "REF-9"}"#,
            "10",
            "done",
        );
        migrate(&mut conn).unwrap();
        let store = Store::wrap(conn, PathBuf::from(":memory:"), None);
        assert!(
            store.ledger_by_key("B:L1:pid:41").unwrap().is_some(),
            "poll row keyed by payment_id"
        );
        assert!(
            store.ledger_by_key("B:L1:REF-9").unwrap().is_some(),
            "reference keys unchanged"
        );
        // The poll now finds the ₹777 payment (payment 42, no reference): it is that webhook row.
        let row = NewLedgerRow {
            direction: Direction::ToCrego,
            source_key: "B:L1:pid:42".into(),
            loan_id: "L1".into(),
            amount: Decimal::from(777),
            reference: "CG-new".into(),
            allocation_month: None,
            payload: None,
            origin: "credgenics_poll",
            source: serde_json::json!({"payment_id": 42}),
            event_at: 2.0,
            dead_reason: None,
        };
        assert_eq!(store.record_poll(&[row], &[], 3.0).unwrap(), 0, "no second row");
        let claimed = store.ledger_by_key("B:L1:pid:42").unwrap().unwrap();
        assert_eq!(
            claimed.state,
            LedgerState::Done,
            "the row already written, not a new one"
        );
        assert_eq!(store.ledger_for_loan(Direction::ToCrego, "L1").unwrap().len(), 4);
    }
}
