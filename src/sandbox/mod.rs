//! The sandbox: fake Crego and Credgenics servers (axum) that follow `shared/api-docs` and design
//! §5 — seeded data in the documented shapes, token checks, strict Credgenics validation with the
//! documented 400 body, a configurable rate limit answering 429 + `Retry-After`, injected
//! failures, and a record of every request. Used by `demo`, the tests and the benchmarks.
//!
//! - [`seed`]: deterministic books of leads, borrower-programs and line details.
//! - [`realism`]: the realistic mode (design §7): a lagging LMS, shared dates, items changing while
//!   a stream is paged, busy token endpoints.
//! - [`checks`]: the fake Credgenics' validation, written from the API document on its own.
//! - [`fake_crego`] / [`fake_credgenics`]: the two HTTP surfaces; [`credit_line`] the Credit Line
//!   APIs a credit-line tenant serves instead ([`credit_line_book`]: what it holds;
//!   [`credit_line_agent`]: agent recoveries there).
//! - [`drawdowns`]: a credit line's loans and topups in the fake LMS, and repayments spread over
//!   them.

pub mod checks;
pub mod credit_line;
pub mod credit_line_agent;
pub mod credit_line_book;
pub mod demo_credit_line;
pub mod drawdowns;
pub mod fake_credgenics;
pub mod fake_crego;
pub mod gate;
pub mod lagging;
pub mod realism;
pub mod seed;
pub mod spec;
pub mod state;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

use crate::partners::http::Api;

use gate::emit_webhook;
pub use gate::{Shared, payment_webhook};
pub use spec::*;
pub use state::*;

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
auth_token = "{gt}"{mode}
requests_per_second = {rps}
max_in_flight = 8
timeout_secs = 5
connect_timeout_secs = 2

[webhook]
listen = "127.0.0.1:0"
token = "{wt}"

[admin]
listen = "127.0.0.1:0"
"#,
        state = state_path.display().to_string().replace('\\', "\\\\"),
        ct = sb.crego_token,
        gt = sb.credgenics_token,
        wt = sb.webhook_token,
        // A credit-line tenant takes a credit-line config (design §8).
        mode = if sb.tenant.credit_line {
            "\nmode = \"credit_line\""
        } else {
            ""
        },
    )
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

impl Sandbox {
    /// A drawdown disbursed on a credit line (see [`SandboxState::add_drawdown`]).
    // The state's signature, forwarded.
    #[allow(clippy::too_many_arguments)]
    pub fn add_drawdown(
        &self,
        account: &str,
        kind: &str,
        amount: rust_decimal::Decimal,
        due: rust_decimal::Decimal,
        outstanding: rust_decimal::Decimal,
        dpd: i64,
        date: f64,
    ) -> Value {
        self.state()
            .add_drawdown(account, kind, amount, due, outstanding, dpd, date)
    }

    /// Changes one drawdown (by id or ref_id) as the LMS would; false when there is none.
    pub fn update_drawdown(&self, account: &str, drawdown_id: &str, f: impl FnOnce(&mut Value)) -> bool {
        self.state().update_drawdown(account, drawdown_id, f)
    }

    /// A repayment booked in the LMS on a credit line, naming the drawdowns it pays.
    pub fn line_repayment(
        &self,
        account: &str,
        amount: rust_decimal::Decimal,
        utr: &str,
        loans: &[&str],
        topup: Option<&str>,
    ) -> Value {
        self.state().add_line_repayment(account, amount, utr, loans, topup)
    }

    /// A snapshot of one drawdown of `account`, by its `ref_id`.
    pub fn drawdown(&self, account: &str, ref_id: &str) -> Option<Value> {
        let s = self.state();
        s.drawdowns
            .get(account)?
            .iter()
            .find(|d| d["ref_id"] == ref_id)
            .cloned()
    }

    /// A field agent's collection on a credit-line customer's transaction at Credgenics (see
    /// [`SandboxState::add_cl_agent_collection`]); no webhook, as credit-line tenants send none.
    pub fn cl_agent_collection(
        &self,
        customer: &str,
        transaction: &str,
        amount: rust_decimal::Decimal,
        reference: &str,
    ) -> Option<Value> {
        self.state()
            .add_cl_agent_collection(customer, transaction, amount, reference)
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
