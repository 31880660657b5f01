//! `doctor`: checks a tenant before go-live with the real config — read-only, bounded to under a
//! minute — and prints a ✓/✗ list with the fix for each ✗ (issue 13). It reads both partners
//! (token exchanges and `GET`s only, never a write), the state folder, the clock, the mapping of
//! the first overdue line against the documented rules, and the webhook listener's address.
//! Exit 0 only when nothing failed; a `!` (warning) does not fail it.

mod checks;
mod local;
mod verdict;

pub(crate) use local::{STATE_FIX, state_writable};
pub use verdict::{Check, Verdict, render};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::app::report::{AppError, Report};
use crate::config;

/// The whole check must answer within a minute: each partner gets one retry at most and a
/// shorter request timeout than the daemon's, so one that does not answer fails its line.
const DEADLINE: Duration = Duration::from_secs(55);
const MAX_RETRIES: u32 = 1;
const MAX_TIMEOUT_SECS: u64 = 10;

/// `doctor` with the config at `path`.
pub async fn run(path: &Path) -> Result<Report, AppError> {
    let mut raw = config::load_raw(Some(path)).map_err(AppError::config)?;
    for (retries, timeout) in [
        (&mut raw.crego.max_retries, &mut raw.crego.timeout_secs),
        (&mut raw.credgenics.max_retries, &mut raw.credgenics.timeout_secs),
    ] {
        *retries = (*retries).min(MAX_RETRIES);
        *timeout = (*timeout).min(MAX_TIMEOUT_SECS);
    }
    let config = Arc::new(
        raw.validate()
            .map_err(|e| AppError::config(config::origin::annotate(Some(path), e)))?,
    );
    let mut list = Vec::new();
    let finished = tokio::time::timeout(DEADLINE, checks::all(config, &mut list)).await;
    if finished.is_err() {
        list.push(Check::fail(
            "deadline",
            format!("the checks did not finish within {} s", DEADLINE.as_secs()),
            "a partner answers too slowly: see the last line above; check the network path to it",
        ));
    }
    print!("{}", render(path, &list));
    Ok(Report::clear_if(list.iter().all(|c| c.verdict != Verdict::Fail)))
}
