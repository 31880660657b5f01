//! Shared test helpers: a sandbox with a temporary state file, configs pointing at it, and
//! cycles run in-process on a chosen clock.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use crego_credgenics_sync::app::{AppError, Report};
use crego_credgenics_sync::clock::Clock;
use crego_credgenics_sync::config::{Config, RawConfig};
use crego_credgenics_sync::flows::{self, Context, RunOptions, RunOutcome, RunReport};
use crego_credgenics_sync::sandbox::{Realism, RecordedRequest, Sandbox, SandboxConfig, SeedSpec};
use crego_credgenics_sync::store::Store;

pub const IST: &str = "Asia/Kolkata";

pub struct Harness {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    /// Extra TOML appended to the sandbox config (later keys of a table win by section order,
    /// so tests replace whole values through `edit` instead).
    pub edits: Vec<(String, String)>,
    /// TOML appended to the generated config (whole sections, e.g. `[mapping.payment]`).
    pub appended: String,
    /// The state as the in-process daemon holds it (opened once, shared with the listener).
    live: std::sync::Mutex<Option<Arc<Store>>>,
}

pub const WEBHOOK_TOKEN: &str = "sandbox-webhook-token";

/// The tests' seeded book: `leads` leads, `overdue_pct` of their lines overdue.
fn seeded(leads: usize, overdue_pct: u32) -> SandboxConfig {
    SandboxConfig {
        seed: SeedSpec {
            leads,
            overdue_pct,
            rng_seed: 11,
            ..SeedSpec::default()
        },
        ..SandboxConfig::default()
    }
}

impl Harness {
    pub async fn new(leads: usize, overdue_pct: u32) -> Self {
        Self::with(seeded(leads, overdue_pct)).await
    }

    /// A harness on the realistic sandbox (design §7) with `realism`.
    pub async fn realistic(leads: usize, overdue_pct: u32, realism: Realism) -> Self {
        Self::with(SandboxConfig {
            realism: Some(realism),
            ..seeded(leads, overdue_pct)
        })
        .await
    }

    pub async fn with(cfg: SandboxConfig) -> Self {
        let sb = Sandbox::start_local(cfg).await.expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("state.db");
        Self {
            sb,
            dir,
            state,
            edits: Vec::new(),
            appended: String::new(),
            live: std::sync::Mutex::new(None),
        }
    }

    /// Replaces `key = ...` lines (first match) in the generated config.
    pub fn edit(&mut self, key: &str, value: &str) {
        self.edits.push((key.to_string(), value.to_string()));
    }

    pub fn edit_append(&mut self, toml: &str) {
        self.appended.push_str(toml);
    }

    pub fn config_toml(&self) -> String {
        let mut text = self.sb.config_toml(&self.state);
        text.push_str(&self.appended);
        for (k, v) in &self.edits {
            let needle = format!("\n{k} = ");
            let start = text.find(&needle).unwrap_or_else(|| panic!("no key {k} in config")) + 1;
            let end = start + text[start..].find('\n').unwrap();
            text.replace_range(start..end, &format!("{k} = {v}"));
        }
        text
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::new(
            RawConfig::from_toml_str(&self.config_toml())
                .unwrap()
                .validate()
                .unwrap(),
        )
    }

