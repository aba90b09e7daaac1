//! Logging set-up, in one place. JSON lines on Lambda (CloudWatch picks up
//! the request and session ids from the span fields), compact text locally.
//! Message content is never logged above debug level.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber; later calls (tests) are ignored.
/// `RUST_LOG` refines the level, `info` by default (see [`log_filter`]).
pub fn init(format: LogFormat) {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    // The filter layer decides; the formatter itself lets everything through.
    let builder = tracing_subscriber::fmt().with_max_level(LevelFilter::TRACE).with_target(false);
    let _ = match format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).finish().with(filter).try_init()
        }
        LogFormat::Pretty => builder.compact().finish().with(filter).try_init(),
    };
}

/// `RUST_LOG`'s directives: a level (`debug`), levels per target
/// (`llmchat=debug,aws_smithy_runtime=warn`), or both, comma-separated.
/// Unset, empty or unreadable, it is `info`. Targets and levels only: the
/// span and field directives of tracing-subscriber's `EnvFilter`, and its
/// regular expressions, are left out to keep the binaries small
/// (docs/DEPLOY.md, "Package size").
pub fn log_filter(directives: Option<&str>) -> Targets {
    directives
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| d.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// An error and its causes on one line, for the logs (never for a response body).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn rust_log_sets_the_level_per_target_and_info_is_the_default() {
        for unset in [None, Some(""), Some("  "), Some("llmchat=loud")] {
            let filter = log_filter(unset);
            assert!(filter.would_enable("llmchat", &Level::INFO), "{unset:?}");
            assert!(!filter.would_enable("llmchat", &Level::DEBUG), "{unset:?}");
        }
        let filter = log_filter(Some("warn,llmchat=debug"));
        assert!(filter.would_enable("llmchat::chat", &Level::DEBUG));
        assert!(!filter.would_enable("llmchat::chat", &Level::TRACE));
        assert!(filter.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!filter.would_enable("aws_smithy_runtime", &Level::INFO));
        let off = log_filter(Some("off"));
        assert!(!off.would_enable("llmchat", &Level::ERROR));
        assert!(log_filter(Some("trace")).would_enable("hyper", &Level::TRACE));
    }
}
