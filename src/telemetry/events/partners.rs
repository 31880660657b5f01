//! Log events (and their metrics) of the partners' clients and the mapping.

use std::fmt::Display;
use std::time::Duration;

use crate::telemetry::mask::masked;
use crate::telemetry::metric;

/// The `target` of these lines (`RUST_LOG=ccsync::partners=debug` selects them).
const TARGET: &str = "ccsync::partners";

/// A request failed in a way worth another try, after `delay`.
pub struct HttpRetry<'a> {
    pub api: &'static str,
    pub method: &'a str,
    pub path: &'a str,
    pub error: &'a dyn Display,
    pub delay: Duration,
}

impl HttpRetry<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::HTTP_RETRIES, "api" => self.api).increment(1);
        tracing::warn!(target: TARGET, event = "http_retry", api = self.api, method = self.method, path = self.path,
            error = %masked(self.error), delay_ms = self.delay.as_millis() as u64, "retrying request");
    }
}

pub fn token_retry(api: &dyn Display, attempt: u32, error: &dyn Display) {
    tracing::warn!(target: TARGET, event = "token_retry", api = %api, attempt, error = %masked(error), "token endpoint busy; trying again");
}

/// An expression overran `mapping.budget_ms`; its worker holds a core until it ends.
pub struct MappingRunaway<'a> {
    pub field: &'a str,
    pub budget: Duration,
    pub runaways: usize,
}

impl MappingRunaway<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::MAPPING_RUNAWAYS).increment(1);
        tracing::error!(
            target: TARGET, event = "mapping_runaway",
            field = self.field,
            budget_ms = self.budget.as_millis() as u64,
            runaways = self.runaways,
            "a mapping expression overran its budget; its item is a dead letter"
        );
    }
}

/// How long one request took to answer (its headers), whatever the answer.
pub fn request_took(api: &'static str, elapsed: Duration) {
    metrics::histogram!(metric::HTTP_REQUEST_DURATION, "api" => api).record(elapsed.as_secs_f64());
}

/// A partner refused the daemon's credential (after a renewal, where the token is renewable).
pub struct CredentialRefused<'a> {
    pub api: &'static str,
    pub status: u16,
    pub method: &'a str,
    pub path: &'a str,
}

impl CredentialRefused<'_> {
    pub fn emit(self) {
        metrics::counter!(metric::CREDENTIALS_REFUSED, "api" => self.api).increment(1);
        tracing::error!(
            target: TARGET, event = "credential_refused",
            api = self.api,
            status = self.status,
            method = self.method,
            path = self.path,
            "the partner refused the credential; the run stops until it is fixed"
        );
    }
}
