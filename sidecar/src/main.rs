//! The `berth` binary: a thin layer that parses flags and wires berth's crates together.

mod admin;
mod cli;
mod commands;
mod failure;
mod logging;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::logging::LogTarget;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `berth run` logs to stdout like any container; one-shot commands keep stdout for results.
    let target = if matches!(cli.command, Command::Run(_)) {
        LogTarget::Stdout
    } else {
        LogTarget::Stderr
    };
    logging::init(cli.log_format, target);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(failure::EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(args).await,
            Command::Issue(args) => commands::issue::run(args).await,
            Command::Certs(command) => commands::certs::run(command).await,
            Command::Revoke(args) => commands::revoke::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            failure.exit_code()
        }
    }
}
