//! Parses the command line and hands over to [`crego_credgenics_sync::cli::run`].

use clap::Parser;

fn main() {
    let cli = match crego_credgenics_sync::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                crego_credgenics_sync::cli::EXIT_USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(crego_credgenics_sync::cli::run(cli));
}
