//! The sandbox: fake Crego and Credgenics servers (axum) that follow `shared/api-docs` and design
//! §5 — seeded data in the documented shapes, token checks, strict Credgenics validation with the
//! documented 400 body, a configurable rate limit answering 429 + `Retry-After`, injected
//! failures, and a record of every request. Used by `demo`, the tests and the benchmarks.
//!
//! - [`seed`]: deterministic books of leads, borrower-programs and line details.
//! - [`fake_crego`] / [`fake_credgenics`]: the two HTTP surfaces.

pub mod fake_credgenics;
pub mod fake_crego;
pub mod seed;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::http::Api;

pub use seed::SeedSpec;

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub crego_token: String,
    pub credgenics_token: String,
    /// Requests per second each fake accepts before answering 429 (None: unlimited).
    pub crego_rps: Option<u32>,
    pub credgenics_rps: Option<u32>,
    pub seed: SeedSpec,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            crego_token: "sandbox-crego-token".into(),
            credgenics_token: "sandbox-credgenics-token".into(),
            crego_rps: None,
            credgenics_rps: None,
            seed: SeedSpec::default(),
        }
    }
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
    pub requests: Vec<RecordedRequest>,
    pub fail_next: BTreeMap<&'static str, VecDeque<InjectedFailure>>,
    windows: BTreeMap<&'static str, VecDeque<Instant>>,
    last_stamp: f64,
}

impl SandboxState {
    /// A strictly increasing "now" for `updated_at` values.
    pub fn stamp(&mut self) -> f64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let now = (now * 1000.0).round() / 1000.0;
        self.last_stamp = if now > self.last_stamp {
            now
        } else {
            self.last_stamp + 0.001
        };
        self.last_stamp
    }

    fn index_key(updated_at: f64, id: &str) -> (i64, String) {
        ((updated_at * 1_000_000.0).round() as i64, id.to_string())
    }

    /// Rebuilds the change-stream index (after seeding).
    pub fn reindex(&mut self) {
        self.line_index.clear();
        for (lead, progs) in &self.programs {
            for (i, p) in progs.iter().enumerate() {
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

    pub fn find_program(&self, borrower_program_id: &str) -> Option<(String, usize)> {
        self.programs.iter().find_map(|(lead, progs)| {
            progs
                .iter()
                .position(|p| p["id"] == borrower_program_id)
                .map(|i| (lead.clone(), i))
        })
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
    fn gate(&mut self, api: &'static str, rps: Option<u32>) -> Option<InjectedFailure> {
        if let Some(f) = self.fail_next.get_mut(api).and_then(VecDeque::pop_front) {
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
        let mut state = SandboxState::default();
        seed::seed(&mut state, &config.seed);
        state.reindex();
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

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Makes the next `n` requests to `api` fail with `status` (and `Retry-After`).
    pub fn fail_next(&self, api: Api, n: usize, status: u16, retry_after: Option<u64>) {
        let mut s = self.state();
        let q = s.fail_next.entry(api.name()).or_default();
        for _ in 0..n {
            q.push_back(InjectedFailure { status, retry_after });
        }
    }
}

fn record(shared: &Shared, req: RecordedRequest) {
    shared.lock().requests.push(req);
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
        match self.api {
            Api::Crego => headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == format!("Bearer {}", cfg.crego_token)),
            Api::Credgenics => headers
                .get("authenticationtoken")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == cfg.credgenics_token),
        }
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
    let is_control = path.starts_with("/_sandbox");
    let mut rec = RecordedRequest {
        api: gate.api.name(),
        method: parts.method.to_string(),
        path,
        query,
        body: if bytes.is_empty() {
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
    let refused = gate.shared.lock().gate(gate.api.name(), gate.rps());
    let resp = if let Some(f) = refused {
        let mut r = (
            axum::http::StatusCode::from_u16(f.status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(serde_json::json!({"message": "sandbox: injected failure or rate limit"})),
        )
            .into_response();
        if let Some(s) = f.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    } else if !gate.authorised(&parts.headers) {
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
        format!(
            r#"[state]
path = "{state}"

[crego]
base_url = "{crego}"
bearer_token = "{ct}"
requests_per_second = 200
max_in_flight = 8
timeout_secs = 5
connect_timeout_secs = 2

[credgenics]
base_url = "{cg}"
auth_token = "{gt}"
requests_per_second = 200
max_in_flight = 8
timeout_secs = 5
connect_timeout_secs = 2

[webhook]
listen = "127.0.0.1:0"
"#,
            state = state_path.display().to_string().replace('\\', "\\\\"),
            crego = self.crego_url(),
            ct = self.config().crego_token,
            cg = self.credgenics_url(),
            gt = self.config().credgenics_token,
        )
    }

    /// Credgenics writes (POST/PATCH) the sandbox has answered so far.
    pub fn credgenics_writes(&self) -> Vec<RecordedRequest> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.api == "credgenics" && r.is_write())
            .cloned()
            .collect()
    }
}
