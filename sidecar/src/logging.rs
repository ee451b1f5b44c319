//! Log output: JSON lines when not on a terminal (containers, log shippers), human text
//! on a terminal; level from `BERTH_LOG` or `RUST_LOG`.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogFormat {
    /// JSON when the output is not a terminal, text otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Where log lines go. `berth run` logs to stdout like any container process; one-shot
/// commands log to stderr so their stdout (tables, `--json` documents) stays parseable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogTarget {
    Stdout,
    Stderr,
}

pub(crate) fn init(format: LogFormat, target: LogTarget) {
    let filter = std::env::var("BERTH_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let is_tty = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let json = match format {
        LogFormat::Auto => !is_tty,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests calling main twice) is harmless; ignore its error.
    let _ = match (json, target) {
        (true, LogTarget::Stdout) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stdout)
            .try_init(),
        (true, LogTarget::Stderr) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .try_init(),
        (false, LogTarget::Stdout) => builder
            .with_ansi(is_tty)
            .with_writer(std::io::stdout)
            .try_init(),
        (false, LogTarget::Stderr) => builder
            .with_ansi(is_tty)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}
