//! Metric names and their help text, in one place so they cannot drift. All are prefixed
//! `ccsync_`. [`describe`] gives every family its `# HELP`; a name added here without a line
//! there fails the `/metrics` test.

/// Counter, labels `api`, `status` (HTTP status or `error`).
pub const HTTP_REQUESTS: &str = "ccsync_http_requests_total";
/// Histogram, label `api`: seconds from sending a request to its answer's headers.
pub const HTTP_REQUEST_DURATION: &str = "ccsync_http_request_duration_seconds";
/// Counter, label `api`.
pub const HTTP_RETRIES: &str = "ccsync_http_retries_total";
/// Counter, label `api`: requests that had to wait for the rate ceiling.
pub const RATE_LIMIT_WAITS: &str = "ccsync_rate_limit_waits_total";
/// Counter, label `api`: the partner refused the daemon's credential (401/403).
pub const CREDENTIALS_REFUSED: &str = "ccsync_credentials_refused_total";
/// Histogram, label `task` (the job's name: `job` is the label Prometheus sets to the scrape
/// job, which would rename ours to `exported_job`).
pub const JOB_DURATION: &str = "ccsync_job_duration_seconds";
/// Counter, labels `task`, `outcome` (`ok` / `error`).
pub const JOB_RUNS: &str = "ccsync_job_runs_total";
/// Gauge, label `task`: epoch seconds of the last successful run (restored from the state at
/// start, so a staleness alert does not go quiet after a restart).
pub const JOB_LAST_SUCCESS: &str = "ccsync_job_last_success_timestamp_seconds";
/// Gauge, labels `version`, `commit`: always 1.
pub const BUILD_INFO: &str = "ccsync_build_info";
/// Gauge, label `state`.
pub const LOANS: &str = "ccsync_loans";
/// Counter: loans placed at Credgenics (first upload or a new month's allocation).
pub const LOANS_PLACED: &str = "ccsync_loans_placed_total";
/// Counter: placed loans whose changes were sent.
pub const LOANS_UPDATED: &str = "ccsync_loans_updated_total";
/// Counter: loans Credgenics (or the preflight) refused.
pub const LOANS_REJECTED: &str = "ccsync_loans_rejected_total";
/// Counter: lines set aside as dead letters (unreadable or unmappable).
pub const LINES_DEAD: &str = "ccsync_lines_dead_total";
/// Gauge, labels `direction`, `state`.
pub const LEDGER_ROWS: &str = "ccsync_ledger_rows";
/// Counter, label `direction`: payments delivered.
pub const PAYMENTS_DELIVERED: &str = "ccsync_payments_delivered_total";
/// Counter, label `direction`: money delivered, in paise (a counter is a whole number).
pub const MONEY_DELIVERED: &str = "ccsync_payments_delivered_paise_total";
/// Counter, label `direction`: payments that became dead letters (refused or unmappable).
pub const PAYMENTS_DEAD: &str = "ccsync_payments_dead_total";
/// Gauge, label `stream`: seconds since the stream was last read to its end.
pub const CURSOR_LAG: &str = "ccsync_cursor_lag_seconds";
/// Counter, label `outcome`.
pub const WEBHOOKS: &str = "ccsync_webhooks_total";
/// Counter, label `reason`: webhook requests refused or kept as dead letters.
pub const WEBHOOK_REJECTIONS: &str = "ccsync_webhook_rejections_total";
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

/// Buckets of the request histogram, seconds: partner answers take tens of milliseconds to the
/// request timeout.
pub const REQUEST_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets of the job histogram, seconds: a quiet cycle is under a second, a first full
/// placement of a large book takes hours.
pub const JOB_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0];

