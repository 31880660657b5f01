//! The command line and [`run`], the entry point `main.rs` calls. Exit codes (design §3): 0 done
//! with nothing pending, in doubt or rejected; 1 something needs attention or a credential was
//! refused; 2 a config or usage error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::{self, Clock};
use crate::config::{self, Config, LogFormat};
use crate::sandbox::{FaultSpec, Sandbox, SandboxConfig, SeedSpec};
use crate::store::Store;
use crate::sync::{self, Context, RunOptions};
use crate::telemetry;

pub use crate::exit::{EXIT_ATTENTION, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Parser)]
#[command(
    name = "crego-credgenics-sync",
    version,
    about = "Keeps a Crego LMS and a Credgenics collections account in step"
)]
pub struct Cli {
    /// Configuration file (TOML); `CCSYNC_<SECTION>__<KEY>` environment variables override it.
    #[arg(
        long,
        global = true,
        env = "CCSYNC_CONFIG",
        default_value = "/etc/crego-credgenics-sync/config.toml"
    )]
    pub config: PathBuf,
    /// Run every job once and exit (0 all clear, 1 attention needed, 2 config error).
    #[arg(long)]
    pub once: bool,
    /// Backfill: read the change streams from this date (midnight in the configured zone) or
    /// RFC 3339 time instead of the stored cursors, without moving them backwards.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Fetch and map, print what would be sent, write nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run or preview: print personal data unmasked.
    #[arg(long, global = true)]
    pub reveal: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and report OK or every problem (exit 2); every mapping
    /// expression is evaluated once on built-in samples under the daemon's budget.
    CheckConfig {
        /// Internal: the sample evaluation alone, in the child process check-config runs it in.
        #[arg(long, hide = true)]
        samples_only: bool,
    },
    /// Run one full cycle against the bundled sandbox, on free ports with a temporary state.
    Demo,
    /// Serve the fake Crego and Credgenics APIs so a config can point at them.
    Sandbox(SandboxArgs),
    /// Measure the daemon at lender scale against a sandbox in its own process (BENCHMARKS.md).
    Bench(crate::bench::BenchArgs),
    /// Cursors and their age, loans by state, payments by state and direction, jobs, last runs,
    /// dead letters. Safe while the daemon runs.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Payments and loans the partners rejected: list, retry, or set aside.
    #[command(subcommand)]
    DeadLetters(DeadLetters),
    /// Fetch a lead's live data, map it, and show the input document, the payloads, the
    /// preflight verdict per field and the difference from what was last sent. Writes nothing.
    Preview {
        /// The Crego lead id (flow A: its borrower-programs).
        #[arg(long, required_unless_present = "record", conflicts_with = "record")]
        lead: Option<String>,
        /// An LMS record id (flow C: the payment it becomes).
        #[arg(long)]
        record: Option<String>,
    },
    /// Work on the field mapping without sending anything.
    #[command(subcommand)]
    Mapping(MappingCmd),
}

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Map a saved input document with the configured mapping and compare it with an expected
    /// payload (exit 1 on any difference); without --expected, print the payload. Needs no
    /// credentials; the config file is optional (the built-in mapping without it).
    Test {
        #[arg(long, value_enum, default_value = "loan")]
        kind: crate::ops::MappingKind,
        /// The input document (JSON).
        input: PathBuf,
        /// The expected payload (JSON).
        #[arg(long)]
        expected: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// Every dead letter with its id and reason.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Send one (or all) again on the next run, mapped afresh with the current config.
    Retry {
        /// `loan:<loan id>` or `payment:<n>`, as `list` shows.
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Set one aside: it stops counting as unresolved (exit codes, readiness).
    Ignore {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub crego_listen: String,
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub credgenics_listen: String,
    /// Leads to seed (one borrower-program each).
    #[arg(long, default_value_t = 30)]
    pub leads: usize,
    /// Percentage of lines overdue.
    #[arg(long, default_value_t = 30)]
    pub overdue_pct: u32,
    /// Seed of the generator: the same seed gives the same book.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Requests per second the fake Crego takes before answering 429.
    #[arg(long)]
    pub crego_rps: Option<u32>,
    /// Requests per second the fake Credgenics takes before answering 429.
    #[arg(long)]
    pub credgenics_rps: Option<u32>,
    /// Random faults on both fakes, as probabilities: 500s, 429s, stalls, resets, malformed bodies
    /// (e.g. `--faults 0.10,0.05,0.02,0.01,0.01`), seeded by --seed.
    #[arg(long, value_name = "P500,P429,PSTALL,PRESET,PMALFORMED")]
    pub faults: Option<String>,
    /// How long a stall lasts, seconds (beyond the client's timeout to matter).
    #[arg(long, default_value_t = 35.0)]
    pub stall_secs: f64,
    /// Percentage of overdue lines with a part repayment already booked in the LMS.
    #[arg(long, default_value_t = 0)]
    pub repay_pct: u32,
    /// Percentage of first uploads after which an agent collects part of the due at once.
    #[arg(long, default_value_t = 0)]
    pub collect_pct: u32,
    /// Keep no request log (counters only, `GET /_sandbox/stats`): for long benchmark runs.
    #[arg(long)]
    pub no_request_log: bool,
    /// Behave as untidy real partners do (design §7): lines move some seconds after a repayment is
    /// booked, repayments share dates, items change while a stream is paged, token endpoints
    /// answer 429/503 now and then.
    #[arg(long)]
    pub realistic: bool,
}

/// Parses nothing itself: runs what `cli` says and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_ATTENTION;
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            Some(Command::CheckConfig { samples_only: false }) => crate::ops::check_config::run(&cli.config),
            Some(Command::CheckConfig { samples_only: true }) => crate::ops::check_config::samples_only(&cli.config),
            Some(Command::Demo) => crate::demo::run().await,
            Some(Command::Sandbox(args)) => serve_sandbox(args).await,
            Some(Command::Bench(args)) => crate::bench::run(args).await,
            Some(Command::Status { json }) => with_state_path(&cli.config, |p| crate::ops::status(p, json)),
            Some(Command::Preview { ref lead, ref record }) => preview(&cli, lead.as_deref(), record.as_deref()).await,
            Some(Command::Mapping(MappingCmd::Test { kind, input, expected })) => {
                // The built-in mapping when no config was named; a named one must exist.
                let named = std::env::var_os("CCSYNC_CONFIG").is_some()
                    || std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
                let config = (named || cli.config.exists()).then_some(cli.config.as_path());
                crate::ops::mapping_test(config, kind, &input, expected.as_deref())
            }
            Some(Command::DeadLetters(cmd)) => with_state_path(&cli.config, |p| match cmd {
                DeadLetters::List { json } => crate::ops::list(p, json),
                DeadLetters::Retry { id, all } => crate::ops::retry(p, id.as_deref(), all),
                DeadLetters::Ignore { id, reason } => crate::ops::ignore(p, &id, &reason),
            }),
            None => sync_command(&cli).await,
        }
    });
    // Tasks still running here were abandoned on purpose (the shutdown grace ended): do not
    // wait for them, or for a worker thread stuck in one.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

