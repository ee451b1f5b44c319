//! The `berth` command line as a library: the clap definition ([`cli::Cli`]) and [`main`],
//! which the `berth` binary calls. Tests and tools inspect the flags through
//! `berth::cli::Cli::command()` instead of reading source text.
//!
//! ```
//! use clap::CommandFactory;
//!
//! let command = berth::cli::Cli::command();
//! assert!(command.get_subcommands().any(|c| c.get_name() == "run"));
//! ```

pub mod cli;
mod commands;
mod dns;
mod failure;
mod logging;
mod plan;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ConfigCommand, SecretsCommand};
use crate::logging::LogTarget;

/// Parses the command line, runs the chosen command and returns its exit code.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Which values were given and which defaulted: the --config file fills the latter.
    let sub_matches = |path: &[&str]| {
        path.iter()
            .try_fold(&matches, |m, name| m.subcommand_matches(name))
            .cloned()
            .unwrap_or_default()
    };
    // `berth run` logs to stdout like any container; one-shot commands keep stdout for results.
    let target = if matches!(cli.command, Command::Run(_)) {
        LogTarget::Stdout
    } else {
        LogTarget::Stderr
    };
    logging::init(cli.log_format, target);
    // A single-threaded runtime: the proxy's other workers (`--workers`) run on threads
    // of their own, each an event loop like this one (measured: one such loop serves
    // 16 % more requests/s per core than tokio's work-stealing scheduler, BENCHMARKS.md).
    let workers = cli.workers.resolve();
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
            Command::Run(args) => commands::run::run(args, workers, sub_matches(&["run"])).await,
            Command::Issue(args) => commands::issue::run(args).await,
            Command::Certs(command) => commands::certs::run(command).await,
            Command::Revoke(args) => commands::revoke::run(args).await,
            Command::Store(command) => commands::store::run(command).await,
            Command::Renew(args) => commands::renew::run(args).await,
            Command::Import(args) => commands::import::run(args).await,
            Command::Config(ConfigCommand::Check(args)) => {
                commands::config::check(&args.run, args.output, &sub_matches(&["config", "check"]))
                    .await
            }
            Command::Secrets(SecretsCommand::Check(args)) => commands::secrets::check(&args),
            Command::Healthcheck(args) => commands::healthcheck::run(args).await,
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
