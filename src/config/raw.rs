//! The raw form: what the file and the environment say (serde, unknown keys refused), with
//! each key's default.

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

pub use super::filters::RawCregoFilters;
pub use super::raw_mapping::RawMapping;

use super::error::{ConfigError, Problem};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub crego: RawCrego,
    #[serde(default)]
    pub credgenics: RawCredgenics,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub webhook: RawWebhook,
    #[serde(default)]
    pub mapping: RawMapping,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub admin: RawAdmin,
}

/// The operators' listener: `/metrics`, `/healthz`, `/readyz` — apart from the webhook's, which
/// faces Credgenics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9851".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    #[serde(default = "d_grace")]
    pub shutdown_grace_secs: u64,
    #[serde(default = "d_stuck")]
    pub stuck_after_secs: u64,
    /// A running job that has made no progress for this long stops the watchdog being fed.
    #[serde(default = "d_job_stall")]
    pub job_stall_secs: u64,
}

fn d_job_stall() -> u64 {
    900
}

impl Default for RawDaemon {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all daemon keys have defaults")
    }
}

fn d_grace() -> u64 {
    30
}
fn d_stuck() -> u64 {
    7200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    pub path: String,
    /// Days raw payloads and logs of finished work are kept (0: forever).
    pub retain_days: u32,
}

impl Default for RawState {
    fn default() -> Self {
        Self {
            path: "/var/lib/crego-credgenics-sync/state.db".into(),
            retain_days: 90,
        }
    }
}

/// Limits and timeouts shared by both API sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCrego {
    #[serde(default)]
    pub base_url: String,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    /// Instead of a static token: credentials exchanged at `token_path`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    #[serde(default = "d_crego_token_path")]
    pub token_path: String,
    #[serde(default = "d_crego_refresh_path")]
    pub refresh_path: String,
    #[serde(default = "d_crego_rps")]
    pub requests_per_second: u32,
    #[serde(default = "d_in_flight")]
    pub max_in_flight: u32,
    #[serde(default = "d_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "d_retries")]
    pub max_retries: u32,
    #[serde(default = "d_max_response")]
    pub max_response_bytes: u64,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "d_max_retry_after")]
    pub max_retry_after_secs: u64,
    #[serde(default = "d_page_size")]
    pub page_size: u32,
    #[serde(default = "d_line_details_path")]
    pub line_details_path: String,
    #[serde(default = "d_lead_path")]
    pub lead_path: String,
    #[serde(default = "d_programs_path")]
    pub programs_path: String,
    #[serde(default = "d_records_path")]
    pub records_path: String,
    /// Credit-line mode: a line's loans and topups (design §8; the documents give no shape).
    #[serde(default = "d_line_loans_path")]
    pub line_loans_path: String,
    #[serde(default = "d_line_topups_path")]
    pub line_topups_path: String,
    /// The list filters' parameter names (design §5: the documents do not name them).
    #[serde(default)]
    pub filters: RawCregoFilters,
    /// Statuses with which a read (lead, programs) says Crego does not have the thing.
    #[serde(default = "d_cg_absent_statuses")]
    pub absent_statuses: Vec<u16>,
    /// Text a non-404 absent answer's body must hold (case-insensitive).
    pub absent_message: Option<String>,
}

impl Default for RawCrego {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all crego keys have defaults")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredgenics {
    #[serde(default)]
    pub base_url: String,
    pub auth_token: Option<String>,
    pub auth_token_file: Option<String>,
    /// Instead of a static token: client credentials exchanged at `token_url`.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    /// Where the exchange is (absolute): by default the documented
    /// `POST /user/public/access-token` at the root of `base_url`'s host, not under `/recovery`.
    pub token_url: Option<String>,
    /// The exchange's path under `base_url` instead (what `token_path` meant before `token_url`).
    pub token_path: Option<String>,
    /// The token lifetime asked for at the exchange (`token_expiry_duration`); Credgenics'
    /// default (900 s) when unset.
    pub token_lifetime_secs: Option<u32>,
    pub company_id: Option<String>,
    #[serde(default = "d_cg_rps")]
    pub requests_per_second: u32,
    #[serde(default = "d_in_flight")]
    pub max_in_flight: u32,
    #[serde(default = "d_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "d_retries")]
    pub max_retries: u32,
    #[serde(default = "d_max_response")]
    pub max_response_bytes: u64,
    #[serde(default)]
    pub allow_insecure_http: bool,
    #[serde(default = "d_max_retry_after")]
    pub max_retry_after_secs: u64,
    #[serde(default = "d_amount_decimals")]
    pub amount_decimals: u32,
    /// `lending` (a loan per line) or `credit_line` (design §8: the line a customer, each
    /// overdue drawdown a transaction).
    #[serde(default = "d_mode")]
    pub mode: String,
    /// Upload, update and read a loan (`{loan_id}` is replaced); under `base_url`.
    #[serde(default = "d_cg_loan_path")]
    pub loan_path: String,
    /// Add a payment to a loan's allocation (`{loan_id}` is replaced).
    #[serde(default = "d_cg_payments_path")]
    pub payments_path: String,
    /// Credit-line mode: update a transaction (`{client_customer_id}` and `{transaction_id}` are
    /// replaced). Uploads, customer reads and payments use `loan_path` and `payments_path` with
    /// the transaction or customer id, as the Credit Line APIs document them.
    #[serde(default = "d_cg_transaction_path")]
    pub transaction_path: String,
    /// The statuses with which `GET` of a loan says Credgenics does not have it (design §5
    /// assumes 404). A look-up that gets one reads "absent"; any other refusal keeps an in-doubt
    /// upload in doubt.
    #[serde(default = "d_cg_absent_statuses")]
    pub absent_statuses: Vec<u16>,
    /// Text a non-404 absent answer's body must hold (case-insensitive), e.g. "Loan not found".
    pub absent_message: Option<String>,
    /// Decimals of a payment's `amount_recovered` (documented as an integer); `amount_decimals`
    /// when unset. 0 sends whole rupees.
    pub payment_amount_decimals: Option<u32>,
    /// `final_status` values allowed beyond the documented `Closed` and `Partially Recovered`.
    #[serde(default)]
    pub extra_final_statuses: Vec<String>,
}