/// Runs an operator command on the configured state file. Only `state.path` is needed, so the
/// tokens need not be present (they may live in systemd credentials only the service sees).
fn with_state_path(config: &Path, f: impl FnOnce(&Path) -> i32) -> i32 {
    match config::load_raw(Some(config)) {
        Ok(raw) => f(Path::new(&raw.state.path)),
        Err(e) => {
            eprint!("{e}");
            EXIT_USAGE
        }
    }
}

/// Loads the config, the clock and the state, or says why not (exit 2 / 1).
fn prepare(cli: &Cli) -> Result<(Arc<Config>, Clock, Arc<Store>), i32> {
    let config = config::load(Some(&cli.config)).map_err(|e| {
        eprint!("{e}");
        EXIT_USAGE
    })?;
    telemetry::init_logging(&config.log.level, config.log.format);
    let (clock, overridden) = Clock::from_env(config.sync.timezone.clone()).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_USAGE
    })?;
    if let Some(v) = overridden {
        telemetry::clock_overridden(&v);
    }
    let store = if cli.dry_run {
        Store::open_read_only(&config.state_path)
    } else {
        Store::open(&config.state_path)
    };
    let store = store.map_err(|e| {
        eprintln!("error: {e}");
        match e {
            crate::store::StoreError::Locked { .. } => EXIT_INCOMPLETE,
            _ => EXIT_ATTENTION,
        }
    })?;
    Ok((Arc::new(config), clock, Arc::new(store)))
}

