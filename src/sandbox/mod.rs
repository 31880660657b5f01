//! The sandbox: fake Crego and Credgenics servers (axum) that follow `shared/api-docs` and design
//! §5 — seeded data in the documented shapes, token checks, strict Credgenics validation with the
//! documented 400 body, a configurable rate limit answering 429 + `Retry-After`, injected
//! failures, and a record of every request. Used by `demo`, the tests and the benchmarks.
//!
//! - [`seed`]: deterministic books of leads, borrower-programs and line details.
//! - [`realism`]: the realistic mode (design §7): a lagging LMS, shared dates, items changing while
//!   a stream is paged, busy token endpoints.
//! - [`checks`]: the fake Credgenics' validation, written from the API document on its own.
//! - [`fake_crego`] / [`fake_credgenics`]: the two HTTP surfaces.

pub mod checks;
pub mod fake_credgenics;
pub mod fake_crego;
pub mod realism;
pub mod seed;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::http::Api;

pub use realism::Realism;
pub use seed::SeedSpec;

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
        }
    }
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

/// A loan as the fake Credgenics holds it.
#[derive(Debug, Clone, Default)]
pub struct CgLoan {
    pub details: serde_json::Map<String, Value>,
    /// One entry per allocation month, in upload order.
    pub defaults: Vec<Value>,
    /// How many times each allocation month was uploaded (a second upload is a defect).
    pub uploads_per_month: BTreeMap<String, u32>,
    pub payment_history: Vec<Value>,
}

/// Everything both fakes hold.
#[derive(Debug, Default)]
pub struct SandboxState {
    pub leads: BTreeMap<String, Value>,
    /// lead id → borrower-program entries (documented `/programs/` items).
    pub programs: BTreeMap<String, Vec<Value>>,
    /// (updated_at in µs, line detail id) → (lead id, index into `programs[lead]`): the change
    /// stream's order.
    pub line_index: BTreeMap<(i64, String), (String, usize)>,
    pub cg_loans: BTreeMap<String, CgLoan>,
    /// LMS records by id, and their change-stream order (updated_at in µs, id).
    pub records: BTreeMap<String, Value>,
    pub record_index: BTreeMap<(i64, String), ()>,
    /// Where the fake Credgenics posts `payment` webhooks, with the token it sends.
    pub webhook_target: Option<(String, String)>,
    /// Every webhook emitted: (body, HTTP status or 0 when it could not be delivered).
    pub webhooks: Vec<(Value, u16)>,
    next_payment_id: u64,
    pub requests: Vec<RecordedRequest>,
    pub stats: BTreeMap<&'static str, ServedStats>,
    /// borrower-program id → (lead id, index into `programs[lead]`).
    program_index: std::collections::HashMap<String, (String, usize)>,
    pub fail_next: BTreeMap<&'static str, VecDeque<InjectedFailure>>,
    /// Exchanged tokens: token → (api, expiry); refresh tokens → api; exchanges per api.
    pub tokens: BTreeMap<String, (&'static str, Instant)>,
    pub refresh_tokens: BTreeMap<String, &'static str>,
    pub token_exchanges: BTreeMap<&'static str, u64>,
    /// Random faults per API, and their generator (seeded: the same seed, the same faults).
    pub faults: BTreeMap<&'static str, FaultSpec>,
    fault_rng: BTreeMap<&'static str, rand::rngs::StdRng>,
    /// Added latency per API (tests of slow runs).
    pub delay: BTreeMap<&'static str, Duration>,
    windows: BTreeMap<&'static str, VecDeque<Instant>>,
    last_stamp: f64,
    pub(crate) realism: Option<realism::RealismState>,
    /// Where injected 3xx answers point (`Sandbox::redirect_next`).
    pub redirect_to: Option<String>,
    /// A misbehaving line-details list: the first page again and again with `has_next: true`.
    pub endless_pages: bool,
    /// Bytes of padding added to every line-details page (an oversized answer).
    pub page_padding: usize,
}

impl SandboxState {
    /// A strictly increasing "now" for `updated_at` values.
    pub fn stamp(&mut self) -> f64 {
        let now = (crate::clock::wall_secs() * 1000.0).round() / 1000.0;
        self.last_stamp = if now > self.last_stamp {
            now
        } else {
            self.last_stamp + 0.001
        };
        self.last_stamp
    }

