//! `bench`: the daemon measured at lender scale (issue 6, BENCHMARKS.md).
//!
//! The sandbox runs as a child process (this binary's `sandbox` command), so the CPU time and the
//! peak RSS that `getrusage(RUSAGE_SELF)` reports are the daemon's own. The cycles, each one
//! `run_once` as `--once` runs it, on one state:
//! 1. first sync: a fresh state, so every stream is read from the start; overdue lines placed,
//!    LMS repayments considered, and (as on any first run) the loans just placed not yet polled;
//! 2. recoveries poll: every open loan's payment history read (the scheduled poll when all loans
//!    are due), the agents' collections delivered into the LMS;
//! 3. follow-up: those LMS records lowered the lines' dues, which this cycle carries to
//!    Credgenics (and flow C recognises as its own echoes);
//! 4. no-change cycle inside the cursor overlap window (re-reads the window, writes nothing);
//! 5. two no-change cycles once the window has passed: the first still re-reads it (the read
//!    before started inside it), the second reads from the cursor (what a scheduled cycle meets
//!    on a quiet book);
//!
//! and then a rate-limited run against a fresh sandbox answering 429 above `--rate` requests/s,
//! the daemon configured at the same rate: placement (Crego is the bound), then a poll of every
//! loan (Credgenics is the bound), each leg reporting the bound API's achieved rate. After the
//! quiet cycles, reconcile of every placed loan as an operator runs it, then (after a poll) as
//! the nightly job does. `report`: what is measured, and how it is printed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::report::AppError;
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::flows::{Context, Poll, RunOptions};
use crate::sandbox::{SandboxConfig, ServedStats};
use crate::store::Store;

mod report;
use report::print_report;
pub use report::{ApiPhase, Phase, Report};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Leads in the sandbox's book (one borrower-program and line each).
    #[arg(long, default_value_t = 100_000)]
    pub leads: usize,
    /// Percentage of lines overdue.
    #[arg(long, default_value_t = 30)]
    pub overdue_pct: u32,
    /// Percentage of overdue lines with a part repayment booked in the LMS (flow C's work).
    #[arg(long, default_value_t = 10)]
    pub repay_pct: u32,
    /// Percentage of placed loans on which an agent collects at once (flow B's work).
    #[arg(long, default_value_t = 10)]
    pub collect_pct: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Requests per second of the rate-limited run: the partner's limit and the daemon's setting
    /// (0 skips the run).
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Leads in the rate-limited run's book.
    #[arg(long, default_value_t = 1000)]
    pub rate_leads: usize,
    /// `sync.cursor_overlap_secs` of the daemon: the no-change cycle waits this long.
    #[arg(long, default_value_t = 30)]
    pub overlap_secs: u64,
    /// Skip the lender-scale cycles (only the rate-limited run).
    #[arg(long)]
    pub rate_only: bool,
    /// Directory for the state files (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the benchmark and prints its report; it fails when it could not run or a phase ended
/// with attention needed.
pub async fn run(args: BenchArgs) -> Result<crate::app::report::Report, AppError> {
    crate::telemetry::init_logging("warn", config::LogFormat::Auto);
    let report = bench(&args).await.map_err(AppError::Failed)?;
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap_or_default())
            .map_err(|e| AppError::Failed(format!("cannot write {}: {e}", path.display())))?;
    }
    let clear = |p: &Phase| p.outcome == crate::flows::RunOutcome::Clear;
    let failed = !report.phases.iter().all(|(_, p)| clear(p))
        || [&report.rate_placement, &report.rate_poll]
            .iter()
            .any(|p| p.as_ref().is_some_and(|p| !clear(p)));
    if failed {
        return Err(AppError::Failed(
            "a phase ended with attention needed (see its summary)".into(),
        ));
    }
    Ok(crate::app::report::Report::Clear)
}

