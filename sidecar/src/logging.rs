//! Log output: JSON lines when not on a terminal (containers, log shippers), human text
//! on a terminal; levels from `BERTH_LOG` or `RUST_LOG`.
//!
//! The filter is a list of `level` and `target=level` directives, e.g. `debug` or
//! `info,berth_proxy=debug,hyper=warn` (tracing-subscriber's `Targets`: the common part
//! of `RUST_LOG` syntax, without the regex engine `EnvFilter` would add to the binary).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Used when neither variable is set.
const DEFAULT_FILTER: &str = "info";

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

/// The filter from `BERTH_LOG`, else `RUST_LOG`, else `info`; a variable that does not
/// parse is reported (after logging starts) and `info` used instead.
fn filter() -> (Targets, Option<String>) {
    let (name, value) = match std::env::var("BERTH_LOG") {
        Ok(value) => ("BERTH_LOG", value),
        Err(_) => match std::env::var("RUST_LOG") {
            Ok(value) => ("RUST_LOG", value),
            Err(_) => return (default_filter(), None),
        },
    };
    match value.trim().parse::<Targets>() {
        Ok(targets) => (targets, None),
        Err(error) => (
            default_filter(),
            Some(format!(
                "{name}={value:?} is not a log filter ({error}); logging at {DEFAULT_FILTER}. \
                 Write levels as `debug` or `info,berth_proxy=debug`"
            )),
        ),
    }
}

fn default_filter() -> Targets {
    Targets::new().with_default(tracing::Level::INFO)
}

pub(crate) fn init(format: LogFormat, target: LogTarget) {
    let (filter, problem) = filter();
    let is_tty = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let json = match format {
        LogFormat::Auto => !is_tty,
        LogFormat::Json => true,
        LogFormat::Text => false,
    };
    let writer = match target {
        LogTarget::Stdout => BoxMakeWriter::new(std::io::stdout),
        LogTarget::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let layer = fmt::layer().with_target(false).with_writer(writer);
    // A second init (tests calling main twice) is harmless; ignore its error.
    let _ = if json {
        registry.with(layer.json().flatten_event(true)).try_init()
    } else {
        registry.with(layer.with_ansi(is_tty)).try_init()
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn rust_log_style_directives_parse() {
        let targets: Targets = "info,berth_proxy=debug,hyper=warn".parse().unwrap();
        assert!(targets.would_enable("berth_proxy::conn", &Level::DEBUG));
        assert!(!targets.would_enable("hyper::proto", &Level::INFO));
        assert!(targets.would_enable("berth", &Level::INFO));
        assert_eq!(default_filter().default_level(), Some(LevelFilter::INFO));
        assert!("berth=loud".parse::<Targets>().is_err());
    }
}
