//! Logging for the CLI: human-readable on a terminal, JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=JSON` (as in Lambda) or `LOG_FORMAT=json`. Level from `RUST_LOG`
//! (default `info`). Lambda binaries use the runtime's own subscriber instead.
//! Commands that show progress on the terminal log to a file instead ([`init_cli_file`]).

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

/// Called with the message and the integer fields of each info-or-above event of this
/// library (whatever the log level): a progress display learns totals from them (`item
/// queue ready queued=…`).
pub type Tap = Box<dyn Fn(&str, &[(&'static str, i64)]) + Send + Sync>;

/// Logging for a command whose terminal shows progress instead of logs: every event goes
/// to `file` (no colour; JSON lines as in [`init_cli`] when asked), and also to `stderr`
/// when given (`-v`), coloured only when `ansi`. Level from `RUST_LOG` (default
/// `default_level`). `tap`: see [`Tap`].
pub fn init_cli_file<F, W>(
    default_level: &str,
    file: std::fs::File,
    stderr: Option<F>,
    ansi: bool,
    tap: Option<Tap>,
) where
    F: Fn() -> W + Send + Sync + 'static,
    W: std::io::Write,
{
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, registry::LookupSpan, Layer};

    fn layer<S, M>(writer: M, ansi: bool, json: bool) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        M: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        let l = fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_target(false);
        if json {
            l.json().flatten_event(true).boxed()
        } else {
            l.compact().boxed()
        }
    }

    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
        || std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let file = layer(std::sync::Mutex::new(file), false, json).with_filter(filter());
    let stderr = stderr.map(|w| layer(w, ansi, json).with_filter(filter()));
    let tap = tap.map(|f| {
        TapLayer(f).with_filter(Targets::new().with_target("collector_core", LevelFilter::INFO))
    });
    // try_init: tests may have installed a subscriber already.
    let _ = tracing_subscriber::registry()
        .with(file)
        .with(stderr)
        .with(tap)
        .try_init();
}

struct TapLayer(Tap);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TapLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = TapFields::default();
        event.record(&mut fields);
        (self.0)(&fields.message, &fields.numbers);
    }
}

#[derive(Default)]
struct TapFields {
    message: String,
    numbers: Vec<(&'static str, i64)>,
}

impl tracing::field::Visit for TapFields {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.numbers.push((field.name(), value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.numbers
            .push((field.name(), i64::try_from(value).unwrap_or(i64::MAX)));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}