    pub(crate) fn index_key(updated_at: f64, id: &str) -> (i64, String) {
        ((updated_at * 1_000_000.0).round() as i64, id.to_string())
    }

    /// Rebuilds the change-stream index (after seeding).
    pub fn reindex(&mut self) {
        self.line_index.clear();
        self.program_index.clear();
        for (lead, progs) in &self.programs {
            for (i, p) in progs.iter().enumerate() {
                if let Some(id) = p["id"].as_str() {
                    self.program_index.insert(id.to_string(), (lead.clone(), i));
                }
                let ld = &p["line_detail"];
                if let (Some(at), Some(id)) = (ld["updated_at"].as_f64(), ld["id"].as_str()) {
                    self.line_index.insert(Self::index_key(at, id), (lead.clone(), i));
                }
            }
        }
        self.last_stamp = self
            .line_index
            .keys()
            .next_back()
            .map(|(us, _)| *us as f64 / 1e6)
            .unwrap_or(0.0);
    }

    /// Changes one borrower-program's line detail as an end-of-day run would: applies `f`, then
    /// bumps `updated_at` so the change stream shows it.
    pub fn update_line(&mut self, borrower_program_id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let Some((lead, i)) = self.find_program(borrower_program_id) else {
            return false;
        };
        let stamp = self.stamp();
        let entry = &mut self.programs.get_mut(&lead).expect("indexed lead")[i];
        let ld = &mut entry["line_detail"];
        let old_key = Self::index_key(
            ld["updated_at"].as_f64().unwrap_or(0.0),
            ld["id"].as_str().unwrap_or(""),
        );
        f(ld);
        ld["updated_at"] = serde_json::json!(stamp);
        let new_key = Self::index_key(stamp, ld["id"].as_str().unwrap_or(""));
        self.line_index.remove(&old_key);
        self.line_index.insert(new_key, (lead, i));
        true
    }

    /// Books an LMS record (as the lender's LMS would) and applies a repayment to the line: its
    /// due and outstanding amounts fall, and the line shows up in the change stream.
    pub fn add_record(&mut self, mut record: Value) -> Value {
        let stamp = self.stamp();
        let n = self.records.len();
        let id = record["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("rec-{n:08}-{}", (stamp * 1000.0) as i64));
        record["id"] = Value::String(id.clone());
        record["created_at"] = serde_json::json!(stamp);
        record["updated_at"] = serde_json::json!(stamp);
        if record.get("ref_id").is_none_or(Value::is_null) {
            record["ref_id"] = Value::String(format!("REC{n:06}"));
        }
        self.record_index.insert(Self::index_key(stamp, &id), ());
        self.records.insert(id, record.clone());
        if record["type"] == "repayment"
            && let (Some(account), Some(amount)) =
                (record["account"].as_str(), crate::money::from_json(&record["amount"]))
        {
            let id = record["id"].as_str().unwrap_or_default().to_string();
            self.move_line_after_repayment(account, amount, &id);
            return self.records[&id].clone();
        }
        record
    }

    /// A repayment's effect on its line: due and outstanding amounts fall, and the line shows up
    /// in the change stream.
    pub(crate) fn apply_repayment_to_line(&mut self, account: &str, amount: rust_decimal::Decimal) {
        self.update_line(account, |ld| {
            for key in ["due_amount", "total_outstanding"] {
                let v = crate::money::from_json(&ld[key]).unwrap_or_default();
                ld[key] = crate::money::to_json((v - amount).max(rust_decimal::Decimal::ZERO));
            }
            if crate::money::from_json(&ld["due_amount"]).unwrap_or_default().is_zero() {
                ld["dpd"] = serde_json::json!(0);
            }
        });
    }

    /// A repayment booked in the LMS on a borrower-program (flow C's input), from the documented
    /// record example.
    pub fn add_repayment(&mut self, borrower_program_id: &str, amount: rust_decimal::Decimal, utr: &str) -> Value {
        let mut r: Value = serde_json::from_str(RECORD_EXAMPLE).expect("record fixture parses");
        let now = self.stamp();
        r.as_object_mut().expect("record is an object").remove("id");
        r["account"] = Value::String(borrower_program_id.to_string());
        r["amount"] = crate::money::to_json(amount);
        r["received_amount"] = crate::money::to_json(amount);
        r["utr"] = Value::String(utr.to_string());
        r["status"] = Value::String("processed".into());
        r["date"] = serde_json::json!(self.repayment_date(borrower_program_id, now));
        r["bank_date"] = serde_json::json!(now);
        r["settled_at"] = serde_json::json!(now);
        r["remark"] = Value::String(String::new());
        r.as_object_mut().expect("record is an object").remove("ref_id");
        self.add_record(r)
    }

    /// A recovery made by a collection agent at Credgenics (flow B's input): recorded in the
    /// loan's payment history and announced by webhook. `None` when the loan is unknown.
    pub fn add_agent_collection(
        &mut self,
        loan_id: &str,
        amount: rust_decimal::Decimal,
        reference: &str,
    ) -> Option<Value> {
        let month = self.cg_loans.get(loan_id)?.defaults.last()?["allocation_month"].clone();
        let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("Asia/Kolkata").ok()?);
        let payment = serde_json::json!({
            "amount_recovered": crate::money::to_json(amount),
            "final_status": "Partially Recovered",
            "recovery_method": "Field Collection",
            "payment_method": "Cash",
            "payment_mode": "cash",
            "payment_reference_number": reference,
            "recovery_date": now.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            "allocation_month": month,
            "author": "agent@collections.example",
        });
        Some(self.record_payment(loan_id, payment))
    }

