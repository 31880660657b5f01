//! Metric names, in one place so they cannot drift. All are prefixed `ccsync_`.

/// Counter, labels `api`, `status` (HTTP status or `error`).
pub const HTTP_REQUESTS: &str = "ccsync_http_requests_total";
/// Counter, label `api`.
pub const HTTP_RETRIES: &str = "ccsync_http_retries_total";
/// Counter, label `api`: requests that had to wait for the rate ceiling.
pub const RATE_LIMIT_WAITS: &str = "ccsync_rate_limit_waits_total";
/// Histogram, label `job`.
pub const JOB_DURATION: &str = "ccsync_job_duration_seconds";
/// Counter, labels `job`, `outcome` (`ok` / `error`).
pub const JOB_RUNS: &str = "ccsync_job_runs_total";
/// Gauge, label `job`: epoch seconds of the last successful run.
pub const JOB_LAST_SUCCESS: &str = "ccsync_job_last_success_timestamp_seconds";
/// Gauge, label `state`.
pub const LOANS: &str = "ccsync_loans";
/// Gauge, labels `direction`, `state`.
pub const LEDGER_ROWS: &str = "ccsync_ledger_rows";
/// Gauge, label `stream`: seconds since the stream was last read to its end.
pub const CURSOR_LAG: &str = "ccsync_cursor_lag_seconds";
/// Counter, label `outcome`.
pub const WEBHOOKS: &str = "ccsync_webhooks_total";
/// Gauge, label `kind`: findings of the latest finished reconcile run.
pub const RECONCILE_FINDINGS: &str = "ccsync_reconcile_findings";
/// Gauge: loans the latest finished reconcile run checked.
pub const RECONCILE_LOANS_CHECKED: &str = "ccsync_reconcile_loans_checked";
/// Gauge: loans one side of which it could not read.
pub const RECONCILE_LOANS_UNREADABLE: &str = "ccsync_reconcile_loans_unreadable";
/// Gauge: |LMS total − Credgenics total| of the loans it checked, rupees.
pub const RECONCILE_MONEY_DIFFERENCE: &str = "ccsync_reconcile_money_difference";
/// Gauge: epoch seconds the latest reconcile run finished.
pub const RECONCILE_LAST_COMPLETED: &str = "ccsync_reconcile_last_completed_timestamp_seconds";
/// Mapping expressions that overran `mapping.budget_ms` (each holds a core until restart).
pub const MAPPING_RUNAWAYS: &str = "ccsync_mapping_runaways_total";
