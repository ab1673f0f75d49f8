//! `kubectl dns-doctor`: parse, run, exit with a code scripts can rely on.

use std::process::ExitCode;

use clap::Parser;
use dns_doctor::{app, cli, exit::Outcome, printer};

fn main() -> ExitCode {
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
