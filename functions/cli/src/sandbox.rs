//! `collector sandbox`: the Rakuten API look-alike, served until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rakuten_sandbox::{ErrorMode, Sandbox, SandboxConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FaultMode {
    /// Each request draws on its own: a retry may succeed
    Transient,
    /// Decided by the request's parameters: the same unit fails on every retry
    Persistent,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Port to listen on (0 = a free port)
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Address to bind
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Seed of the synthetic data (same seed, same data)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of items
    #[arg(long, default_value_t = 3000)]
    pub items: usize,
    /// Number of genres (a 3-level tree)
    #[arg(long, default_value_t = 120)]
    pub genres: usize,
    /// Number of tags
    #[arg(long, default_value_t = 400)]
    pub tags: usize,
    /// The one valid access key
    #[arg(long, default_value = "pk_sandbox")]
    pub access_key: String,
    /// Requests per second allowed per application ID (0 = unlimited)
    #[arg(long, default_value_t = 1.0)]
    pub rate_limit: f64,
    /// Fraction of requests answered 500/503 (0.005 = 0.5 %)
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Whether injected errors are transient or stick to a unit
    #[arg(long, value_enum, default_value_t = FaultMode::Transient)]
    pub error_mode: FaultMode,
    /// Fraction of 200 answers with a malformed body
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Latency added to every answer, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// The date (YYYY-MM-DD) that drives the ranking order (default: today in JST)
    #[arg(long)]
    pub date: Option<String>,
}

pub async fn serve(args: SandboxArgs) -> ExitCode {
    for (name, v) in [
        ("--error-rate", args.error_rate),
        ("--malformed-rate", args.malformed_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            eprintln!("error: {name} must be a fraction between 0 and 1, got {v}");
            return ExitCode::from(2);
        }
    }
    if !(args.rate_limit.is_finite() && args.rate_limit >= 0.0) {
        eprintln!("error: --rate-limit must be >= 0, got {}", args.rate_limit);
        return ExitCode::from(2);
    }
    let config = SandboxConfig {
        seed: args.seed,
        genres: args.genres,
        items: args.items,
        tags: args.tags,
        access_key: args.access_key,
        rate_limit_per_sec: (args.rate_limit > 0.0).then_some(args.rate_limit),
        error_rate: args.error_rate,
        error_mode: match args.error_mode {
            FaultMode::Transient => ErrorMode::Transient,
            FaultMode::Persistent => ErrorMode::Persistent,
        },
        malformed_rate: args.malformed_rate,
        latency: Duration::from_millis(args.latency_ms),
        date: args.date,
    };
    let access_key = config.access_key.clone();
    match Sandbox::start_on(config, SocketAddr::new(args.bind, args.port)).await {
        Ok(handle) => {
            eprintln!("Rakuten sandbox serving at {}", handle.base_url());
            eprintln!("  RAKUTEN_API_BASE_URL={} RAKUTEN_ACCESS_KEY={access_key} RAKUTEN_APPLICATION_ID=<any UUID>", handle.base_url());
            eprintln!(
                "  stats: {}/__sandbox/stats   stop: Ctrl-C",
                handle.base_url()
            );
            handle.wait().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot listen on {}:{}: {e}", args.bind, args.port);
            ExitCode::from(1)
        }
    }
}
