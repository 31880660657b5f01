//! Every log event the daemon emits, in one place: its name, level, fields and message, and —
//! where it has one — its metric, emitted by the same call so the two cannot drift (vector's
//! `internal_events`). Call sites name an event; they do not spell `event = "…"` themselves.
//!
//! Text that may quote personal data — partner reasons, and every error's message (a partner's
//! answer can be quoted in it) — is masked here, once, by value (`mask_digits`).
//!
//! One file per part of the daemon; every event is re-exported here, so call sites say
//! `events::loan_placed` wherever it is defined.

mod credit_line;
mod daemon;
mod flows;
mod jobs;
mod partners;
mod payments;

pub use credit_line::*;
pub use daemon::*;
pub use flows::*;
pub use jobs::*;
pub use partners::*;
pub use payments::*;