    /// Appends a payment entry to a loan's history (numbering it) and queues its webhook.
    pub(crate) fn record_payment(&mut self, loan_id: &str, mut payment: Value) -> Value {
        self.next_payment_id += 1;
        payment["payment_id"] = serde_json::json!(self.next_payment_id);
        if payment.get("created").is_none() {
            payment["created"] = Value::String(jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string());
        }
        let loan = self.cg_loans.get_mut(loan_id).expect("payment on a known loan");
        loan.payment_history.push(payment.clone());
        payment
    }

    pub fn find_program(&self, borrower_program_id: &str) -> Option<(String, usize)> {
        self.program_index.get(borrower_program_id).cloned()
    }

    /// Borrower-program entries whose line is overdue by the daemon's default rule.
    pub fn overdue_programs(&self, min_dpd: i64) -> Vec<Value> {
        self.programs
            .values()
            .flatten()
            .filter(|p| {
                let ld = &p["line_detail"];
                ld["dpd"].as_i64().unwrap_or(0) >= min_dpd && ld["due_amount"].as_f64().unwrap_or(0.0) > 0.0
            })
            .cloned()
            .collect()
    }

    /// Takes an injected failure or a rate-limit refusal for this request, if any.
    fn gate(&mut self, api: &'static str, target: &str, rps: Option<u32>) -> Option<InjectedFailure> {
        // The LMS makes the line moves whose time has come before it answers anything.
        self.apply_due_moves(false);
        if let Some(queue) = self.fail_next.get_mut(api)
            && let Some(i) = queue
                .iter()
                .position(|f| f.path_prefix.as_deref().is_none_or(|p| target.starts_with(p)))
        {
            return queue.remove(i);
        }
        if let Some(f) = self.random_fault(api) {
            return Some(f);
        }
        let limit = rps?;
        let now = Instant::now();
        let window = self.windows.entry(api).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return Some(InjectedFailure {
                status: 429,
                retry_after: Some(1),
                path_prefix: None,
                after_serving: false,
                kind: FaultKind::Status,
            });
        }
        window.push_back(now);
        None
    }
}

/// Shared between the two fakes and the handle.
pub struct Shared {
    pub config: SandboxConfig,
    pub state: Mutex<SandboxState>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.state.lock().expect("sandbox state lock")
    }
}

/// A running sandbox.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
    pub crego_addr: std::net::SocketAddr,
    pub credgenics_addr: std::net::SocketAddr,
}

