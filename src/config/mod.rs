//! Configuration: the TOML file plus `CCSYNC_<SECTION>__<KEY>` environment overrides (figment),
//! deserialised into [`RawConfig`] (unknown keys rejected), then [`RawConfig::validate`] produces
//! the checked [`Config`] — parsed URLs, time zone, cron schedules, secrets read from `*_file`,
//! compiled mapping — or every problem found, each naming its key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

use crate::mapping::{self, FieldSet};

/// One problem with the configuration, named by its dotted key.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found; `Display` lists them one per line.
#[derive(Debug)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Raw form: what the file and the environment say.

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
}

impl Default for RawState {
    fn default() -> Self {
        Self {
            path: "/var/lib/crego-credgenics-sync/state.db".into(),
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
    /// Instead of a static token: client credentials exchanged at `token_path`.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    #[serde(default = "d_cg_token_path")]
    pub token_path: String,
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
pub struct RawMapping {
    /// Wall time one expression may take for one item before the item is a dead letter.
    #[serde(default = "d_budget_ms")]
    pub budget_ms: u64,
    #[serde(default)]
    pub loan: BTreeMap<String, String>,
    #[serde(default)]
    pub default: BTreeMap<String, String>,
    #[serde(default)]
    pub payment: BTreeMap<String, String>,
    #[serde(default)]
    pub record: BTreeMap<String, String>,
}

fn d_budget_ms() -> u64 {
    mapping::budget::DEFAULT_BUDGET.as_millis() as u64
}

impl Default for RawMapping {
    fn default() -> Self {
        Self {
            budget_ms: d_budget_ms(),
            loan: BTreeMap::new(),
            default: BTreeMap::new(),
            payment: BTreeMap::new(),
            record: BTreeMap::new(),
        }
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
fn d_amount_decimals() -> u32 {
    2
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
fn d_cg_token_path() -> String {
    "/user/public/access-token".into()
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

// ---------------------------------------------------------------------------------------------
// Checked form.

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
}

#[derive(Debug)]
pub struct CredgenicsConfig {
    pub base_url: url::Url,
    pub credential: Credential,
    pub company_id: Option<String>,
    pub limits: ApiLimits,
    pub amount_decimals: u32,
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
}

#[derive(Debug)]
pub struct Mapping {
    pub loan: FieldSet,
    pub default: FieldSet,
    pub payment: FieldSet,
    pub record: FieldSet,
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
        refresh_path: Option<String>,
    },
}

/// The validated configuration the daemon runs on.
#[derive(Debug)]
pub struct Config {
    pub state_path: PathBuf,
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
}

/// Reads the file (if given) and the environment into the raw form. Errors name the key.
pub fn load_raw(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    let mut fig = Figment::new();
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError(vec![Problem {
                key: "--config".into(),
                message: format!("file {} does not exist", path.display()),
            }]));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    // CCSYNC_NOW (the clock) and CCSYNC_CONFIG (the file) are not config keys.
    fig = fig.merge(Env::prefixed("CCSYNC_").ignore(&["now", "config"]).split("__"));
    fig.extract::<RawConfig>().map_err(|e| {
        ConfigError(
            e.into_iter()
                .map(|e| {
                    let key = if e.path.is_empty() {
                        "(config)".into()
                    } else {
                        e.path.join(".")
                    };
                    let mut message = e.kind.to_string();
                    if let Some(md) = e.metadata.as_ref() {
                        message = format!("{message} (from {})", md.name);
                    }
                    Problem { key, message }
                })
                .collect(),
        )
    })
}

/// Loads the config for work that sends nothing (`mapping test`): the file is optional, and
/// missing credentials and URLs are filled with placeholders so only the mapping and the other
/// keys are judged.
pub fn load_offline(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut raw = load_raw(path)?;
    if raw.crego.bearer_token.is_none() && raw.crego.bearer_token_file.is_none() && raw.crego.username.is_none() {
        raw.crego.bearer_token = Some("offline".into());
    }
    if raw.credgenics.auth_token.is_none()
        && raw.credgenics.auth_token_file.is_none()
        && raw.credgenics.client_id.is_none()
    {
        raw.credgenics.auth_token = Some("offline".into());
    }
    if raw.crego.base_url.is_empty() {
        raw.crego.base_url = "https://offline.invalid".into();
    }
    if raw.credgenics.base_url.is_empty() {
        raw.credgenics.base_url = "https://offline.invalid/recovery".into();
    }
    raw.validate()
}

/// The largest secret file read: a token or a password, never a disk image (`/dev/zero`).
const SECRET_FILE_CAP: u64 = 64 * 1024;

/// A secret file's text, read with a size cap; the error names why.
fn read_secret_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(SECRET_FILE_CAP + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > SECRET_FILE_CAP {
        return Err(format!(
            "it is larger than {} KiB: not a secret",
            SECRET_FILE_CAP / 1024
        ));
    }
    Ok(text)
}

/// Loads and validates in one step.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_raw(path)?.validate()
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A partner's base URL: http(s) with a host, no credentials in it, and `https` unless the host
    /// is loopback or `allow_insecure_http` says otherwise (a token must not cross a network in
    /// clear text).
    fn url(&mut self, key: &str, value: &str, allow_insecure_http: bool) -> Option<url::Url> {
        if value.trim().is_empty() {
            self.problem(key, "is required (an https:// URL)");
            return None;
        }
        let u = match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(u) => {
                self.problem(
                    key,
                    format!("`{value}` is not an http(s) URL (scheme `{}`)", u.scheme()),
                );
                return None;
            }
            Err(e) => {
                self.problem(key, format!("`{value}` is not a valid URL: {e}"));
                return None;
            }
        };
        if !u.username().is_empty() || u.password().is_some() {
            // Not echoed: the value holds a credential.
            self.problem(
                key,
                "must not carry credentials (user:password@): use the section's token or credential keys",
            );
            return None;
        }
        let loopback = match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if u.scheme() == "http" && !loopback && !allow_insecure_http {
            let section = key.split('.').next().unwrap_or_default();
            self.problem(
                key,
                format!(
                    "`{value}` is plain http to a host that is not loopback: use https (or set \
                     {section}.allow_insecure_http = true if this network is trusted)"
                ),
            );
            return None;
        }
        Some(u)
    }

    /// A secret from exactly one of `key` and `key_file`.
    fn secret(
        &mut self,
        section: &str,
        key: &str,
        value: &Option<String>,
        file: &Option<String>,
        required: bool,
    ) -> Option<SecretString> {
        let full = format!("{section}.{key}");
        match (value, file) {
            (Some(_), Some(_)) => {
                self.problem(&full, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) if !v.trim().is_empty() => Some(SecretString::from(v.trim().to_string())),
            (_, Some(path)) => match read_secret_file(path) {
                Ok(s) if !s.trim().is_empty() => Some(SecretString::from(s.trim().to_string())),
                Ok(_) => {
                    self.problem(&format!("{full}_file"), format!("file {path} is empty"));
                    None
                }
                Err(e) => {
                    self.problem(&format!("{full}_file"), format!("cannot read {path}: {e}"));
                    None
                }
            },
            _ => {
                if required {
                    self.problem(
                        &full,
                        format!(
                            "is required: set {key} or {key}_file (or env CCSYNC_{}__{})",
                            section.to_uppercase(),
                            key.to_uppercase()
                        ),
                    );
                }
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn limits(
        &mut self,
        section: &str,
        rps: u32,
        in_flight: u32,
        timeout: u64,
        connect_timeout: u64,
        retries: u32,
        max_response_bytes: u64,
        max_retry_after_secs: u64,
    ) -> ApiLimits {
        let requests_per_second = NonZeroU32::new(rps).unwrap_or_else(|| {
            self.problem(&format!("{section}.requests_per_second"), "must be at least 1");
            NonZeroU32::MIN
        });
        if in_flight == 0 || in_flight > 256 {
            self.problem(&format!("{section}.max_in_flight"), "must be between 1 and 256");
        }
        if timeout == 0 || timeout > 600 {
            self.problem(&format!("{section}.timeout_secs"), "must be between 1 and 600");
        }
        if connect_timeout == 0 || connect_timeout > 600 {
            self.problem(&format!("{section}.connect_timeout_secs"), "must be between 1 and 600");
        }
        if retries > 100 {
            self.problem(&format!("{section}.max_retries"), "must be at most 100");
        }
        if max_retry_after_secs > 3600 {
            self.problem(&format!("{section}.max_retry_after_secs"), "must be at most 3600");
        }
        if !(1024..=1 << 30).contains(&max_response_bytes) {
            self.problem(
                &format!("{section}.max_response_bytes"),
                "must be between 1024 and 1073741824 (1 GiB)",
            );
        }
        ApiLimits {
            requests_per_second,
            max_in_flight: in_flight.clamp(1, 256) as usize,
            timeout: Duration::from_secs(timeout.max(1)),
            connect_timeout: Duration::from_secs(connect_timeout.max(1)),
            max_retries: retries as usize,
            max_response_bytes,
            max_retry_after: Duration::from_secs(max_retry_after_secs),
        }
    }

    fn cron(&mut self, key: &str, expr: &str) -> Option<croner::Cron> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build();
        match parser.parse(expr) {
            Ok(c) => {
                // A schedule that never fires (`0 0 0 30 2 *`) would stop its job in silence.
                let now = jiff::Zoned::now();
                let fires = c
                    .find_next_occurrence(&now, false)
                    .is_ok_and(|next| next.timestamp().duration_since(now.timestamp()).as_secs() <= 366 * 86400);
                if !fires {
                    self.problem(key, format!("`{expr}` does not fire in the next year"));
                    return None;
                }
                Some(c)
            }
            Err(e) => {
                self.problem(key, format!("`{expr}` is not a cron expression with seconds: {e}"));
                None
            }
        }
    }

    fn path_template(&mut self, key: &str, value: &str, placeholder: Option<&str>) {
        if !value.starts_with('/') {
            self.problem(key, format!("`{value}` must start with /"));
        }
        if let Some(p) = placeholder
            && !value.contains(p)
        {
            self.problem(key, format!("`{value}` must contain {p}"));
        }
    }

    fn fieldset(&mut self, section: &str, defaults: &[(&str, &str)], overrides: &BTreeMap<String, String>) -> FieldSet {
        match FieldSet::build(defaults, overrides) {
            Ok(f) => f,
            Err(errors) => {
                for (key, e) in errors {
                    let expr = overrides.get(&key).map(String::as_str).unwrap_or("");
                    self.problem(
                        &format!("mapping.{section}.{key}"),
                        format!("expression `{expr}` does not compile: {e}"),
                    );
                }
                FieldSet::default()
            }
        }
    }
}

impl RawConfig {
    /// Checks everything and produces the runnable form, or every problem found.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut c = Checker { problems: Vec::new() };
        let RawConfig {
            state,
            crego,
            credgenics,
            sync,
            webhook,
            mapping: raw_mapping,
            log,
            daemon,
        } = self;
        if daemon.shutdown_grace_secs == 0 || daemon.shutdown_grace_secs > 3600 {
            c.problem("daemon.shutdown_grace_secs", "must be between 1 and 3600");
        }
        if daemon.stuck_after_secs < 60 {
            c.problem("daemon.stuck_after_secs", "must be at least 60");
        }
        if daemon.job_stall_secs == 0 {
            c.problem("daemon.job_stall_secs", "must be at least 1");
        }

        if state.path.trim().is_empty() {
            c.problem("state.path", "is required");
        }

        let crego_url = c.url("crego.base_url", &crego.base_url, crego.allow_insecure_http);
        let crego_token = if let Some(user) = crego.username.clone().filter(|u| !u.trim().is_empty()) {
            if crego.bearer_token.is_some() || crego.bearer_token_file.is_some() {
                c.problem(
                    "crego.username",
                    "set either bearer_token or username/password, not both",
                );
            }
            c.path_template("crego.token_path", &crego.token_path, None);
            c.path_template("crego.refresh_path", &crego.refresh_path, None);
            c.secret("crego", "password", &crego.password, &crego.password_file, true)
                .map(|secret| Credential::Exchange {
                    id: user,
                    secret,
                    token_path: crego.token_path.clone(),
                    refresh_path: Some(crego.refresh_path.clone()),
                })
        } else {
            c.secret(
                "crego",
                "bearer_token",
                &crego.bearer_token,
                &crego.bearer_token_file,
                true,
            )
            .map(Credential::Static)
        };
        let crego_limits = c.limits(
            "crego",
            crego.requests_per_second,
            crego.max_in_flight,
            crego.timeout_secs,
            crego.connect_timeout_secs,
            crego.max_retries,
            crego.max_response_bytes,
            crego.max_retry_after_secs,
        );
        if crego.page_size == 0 || crego.page_size > 1000 {
            c.problem("crego.page_size", "must be between 1 and 1000");
        }
        c.path_template("crego.line_details_path", &crego.line_details_path, None);
        c.path_template("crego.lead_path", &crego.lead_path, Some("{lead_id}"));
        c.path_template("crego.programs_path", &crego.programs_path, Some("{lead_id}"));
        c.path_template("crego.records_path", &crego.records_path, None);

        let cg_url = c.url(
            "credgenics.base_url",
            &credgenics.base_url,
            credgenics.allow_insecure_http,
        );
        let cg_token = if let Some(id) = credgenics.client_id.clone().filter(|u| !u.trim().is_empty()) {
            if credgenics.auth_token.is_some() || credgenics.auth_token_file.is_some() {
                c.problem(
                    "credgenics.client_id",
                    "set either auth_token or client_id/client_secret, not both",
                );
            }
            c.path_template("credgenics.token_path", &credgenics.token_path, None);
            c.secret(
                "credgenics",
                "client_secret",
                &credgenics.client_secret,
                &credgenics.client_secret_file,
                true,
            )
            .map(|secret| Credential::Exchange {
                id,
                secret,
                token_path: credgenics.token_path.clone(),
                refresh_path: None,
            })
        } else {
            c.secret(
                "credgenics",
                "auth_token",
                &credgenics.auth_token,
                &credgenics.auth_token_file,
                true,
            )
            .map(Credential::Static)
        };
        let cg_limits = c.limits(
            "credgenics",
            credgenics.requests_per_second,
            credgenics.max_in_flight,
            credgenics.timeout_secs,
            credgenics.connect_timeout_secs,
            credgenics.max_retries,
            credgenics.max_response_bytes,
            credgenics.max_retry_after_secs,
        );
        if credgenics.amount_decimals > 6 {
            c.problem("credgenics.amount_decimals", "must be between 0 and 6");
        }
        if let Some(id) = &credgenics.company_id
            && id.trim().is_empty()
        {
            c.problem("credgenics.company_id", "is empty: remove the key or give the id");
        }

        let tz = match jiff::tz::TimeZone::get(&sync.timezone) {
            Ok(tz) => Some(tz),
            Err(e) => {
                c.problem(
                    "sync.timezone",
                    format!("`{}` is not a known time zone: {e}", sync.timezone),
                );
                None
            }
        };
        if sync.min_dpd < 1 {
            c.problem("sync.min_dpd", "must be at least 1");
        }
        if sync.cursor_overlap_secs > 7 * 86400 {
            c.problem("sync.cursor_overlap_secs", "must be at most 604800 (7 days)");
        }
        if sync.retry_base_secs > sync.retry_max_secs {
            c.problem("sync.retry_base_secs", "must not exceed sync.retry_max_secs");
        }
        if sync.line_wait_secs > 86400 {
            c.problem("sync.line_wait_secs", "must be at most 86400 (a day)");
        }
        if sync.max_lookups == 0 {
            c.problem("sync.max_lookups", "must be at least 1");
        }
        let s = &sync.schedules;
        let schedules = (
            c.cron("sync.schedules.place_loans", &s.place_loans),
            c.cron("sync.schedules.push_repayments", &s.push_repayments),
            c.cron("sync.schedules.poll_recoveries", &s.poll_recoveries),
            c.cron("sync.schedules.reconcile", &s.reconcile),
        );

        let listen = match webhook.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                c.problem(
                    "webhook.listen",
                    format!("`{}` is not an address:port: {e}", webhook.listen),
                );
                None
            }
        };
        let webhook_token = c.secret("webhook", "token", &webhook.token, &webhook.token_file, false);
        if webhook.max_amount == 0 {
            c.problem("webhook.max_amount", "must be at least 1");
        }
        if !(1..=65_536).contains(&webhook.max_connections) {
            c.problem("webhook.max_connections", "must be between 1 and 65536");
        }
        // Below the 10 s a webhook's body may take, a slow body is cut rather than answered 408.
        if !(1..=3600).contains(&webhook.idle_timeout_secs) {
            c.problem("webhook.idle_timeout_secs", "must be between 1 and 3600");
        }

        if !(10..=60_000).contains(&raw_mapping.budget_ms) {
            c.problem("mapping.budget_ms", "must be between 10 and 60000 (milliseconds)");
        }
        let budget = Duration::from_millis(raw_mapping.budget_ms.clamp(10, 60_000));
        let mapping = Mapping {
            loan: c
                .fieldset("loan", mapping::DEFAULT_LOAN, &raw_mapping.loan)
                .with_budget(budget),
            default: c
                .fieldset("default", mapping::DEFAULT_DEFAULT, &raw_mapping.default)
                .with_budget(budget),
            payment: c
                .fieldset("payment", mapping::DEFAULT_PAYMENT, &raw_mapping.payment)
                .with_budget(budget),
            record: c
                .fieldset("record", mapping::DEFAULT_RECORD, &raw_mapping.record)
                .with_budget(budget),
        };

        let format = match log.format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "human" => LogFormat::Human,
            other => {
                c.problem("log.format", format!("`{other}` is not one of auto, json, human"));
                LogFormat::Auto
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
            c.problem("log.level", format!("`{}` is not a log level or filter", log.level));
        }

        if !c.problems.is_empty() {
            return Err(ConfigError(c.problems));
        }
        let (Some(crego_url), Some(crego_token), Some(cg_url), Some(cg_token), Some(tz), Some(listen)) =
            (crego_url, crego_token, cg_url, cg_token, tz, listen)
        else {
            unreachable!("every None above recorded a problem");
        };
        let (Some(place_loans), Some(push_repayments), Some(poll_recoveries), Some(reconcile)) = schedules else {
            unreachable!("every None above recorded a problem");
        };
        Ok(Config {
            state_path: PathBuf::from(state.path),
            crego: CregoConfig {
                base_url: crego_url,
                credential: crego_token,
                limits: crego_limits,
                page_size: crego.page_size,
                line_details_path: crego.line_details_path,
                lead_path: crego.lead_path,
                programs_path: crego.programs_path,
                records_path: crego.records_path,
            },
            credgenics: CredgenicsConfig {
                base_url: cg_url,
                credential: cg_token,
                company_id: credgenics.company_id,
                limits: cg_limits,
                amount_decimals: credgenics.amount_decimals,
            },
            sync: SyncConfig {
                timezone: tz,
                min_dpd: sync.min_dpd,
                cursor_overlap_secs: sync.cursor_overlap_secs as f64,
                retry_base_secs: sync.retry_base_secs as f64,
                retry_max_secs: sync.retry_max_secs as f64,
                line_wait_secs: sync.line_wait_secs as f64,
                max_lookups: sync.max_lookups,
                schedules: Schedules {
                    place_loans,
                    push_repayments,
                    poll_recoveries,
                    reconcile,
                },
            },
            webhook: WebhookConfig {
                listen,
                token: webhook_token,
                max_amount: rust_decimal::Decimal::from(webhook.max_amount),
                max_connections: webhook.max_connections as usize,
                idle_timeout: Duration::from_secs(webhook.idle_timeout_secs),
            },
            mapping,
            log: LogConfig {
                level: log.level,
                format,
            },
            daemon: DaemonConfig {
                shutdown_grace: Duration::from_secs(daemon.shutdown_grace_secs),
                stuck_after_secs: daemon.stuck_after_secs as f64,
                job_stall: Duration::from_secs(daemon.job_stall_secs),
            },
        })
    }
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
