//! Parses the command line, runs it ([`crego_credgenics_sync::app::run`]) and turns how it ended
//! into the process's exit code — the only place that knows the numbers (design §3).

use crego_credgenics_sync::app::{self, AppError, Report, Resolved};

/// Done, with nothing pending, in doubt, rejected or dead.
const EXIT_OK: i32 = 0;
/// Something needs attention: loans in doubt or rejected, payments pending, in doubt or dead;
/// or the command failed.
const EXIT_ATTENTION: i32 = 1;
/// The configuration or the command line is wrong.
const EXIT_USAGE: i32 = 2;
/// The run could not complete: a refused credential, a partner unreachable after its retries,
/// the state file locked by another instance.
const EXIT_INCOMPLETE: i32 = 3;

fn main() {
    let invocation = match app::args::parse() {
        Ok(i) => i,
        Err(e) => {
            // `--help` and `--version` arrive here too, on stdout, and are no error.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let result = Resolved::resolve(invocation).and_then(app::run);
    if let Err(e) = &result
        && !e.message().is_empty()
    {
        eprintln!(
            "{}",
            crego_credgenics_sync::telemetry::logging::error_text(&e.to_string())
        );
    }
    std::process::exit(match result {
        Ok(Report::Clear) => EXIT_OK,
        Ok(Report::Attention) => EXIT_ATTENTION,
        Err(AppError::Usage(_) | AppError::Config(_)) => EXIT_USAGE,
        Err(AppError::Failed(_)) => EXIT_ATTENTION,
        Err(AppError::Incomplete(_)) => EXIT_INCOMPLETE,
    });
}
