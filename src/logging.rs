//! The process's log: stderr, text or JSON lines, at the level chosen by
//! `--log-level`, else a non-empty `RUST_LOG`, else `[log] level`, else the
//! command's default. An empty `RUST_LOG` counts as unset: it would
//! otherwise silence everything.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel, LogSettings};

/// Starts the log for the rest of the process. `default` is the command's
/// level when nothing sets one.
pub fn init(settings: &LogSettings, default: LogLevel) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(directives(settings, rust_log.as_deref(), default))
        .unwrap_or_else(|_| EnvFilter::new(default.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// The filter's directives, by the precedence above.
fn directives(settings: &LogSettings, rust_log: Option<&str>, default: LogLevel) -> String {
    let from_env = rust_log.map(str::trim).filter(|s| !s.is_empty());
    match (settings.level, from_env) {
        (Some(level), _) if settings.level_from_flag => level.as_str().to_owned(),
        (_, Some(env)) => env.to_owned(),
        (level, None) => level.unwrap_or(default).as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(level: Option<LogLevel>, from_flag: bool) -> LogSettings {
        LogSettings {
            level,
            level_from_flag: from_flag,
            format: LogFormat::Text,
        }
    }

    #[test]
    fn flag_then_rust_log_then_file_then_default() {
        let d = LogLevel::Info;
        let flag = settings(Some(LogLevel::Debug), true);
        let file = settings(Some(LogLevel::Warn), false);
        let none = settings(None, false);
        assert_eq!(directives(&flag, Some("trace"), d), "debug");
        assert_eq!(directives(&file, Some("redpush=trace"), d), "redpush=trace");
        assert_eq!(directives(&file, None, d), "warn");
        assert_eq!(directives(&none, None, d), "info");
        assert_eq!(directives(&none, None, LogLevel::Warn), "warn");
        // An empty RUST_LOG is no RUST_LOG.
        assert_eq!(directives(&none, Some(""), d), "info");
        assert_eq!(directives(&file, Some("  "), d), "warn");
    }
}
