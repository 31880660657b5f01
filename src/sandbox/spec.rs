//! What a sandbox is asked to be: its config, its faults, and what it records of requests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// The documented LMS record example (`GET /v1/lms/records/{id}/`), the template of seeded records.
pub const RECORD_EXAMPLE: &str = include_str!("../../fixtures/crego_record.json");

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub crego_token: String,
    pub credgenics_token: String,
    /// Credentials the token endpoints exchange for expiring tokens.
    pub crego_user: String,
    pub crego_password: String,
    pub credgenics_client_id: String,
    pub credgenics_client_secret: String,
    /// Lifetime of exchanged tokens, seconds.
    pub token_ttl_secs: f64,
    /// The token the daemon's webhook listener expects (written into `config_toml`).
    pub webhook_token: String,
    /// Requests per second each fake accepts before answering 429 (None: unlimited).
    pub crego_rps: Option<u32>,
    pub credgenics_rps: Option<u32>,
    pub seed: SeedSpec,
    /// Keep every request (with its body) for `requests()`; the benchmark turns it off and reads
    /// the counters of `stats()` only, so a long run does not grow the sandbox.
    pub keep_request_log: bool,
    /// Percentage of first uploads after which a collection agent recovers part of the due at
    /// once (flow B's input in the benchmark), chosen by a hash of the loan id.
    pub collect_pct: u32,
    /// The realistic mode (design §7), or the tidy one.
    pub realism: Option<Realism>,
    /// The tenant's shape where the documents leave it open.
    pub tenant: Tenant,
}

impl SandboxConfig {
    /// A credit-line tenant (design §8) with no seeded book: lines are added with
    /// [`super::seed::seed_credit_line`].
    pub fn credit_line() -> Self {
        Self {
            tenant: Tenant {
                credit_line: true,
                ..Tenant::default()
            },
            seed: SeedSpec {
                leads: 0,
                ..SeedSpec::default()
            },
            ..Self::default()
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            crego_token: "sandbox-crego-token".into(),
            credgenics_token: "sandbox-credgenics-token".into(),
            webhook_token: "sandbox-webhook-token".into(),
            crego_user: "sandbox-user".into(),
            crego_password: "sandbox-password".into(),
            credgenics_client_id: "sandbox-client".into(),
            credgenics_client_secret: "sandbox-secret".into(),
            token_ttl_secs: 3600.0,
            crego_rps: None,
            credgenics_rps: None,
            seed: SeedSpec::default(),
            keep_request_log: true,
            collect_pct: 0,
            realism: None,
            tenant: Tenant::default(),
        }
    }
}

/// One lender's tenant where the documents leave the shape open (issue 13): each switch is a
/// shape a real tenant may have, so that the daemon's config for it is tested against it. The
/// default is the shape design §5 assumes.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Foreign keys expanded on read, as Django REST nested serializers do: a listed line item
    /// names `lead: {id}` and `borrower_program: {id}` instead of `lead_id` and
    /// `borrower_program_id`, and a listed record's `account` is `{id}` (written as the id).
    pub expanded_links: bool,
    /// The Crego list filters' names.
    pub filters: TenantFilters,
    /// How the Credgenics access-token answer states the token's lifetime.
    pub token_lifetime: TokenLifetime,
    /// The companies Credgenics' client credentials belong to (`company_details[]`). A request
    /// made with an exchanged token must name one as `?company_id=`; a static token may omit it.
    pub companies: Vec<String>,
    /// Reads of a thing the partner does not have answer 400 with a message (Crego lead and
    /// programs, Credgenics loan), not 404.
    pub unknown_is_400: bool,
    /// The older Credgenics document's payment rules: `final_status` only `Closed` or
    /// `Partially Recovered`, `date_of_default` required with `Partially Recovered`, and
    /// `amount_recovered` an integer (as the main document types it).
    pub strict_payments: bool,
    /// A Credgenics company set up for credit lines (design §8): the Credit Line APIs
    /// (`sandbox::credit_line`) instead of the lending ones.
    pub credit_line: bool,
}

impl Default for Tenant {
    fn default() -> Self {
        Self {
            expanded_links: false,
            filters: TenantFilters::default(),
            token_lifetime: TokenLifetime::Expiry,
            companies: vec!["sandbox-company".into()],
            unknown_is_400: false,
            strict_payments: false,
            credit_line: false,
        }
    }
}

/// What a tenant calls the Crego list filters.
#[derive(Debug, Clone)]
pub struct TenantFilters {
    pub updated_since: String,
    pub record_type: String,
    pub utr: String,
}