async fn sync_command(cli: &Cli) -> i32 {
    let (config, clock, store) = match prepare(cli) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let since = match &cli.since {
        Some(s) => match clock::parse_instant(s, clock.tz()) {
            Ok(ts) => Some(ts.as_millisecond() as f64 / 1000.0),
            Err(e) => {
                eprintln!("error: --since `{s}`: {e}");
                return EXIT_USAGE;
            }
        },
        None => None,
    };
    let mut ctx = match Context::new(config.clone(), store, clock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ATTENTION;
        }
    };
    ctx.dry_run = cli.dry_run;
    ctx.reveal = cli.reveal;
    let opts = RunOptions { since, poll: None };
    if cli.once || cli.dry_run {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !cli.dry_run {
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
            let ctx = ctx.clone();
            async move { sync::run_once(&ctx, &opts).await }
        });
        let report = tokio::select! {
            report = run => match report {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: the run failed: {e}");
                    return EXIT_INCOMPLETE;
                }
            },
            _ = signalled => {
                eprintln!(
                    "error: the run did not stop within daemon.shutdown_grace_secs = {}; unsent work stays in the state",
                    grace.as_secs()
                );
                return EXIT_INCOMPLETE;
            }
        };
        if let Some(pb) = &ctx.progress {
            pb.finish_and_clear();
        }
        if let Some(e) = &report.error {
            eprintln!("error: {e}");
        }
        if !cli.dry_run {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        }
        return report.exit_code;
    }
    if since.is_some() {
        eprintln!("error: --since needs --once (a backfill is one cycle) or --dry-run");
        return EXIT_USAGE;
    }
    daemon(ctx).await
}

async fn preview(cli: &Cli, lead: Option<&str>, record: Option<&str>) -> i32 {
    let mut opts = Cli::parse_from(["crego-credgenics-sync"]);
    opts.config = cli.config.clone();
    opts.dry_run = true; // read-only state, never created
    let (config, clock, store) = match prepare(&opts) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut ctx = match Context::new(config, store, clock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ATTENTION;
        }
    };
    ctx.dry_run = true;
    ctx.reveal = cli.reveal;
    let result = match (lead, record) {
        (Some(l), _) => crate::preview::lead(&ctx, l).await,
        (None, Some(r)) => crate::preview::record(&ctx, r).await,
        (None, None) => Err("give --lead or --record".into()),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ATTENTION
        }
    }
}

/// Daemon mode: the listener on `webhook.listen`, every job on its schedule, until SIGTERM/SIGINT.
async fn daemon(ctx: Context) -> i32 {
    let addr = ctx.config.webhook.listen;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on webhook.listen = {addr}: {e}");
            return EXIT_ATTENTION;
        }
    };
    crate::daemon::run(ctx, listener, shutdown_signal()).await
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

async fn serve_sandbox(args: SandboxArgs) -> i32 {
    telemetry::init_logging("info", LogFormat::Auto);
    let stall = match std::time::Duration::try_from_secs_f64(args.stall_secs) {
        Ok(d) => d,
        Err(_) => {
            eprintln!("error: --stall-secs `{}` is not a duration in seconds", args.stall_secs);
            return EXIT_USAGE;
        }
    };
    let faults = match args.faults.as_deref().map(|f| FaultSpec::parse(f, stall)).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --faults {e}");
            return EXIT_USAGE;
        }
    };
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
    let (crego, cg) = match (bind(args.crego_listen).await, bind(args.credgenics_listen).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let sb = match Sandbox::start(cfg, crego, cg).await {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ATTENTION;
        }
    };
    if let Some(spec) = faults {
        sb.set_faults(crate::http::Api::Crego, spec.clone(), args.seed);
        sb.set_faults(crate::http::Api::Credgenics, spec, args.seed.wrapping_add(1));
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
    EXIT_OK
}
