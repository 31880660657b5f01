//! Care of the state file itself: an online backup safe while the daemon runs, and retention
//! of what the file no longer needs (raw payloads and logs of finished work) — never a key that
//! stops a payment or an upload from being sent twice.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::db::{Store, StoreError, create_private, has_table};

/// What a backup holds, read back from the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub loans: u64,
    pub ledger_rows: u64,
    pub bytes: u64,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Ledger rows of finished work whose sent payload was cleared (the row and its key stay).
    pub payloads: u64,
    pub webhook_events: u64,
    pub runs: u64,
    pub credgenics_reads: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.payloads + self.webhook_events + self.runs + self.credgenics_reads
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Copies the state into `dest` with SQLite's online backup API, in one step under a read
    /// transaction: in WAL mode the daemon's writes go on meanwhile, and the copy is the state as
    /// of one commit. The copy is written beside `dest` (0600: it holds personal data), checked
    /// with `PRAGMA integrity_check`, then renamed into place; an existing `dest` is refused.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        if dest.exists() {
            return Err(io(
                dest,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists already; name a new file"),
            ));
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dest.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let result = (|| {
            drop(create_private(&partial).map_err(|e| io(&partial, e))?);
            let mut copy = Connection::open(&partial)?;
            {
                let src = self.read();
                let backup = rusqlite::backup::Backup::new(&src, &mut copy)?;
                // All pages in one step (-1): one read transaction, so one commit's state. A
                // writer holding the file busy (a checkpoint) is waited out, for a minute at most.
                let mut waits = 0;
                loop {
                    match backup.step(-1)? {
                        rusqlite::backup::StepResult::Done => break,
                        rusqlite::backup::StepResult::More => {}
                        _ if waits < 600 => {
                            waits += 1;
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                        other => {
                            return Err(io(
                                &partial,
                                std::io::Error::other(format!("the state stayed locked ({other:?})")),
                            ));
                        }
                    }
                }
            }
            let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            if check != "ok" {
                return Err(io(
                    &partial,
                    std::io::Error::other(format!("the copy fails its integrity check: {check}")),
                ));
            }
            // One file, no -wal beside it: a backup must be a single thing to move around.
            copy.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
            drop(copy);
            // A link, not a rename: it fails if `dest` appeared meanwhile instead of replacing it.
            std::fs::hard_link(&partial, dest).map_err(|e| io(dest, e))?;
            let _ = std::fs::remove_file(&partial);
            summarise(dest)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Every ledger key with its state and amount, in key order (backups and tests compare them).
    pub fn ledger_keys(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT source_key, state, amount FROM ledger ORDER BY source_key")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Retention: for work finished before `cutoff` (epoch seconds), clears the ledger's sent
    /// payloads (delivered rows and dead letters an operator set aside) but for their
    /// `final_status` and deletes raw webhook
    /// bodies, finished run records and kept Credgenics reads. Never deletes a ledger row, a loan,
    /// an allocation or a cursor: those are what stop a second send.
    pub fn prune(&self, cutoff: f64) -> Result<Pruned, StoreError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let pruned = Pruned {
                // A payment's `final_status` stays: flow C reads it from the month's delivered
                // payments so a loan is not sent `Closed` twice (repayments `closed_already`).
                payloads: tx.execute(
                    "UPDATE ledger SET payload =
                            CASE WHEN json_extract(payload, '$.final_status') IS NOT NULL
                                 THEN json_object('final_status', json_extract(payload, '$.final_status'))
                            END
                      WHERE payload IS NOT NULL AND updated_at < ?1
                        AND (state = 'done' OR (state = 'dead' AND ignored_reason IS NOT NULL))
                        AND payload IS NOT json_object('final_status', json_extract(payload, '$.final_status'))",
                    params![cutoff],
                )? as u64,
                webhook_events: tx.execute("DELETE FROM webhook_events WHERE received_at < ?1", params![cutoff])?
                    as u64,
                runs: tx.execute(
                    "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1",
                    params![cutoff],
                )? as u64,
                credgenics_reads: tx.execute("DELETE FROM credgenics_reads WHERE read_at < ?1", params![cutoff])?
                    as u64,
            };
            tx.commit()?;
            Ok(pruned)
        })
    }
}

/// Opens the copy read-only and counts what it holds.
fn summarise(path: &Path) -> Result<BackupSummary, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let count = |table: &str| -> Result<u64, StoreError> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(BackupSummary {
        loans: count("loans")?,
        ledger_rows: count("ledger")?,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    })
}

impl Store {
    /// The Credgenics mode this state belongs to: the one recorded, or `lending` for a state
    /// with loans from before modes were recorded, or `None` for a fresh one.
    pub fn mode(&self) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        // A state from before V8, opened without migrating (a dry run): no mode recorded.
        let recorded: Option<String> = if has_table(&conn, "state_meta")? {
            conn.query_row("SELECT value FROM state_meta WHERE key = 'mode'", [], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        if recorded.is_some() {
            return Ok(recorded);
        }
        let loans: i64 = conn.query_row("SELECT count(*) FROM loans", [], |r| r.get(0))?;
        Ok((loans > 0).then(|| "lending".to_string()))
    }

    /// Records `mode` as this state's, unless it belongs to another: `Err(theirs)` then.
    pub fn claim_mode(&self, mode: &str) -> Result<Result<(), String>, StoreError> {
        if let Some(theirs) = self.mode()?
            && theirs != mode
        {
            return Ok(Err(theirs));
        }
        self.write(|conn| {
            conn.execute(
                "INSERT INTO state_meta (key, value) VALUES ('mode', ?1) ON CONFLICT (key) DO NOTHING",
                params![mode],
            )?;
            Ok(())
        })?;
        Ok(Ok(()))
    }
}
