//! `kubectl dns-doctor`: parse, run, exit with a code scripts can rely on.

use std::process::ExitCode;

use clap::Parser;
use dns_doctor::{app, cli, exit::Outcome, printer};

fn main() -> ExitCode {
    // kubectl's plugin completion: the words are raw by nature, read by `complete` against
    // the same clap definitions.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if argv.get(1).map(String::as_str) == Some(dns_doctor::complete::SUBCOMMAND) {
        return app::complete(&argv[2..]).into();
    }
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Outcome::Healthy.into()
                }
                _ => Outcome::CouldNotRun.into(),
            };
        }
    };
    let command = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            printer::print_error(&anyhow::Error::new(e));
            return Outcome::CouldNotRun.into();
        }
    };
    match app::run(command) {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            printer::print_error(&e);
            Outcome::CouldNotRun.into()
        }
    }
}