    pub fn write_config(&self) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, self.config_toml()).unwrap();
        path
    }

    /// One `--once` cycle on the real clock.
    pub async fn once(&self) -> RunReport {
        let config = self.config();
        let clock = Clock::system(config.sync.timezone.clone());
        self.once_with(config, clock).await
    }

    /// One `--once` cycle with "now" at `rfc3339`.
    pub async fn once_at(&self, rfc3339: &str) -> RunReport {
        let config = self.config();
        let clock = Clock::starting_at(rfc3339.parse().unwrap(), config.sync.timezone.clone());
        self.once_with(config, clock).await
    }

    async fn once_with(&self, config: Arc<Config>, clock: Clock) -> RunReport {
        self.run(config, clock, RunOptions::default()).await
    }

    /// One cycle polling every open loan's payment history.
    pub async fn once_polling_all(&self) -> RunReport {
        let config = self.config();
        let clock = Clock::system(config.sync.timezone.clone());
        self.run(
            config,
            clock,
            RunOptions {
                since: None,
                poll: Some(flows::Poll::All),
            },
        )
        .await
    }

    /// A flow context on the live state with the current config and the real clock (for tests
    /// that drive flows or reconcile themselves).
    pub fn context(&self) -> Context {
        let config = self.config();
        let clock = Clock::system(config.sync.timezone.clone());
        Context::new(config, self.live_store(), clock).unwrap()
    }

    pub async fn run(&self, config: Arc<Config>, clock: Clock, opts: RunOptions) -> RunReport {
        let ctx = Context::new(config, self.live_store(), clock).unwrap();
        flows::run_once(&ctx, &opts).await
    }

    /// The state the in-process daemon uses; opened (and locked) on first use.
    pub fn live_store(&self) -> Arc<Store> {
        self.live
            .lock()
            .unwrap()
            .get_or_insert_with(|| Arc::new(Store::open(&self.state).expect("state opens")))
            .clone()
    }

    /// Closes the in-process daemon's state (releases the lock).
    pub fn close_store(&self) {
        self.live.lock().unwrap().take();
    }

    /// Starts the webhook listener on a free port and points the sandbox's webhooks at it.
    pub async fn listen(&self) -> String {
        let config = self.config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}{}",
            listener.local_addr().unwrap(),
            crego_credgenics_sync::server::WEBHOOK_PATH
        );
        let state = crego_credgenics_sync::server::ServerState {
            clock: Clock::system(config.sync.timezone.clone()),
            config,
            store: self.live_store(),
            token: WEBHOOK_TOKEN.to_string().into(),
        };
        tokio::spawn(crego_credgenics_sync::server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        self.sb.set_webhook_target(&url, WEBHOOK_TOKEN);
        url
    }

    pub fn store(&self) -> Store {
        Store::open_read_only(&self.state).unwrap()
    }

    /// Requests since `from` (an index into the log).
    pub fn requests_since(&self, from: usize) -> Vec<RecordedRequest> {
        self.sb.requests()[from..].to_vec()
    }
}

pub fn writes(reqs: &[RecordedRequest]) -> Vec<&RecordedRequest> {
    reqs.iter().filter(|r| r.api == "credgenics" && r.is_write()).collect()
}

