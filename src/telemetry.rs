//! Logging set up in one place: `RUST_LOG` picks the level, `LOCKOUT_LOG_FORMAT=json` the format.

use tracing_subscriber::EnvFilter;

/// `default` is the filter when `RUST_LOG` is not set: `info` for the service, `warn` for
/// one-shot commands, whose output is their answer, not a log.
pub fn init_with(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("LOCKOUT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The service's logging: `info` unless `RUST_LOG` says otherwise.
pub fn init() {
    init_with("info,sqlx=warn");
}
