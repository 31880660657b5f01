//! `backup FILE`: the state copied with SQLite's online backup, safe while the daemon runs
//! ([`crate::store::Store::backup_to`] says how).

use std::path::Path;

use crate::app::report::{AppError, Report};
use crate::store::Store;

/// `backup FILE`: the state copied with SQLite's online backup (the daemon may be running).
pub fn backup(state: &Path, file: &Path) -> Result<Report, AppError> {
    if !state.exists() {
        return Err(AppError::Failed(format!(
            "no state file at {} (state.path): nothing to back up",
            state.display()
        )));
    }
    let store = Store::open_read_only(state).map_err(|e| AppError::Failed(e.to_string()))?;
    let summary = store
        .backup_to(file)
        .map_err(|e| AppError::Failed(format!("backup not written: {e}")))?;
    println!(
        "backup written: {} ({} loans, {} ledger rows, {} bytes, mode 0600)",
        file.display(),
        summary.loans,
        summary.ledger_rows,
        summary.bytes
    );
    println!(
        "restore: stop the service, copy it to {}, remove any {0}-wal and {0}-shm beside it, start the service",
        state.display()
    );
    Ok(Report::Clear)
}