impl Sandbox {
    /// Seeds and serves both fakes on the given listeners until the returned handle's tasks are
    /// dropped with the runtime.
    pub async fn start(config: SandboxConfig, crego: TcpListener, credgenics: TcpListener) -> std::io::Result<Self> {
        let mut state = SandboxState {
            realism: config.realism.clone().map(realism::RealismState::new),
            ..SandboxState::default()
        };
        seed::seed(&mut state, &config.seed);
        state.reindex();
        seed::seed_repayments(&mut state, &config.seed);
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
        });
        let crego_addr = crego.local_addr()?;
        let credgenics_addr = credgenics.local_addr()?;
        let app = fake_crego::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(crego, app).await;
        });
        let app = fake_credgenics::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(credgenics, app).await;
        });
        Ok(Self {
            shared,
            crego_addr,
            credgenics_addr,
        })
    }

    /// Starts on free loopback ports.
    pub async fn start_local(config: SandboxConfig) -> std::io::Result<Self> {
        let a = TcpListener::bind("127.0.0.1:0").await?;
        let b = TcpListener::bind("127.0.0.1:0").await?;
        Self::start(config, a, b).await
    }

    pub fn crego_url(&self) -> String {
        format!("http://{}", self.crego_addr)
    }

    /// Base URL including `/recovery`, as the real one.
    pub fn credgenics_url(&self) -> String {
        format!("http://{}/recovery", self.credgenics_addr)
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.shared.config
    }

    pub fn state(&self) -> MutexGuard<'_, SandboxState> {
        self.shared.lock()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Makes the next `n` requests to `api` fail with `status` (and `Retry-After`).
    pub fn fail_next(&self, api: Api, n: usize, status: u16, retry_after: Option<u64>) {
        self.fail_next_on(api, None, n, status, retry_after);
    }

    /// Like [`Self::fail_next`], only for requests whose `METHOD /path` starts with `path_prefix`.
    pub fn fail_next_on(&self, api: Api, path_prefix: Option<&str>, n: usize, status: u16, retry_after: Option<u64>) {
        self.inject(api, path_prefix, n, status, retry_after, false);
    }

    /// Answers the next `n` matching requests with a redirect (`status` 301, 302, 307 or 308) to
    /// `location`, as a misconfigured or hijacked endpoint would.
    pub fn redirect_next(&self, api: Api, path_prefix: Option<&str>, n: usize, status: u16, location: &str) {
        self.state().redirect_to = Some(location.to_string());
        self.inject(api, path_prefix, n, status, None, false);
    }

    /// Serves the next `n` matching requests, then loses their answers behind `status`.
    pub fn lose_answer_of_next(&self, api: Api, path_prefix: Option<&str>, n: usize, status: u16) {
        self.inject(api, path_prefix, n, status, None, true);
    }

    fn inject(
        &self,
        api: Api,
        path_prefix: Option<&str>,
        n: usize,
        status: u16,
        retry_after: Option<u64>,
        after: bool,
    ) {
        let mut s = self.state();
        let q = s.fail_next.entry(api.name()).or_default();
        for _ in 0..n {
            q.push_back(InjectedFailure {
                status,
                retry_after,
                path_prefix: path_prefix.map(str::to_string),
                after_serving: after,
                kind: FaultKind::Status,
            });
        }
    }
}

fn record(shared: &Shared, req: RecordedRequest) {
    let mut s = shared.lock();
    let st = s.stats.entry(req.api).or_default();
    st.requests += 1;
    st.writes += u64::from(req.is_write());
    st.rate_limited += u64::from(req.status == 429);
    if shared.config.keep_request_log {
        s.requests.push(req);
    }
}

/// Which fake a middleware guards, and how it authenticates.
#[derive(Clone)]
pub(crate) struct Gate {
    pub shared: Arc<Shared>,
    pub api: Api,
}

impl Gate {
    fn authorised(&self, headers: &axum::http::HeaderMap) -> bool {
        let cfg = &self.shared.config;
        let given = match self.api {
            Api::Crego => headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ")),
            Api::Credgenics => headers.get("authenticationtoken").and_then(|v| v.to_str().ok()),
        };
        let Some(given) = given else { return false };
        let static_token = match self.api {
            Api::Crego => &cfg.crego_token,
            Api::Credgenics => &cfg.credgenics_token,
        };
        given == static_token
            || self
                .shared
                .lock()
                .tokens
                .get(given)
                .is_some_and(|(api, expires)| *api == self.api.name() && Instant::now() < *expires)
    }

