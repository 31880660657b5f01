//! The sync flows and the cycle that runs them; each flow decides, then applies.
//!
//! - [`context`]: what every flow is handed, and why a flow stops.
//! - [`loans`]: flow A, overdue Crego lines placed in Credgenics (its choice per line a pure
//!   value: [`loans::decide`]).
//! - [`repayments`]: flow C, LMS repayments pushed as Credgenics payments (`final_status` at send
//!   time: [`repayments::status`]).
//! - [`recoveries`]: flow B, Credgenics recoveries (webhook and poll) written as LMS records.
//! - [`credit_line`]: the three flows in credit-line mode (design §8); [`jobs`]: each job in the
//!   configured mode.
//! - [`once`]: the `--once` cycle and its outcome.
//! - [`retention`]: pruning the state of what finished work no longer needs.
//!
//! Delivery of the payment ledger is [`crate::ledger`]'s: the two payment flows implement its
//! `Outbound`. This file only declares and re-exports: a child never imports it back.

pub mod context;
pub mod credit_line;
pub mod jobs;
pub mod loans;
pub mod once;
pub mod reconcile;
pub mod recoveries;
pub mod repayments;
pub mod retention;

pub use context::{Context, Locks, SyncError};
pub use loans::FlowAStats;
pub use once::{RunOptions, RunOutcome, RunReport, run_once, unresolved};
pub use recoveries::{FlowBStats, Poll};
pub use repayments::FlowCStats;
