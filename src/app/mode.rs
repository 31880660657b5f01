//! One resolved [`Mode`]: what this invocation runs. Flags that only mean something together
//! are resolved here, once, and combinations that mean nothing are refused by name instead of
//! being ignored (`--since` on the daemon, `--once` on `status`, `--reveal` where nothing is
//! printed unmasked).

use std::path::PathBuf;

#[cfg(feature = "sandbox")]
use super::args::SandboxArgs;
use super::args::{Args, Command, DeadLetters, Invocation, MappingCmd};
use super::report::AppError;
#[cfg(feature = "sandbox")]
use crate::bench::BenchArgs;
use crate::ops::MappingKind;

/// What to run, with everything it needs from the command line and nothing it cannot use.
#[derive(Debug)]
pub enum Mode {
    /// Daemon mode: the listener and every job on its schedule, until SIGTERM.
    Daemon,
    /// One cycle of every flow (`--once`), from `--since` when given; a dry run (`--dry-run`)
    /// writes nothing anywhere and may print personal data unmasked (`--reveal`).
    Once {
        since: Option<String>,
        dry: Option<Dry>,
        /// `--json`: the report as JSON even on a terminal.
        json: bool,
    },
    CheckConfig {
        samples_only: bool,
        once: bool,
    },
    #[cfg(feature = "sandbox")]
    Demo {
        credit_line: bool,
    },
    /// `doctor`: a tenant checked before go-live.
    Doctor,
    /// `reconcile`: both books compared, loan by loan.
    Reconcile {
        loan: Option<String>,
        since: Option<String>,
        fix: bool,
        format: crate::ops::reconcile::Format,
    },
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    #[cfg(feature = "sandbox")]
    Bench(BenchArgs),
    Status {
        json: bool,
    },
    DeadLetters(DeadLetters),
    Preview {
        target: PreviewTarget,
        reveal: bool,
    },
    Backup {
        file: PathBuf,
    },
    Completions {
        shell: clap_complete::Shell,
    },
    Man,
    /// `mapping test`; `config` is `None` when no file was named and the default path does not
    /// exist (the built-in mapping then).
    MappingTest {
        config: Option<PathBuf>,
        kind: MappingKind,
        input: PathBuf,
        expected: Option<PathBuf>,
    },
}

/// A dry run's one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dry {
    pub reveal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewTarget {
    Lead(String),
    /// A placed loan's Credgenics loan id.
    Loan(String),
    Record(String),
}

/// The config file and the mode.
#[derive(Debug)]
pub struct Resolved {
    pub config: PathBuf,
    pub mode: Mode,
}

impl Resolved {
    pub fn resolve(inv: Invocation) -> Result<Self, AppError> {
        let Invocation { args, config_named } = inv;
        let Args {
            config,
            once,
            since,
            dry_run,
            reveal,
            json,
            command,
        } = args;
        let usage = |m: &str| Err(AppError::Usage(m.to_string()));
        let mode = match command {
            None => {
                if since.is_some() && !(once || dry_run) {
                    return usage("--since needs --once (a backfill is one cycle) or --dry-run");
                }
                if reveal && !dry_run {
                    return usage("--reveal only applies to --dry-run and preview (what they print)");
                }
                if json && !once {
                    return usage("--json goes with --once (a dry run prints JSON lines already)");
                }
                if once || dry_run {
                    Mode::Once {
                        since,
                        dry: dry_run.then_some(Dry { reveal }),
                        json,
                    }
                } else {
                    Mode::Daemon
                }
            }
            Some(command) => {
                if once || dry_run || since.is_some() || json {
                    return usage(&format!(
                        "--once, --dry-run, --since and --json run the sync; they do not go with `{}`",
                        name(&command)
                    ));
                }
                if reveal && !matches!(command, Command::Preview { .. }) {
                    return usage("--reveal only applies to --dry-run and preview (what they print)");
                }
                match command {
                    Command::CheckConfig { samples_only, once } => Mode::CheckConfig { samples_only, once },
                    #[cfg(feature = "sandbox")]
                    Command::Demo { credit_line } => Mode::Demo { credit_line },
                    Command::Doctor => Mode::Doctor,
                    Command::Reconcile {
                        loan,
                        since,
                        fix,
                        json,
                        csv,
                    } => Mode::Reconcile {
                        loan,
                        since,
                        fix,
                        format: if json {
                            crate::ops::reconcile::Format::Json
                        } else if csv {
                            crate::ops::reconcile::Format::Csv
                        } else {
                            crate::ops::reconcile::Format::Table
                        },
                    },
                    #[cfg(feature = "sandbox")]
                    Command::Sandbox(a) => Mode::Sandbox(a),
                    #[cfg(feature = "sandbox")]
                    Command::Bench(a) => Mode::Bench(a),
                    Command::Status { json } => Mode::Status { json },
                    Command::DeadLetters(d) => Mode::DeadLetters(d),
                    Command::Preview { lead, loan, record } => Mode::Preview {
                        target: match (lead, loan, record) {
                            (Some(l), _, _) => PreviewTarget::Lead(l),
                            (None, Some(l), _) => PreviewTarget::Loan(l),
                            (None, None, Some(r)) => PreviewTarget::Record(r),
                            (None, None, None) => return usage("preview: give --lead, --loan or --record"),
                        },
                        reveal,
                    },
                    Command::Backup { file } => Mode::Backup { file },
                    Command::Completions { shell } => Mode::Completions { shell },
                    Command::Man => Mode::Man,
                    Command::Mapping(MappingCmd::Test { kind, input, expected }) => Mode::MappingTest {
                        config: (config_named || config.exists()).then(|| config.clone()),
                        kind,
                        input,
                        expected,
                    },
                }
            }
        };
        Ok(Self { config, mode })
    }
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::CheckConfig { .. } => "check-config",
        #[cfg(feature = "sandbox")]
        Command::Demo { .. } => "demo",
        #[cfg(feature = "sandbox")]
        Command::Sandbox(_) => "sandbox",
        #[cfg(feature = "sandbox")]
        Command::Bench(_) => "bench",
        Command::Status { .. } => "status",
        Command::DeadLetters(_) => "dead-letters",
        Command::Preview { .. } => "preview",
        Command::Mapping(_) => "mapping",
        Command::Doctor => "doctor",
        Command::Reconcile { .. } => "reconcile",
        Command::Backup { .. } => "backup",
        Command::Completions { .. } => "completions",
        Command::Man => "man",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::args::parse_from;

