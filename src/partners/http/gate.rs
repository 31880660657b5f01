//! What every request to one API passes through, token exchanges included.

use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::error::{Api, ApiError};
use crate::config::ApiLimits;
use crate::telemetry;

/// What every request to one API passes through, token exchanges included: the rate ceiling,
/// the bound on concurrent requests, and the shutdown token that cuts every wait short.
pub struct Gate {
    api: Api,
    limiter: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    cancel: CancellationToken,
}

impl Gate {
    /// Waits for a concurrency slot; `Cancelled` if shutdown comes first.
    pub async fn permit(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(ApiError::Cancelled { api: self.api }),
            p = self.in_flight.acquire() => Ok(p.expect("semaphore never closed")),
        }
    }

    /// Waits for the rate limiter's next slot; `Cancelled` if shutdown comes first. Taken right
    /// before a request leaves, so a request never goes out later than its slot.
    pub async fn pace(&self) -> Result<(), ApiError> {
        if self.limiter.check().is_err() {
            metrics::counter!(telemetry::metric::RATE_LIMIT_WAITS, "api" => self.api.name()).increment(1);
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(ApiError::Cancelled { api: self.api }),
                _ = self.limiter.until_ready() => {}
            }
        }
        Ok(())
    }

    /// Sleeps `d`, or less when shutdown comes: then `Cancelled`.
    pub async fn pause(&self, d: Duration) -> Result<(), ApiError> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(ApiError::Cancelled { api: self.api }),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Gate {
    pub(super) fn new(api: Api, limits: &ApiLimits, cancel: CancellationToken) -> Self {
        // Burst 1: requests are spaced evenly, never bunched above the ceiling. Spaced 2 % wider
        // than the rate itself: a partner counting arrivals in a sliding second sees one request
        // more than the rate whenever the first of a second's worth travels a little slower than
        // the last (seen in the rate-limited benchmark as a rare 429); 2 % is 20 ms of such
        // jitter at any rate, for 2 % of throughput.
        let interval = std::time::Duration::from_secs_f64(1.02 / f64::from(limits.requests_per_second.get()));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(limits.requests_per_second))
            .allow_burst(std::num::NonZeroU32::MIN);
        Self {
            api,
            limiter: RateLimiter::direct(quota),
            in_flight: Semaphore::new(limits.max_in_flight),
            cancel,
        }
    }
}
