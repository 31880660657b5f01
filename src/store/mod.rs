//! Durable state in SQLite: stream cursors, placed loans, allocation history and runs. All SQL of
//! the crate lives here. The schema is `migrations/*.sql`, applied by refinery at open.
//!
//! The file is created with mode 0600, runs in WAL mode with `synchronous=FULL` (a committed row is
//! on disk before the request it announces is sent), and a lock on the file itself (its inode) keeps a second daemon off the
//! same state.

mod care;
mod credit_line;
mod cursors;
mod db;
mod dead_letters;
mod intake;
mod jobs;
mod ledger;
mod loans;
mod reconcile;
mod types;

#[cfg(test)]
mod tests;

pub use care::{BackupSummary, Pruned};
pub use credit_line::{ClCustomerRow, ClStatus, DrawdownRead, TransactionRow};
pub use db::{Store, StoreError};
pub use ledger::{Direction, LedgerRow, LedgerState, NewLedgerRow, Sending};
pub use types::*;
