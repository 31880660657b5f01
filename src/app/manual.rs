//! Shell completions and the man page, generated from the clap definition ([`super::args`]) so
//! they cannot drift from the real flags.

use clap::CommandFactory;

use super::args::Args;
use super::report::{AppError, Report};

const NAME: &str = "crego-credgenics-sync";

/// `completions SHELL`: the script on stdout (README shows where each shell wants it).
pub fn completions(shell: clap_complete::Shell) -> Result<Report, AppError> {
    clap_complete::generate(shell, &mut Args::command(), NAME, &mut std::io::stdout());
    Ok(Report::Clear)
}

/// `man`: the page in roff on stdout (`man ./crego-credgenics-sync.1` reads it).
pub fn man() -> Result<Report, AppError> {
    clap_mangen::Man::new(Args::command())
        .render(&mut std::io::stdout())
        .map_err(|e| AppError::Failed(format!("cannot write the man page: {e}")))?;
    Ok(Report::Clear)
}