async fn bench(args: &BenchArgs) -> Result<Report, String> {
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("ccsync-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = phases(args, &dir).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn phases(args: &BenchArgs, dir: &Path) -> Result<Report, String> {
    let mut report = Report {
        leads: args.leads,
        overlap_secs: args.overlap_secs,
        phases: Vec::new(),
        loans_placed_per_sec: None,
        cpu_us_per_loan_placed: None,
        peak_rss_after_first_mib: None,
        peak_rss_mib: None,
        rate_limit: args.rate,
        rate_placement: None,
        rate_poll: None,
    };
    if !args.rate_only {
        eprintln!("seeding a sandbox of {} leads in its own process...", args.leads);
        let sb = SandboxProc::spawn(
            args,
            args.leads,
            [("--repay-pct", args.repay_pct), ("--collect-pct", args.collect_pct)],
        )
        .await?;
        let state = dir.join(format!("bench-{}.db", args.leads));
        remove_state(&state);
        let ctx = sb.context(&state, 100_000, args.overlap_secs)?;
        let cycle = RunOptions::default();
        eprintln!("first sync...");
        let first = sb.measure(&ctx, &cycle).await?;
        report.loans_placed_per_sec = Some(first.loans_placed as f64 / first.wall_secs);
        report.cpu_us_per_loan_placed = Some(first.cpu_secs * 1e6 / first.loans_placed.max(1) as f64);
        report.peak_rss_after_first_mib = Some(usage().1 as f64 / 1024.0);
        report.phases.push(("first sync".into(), first));
        eprintln!("recoveries poll...");
        let poll = RunOptions {
            since: None,
            poll: Some(Poll::All),
        };
        report
            .phases
            .push(("recoveries poll".into(), sb.measure(&ctx, &poll).await?));
        eprintln!("follow-up cycle...");
        report
            .phases
            .push(("follow-up".into(), sb.measure(&ctx, &cycle).await?));
        eprintln!("no-change cycle inside the overlap window...");
        let inside = sb.measure(&ctx, &cycle).await?;
        report
            .phases
            .push(("no-change, inside the overlap window".into(), inside));
        eprintln!("waiting {} s for the overlap window to pass...", args.overlap_secs);
        tokio::time::sleep(Duration::from_secs(args.overlap_secs + 1)).await;
        // The last read started inside the window, so late commits it could not see are still
        // possible: this read re-reads the window once more; the one after it need not.
        eprintln!("no-change cycles after the overlap window...");
        let after = sb.measure(&ctx, &cycle).await?;
        report
            .phases
            .push(("no-change, first read after the overlap window".into(), after));
        report
            .phases
            .push(("no-change, steady".into(), sb.measure(&ctx, &cycle).await?));
        // Reconcile (issue 14): as an operator runs it (both sides read), then as the nightly
        // job does, right after the poll whose reads it shares.
        eprintln!("reconcile, as an operator runs it...");
        report.phases.push((
            "reconcile (operator run: both sides read)".into(),
            sb.measure_reconcile(&ctx, false).await?,
        ));
        eprintln!("recoveries poll, then reconcile as the nightly job runs it...");
        report.phases.push((
            "recoveries poll (before the nightly reconcile)".into(),
            sb.measure(&ctx, &poll).await?,
        ));
        report.phases.push((
            "reconcile (nightly: shares the poll's reads)".into(),
            sb.measure_reconcile(&ctx, true).await?,
        ));
        report.peak_rss_mib = Some(usage().1 as f64 / 1024.0);
    }
    if args.rate > 0 {
        eprintln!(
            "rate-limited run: {} leads, partner and daemon at {} requests/s...",
            args.rate_leads, args.rate
        );
        let sb = SandboxProc::spawn(
            args,
            args.rate_leads,
            [("--crego-rps", args.rate), ("--credgenics-rps", args.rate)],
        )
        .await?;
        let state = dir.join("bench-rate.db");
        remove_state(&state);
        let ctx = sb.context(&state, args.rate, args.overlap_secs)?;
        report.rate_placement = Some(
            sb.measure(
                &ctx,
                &RunOptions {
                    since: None,
                    poll: Some(Poll::Skip),
                },
            )
            .await?,
        );
        report.rate_poll = Some(
            sb.measure(
                &ctx,
                &RunOptions {
                    since: None,
                    poll: Some(Poll::All),
                },
            )
            .await?,
        );
    }
    Ok(report)
}

fn remove_state(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The sandbox in a child process, killed when dropped.
struct SandboxProc {
    _child: tokio::process::Child,
    crego: String,
    credgenics: String,
    http: reqwest::Client,
}

impl SandboxProc {
    /// A sandbox of `leads` leads (the overdue share and seed of `args`) with `extra` flags.
    async fn spawn(args: &BenchArgs, leads: usize, extra: [(&str, u32); 2]) -> Result<Self, String> {
        let mut flags = vec![
            "--leads".to_string(),
            leads.to_string(),
            "--overdue-pct".into(),
            args.overdue_pct.to_string(),
            "--seed".into(),
            args.seed.to_string(),
        ];
        for (flag, value) in extra {
            flags.extend([flag.to_string(), value.to_string()]);
        }
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "sandbox",
                "--crego-listen",
                "127.0.0.1:0",
                "--credgenics-listen",
                "127.0.0.1:0",
                "--no-request-log",
            ])
            .args(&flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the sandbox: {e}"))?;
        let stdout = child.stdout.take().ok_or("sandbox has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut crego, mut credgenics) = (None, None);
        let url = |line: &str| line.split_whitespace().nth(2).map(str::to_string);
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("sandbox Crego ") {
                    crego = url(&line);
                } else if line.starts_with("sandbox Credgenics ") {
                    credgenics = url(&line);
                }
                if crego.is_some() && credgenics.is_some() {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(1800), read)
            .await
            .map_err(|_| "the sandbox did not start within 30 minutes")?;
        // Keep its stdout drained: a closed pipe would end it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        match (crego, credgenics) {
            (Some(crego), Some(credgenics)) => Ok(Self {
                _child: child,
                crego,
                credgenics,
                http: reqwest::Client::new(),
            }),
            _ => Err("the sandbox ended before printing its addresses".into()),
        }
    }

    fn context(&self, state: &Path, rps: u32, overlap_secs: u64) -> Result<Context, String> {
        let mut text =
            crate::sandbox::config_toml(&self.crego, &self.credgenics, &SandboxConfig::default(), state, rps);
        text.push_str(&format!("\n[sync]\ncursor_overlap_secs = {overlap_secs}\n"));
        let config: Config = config::RawConfig::from_toml_str(&text)
            .and_then(|r| r.validate())
            .map_err(|e| e.to_string())?;
        let clock = Clock::system(config.sync.timezone.clone());
        let store = Store::open(&config.state_path).map_err(|e| e.to_string())?;
        Context::new(Arc::new(config), Arc::new(store), clock).map_err(|e| e.to_string())
    }

    async fn stats(&self) -> Result<(ServedStats, ServedStats), String> {
        let get = |base: &str| {
            let url = format!("{base}/_sandbox/stats");
            let http = self.http.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("sandbox stats: {e}"))?
                    .json::<ServedStats>()
                    .await
                    .map_err(|e| format!("sandbox stats: {e}"))
            }
        };
        Ok((get(&self.crego).await?, get(&self.credgenics).await?))
    }

    /// One `run_once` with the given options, measured.
    async fn measure(&self, ctx: &Context, opts: &RunOptions) -> Result<Phase, String> {
        let (phase, report) = self.measured(ctx, crate::flows::run_once(ctx, opts)).await?;
        Ok(Phase {
            loans_placed: report.place_loans.placed + report.place_loans.new_allocations,
            outcome: report.outcome,
            summary: serde_json::to_value(&report).unwrap_or_default(),
            ..phase
        })
    }

    /// One reconcile run of every placed loan, measured (`loans_placed`: loans checked).
    async fn measure_reconcile(&self, ctx: &Context, share: bool) -> Result<Phase, String> {
        let opts = crate::flows::reconcile::Options {
            scope: crate::flows::reconcile::Scope::All,
            fix: false,
            share_poll_reads: share,
        };
        let (phase, report) = self.measured(ctx, crate::flows::reconcile::run(ctx, &opts)).await?;
        let report = report.map_err(|e| format!("reconcile: {e}"))?;
        let open = report.open().count();
        Ok(Phase {
            loans_placed: report.run.loans_checked,
            outcome: if !report.complete() {
                crate::flows::RunOutcome::Incomplete
            } else if open > 0 {
                crate::flows::RunOutcome::Attention
            } else {
                crate::flows::RunOutcome::Clear
            },
            summary: serde_json::json!({"reconcile": {
                "loans_checked": report.run.loans_checked, "agreeing": report.run.agreeing,
                "findings": report.run.counts, "lms_total": report.run.lms_total.to_string(),
                "credgenics_total": report.run.credgenics_total.to_string()}}),
            ..phase
        })
    }

    /// Runs `work`, measuring wall and CPU time, requests and state changes.
    async fn measured<T>(
        &self,
        ctx: &Context,
        work: impl std::future::Future<Output = T>,
    ) -> Result<(Phase, T), String> {
        let (crego0, cg0) = self.stats().await?;
        let rows0 = ctx.store.total_changes();
        let (cpu0, _) = usage();
        let t0 = Instant::now();
        let report = work.await;
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, _) = usage();
        let rows1 = ctx.store.total_changes();
        let (crego1, cg1) = self.stats().await?;
        let delta = |a: &ServedStats, b: &ServedStats| {
            let requests = b.requests - a.requests;
            ApiPhase {
                requests,
                writes: b.writes - a.writes,
                rate_limited: b.rate_limited - a.rate_limited,
                per_sec: requests as f64 / wall,
            }
        };
        let phase = Phase {
            wall_secs: wall,
            cpu_secs: (cpu1 - cpu0).as_secs_f64(),
            crego: delta(&crego0, &crego1),
            credgenics: delta(&cg0, &cg1),
            state_rows_changed: rows1 - rows0,
            loans_placed: 0,
            outcome: crate::flows::RunOutcome::Clear,
            summary: serde_json::Value::Null,
        };
        Ok((phase, report))
    }
}

/// CPU time (user + system) of this process, and its peak RSS in KiB.
fn usage() -> (Duration, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (Duration::ZERO, 0);
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    // Linux reports ru_maxrss in KiB.
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64)
}
