//! Runs a resolved [`Mode`]: builds the runtime, loads what the mode needs, and hands over to the
//! command. Every command returns `Result<Report, AppError>`; the exit number is `main.rs`'s.

use std::path::Path;
use std::sync::Arc;

use super::args::DeadLetters;
#[cfg(feature = "sandbox")]
use super::args::SandboxArgs;
use super::mode::{Dry, Mode, PreviewTarget, Resolved};
use super::report::{AppError, Report};
use crate::clock::{self, Clock};
use crate::config::{self, Config};
use crate::flows::{self, Context, RunOptions, RunOutcome};
#[cfg(feature = "sandbox")]
use crate::sandbox::{FaultSpec, Sandbox, SandboxConfig, SeedSpec};
use crate::store::Store;
use crate::telemetry;

/// Runs what `resolved` says on a fresh multi-threaded runtime.
pub fn run(resolved: Resolved) -> Result<Report, AppError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Failed(format!("cannot start the async runtime: {e}")))?;
    let Resolved { config, mode } = resolved;
    let config = config.as_path();
    let result = rt.block_on(async move {
        match mode {
            Mode::CheckConfig {
                samples_only: false,
                once,
            } => crate::ops::check_config::run(config, once),
            Mode::CheckConfig { samples_only: true, .. } => crate::ops::check_config::samples_only(config),
            #[cfg(feature = "sandbox")]
            Mode::Demo { credit_line: false } => crate::demo::run().await,
            #[cfg(feature = "sandbox")]
            Mode::Demo { credit_line: true } => crate::sandbox::demo_credit_line::run().await,
            Mode::Doctor => match lending_only(config, "doctor") {
                Ok(()) => crate::ops::doctor::run(config).await,
                Err(e) => Err(e),
            },
            Mode::Reconcile {
                loan,
                since,
                fix,
                format,
            } => match lending_only(config, "reconcile") {
                Ok(()) => reconcile(config, loan, since.as_deref(), fix, format).await,
                Err(e) => Err(e),
            },
            #[cfg(feature = "sandbox")]
            Mode::Sandbox(args) => serve_sandbox(args).await,
            #[cfg(feature = "sandbox")]
            Mode::Bench(args) => crate::bench::run(args).await,
            Mode::Status { json } => crate::ops::status(&state_path(config)?, json),
            Mode::DeadLetters(cmd) => {
                let p = state_path(config)?;
                match cmd {
                    DeadLetters::List { json, ignored } => crate::ops::list(&p, json, ignored),
                    DeadLetters::Retry { id, all } => crate::ops::retry(&p, id.as_deref(), all),
                    DeadLetters::Ignore { id, reason } => crate::ops::ignore(&p, &id, &reason),
                }
            }
            Mode::Preview { target, reveal } => preview(config, &target, reveal).await,
            Mode::MappingTest {
                config,
                kind,
                input,
                expected,
            } => crate::ops::mapping_test(config.as_deref(), kind, &input, expected.as_deref()),
            Mode::Backup { file } => crate::ops::backup(&state_path(config)?, &file),
            Mode::Completions { shell } => super::manual::completions(shell),
            Mode::Man => super::manual::man(),
            Mode::Once { since, dry, json } => once(config, since.as_deref(), dry, json).await,
            Mode::Daemon => daemon(config).await,
        }
    });
    // Tasks still running here were abandoned on purpose (the shutdown grace ended): do not
    // wait for them, or for a worker thread stuck in one.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// The state file an operator command works on. Only `state.path` is needed, so the tokens need
/// not be present (they may live in systemd credentials only the service sees).
/// The commands that read lending loans only: in credit-line mode they would find none and say
/// all is well, so they refuse instead, saying so (exit 2).
fn lending_only(config: &Path, command: &str) -> Result<(), AppError> {
    let raw = config::load_raw(Some(config)).map_err(AppError::config)?;
    if raw.credgenics.mode == "credit_line" {
        return Err(AppError::Usage(format!(
            "`{command}` reads lending loans and does not cover credgenics.mode = \"credit_line\" yet; \
             `status`, `dead-letters`, `preview --lead` and `--dry-run` do"
        )));
    }
    Ok(())
}

fn state_path(config: &Path) -> Result<std::path::PathBuf, AppError> {
    config::load_raw(Some(config))
        .map(|raw| raw.state.path.into())
        .map_err(AppError::config)
}

/// Loads the config, the clock and the state (read-only for a dry run).
fn prepare(config: &Path, read_only: bool) -> Result<(Arc<Config>, Clock, Arc<Store>), AppError> {
    let config = config::load(Some(config)).map_err(AppError::config)?;
    telemetry::init_logging(&config.log.level, config.log.format);
    let (clock, overridden) =
        Clock::from_env(config.sync.timezone.clone()).map_err(|e| AppError::Usage(e.to_string()))?;
    if let Some(v) = overridden {
        telemetry::events::clock_overridden(&v);
    }
    let store = if read_only {
        Store::open_read_only(&config.state_path)
    } else {
        Store::open(&config.state_path)
    }?;
    check_mode(&config, &store, read_only)?;
    Ok((Arc::new(config), clock, Arc::new(store)))
}