    fn rps(&self) -> Option<u32> {
        match self.api {
            Api::Crego => self.shared.config.crego_rps,
            Api::Credgenics => self.shared.config.credgenics_rps,
        }
    }
}

/// Middleware of both fakes: injected failures and the rate limit first, then the token, then the
/// handler; every request is recorded with the status it got.
pub(crate) async fn gatekeeper(
    axum::extract::State(gate): axum::extract::State<Gate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_control = path.starts_with("/_sandbox/") || path.starts_with("/recovery/_sandbox/");
    let is_token_endpoint = path.ends_with("/auth/token/")
        || path.ends_with("/auth/token/refresh/")
        || path.ends_with("/user/public/access-token");
    let mut rec = RecordedRequest {
        api: gate.api.name(),
        method: parts.method.to_string(),
        path,
        query,
        // Parsed only for the log: a benchmark without it should not pay for it.
        body: if bytes.is_empty() || !gate.shared.config.keep_request_log {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        },
        status: 0,
    };
    if is_control {
        return next
            .run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
    }
    let target = format!("{} {}", rec.method, rec.path);
    let (refused, delay) = {
        let mut s = gate.shared.lock();
        (
            s.gate(gate.api.name(), &target, gate.rps()),
            s.delay.get(gate.api.name()).copied(),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let resp = if let Some(f) = refused
        .as_ref()
        .filter(|f| f.after_serving || f.kind != FaultKind::Status)
    {
        let served = if f.after_serving {
            Some(
                next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
                    .await,
            )
        } else {
            None
        };
        match f.kind {
            FaultKind::Status => {
                let status = axum::http::StatusCode::from_u16(f.status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                (
                    status,
                    axum::Json(serde_json::json!({"message": "sandbox: answer lost"})),
                )
                    .into_response()
            }
            FaultKind::Stall(d) => {
                tokio::time::sleep(d).await;
                served.unwrap_or_else(|| {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "sandbox: stalled").into_response()
                })
            }
            FaultKind::Reset => {
                let broken = futures::stream::once(async {
                    Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "sandbox reset",
                    ))
                });
                let mut r = axum::response::Response::new(axum::body::Body::from_stream(broken));
                *r.status_mut() = axum::http::StatusCode::OK;
                r
            }
            FaultKind::Malformed => (axum::http::StatusCode::OK, "{\"results\": [not json").into_response(),
        }
    } else if let Some(f) = refused {
        let mut r = (
            axum::http::StatusCode::from_u16(f.status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(serde_json::json!({"message": "sandbox: injected failure or rate limit"})),
        )
            .into_response();
        if let Some(s) = f.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        if (300..400).contains(&f.status)
            && let Some(to) = gate.shared.lock().redirect_to.clone()
            && let Ok(v) = axum::http::HeaderValue::from_str(&to)
        {
            r.headers_mut().insert(axum::http::header::LOCATION, v);
        }
        r
    } else if let Some((status, retry_after)) = is_token_endpoint
        .then(|| gate.shared.lock().token_refusal(gate.api.name()))
        .flatten()
    {
        let mut r = (
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE),
            axum::Json(serde_json::json!({"message": "sandbox (realistic): token endpoint busy"})),
        )
            .into_response();
        if let Some(s) = retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    } else if !is_token_endpoint && !gate.authorised(&parts.headers) {
        let body = match gate.api {
            Api::Crego => serde_json::json!({"detail": "Authentication credentials were not provided or are invalid."}),
            Api::Credgenics => serde_json::json!({"message": "Unauthorized"}),
        };
        (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    } else {
        next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await
    };
    rec.status = resp.status().as_u16();
    record(&gate.shared, rec);
    resp
}

/// `GET /_sandbox/stats`: the counters of this fake, for benchmarks that run the sandbox as a process.
pub(crate) async fn stats_handler(axum::extract::State(gate): axum::extract::State<Gate>) -> axum::Json<ServedStats> {
    let s = gate.shared.lock();
    axum::Json(s.stats.get(gate.api.name()).cloned().unwrap_or_default())
}

/// `GET /_sandbox/requests`: the request log, for tests that run the daemon as a process.
pub(crate) async fn requests_handler(
    axum::extract::State(gate): axum::extract::State<Gate>,
) -> axum::Json<Vec<RecordedRequest>> {
    let s = gate.shared.lock();
    axum::Json(
        s.requests
            .iter()
            .filter(|r| r.api == gate.api.name())
            .cloned()
            .collect(),
    )
}

pub(crate) fn json_error(status: axum::http::StatusCode, body: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(body)).into_response()
}

