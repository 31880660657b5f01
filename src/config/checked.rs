//! The checked form every other module reads: URLs parsed, cron compiled, secrets read, the
//! mapping compiled.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::mapping::FieldSet;
use crate::mapping::link::Links;
pub use crate::partners::http::absent::Absent;

/// Rate, concurrency, timeout and retry settings of one partner API.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    pub requests_per_second: NonZeroU32,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: usize,
    /// The largest answer read; a larger one is an error, never held whole in memory.
    pub max_response_bytes: u64,
    /// The longest `Retry-After` honoured: a partner asking for an hour does not hang a run.
    pub max_retry_after: Duration,
}

#[derive(Debug)]
pub struct CregoConfig {
    pub base_url: url::Url,
    pub credential: Credential,
    pub limits: ApiLimits,
    pub page_size: u32,
    pub line_details_path: String,
    pub lead_path: String,
    pub programs_path: String,
    pub records_path: String,
    /// Credit-line mode: a line's loans and topups, listed with `?account=` (empty: not read).
    pub line_loans_path: String,
    pub line_topups_path: String,
    pub filters: CregoFilters,
    /// Which answers to a read mean "Crego does not have it".
    pub absent: Absent,
}

/// The Crego list filters' parameter names (`[crego.filters]`).
#[derive(Debug, Clone)]
pub struct CregoFilters {
    pub updated_since: String,
    pub ordering: String,
    pub record_type: String,
    pub utr: String,
    pub account: String,
}

#[derive(Debug)]
pub struct CredgenicsConfig {
    pub base_url: url::Url,
    pub credential: Credential,
    pub company_id: Option<String>,
    pub limits: ApiLimits,
    pub amount_decimals: u32,
    /// `credgenics.mode`: which Credgenics APIs the tenant is set up for.
    pub mode: CredgenicsMode,
    /// `{loan_id}` is replaced by the loan id, escaped as one path segment.
    pub loan_path: String,
    pub payments_path: String,
    /// Credit-line mode's Update Transaction path.
    pub transaction_path: String,
    /// Which answers to `GET` loan mean "not there" (404 by default).
    pub absent: Absent,
    /// Decimals of `amount_recovered` in a payment.
    pub payment_amount_decimals: u32,
    /// `final_status` values allowed beyond the documented two.
    pub extra_final_statuses: Vec<String>,
}

#[derive(Debug)]
pub struct Schedules {
    pub place_loans: croner::Cron,
    pub push_repayments: croner::Cron,
    pub poll_recoveries: croner::Cron,
    pub reconcile: croner::Cron,
}

#[derive(Debug)]
pub struct SyncConfig {
    pub timezone: jiff::tz::TimeZone,
    pub min_dpd: i64,
    pub cursor_overlap_secs: f64,
    /// Delay before a payment that failed unsent is tried again, doubling per attempt up to max.
    pub retry_base_secs: f64,
    pub retry_max_secs: f64,
    /// How long a repayment that may pay a loan off waits for a read of its line that reflects it
    /// (design §1C), seconds.
    pub line_wait_secs: f64,
    /// Failed look-ups of an in-doubt upload before it becomes a dead letter (design §2.7).
    pub max_lookups: u32,
    pub schedules: Schedules,
}

#[derive(Debug)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub token: Option<SecretString>,
    /// The largest recovery taken from Credgenics (webhook or poll): a larger one is a dead
    /// letter, never written into the LMS.
    pub max_amount: rust_decimal::Decimal,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// What reaches `listen` from outside (`doctor` prints the webhook URL from it).
    pub public_url: Option<url::Url>,
}

#[derive(Debug)]
pub struct Mapping {
    pub loan: FieldSet,
    pub default: FieldSet,
    pub payment: FieldSet,
    pub record: FieldSet,
    /// Credit-line mode: a drawdown as a transaction ([`crate::mapping::DEFAULT_TRANSACTION`]).
    pub transaction: FieldSet,
    pub link: Links,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

pub use crate::telemetry::LogFormat;

/// How a client authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A token issued once (Crego bearer token, Credgenics `authenticationtoken`).
    Static(SecretString),
    /// An id and a secret exchanged for expiring tokens at `token_path` (refreshed at
    /// `refresh_path` when the partner issues refresh tokens).
    Exchange {
        id: String,
        secret: SecretString,
        token_path: String,
        /// The exchange's absolute URL; `None`: `token_path` under the base URL.
        token_url: Option<url::Url>,
        refresh_path: Option<String>,
        /// The lifetime asked for (Credgenics' `token_expiry_duration`), seconds.
        lifetime_secs: Option<u32>,
    },
}

/// Which Credgenics APIs a tenant is set up for (design §8); a state file belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredgenicsMode {
    /// A loan per Crego line (Upload Loan, Update Payment).
    Lending,
    /// The line a customer, each overdue drawdown a transaction (the Credit Line APIs).
    CreditLine,
}

impl CredgenicsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lending => "lending",
            Self::CreditLine => "credit_line",
        }
    }
}

/// The validated configuration the daemon runs on.
#[derive(Debug)]
pub struct Config {
    pub state_path: PathBuf,
    /// `[state] retain_days`: raw payloads and logs of work finished this long ago are pruned
    /// (0: never).
    pub retain_days: u32,
    pub crego: CregoConfig,
    pub credgenics: CredgenicsConfig,
    pub sync: SyncConfig,
    pub webhook: WebhookConfig,
    pub mapping: Mapping,
    pub log: LogConfig,
    pub daemon: DaemonConfig,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How long SIGTERM waits for the in-flight batch before exiting anyway.
    pub shutdown_grace: Duration,
    /// `/readyz` fails when a stream has not been read to its end for this long.
    pub stuck_after_secs: f64,
    /// A running job silent for this long (no page, no item) withholds the watchdog.
    pub job_stall: Duration,
    /// `[admin] listen`: where `/metrics`, `/healthz` and `/readyz` are served.
    pub admin_listen: SocketAddr,
}