/// A state file belongs to one Credgenics mode (design §8): its loans, ledger and cursors mean
/// different things in each, so a config of the other mode is refused before anything runs.
fn check_mode(config: &Config, store: &Store, read_only: bool) -> Result<(), AppError> {
    let mode = config.credgenics.mode.as_str();
    let failed = |e: crate::store::StoreError| AppError::Failed(e.to_string());
    if let Some(theirs) = store.mode().map_err(failed)?.filter(|theirs| theirs != mode) {
        return Err(AppError::Usage(format!(
            "state file {} belongs to credgenics.mode = \"{theirs}\", and this config says \"{mode}\": a state \
             file belongs to one mode; point state.path at a new file for {mode} mode, or set credgenics.mode \
             back to \"{theirs}\"",
            config.state_path.display()
        )));
    }
    if !read_only && let Err(theirs) = store.claim_mode(mode).map_err(failed)? {
        return Err(AppError::Usage(format!("state file belongs to mode \"{theirs}\"")));
    }
    Ok(())
}

fn context(config: Arc<Config>, store: Arc<Store>, clock: Clock) -> Result<Context, AppError> {
    Context::new(config, store, clock).map_err(|e| AppError::Failed(e.to_string()))
}

/// `--once` / `--dry-run`: one cycle of every flow.
async fn once(config: &Path, since: Option<&str>, dry: Option<Dry>, json: bool) -> Result<Report, AppError> {
    let (config, clock, store) = prepare(config, dry.is_some())?;
    let since = since
        .map(|s| {
            clock::parse_instant(s, clock.tz())
                .map(|ts| ts.as_millisecond() as f64 / 1000.0)
                .map_err(|e| AppError::Usage(format!("--since `{s}`: {e}")))
        })
        .transpose()?;
    let mut ctx = context(config.clone(), store, clock)?;
    if let Some(d) = dry {
        ctx = ctx.dry(d.reveal);
    }
    let opts = RunOptions { since, poll: None };
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && dry.is_none() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        ctx.progress = Some(pb);
    }
    // SIGTERM/SIGINT: finish the page in hand and stop; the state stays consistent.
    // The grace is a hard bound: a request that never answers cannot hold the process.
    let cancel = ctx.cancel.clone();
    let grace = config.daemon.shutdown_grace;
    let signalled = async move {
        shutdown_signal().await;
        cancel.cancel();
        tokio::time::sleep(grace).await;
    };
    // The run is a task of its own, so this select (and the signal) is never held up by it.
    let ctx = Arc::new(ctx);
    let run = tokio::spawn({
        use tracing::Instrument;
        let ctx = ctx.clone();
        async move { flows::run_once(&ctx, &opts).await }.instrument(telemetry::events::cycle_span("once"))
    });
    let report = tokio::select! {
        report = run => report.map_err(|e| AppError::Incomplete(format!("the run failed: {e}")))?,
        _ = signalled => {
            return Err(AppError::Incomplete(format!(
                "the run did not stop within daemon.shutdown_grace_secs = {}; unsent work stays in the state",
                grace.as_secs()
            )));
        }
    };
    if let Some(pb) = &ctx.progress {
        pb.finish_and_clear();
    }
    // People on a terminal read the summary; scripts (piped, or --json) get JSON.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let would_send = ctx.dry_requests.load(std::sync::atomic::Ordering::Relaxed);
    match (dry.is_some(), terminal && !json) {
        (false, true) => print!("{}", super::summary::once(&report)),
        (false, false) => println!("{}", serde_json::to_string(&report).unwrap_or_default()),
        (true, true) => print!("{}", super::summary::dry_run(&report, would_send)),
        (true, false) => eprintln!("{}", super::summary::dry_run_note(would_send)),
    }
    match report.outcome {
        RunOutcome::Clear => Ok(Report::Clear),
        RunOutcome::Attention => Ok(Report::Attention),
        RunOutcome::Incomplete => Err(AppError::Incomplete(report.error.clone().unwrap_or_default())),
    }
}

async fn preview(config: &Path, target: &PreviewTarget, reveal: bool) -> Result<Report, AppError> {
    // Read-only state, never created.
    let (config, clock, store) = prepare(config, true)?;
    let ctx = context(config, store, clock)?.dry(reveal);
    let credit_line = ctx.config.credgenics.mode == config::CredgenicsMode::CreditLine;
    let text = match target {
        PreviewTarget::Lead(l) if credit_line => crate::ops::preview_credit_line::lead(&ctx, l).await,
        PreviewTarget::Loan(l) if credit_line => crate::ops::preview_credit_line::loan(&ctx, l).await,
        PreviewTarget::Record(_) if credit_line => {
            return Err(AppError::Usage(
                "`preview --record` shows a lending payment; in credgenics.mode = \"credit_line\" use \
                 --dry-run, which prints each share a record would be sent as"
                    .into(),
            ));
        }
        PreviewTarget::Lead(l) => crate::preview::lead(&ctx, l).await,
        PreviewTarget::Loan(l) => crate::preview::loan(&ctx, l).await,
        PreviewTarget::Record(r) => crate::preview::record(&ctx, r).await,
    }
    .map_err(AppError::Failed)?;
    print!("{text}");
    Ok(Report::Clear)
}