impl Sandbox {
    /// A complete config pointing at this sandbox, with its tokens and the given state file.
    pub fn config_toml(&self, state_path: &std::path::Path) -> String {
        config_toml(
            &self.crego_url(),
            &self.credgenics_url(),
            self.config(),
            state_path,
            200,
        )
    }
}

/// A complete daemon config for a sandbox at these addresses (possibly in another process), with
/// the tokens of `sb`, the given state file and `rps` requests per second on each API.
pub fn config_toml(
    crego_url: &str,
    credgenics_url: &str,
    sb: &SandboxConfig,
    state_path: &std::path::Path,
    rps: u32,
) -> String {
    format!(
        r#"[state]
path = "{state}"

[crego]
base_url = "{crego_url}"
bearer_token = "{ct}"
page_size = 100
requests_per_second = {rps}
max_in_flight = 8
timeout_secs = 5
connect_timeout_secs = 2

[credgenics]
base_url = "{credgenics_url}"
auth_token = "{gt}"
requests_per_second = {rps}
max_in_flight = 8
timeout_secs = 5
connect_timeout_secs = 2

[webhook]
listen = "127.0.0.1:0"
token = "{wt}"
"#,
        state = state_path.display().to_string().replace('\\', "\\\\"),
        ct = sb.crego_token,
        gt = sb.credgenics_token,
        wt = sb.webhook_token,
    )
}

/// The documented `payment` webhook body for one payment-history entry.
pub fn payment_webhook(loan_id: &str, payment: &Value) -> Value {
    serde_json::json!({
        "event": "payment",
        "data": {
            "loan_id": loan_id,
            "amount_recovered": payment["amount_recovered"],
            "final_status": payment["final_status"],
            "recovery_method": payment["recovery_method"],
            "payment_method": payment["payment_method"],
            "payment_mode": payment["payment_mode"],
            "reference_number": payment["payment_reference_number"],
            "closure_with": payment.get("closure_with").cloned().unwrap_or(Value::String(String::new())),
            "recovery_date": payment["recovery_date"],
            "allocation_month": payment["allocation_month"],
            "author": payment["author"],
        },
        "created": payment["created"],
    })
}