impl Default for RawCredgenics {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all credgenics keys have defaults")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    #[serde(default = "d_timezone")]
    pub timezone: String,
    #[serde(default = "d_min_dpd")]
    pub min_dpd: i64,
    #[serde(default = "d_overlap")]
    pub cursor_overlap_secs: u64,
    #[serde(default = "d_retry_base")]
    pub retry_base_secs: u64,
    #[serde(default = "d_retry_max")]
    pub retry_max_secs: u64,
    #[serde(default = "d_line_wait")]
    pub line_wait_secs: u64,
    #[serde(default = "d_max_lookups")]
    pub max_lookups: u32,
    #[serde(default)]
    pub schedules: RawSchedules,
}

impl Default for RawSync {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all sync keys have defaults")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedules {
    #[serde(default = "d_place_loans")]
    pub place_loans: String,
    #[serde(default = "d_push_repayments")]
    pub push_repayments: String,
    #[serde(default = "d_poll_recoveries")]
    pub poll_recoveries: String,
    #[serde(default = "d_reconcile")]
    pub reconcile: String,
}

impl Default for RawSchedules {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all schedule keys have defaults")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    #[serde(default = "d_listen")]
    pub listen: String,
    pub token: Option<String>,
    pub token_file: Option<String>,
    /// The largest recovery taken from Credgenics (webhook or poll), rupees.
    #[serde(default = "d_max_amount")]
    pub max_amount: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    #[serde(default = "d_max_connections")]
    pub max_connections: u32,
    /// A connection on which nothing is read or written for this long is closed (idle
    /// keep-alives, half-sent requests).
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// The public address (https) that reaches `listen` from Credgenics; `doctor` prints the
    /// webhook URL from it.
    pub public_url: Option<String>,
}

fn d_max_connections() -> u32 {
    512
}

fn d_idle_timeout() -> u64 {
    15
}

impl Default for RawWebhook {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all webhook keys have defaults")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default = "d_log_level")]
    pub level: String,
    #[serde(default = "d_log_format")]
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all log keys have defaults")
    }
}

fn d_crego_rps() -> u32 {
    10
}
fn d_cg_rps() -> u32 {
    5
}
fn d_in_flight() -> u32 {
    4
}
fn d_timeout() -> u64 {
    30
}
fn d_connect_timeout() -> u64 {
    10
}
fn d_retries() -> u32 {
    6
}
fn d_page_size() -> u32 {
    100
}
fn d_mode() -> String {
    "lending".into()
}
fn d_amount_decimals() -> u32 {
    2
}
/// The seed document's paths (`api-docs/credgenics-api.txt`, under `/recovery`); the newer
/// public profile lists `/v1/loan/{loan_id}` instead, which a tenant on it sets here.
fn d_cg_loan_path() -> String {
    "/loan/{loan_id}".into()
}
fn d_cg_transaction_path() -> String {
    "/transaction/{client_customer_id}/{transaction_id}".into()
}
fn d_cg_payments_path() -> String {
    "/payments/{loan_id}".into()
}
fn d_cg_absent_statuses() -> Vec<u16> {
    vec![404]
}
fn d_line_details_path() -> String {
    "/v1/lms/line-details/".into()
}
fn d_lead_path() -> String {
    "/v1/crm/leads/{lead_id}/".into()
}
fn d_programs_path() -> String {
    "/v1/crm/leads/{lead_id}/programs/".into()
}
fn d_line_loans_path() -> String {
    "/v1/lms/loans/".into()
}
fn d_line_topups_path() -> String {
    "/v1/lms/topups/".into()
}
fn d_records_path() -> String {
    "/v1/lms/records/".into()
}
fn d_timezone() -> String {
    "Asia/Kolkata".into()
}
fn d_min_dpd() -> i64 {
    1
}
fn d_overlap() -> u64 {
    300
}
fn d_crego_token_path() -> String {
    "/v1/auth/token/".into()
}
fn d_crego_refresh_path() -> String {
    "/v1/auth/token/refresh/".into()
}
fn d_retry_base() -> u64 {
    30
}
fn d_retry_max() -> u64 {
    3600
}

fn d_max_retry_after() -> u64 {
    60
}

fn d_max_amount() -> u64 {
    100_000_000
}

fn d_max_response() -> u64 {
    16 << 20
}

fn d_line_wait() -> u64 {
    900
}

fn d_max_lookups() -> u32 {
    10
}
fn d_place_loans() -> String {
    "0 */15 * * * *".into()
}
fn d_push_repayments() -> String {
    "0 */5 * * * *".into()
}
fn d_poll_recoveries() -> String {
    "0 30 1 * * *".into()
}
fn d_reconcile() -> String {
    "0 0 2 * * *".into()
}
fn d_listen() -> String {
    "127.0.0.1:8085".into()
}
fn d_log_level() -> String {
    "info".into()
}
fn d_log_format() -> String {
    "auto".into()
}

impl RawConfig {
    /// Parses a TOML text (no environment), for the demo and the tests.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Toml::string(text)).extract::<RawConfig>().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| Problem {
                        key: e.path.join("."),
                        message: e.kind.to_string(),
                    })
                    .collect(),
            )
        })
    }
}
