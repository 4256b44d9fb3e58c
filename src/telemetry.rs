//! `tracing` setup: human-readable by default, JSON lines for log shippers.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Logs to stderr (stdout carries the startup banner); `RUST_LOG` overrides `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
