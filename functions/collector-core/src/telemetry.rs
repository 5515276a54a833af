//! Logging for the CLI: human-readable on a terminal, JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (as in Lambda) or `LOG_FORMAT=json`. Level from `RUST_LOG`
//! (default `info`). Lambda binaries use the runtime's own subscriber instead.

use tracing_subscriber::EnvFilter;

pub fn init_cli(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
        || std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // try_init: tests may have installed a subscriber already.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}
