//! The sync flows and the cycle that runs them.
//!
//! - [`context`]: what every flow is handed, and why a flow stops.
//! - [`place_loans`]: flow A, overdue Crego lines placed in Credgenics (its choice per line a
//!   pure value: [`place_loans::decide`]).
//! - [`push_repayments`]: flow C, LMS repayments pushed as Credgenics payments.
//! - [`pull_recoveries`]: flow B, Credgenics recoveries (webhook and poll) written as LMS records.
//! - [`deliver`]: effectively-once delivery of the payment ledger, generic over the two
//!   directions ([`deliver::Outbound`]); it depends on no flow.
//! - [`status`]: the `final_status` of a repayment, decided when it is sent.
//! - [`once`]: the `--once` cycle and its exit code.
//!
//! This file only declares and re-exports: a child never imports it back.

pub mod context;
pub mod deliver;
pub mod once;
pub mod place_loans;
pub mod pull_recoveries;
pub mod push_repayments;
pub mod status;

pub use context::{Context, Locks, SyncError};
pub use once::{RunOptions, RunOutcome, RunReport, run_once, unresolved};
pub use place_loans::FlowAStats;
pub use pull_recoveries::{FlowBStats, Poll};
pub use push_repayments::FlowCStats;