impl Default for TenantFilters {
    fn default() -> Self {
        Self {
            updated_since: "updated_at__gte".into(),
            record_type: "type".into(),
            utr: "utr".into(),
        }
    }
}

/// How a Credgenics access-token answer states the lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenLifetime {
    /// `expiry`: seconds, as a string (the documented answer).
    Expiry,
    /// `expires_in`: seconds, as a number.
    ExpiresIn,
    /// Only the token's own JWT `exp` claim.
    JwtExp,
    /// Nothing: the documented default of 900 s applies.
    Unstated,
}

/// What one fake has answered, for benchmarks (control endpoints not counted).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ServedStats {
    pub requests: u64,
    /// Requests other than GET.
    pub writes: u64,
    /// Answers 429 (rate limit or injected).
    pub rate_limited: u64,
}

/// One request as the sandbox saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub api: &'static str,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub status: u16,
}

impl RecordedRequest {
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// A failure to answer instead of serving the next request(s) to one API.
#[derive(Debug, Clone)]
pub struct InjectedFailure {
    pub status: u16,
    pub retry_after: Option<u64>,
    /// Only requests whose `METHOD /path` starts with this, e.g. `POST /v1/lms/records/` (None:
    /// any request).
    pub path_prefix: Option<String>,
    /// Serve the request first, then answer with the failure instead: the write happened but the
    /// client cannot know (a lost answer).
    pub after_serving: bool,
    pub kind: FaultKind,
}

/// What an injected failure looks like to the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// An HTTP status (with `Retry-After` when set).
    Status,
    /// No answer for this long (longer than the client's timeout).
    Stall(Duration),
    /// The connection breaks mid-answer.
    Reset,
    /// 200 with a body that is not JSON.
    Malformed,
}

/// Seeded random faults for one API, each a probability in [0, 1].
#[derive(Debug, Clone, Default)]
pub struct FaultSpec {
    pub p_500: f64,
    pub p_429: f64,
    pub p_stall: f64,
    pub p_reset: f64,
    pub p_malformed: f64,
    /// How long a stall lasts.
    pub stall: Duration,
}

impl FaultSpec {
    /// `P500,P429,PSTALL,PRESET,PMALFORMED` (the `sandbox --faults` flag), each in [0, 1], their
    /// sum at most 1; stalls last `stall`.
    pub fn parse(text: &str, stall: Duration) -> Result<Self, String> {
        const NAMES: [&str; 5] = ["P500", "P429", "PSTALL", "PRESET", "PMALFORMED"];
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() != NAMES.len() {
            return Err(format!(
                "`{text}`: expected 5 probabilities P500,P429,PSTALL,PRESET,PMALFORMED, got {}",
                parts.len()
            ));
        }
        let mut p = [0.0; 5];
        for (i, part) in parts.iter().enumerate() {
            p[i] = part
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("`{text}`: {} `{part}` is not a probability in [0, 1]", NAMES[i]))?;
        }
        if p.iter().sum::<f64>() > 1.0 {
            return Err(format!("`{text}`: the probabilities add up to more than 1"));
        }
        Ok(Self {
            p_500: p[0],
            p_429: p[1],
            p_stall: p[2],
            p_reset: p[3],
            p_malformed: p[4],
            stall,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SeedSpec {
    pub leads: usize,
    /// Share of lines overdue, in percent.
    pub overdue_pct: u32,
    pub rng_seed: u64,
    /// Share of overdue lines, in percent, on which a part repayment is already booked in the LMS
    /// (flow C's input).
    pub repay_pct: u32,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            leads: 30,
            overdue_pct: 30,
            rng_seed: 7,
            repay_pct: 0,
        }
    }
}

/// How untidy the realistic mode is.
#[derive(Debug, Clone)]
pub struct Realism {
    /// The LMS moves a line's dues this long after booking a repayment record.
    pub line_lag: Duration,
    /// A repayment booked on an account within this many seconds of the previous one takes the
    /// previous one's `date`.
    pub shared_date_within_secs: f64,
    /// Percentage of change-stream list requests during which an item already listed is updated.
    pub touch_pct: u32,
    /// Every `n`-th token exchange answers 429 with `Retry-After: 1` (0: never).
    pub token_429_every: u64,
    /// Every `n`-th token exchange answers 503 (0: never).
    pub token_503_every: u64,
    pub seed: u64,
}

impl Default for Realism {
    fn default() -> Self {
        Self {
            line_lag: Duration::from_secs(2),
            shared_date_within_secs: 5.0,
            touch_pct: 30,
            token_429_every: 3,
            token_503_every: 5,
            seed: 7,
        }
    }
}
