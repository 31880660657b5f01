//! The command line as clap parses it, before anything is resolved ([`super::mode`] does that).

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The parsed command line and what clap knows of where its values came from.
#[derive(Debug)]
pub struct Invocation {
    pub args: Args,
    /// `--config` or `CCSYNC_CONFIG` was given (not the default path): `mapping test` then needs
    /// the file to exist, and uses the built-in mapping only when none was named.
    pub config_named: bool,
}

/// Parses `std::env::args()`; clap's error (or `--help`/`--version`) as is.
pub fn parse() -> Result<Invocation, clap::Error> {
    parse_from(std::env::args_os())
}

/// [`parse`] of the given words (the first is the program name).
pub fn parse_from<I, T>(words: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Args::command().try_get_matches_from(words)?;
    let config_named = !matches!(matches.value_source("config"), Some(ValueSource::DefaultValue) | None);
    let args = Args::from_arg_matches(&matches)?;
    Ok(Invocation { args, config_named })
}

#[derive(Debug, Parser)]
#[command(
    name = "crego-credgenics-sync",
    version,
    about = "Keeps a Crego LMS and a Credgenics collections account in step"
)]
pub struct Args {
    /// Configuration file (TOML); `CCSYNC_<SECTION>__<KEY>` environment variables override it.
    #[arg(
        long,
        global = true,
        env = "CCSYNC_CONFIG",
        default_value = "/etc/crego-credgenics-sync/config.toml"
    )]
    pub config: PathBuf,
    /// Run every job once and exit (0 all clear, 1 attention needed, 2 config error, 3 incomplete).
    #[arg(long)]
    pub once: bool,
    /// Backfill: read the change streams from this date (midnight in the configured zone) or
    /// RFC 3339 time instead of the stored cursors, without moving them backwards.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Fetch and map, print what would be sent, write nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// With --once: the report as one JSON line even on a terminal (it is JSON when piped).
    #[arg(long)]
    pub json: bool,
    /// With --dry-run or preview: print personal data unmasked.
    #[arg(long, global = true)]
    pub reveal: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration for daemon mode and report OK or every problem (exit 2), each
    /// naming the environment variable or the file line it came from; the state folder must be
    /// writable; every mapping expression is evaluated once on built-in samples under the
    /// daemon's budget.
    CheckConfig {
        /// Check a config for `--once` runs only: the webhook token (which only the daemon's
        /// listener needs) may be missing.
        #[arg(long)]
        once: bool,
        /// Internal: the sample evaluation alone, in the child process check-config runs it in.
        #[arg(long, hide = true)]
        samples_only: bool,
    },
    /// Run one full cycle against the bundled sandbox, on free ports with a temporary state.
    #[cfg(feature = "sandbox")]
    Demo {
        /// A credit-line tenant instead (design §8): one line, three drawdowns.
        #[arg(long)]
        credit_line: bool,
    },
    /// Serve the fake Crego and Credgenics APIs so a config can point at them.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Measure the daemon at lender scale against a sandbox in its own process (BENCHMARKS.md).
    #[cfg(feature = "sandbox")]
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
    #[command(group(clap::ArgGroup::new("target").required(true).args(["lead", "loan", "record"])))]
    Preview {
        /// The Crego lead id (flow A: its borrower-programs).
        #[arg(long)]
        lead: Option<String>,
        /// A placed loan's Credgenics loan id (as logs and Credgenics name it): its lead.
        #[arg(long)]
        loan: Option<String>,
        /// An LMS record id (flow C: the payment it becomes).
        #[arg(long)]
        record: Option<String>,
    },
    /// Do the two books agree? Reads both sides of every placed loan (or one, or those changed
    /// since a date) and lists each disagreement with both sides' figures and the action that
    /// fixes it. Exit 0 when they agree, 1 with findings, 3 when it could not complete (run it
    /// again: it resumes).
    Reconcile {
        /// Only this loan (its Credgenics loan id).
        #[arg(long, conflicts_with = "since")]
        loan: Option<String>,
        /// Only loans changed since this date (midnight in the configured zone) or RFC 3339 time.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Mend what the daemon can safely (a missing payment on either side, a missing
        /// allocation) through the ledger, exactly once; the rest is reported.
        #[arg(long)]
        fix: bool,
        /// The report as JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// The findings as CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Check a tenant before go-live with the real config: both credentials, the paths, the
    /// link expressions on live data, the mapping of the first overdue line against the
    /// documented rules, the webhook and the state folder. Read-only; exit 0 when all pass.
    Doctor,
    /// Work on the field mapping without sending anything.
    #[command(subcommand)]
    Mapping(MappingCmd),
    /// Copy the state file to FILE with SQLite's online backup: safe while the daemon runs (it
    /// is a consistent snapshot as of one commit), written 0600, checked, never over an
    /// existing file.
    Backup {
        /// Where to write the copy (a new file).
        file: PathBuf,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Map a saved input document (or a folder of them) with the configured mapping, run the
    /// preflight a real run would (Credgenics' documented rules), and compare with an expected
    /// payload (exit 1 on any difference or refusal); without --expected, print the payload. Needs no
    /// credentials; the config file is optional (the built-in mapping without it).
    Test {
        #[arg(long, value_enum, default_value = "loan")]
        kind: crate::ops::MappingKind,
        /// The input document (JSON), or a folder of cases: each NAME.json an input, with
        /// NAME.expected.json beside it when its payload is pinned.
        input: PathBuf,
        /// The expected payload (JSON).
        #[arg(long)]
        expected: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// Every dead letter with its id, attempts, when it was last tried and why it was refused.
    List {
        #[arg(long)]
        json: bool,
        /// The dead letters set aside instead, with who set each aside, when and why.
        #[arg(long)]
        ignored: bool,
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

#[cfg(feature = "sandbox")]
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