    fn resolve(words: &[&str]) -> Result<Mode, AppError> {
        let inv = parse_from(std::iter::once("ccsync").chain(words.iter().copied())).expect("clap parses");
        Resolved::resolve(inv).map(|r| r.mode)
    }

    fn refused(words: &[&str], says: &str) {
        match resolve(words) {
            Err(AppError::Usage(m)) => assert!(m.contains(says), "{words:?}: {m}"),
            other => panic!("{words:?} resolved to {other:?}"),
        }
    }

    #[test]
    fn each_mode_resolves_from_its_flags() {
        assert!(matches!(resolve(&[]), Ok(Mode::Daemon)));
        assert!(matches!(
            resolve(&["--once"]),
            Ok(Mode::Once {
                since: None,
                dry: None,
                json: false
            })
        ));
        assert!(matches!(
            resolve(&["--once", "--json"]),
            Ok(Mode::Once { json: true, .. })
        ));
        refused(&["--json"], "--json goes with --once");
        assert!(matches!(
            resolve(&["--once", "--since", "2026-11-01"]),
            Ok(Mode::Once { since: Some(s), dry: None, .. }) if s == "2026-11-01"
        ));
        // --dry-run is a cycle of its own: --once with it changes nothing.
        for words in [&["--dry-run"][..], &["--dry-run", "--once"]] {
            assert!(matches!(
                resolve(words),
                Ok(Mode::Once {
                    dry: Some(Dry { reveal: false }),
                    ..
                })
            ));
        }
        assert!(matches!(
            resolve(&["--dry-run", "--reveal"]),
            Ok(Mode::Once {
                dry: Some(Dry { reveal: true }),
                ..
            })
        ));
        assert!(matches!(
            resolve(&["preview", "--record", "r1", "--reveal"]),
            Ok(Mode::Preview { target: PreviewTarget::Record(r), reveal: true }) if r == "r1"
        ));
        assert!(matches!(
            resolve(&["status", "--json"]),
            Ok(Mode::Status { json: true })
        ));
    }

    #[test]
    fn combinations_that_mean_nothing_are_refused_by_name() {
        refused(&["--since", "2026-11-01"], "--since needs --once");
        refused(&["--once", "status"], "they do not go with `status`");
        refused(&["--dry-run", "dead-letters", "list"], "`dead-letters`");
        refused(&["--since", "2026-11-01", "demo"], "`demo`");
        refused(&["--reveal"], "--reveal only applies");
        refused(&["--once", "--reveal"], "--reveal only applies");
        refused(&["status", "--reveal"], "--reveal only applies");
    }

    #[test]
    fn mapping_test_uses_the_built_in_mapping_only_when_no_config_was_named() {
        let named = resolve(&["--config", "/nonexistent/c.toml", "mapping", "test", "in.json"]);
        assert!(
            matches!(named, Ok(Mode::MappingTest { config: Some(_), .. })),
            "{named:?}"
        );
    }
}