/// `reconcile`: one run, stopped between loans by SIGTERM/SIGINT (the next run resumes).
async fn reconcile(
    config: &Path,
    loan: Option<String>,
    since: Option<&str>,
    fix: bool,
    format: crate::ops::reconcile::Format,
) -> Result<Report, AppError> {
    use crate::flows::reconcile::{Options, Scope};
    let (config, clock, store) = prepare(config, false)?;
    let scope = match (loan, since) {
        (Some(id), _) => Scope::Loan(id),
        (None, Some(s)) => Scope::Since(
            clock::parse_instant(s, clock.tz())
                .map(|ts| ts.as_millisecond() as f64 / 1000.0)
                .map_err(|e| AppError::Usage(format!("--since `{s}`: {e}")))?,
        ),
        (None, None) => Scope::All,
    };
    let ctx = Arc::new(context(config, store, clock)?);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    });
    let opts = Options {
        scope,
        fix,
        share_poll_reads: false,
    };
    let report = tracing::Instrument::instrument(
        flows::reconcile::run(&ctx, &opts),
        telemetry::events::cycle_span("reconcile"),
    )
    .await
    .map_err(|e| AppError::Incomplete(e.to_string()))?;
    print!("{}", crate::ops::reconcile::render(&report, format));
    if !report.complete() {
        return Err(AppError::Incomplete(report.error.clone().unwrap_or_else(|| {
            "the run stopped before its end or could not read every loan; run it again to resume".into()
        })));
    }
    Ok(Report::clear_if(report.open().next().is_none()))
}

/// Daemon mode: the listeners on `webhook.listen` and `admin.listen`, every job on its schedule, until SIGTERM/SIGINT.
async fn daemon(config: &Path) -> Result<Report, AppError> {
    let (config, clock, store) = prepare(config, false)?;
    ignore_hangup();
    let ctx = context(config, store, clock)?;
    let bind = |key: &'static str, addr: std::net::SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AppError::Failed(format!("cannot listen on {key} = {addr}: {e}")))
    };
    let listeners = crate::daemon::Listeners {
        webhook: bind("webhook.listen", ctx.config.webhook.listen).await?,
        admin: bind("admin.listen", ctx.config.daemon.admin_listen).await?,
    };
    crate::daemon::run(ctx, listeners, shutdown_signal()).await
}

/// SIGHUP would end the process by default. Logs go to stdout and stderr (journald), so there
/// is no file to re-open, and the config is read at start only: SIGHUP is logged and ignored.
fn ignore_hangup() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                telemetry::events::hangup_ignored();
            }
        });
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(feature = "sandbox")]
async fn serve_sandbox(args: SandboxArgs) -> Result<Report, AppError> {
    telemetry::init_logging("info", config::LogFormat::Auto);
    let stall = std::time::Duration::try_from_secs_f64(args.stall_secs).map_err(|_| {
        AppError::Usage(format!(
            "--stall-secs `{}` is not a duration in seconds",
            args.stall_secs
        ))
    })?;
    let faults = args
        .faults
        .as_deref()
        .map(|f| FaultSpec::parse(f, stall))
        .transpose()
        .map_err(|e| AppError::Usage(format!("--faults {e}")))?;
    let cfg = SandboxConfig {
        crego_rps: args.crego_rps,
        credgenics_rps: args.credgenics_rps,
        seed: SeedSpec {
            leads: args.leads,
            overdue_pct: args.overdue_pct,
            rng_seed: args.seed,
            repay_pct: args.repay_pct,
        },
        keep_request_log: !args.no_request_log,
        collect_pct: args.collect_pct,
        realism: args.realistic.then(|| crate::sandbox::Realism {
            seed: args.seed,
            ..Default::default()
        }),
        ..SandboxConfig::default()
    };
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let crego = bind(args.crego_listen).await.map_err(AppError::Usage)?;
    let cg = bind(args.credgenics_listen).await.map_err(AppError::Usage)?;
    let sb = Sandbox::start(cfg, crego, cg)
        .await
        .map_err(|e| AppError::Failed(e.to_string()))?;
    if let Some(spec) = faults {
        sb.set_faults(crate::partners::http::Api::Crego, spec.clone(), args.seed);
        sb.set_faults(crate::partners::http::Api::Credgenics, spec, args.seed.wrapping_add(1));
    }
    println!(
        "sandbox Crego      {}  (bearer token: {})",
        sb.crego_url(),
        sb.config().crego_token
    );
    println!(
        "sandbox Credgenics {}  (authenticationtoken: {})",
        sb.credgenics_url(),
        sb.config().credgenics_token
    );
    println!(
        "a config for it:\n\n{}",
        sb.config_toml(Path::new("./sandbox-state.db"))
    );
    shutdown_signal().await;
    Ok(Report::Clear)
}