/// Posts one webhook to the configured target, if any, and records the outcome.
pub(crate) async fn emit_webhook(shared: &Shared, body: Value) {
    let Some((url, token)) = shared.lock().webhook_target.clone() else {
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("webhook client");
    let status = match client
        .post(&url)
        .header("X-Webhook-Token", token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    shared.lock().webhooks.push((body, status));
}

impl Sandbox {
    /// Seeded random faults on `api` from now on (design §7; the fault suite).
    pub fn set_faults(&self, api: Api, spec: FaultSpec, seed: u64) {
        use rand::SeedableRng;
        let mut s = self.state();
        s.faults.insert(api.name(), spec);
        s.fault_rng.insert(api.name(), rand::rngs::StdRng::seed_from_u64(seed));
    }

    /// Stops the random faults.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Adds `delay` before every answer of `api`.
    pub fn set_delay(&self, api: Api, delay: Duration) {
        self.state().delay.insert(api.name(), delay);
    }

    /// Sends every payment webhook to `url` with `token` from now on.
    pub fn set_webhook_target(&self, url: &str, token: &str) {
        self.state().webhook_target = Some((url.to_string(), token.to_string()));
    }

    /// An agent collection at Credgenics: recorded, and its webhook delivered before this returns.
    pub async fn agent_collection(
        &self,
        loan_id: &str,
        amount: rust_decimal::Decimal,
        reference: &str,
    ) -> Option<Value> {
        let payment = self.state().add_agent_collection(loan_id, amount, reference)?;
        emit_webhook(&self.shared, payment_webhook(loan_id, &payment)).await;
        Some(payment)
    }

    /// Like [`Self::agent_collection`] but without any webhook: only the poll can find it.
    pub fn silent_agent_collection(
        &self,
        loan_id: &str,
        amount: rust_decimal::Decimal,
        reference: &str,
    ) -> Option<Value> {
        self.state().add_agent_collection(loan_id, amount, reference)
    }

    /// A repayment booked in the LMS.
    pub fn repayment(&self, borrower_program_id: &str, amount: rust_decimal::Decimal, utr: &str) -> Value {
        self.state().add_repayment(borrower_program_id, amount, utr)
    }

    /// Realistic mode: the LMS makes every line move it still owes, now.
    pub fn settle_lms(&self) {
        self.state().apply_due_moves(true);
    }
}

impl SandboxState {
    /// Draws this request's random fault, if the API has a fault spec and the dice say so.
    fn random_fault(&mut self, api: &'static str) -> Option<InjectedFailure> {
        use rand::{Rng, SeedableRng};
        let spec = self.faults.get(api)?.clone();
        // One generator per API: the same seed gives the same faults on that API whatever the
        // other API is asked meanwhile.
        let rng = self
            .fault_rng
            .entry(api)
            .or_insert_with(|| rand::rngs::StdRng::seed_from_u64(42));
        let x: f64 = rng.random();
        let after = rng.random_bool(0.5);
        let mut edge = 0.0;
        let mut pick = |p: f64| {
            edge += p;
            x < edge
        };
        let (status, retry_after, after_serving, kind) = if pick(spec.p_500) {
            (500, None, after, FaultKind::Status)
        } else if pick(spec.p_429) {
            (429, Some(1), false, FaultKind::Status)
        } else if pick(spec.p_stall) {
            (0, None, after, FaultKind::Stall(spec.stall))
        } else if pick(spec.p_reset) {
            (0, None, true, FaultKind::Reset)
        } else if pick(spec.p_malformed) {
            (200, None, true, FaultKind::Malformed)
        } else {
            return None;
        };
        Some(InjectedFailure {
            status,
            retry_after,
            path_prefix: None,
            after_serving,
            kind,
        })
    }

    /// Issues a token for `api` (and a refresh token when asked), valid `ttl` seconds.
    pub(crate) fn issue_token(&mut self, api: &'static str, ttl: f64, with_refresh: bool) -> Value {
        let n = self.token_exchanges.entry(api).or_default();
        *n += 1;
        let token = format!("{api}-token-{n}-{}", self.tokens.len());
        self.tokens
            .insert(token.clone(), (api, Instant::now() + Duration::from_secs_f64(ttl)));
        let mut answer = serde_json::json!({"expires_in": ttl});
        if with_refresh {
            let refresh = format!("{api}-refresh-{n}");
            self.refresh_tokens.insert(refresh.clone(), api);
            answer["access"] = Value::String(token);
            answer["refresh"] = Value::String(refresh);
        } else {
            answer["api_key"] = Value::String(token);
        }
        answer
    }
}

impl Sandbox {
    /// Makes every exchanged token invalid (the partner rotated its keys): the next request with
    /// one gets a 401.
    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Token exchanges (logins and refreshes) made with `api` so far.
    pub fn token_exchanges(&self, api: Api) -> u64 {
        self.state().token_exchanges.get(api.name()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod fault_flag_tests {
    use super::*;

    #[test]
    fn the_faults_flag_parses_and_names_what_is_wrong() {
        let f = FaultSpec::parse("0.10,0.05,0.02,0.01,0.01", Duration::from_secs(3)).unwrap();
        assert_eq!(
            (f.p_500, f.p_429, f.p_stall, f.p_reset, f.p_malformed),
            (0.10, 0.05, 0.02, 0.01, 0.01)
        );
        assert_eq!(f.stall, Duration::from_secs(3));
        let e = FaultSpec::parse("0.1,0.1", Duration::ZERO).unwrap_err();
        assert!(e.contains("expected 5"), "{e}");
        let e = FaultSpec::parse("0.1,x,0,0,0", Duration::ZERO).unwrap_err();
        assert!(e.contains("P429 `x`"), "{e}");
        let e = FaultSpec::parse("0.5,0.5,0.5,0,0", Duration::ZERO).unwrap_err();
        assert!(e.contains("more than 1"), "{e}");
    }
}
