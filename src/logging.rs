//! Logging set-up with `tracing`: text lines in kojid's shape
//! (`2026-01-31 12:00:00,123 [INFO] target: message`) or JSON lines, to stderr.
//!
//! The level comes from `log_level` (kojid's default is WARNING), raised by `-v` (INFO) and
//! `-d` (DEBUG); `RUST_LOG`, when set, replaces all of that with a full filter directive.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::types::{LogFormat, LogLevel};

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(
        "RUST_LOG={value:?} is not a valid filter: {reason}; write e.g. RUST_LOG=info or RUST_LOG=koji_adjutant=debug"
    )]
    BadFilter { value: String, reason: String },
    #[error("logging was already set up in this process")]
    AlreadySet,
}

/// The level kojid would use: `-d` beats `-v` beats `log_level` beats WARNING.
pub fn effective_level(log_level: Option<LogLevel>, verbose: bool, debug: bool) -> Level {
    if debug {
        return Level::DEBUG;
    }
    if verbose {
        return Level::INFO;
    }
    match log_level {
        Some(LogLevel::Debug) => Level::DEBUG,
        Some(LogLevel::Info) => Level::INFO,
        Some(LogLevel::Warning) | None => Level::WARN,
        // tracing has no CRITICAL; ERROR is the closest it can filter on.
        Some(LogLevel::Error) | Some(LogLevel::Critical) => Level::ERROR,
    }
}

/// kojid's `%(asctime)s [%(levelname)s] %(name)s: %(message)s`.
pub struct KojidFormat;

fn python_level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for KojidFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = chrono::Local::now();
        write!(
            writer,
            "{} [{}] {}: ",
            now.format("%Y-%m-%d %H:%M:%S,%3f"),
            python_level_name(event.metadata().level()),
            event.metadata().target()
        )?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, level: Level) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::try_new(&value).map_err(|err| LoggingError::BadFilter {
                value: value.clone(),
                reason: err.to_string(),
            })?
        }
        _ => EnvFilter::new(level.as_str().to_lowercase()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.event_format(KojidFormat).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_beats_verbose_beats_config() {
        assert_eq!(
            effective_level(Some(LogLevel::Error), true, true),
            Level::DEBUG
        );
        assert_eq!(
            effective_level(Some(LogLevel::Error), true, false),
            Level::INFO
        );
        assert_eq!(effective_level(None, false, false), Level::WARN);
        assert_eq!(
            effective_level(Some(LogLevel::Critical), false, false),
            Level::ERROR
        );
    }
}
