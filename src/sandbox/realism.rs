//! The realistic mode of the sandbox (design §7): partners as untidy as real ones.
//!
//! - The LMS moves a line's dues some seconds after it books a repayment record, not in the same
//!   call ([`Realism::line_lag`]); the record is settled then (`settled_at`, null until it is).
//! - Repayments booked on one account close together share one `date` (a bulk upload stamps the
//!   value date), so "latest" needs its tie-breaks.
//! - Items change while a change stream is being paged: during a list request, an item already
//!   listed before the requested page is updated (it moves to the end of the `updated_at` order
//!   and every later item moves one place back).
//! - `payment_history` entries are in the documented shape (no `recovery_date`, references often
//!   empty): see `fake_credgenics::loan_view`.
//! - Token endpoints answer 429 (with `Retry-After`) or 503 now and then.
//!
//! Everything is seeded: the same seed, the same untidiness.

use std::collections::HashMap;
use std::time::Instant;

use rand::SeedableRng;

pub use super::spec::Realism;
use rust_decimal::Decimal;

/// The realistic mode's moving parts, kept in the sandbox state.
#[derive(Debug)]
pub(crate) struct RealismState {
    pub spec: Realism,
    pub(crate) rng: rand::rngs::StdRng,
    /// Line moves the LMS has still to make: (when, borrower-program, repaid amount, record id).
    pub(crate) pending_moves: Vec<(Instant, String, Decimal, String)>,
    /// Per account, the last repayment booked: (when booked, its `date`).
    pub(crate) last_repayment: HashMap<String, (f64, f64)>,
    /// Token exchanges asked per API.
    pub(crate) token_requests: HashMap<&'static str, u64>,
    /// Items updated while a stream was being listed.
    pub touches: u64,
}

impl RealismState {
    pub fn new(spec: Realism) -> Self {
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(spec.seed),
            spec,
            pending_moves: Vec::new(),
            last_repayment: HashMap::new(),
            token_requests: HashMap::new(),
            touches: 0,
        }
    }
}

/// Which change stream a list request reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listed {
    LineDetails,
    Records,
}
