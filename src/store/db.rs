//! The state file itself: opening it (0600, WAL, `synchronous=FULL`, the lock on its inode),
//! migrations, the connection and its statement cache, and the store's error.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

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
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let runner = embedded::migrations::runner();
    // Refused before anything runs: a rollback to an older binary must not touch the file.
    let known = runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    let found: Option<i64> = conn
        .query_row("SELECT max(version) FROM refinery_schema_history", [], |r| r.get(0))
        .unwrap_or(None);
    if let Some(found) = found.filter(|f| *f > known) {
        let path = conn.path().map(PathBuf::from).unwrap_or_default();
        return Err(StoreError::NewerSchema { path, found, known });
    }
    runner.set_grouped(true).run(conn)?;
    Ok(())
}

/// More distinct statements than rusqlite's default cache of 16 holds.
const STATEMENT_CACHE: usize = 96;

pub(super) mod embedded {
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
    /// A newer binary migrated the file: this one would misread what it does not know.
    #[error(
        "state file {path} has schema version {found}, newer than this binary knows ({known}): it was \
         used by a newer crego-credgenics-sync; run that version (or restore a backup taken before the upgrade)"
    )]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
}
pub struct Store {
    /// A second, read-only connection to the same file (WAL): reads never queue behind a write's
    /// fsync'd commit. `None` for in-memory, read-only and shared opens, which read on `conn`.
    ///
    /// Declared before `conn` so it is dropped (closed) first: the last connection to close
    /// checkpoints the WAL into the file and removes it, and a read-only one cannot. Closed last,
    /// it left committed state in `<file>-wal`, which an open of the same file by another name
    /// (a hard link) does not read — the hardening test's hard-link round then found an empty
    /// state and placed every loan again.
    reader: Option<Mutex<Connection>>,
    /// The connection every write goes through.
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
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            reader: Some(Mutex::new(reader)),
            ..Self::wrap(conn, path.to_path_buf(), Some(lock))
        })
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

    pub(super) fn wrap(conn: Connection, path: PathBuf, lock: Option<File>) -> Self {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Self {
            conn: Mutex::new(conn),
            reader: None,
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

    /// The connection for a write, held for all of `f`. A write's commit waits on the disk (an
    /// fsync, `synchronous=FULL`) and perhaps on an operator command's lock (the busy timeout),
    /// so it runs with the async runtime's other tasks moved off this thread: a slow disk holds
    /// up the flow that writes, not the webhook or the other jobs.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        crate::runtime::blocking::off_runtime(|| f(&mut self.conn()))
    }

    /// The connection. A panic while it was held does not condemn every later call: each write
    /// is its own transaction, which a panic unwinding through it rolls back (rusqlite's
    /// `Transaction` drop), so the connection is sound to use again.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// The connection for a read: the read-only one when there is one. Each read is its own
    /// statement (autocommit), so it sees every write committed before it began.
    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(reader) => lock(reader),
            None => self.conn(),
        }
    }
}

/// Locks a connection; a poisoned lock only means a task panicked while holding it (see
/// [`Store::conn`]).
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|poisoned| {
        crate::telemetry::events::state_lock_recovered();
        m.clear_poison();
        poisoned.into_inner()
    })
}

/// Makes an existing state file private (0600) if it is not, saying so.
fn tighten(file: &File, path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            crate::telemetry::events::state_file_tightened(path, mode);
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}

pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Whether the state has `table`: operator commands open the file without migrating it (a daemon
/// may be running), so a newer binary can meet a state its daemon has not migrated yet.
pub(super) fn has_table(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