/// Every family with its help text.
pub const HELP: &[(&str, &str)] = &[
    (
        HTTP_REQUESTS,
        "Requests sent to a partner, by API and HTTP status (`error`: no answer).",
    ),
    (
        HTTP_REQUEST_DURATION,
        "Seconds from sending a request to its answer, by API.",
    ),
    (HTTP_RETRIES, "Requests tried again after a retryable failure, by API."),
    (
        RATE_LIMIT_WAITS,
        "Requests that waited for the configured rate ceiling, by API.",
    ),
    (
        CREDENTIALS_REFUSED,
        "Requests a partner refused for the credential (401/403), by API.",
    ),
    (
        JOB_DURATION,
        "Seconds a scheduled job's run took, by task (the job's name).",
    ),
    (
        JOB_RUNS,
        "Scheduled job runs by task (the job's name) and outcome (ok/error).",
    ),
    (
        JOB_LAST_SUCCESS,
        "Epoch seconds of the job's last successful run (from the state at start).",
    ),
    (BUILD_INFO, "The running build: version and commit labels; always 1."),
    (LOANS, "Loans in the state by state."),
    (
        LOANS_PLACED,
        "Loans placed at Credgenics (an upload for a new allocation month).",
    ),
    (LOANS_UPDATED, "Placed loans whose changes were sent to Credgenics."),
    (
        LOANS_REJECTED,
        "Loans refused by Credgenics or by the preflight of its documented rules.",
    ),
    (
        LINES_DEAD,
        "Credit lines set aside as dead letters (unreadable or unmappable).",
    ),
    (LEDGER_ROWS, "Payment ledger rows by direction and state."),
    (
        PAYMENTS_DELIVERED,
        "Payments delivered, by direction (credgenics: repayments; crego: recoveries).",
    ),
    (MONEY_DELIVERED, "Money delivered in paise, by direction."),
    (
        PAYMENTS_DEAD,
        "Payments that became dead letters (refused or unmappable), by direction.",
    ),
    (CURSOR_LAG, "Seconds since the change stream was last read to its end."),
    (WEBHOOKS, "Webhook requests answered, by outcome."),
    (
        WEBHOOK_REJECTIONS,
        "Webhook requests refused (token, body) or kept as dead letters, by reason.",
    ),
    (
        RECONCILE_FINDINGS,
        "Findings of the latest finished reconcile run, by kind.",
    ),
    (
        RECONCILE_LOANS_CHECKED,
        "Loans the latest finished reconcile run checked.",
    ),
    (
        RECONCILE_LOANS_UNREADABLE,
        "Loans the latest reconcile run could not read on one side.",
    ),
    (
        RECONCILE_MONEY_DIFFERENCE,
        "Rupees between the LMS and Credgenics totals of the checked loans.",
    ),
    (
        RECONCILE_LAST_COMPLETED,
        "Epoch seconds the latest reconcile run finished.",
    ),
    (MAPPING_RUNAWAYS, "Mapping expressions that overran mapping.budget_ms."),
];

/// Gives every family its help text (on the installed recorder).
pub fn describe() {
    for (name, help) in HELP {
        // The kind is the exporter's to print; a description is the same call for all three.
        metrics::describe_gauge!(*name, *help);
    }
}

/// Creates the counters an alert takes `increase()` of at 0, for every label value: a series
/// that appears only at its first increment hides that increment from `increase()`, so the first
/// dead letter after a restart would never alert.
pub fn zero_counters() {
    for api in ["crego", "credgenics"] {
        metrics::counter!(CREDENTIALS_REFUSED, "api" => api).increment(0);
    }
    for direction in ["credgenics", "crego"] {
        metrics::counter!(PAYMENTS_DEAD, "direction" => direction).increment(0);
        metrics::counter!(PAYMENTS_DELIVERED, "direction" => direction).increment(0);
        metrics::counter!(MONEY_DELIVERED, "direction" => direction).increment(0);
    }
    for reason in [
        "token",
        "body_not_json",
        "no_loan_id",
        "body_too_large",
        "body_timeout",
        "payment_dead_letter",
    ] {
        metrics::counter!(WEBHOOK_REJECTIONS, "reason" => reason).increment(0);
    }
    for name in [
        LOANS_PLACED,
        LOANS_UPDATED,
        LOANS_REJECTED,
        LINES_DEAD,
        MAPPING_RUNAWAYS,
    ] {
        metrics::counter!(name).increment(0);
    }
}