/// Loan ids (program `ref_id`) of the sandbox's overdue lines.
pub fn overdue_loan_ids(sb: &Sandbox) -> Vec<String> {
    let mut ids: Vec<String> = sb
        .state()
        .overdue_programs(1)
        .iter()
        .map(|p| p["ref_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// (loan id, borrower-program id, due) of every overdue line, as the sandbox holds them now,
/// by loan id.
pub fn overdue_lines(sb: &Sandbox) -> Vec<(String, String, rust_decimal::Decimal)> {
    let s = sb.state();
    let mut v: Vec<_> = s
        .overdue_programs(1)
        .iter()
        .map(|p| {
            let due = &p["line_detail"]["due_amount"];
            (
                p["ref_id"].as_str().unwrap().to_string(),
                p["id"].as_str().unwrap().to_string(),
                due.to_string().parse().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_crego-credgenics-sync")
}

/// An in-process daemon (daemon mode) on a free port.
pub struct Daemon {
    /// The webhook's listener.
    pub addr: std::net::SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<Result<Report, AppError>>,
}

impl Daemon {
    /// Asks it to stop (as SIGTERM does) and returns its exit code.
    pub async fn stop(mut self) -> i32 {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        exit_code(&self.join.await.unwrap())
    }

    /// A URL on the webhook's listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

impl Harness {
    /// Starts daemon mode in-process on the live state, with the harness's config.
    pub async fn start_daemon(&self) -> Daemon {
        let config = self.config();
        let clock = Clock::system(config.sync.timezone.clone());
        let ctx = Context::new(config, self.live_store(), clock).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let listeners = crego_credgenics_sync::daemon::Listeners {
            webhook: listener,
            admin,
        };
        let join = tokio::spawn(crego_credgenics_sync::daemon::run(ctx, listeners, async move {
            let _ = rx.await;
        }));
        Daemon {
            addr,
            admin: admin_addr,
            stop: Some(tx),
            join,
        }
    }
}

/// Sends SIGTERM to `child` and waits (at most 60 s) for it: its exit code, how long the exit
/// took, and its stderr.
pub async fn terminate(child: tokio::process::Child) -> (Option<i32>, std::time::Duration, String) {
    let pid = child.id().unwrap().to_string();
    let asked = std::time::Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the process exits")
        .unwrap();
    (
        out.status.code(),
        asked.elapsed(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `cond` holds, polling every 50 ms; fails the test naming `what` after `secs`.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `[sync.schedules]` section: each job's cron (with seconds).
pub fn schedules(place_loans: &str, push_repayments: &str, poll_recoveries: &str, reconcile: &str) -> String {
    format!(
        "[sync.schedules]\nplace_loans = \"{place_loans}\"\npush_repayments = \"{push_repayments}\"\npoll_recoveries = \"{poll_recoveries}\"\nreconcile = \"{reconcile}\"\n"
    )
}

/// A cron that does not fire during a test.
pub const NEVER: &str = "0 0 0 1 1 *";

/// The exit code design §3 gives how a command ended, as `main.rs` maps it: the binary's tests
/// and the in-process ones assert the same numbers.
pub fn exit_code(r: &Result<Report, AppError>) -> i32 {
    match r {
        Ok(Report::Clear) => 0,
        Ok(Report::Attention) | Err(AppError::Failed(_)) => 1,
        Err(AppError::Usage(_) | AppError::Config(_)) => 2,
        Err(AppError::Incomplete(_)) => 3,
    }
}

/// A `--once` report's exit code (design §3).
pub trait ExitCode {
    fn exit_code(&self) -> i32;
}

impl ExitCode for RunReport {
    fn exit_code(&self) -> i32 {
        match self.outcome {
            RunOutcome::Clear => 0,
            RunOutcome::Attention => 1,
            RunOutcome::Incomplete => 3,
        }
    }
}

/// One seeded credit line: its account (borrower-program id), customer id, and its drawdowns as
/// (drawdown id, transaction id = ref_id, overdue).
pub struct ClLine {
    pub account: String,
    pub customer: String,
    pub drawdowns: Vec<(String, String, bool)>,
}

/// A credit-line tenant (design §8) with `lines` lines of one to three drawdowns each, about two
/// thirds of the drawdowns overdue; the same book for the same `lines`.
pub async fn credit_line_harness(lines: usize, realism: Option<Realism>) -> (Harness, Vec<ClLine>) {
    use rust_decimal::Decimal;
    let h = Harness::with(SandboxConfig {
        realism,
        ..SandboxConfig::credit_line()
    })
    .await;
    let mut book = Vec::new();
    for i in 0..lines {
        let plan: Vec<(&str, Decimal, Decimal, i64, f64)> = (0..1 + i % 3)
            .map(|j| {
                let amount = Decimal::from(10_000 + (i * 37 + j * 11) % 9_000);
                let overdue = (i + j + 1) % 3 != 0;
                let due = if overdue {
                    (amount * Decimal::new(3, 1)).round_dp(2) + Decimal::new(((i + j) % 100) as i64, 2)
                } else {
                    Decimal::ZERO
                };
                let dpd = if overdue { 3 + ((i * 7 + j * 5) % 120) as i64 } else { 0 };
                (
                    if j == 2 { "topup" } else { "loan" },
                    amount,
                    due,
                    dpd,
                    150.0 - j as f64 * 40.0,
                )
            })
            .collect();
        let (_, account, customer, refs) = {
            let mut s = h.sb.state();
            crego_credgenics_sync::sandbox::seed::seed_credit_line(&mut s, i + 1, &plan)
        };
        let drawdowns = refs
            .iter()
            .zip(&plan)
            .map(|(r, p)| {
                let dd = h.sb.drawdown(&account, r).expect("seeded drawdown");
                (dd["id"].as_str().unwrap().to_string(), r.clone(), p.2 > Decimal::ZERO)
            })
            .collect();
        book.push(ClLine {
            account,
            customer,
            drawdowns,
        });
    }
    (h, book)
}

/// Runs `--once` and kills it (SIGKILL) after `after`, unless it finished first. Returns its exit
/// code when it finished, and what it printed (the run summary and errors), for failure messages.
pub async fn once_killed_after(config: &std::path::Path, after: std::time::Duration) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "--once"])
        .env("RUST_LOG", "error")
        .env_remove("CCSYNC_NOW")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let code = tokio::select! {
        status = child.wait() => status.unwrap().code(),
        _ = tokio::time::sleep(after) => {
            child.start_kill().unwrap(); // SIGKILL: no graceful anything
            child.wait().await.unwrap();
            None
        }
    };
    let printed = format!(
        "stdout: {}\nstderr: {}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    (code, printed)
}

/// Kills runs at each of `points` (ms), then runs to completion. Returns how many runs were
/// really killed mid-way and the exit code of the final run.
pub async fn crash_then_finish(config: &std::path::Path, points: &[u64]) -> (usize, i32) {
    let mut killed = 0;
    for ms in points {
        let (code, printed) = once_killed_after(config, std::time::Duration::from_millis(*ms)).await;
        match code {
            None => killed += 1,
            Some(c) => eprintln!("run meant to be killed at {ms} ms ended first, code {c}: {printed}"),
        }
    }
    let mut last = String::new();
    for _ in 0..10 {
        let (code, printed) = once_killed_after(config, std::time::Duration::from_secs(300)).await;
        if code == Some(0) {
            return (killed, 0);
        }
        last = format!("code {code:?}, {printed}");
    }
    panic!("no clean run after the crashes; the last: {last}");
}
