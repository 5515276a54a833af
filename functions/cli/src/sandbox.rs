//! `collector sandbox`: the Rakuten API look-alike, served until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use rakuten_sandbox::{
    ErrorMode, FailPage, MalformedKind, RankingRebuild, RateLimitBody, Sandbox, SandboxConfig,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FaultMode {
    /// Each request draws on its own: a retry may succeed
    Transient,
    /// Decided by the request's parameters: the same unit fails on every retry
    Persistent,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MalformedArg {
    /// The first half of the JSON document
    Truncated,
    /// An HTML maintenance page (status 200)
    Html,
    /// An empty body
    Empty,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RateLimitBodyArg {
    /// {"error":"too_many_requests","error_description":"…"}
    Classic,
    /// {"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}
    StatusMessage,
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
RANKING CHURN: with --date, rankings change from day to day, deterministically from the \
seed and the date: about 13 % of the overall ranking's 1,000 items are replaced each day \
with the default 3,000 items (17 % with 20,000), and the median item that stays moves by \
9 ranks. A genre ranking holding every item of its genre only reorders. Item details \
never change with the date.

PROVENANCE: every ranking answer carries title and lastBuildDate (midnight JST of the \
build date, e.g. \"Mon, 01 Jun 2026 00:00:00 +0900\"). The build date is --date minus \
--build-date-lag-days, rounded down to a multiple of --build-interval-days (days since \
1970-01-01). Two days with the same build date serve the same ranking (stale). \
--rebuild-after-page N: per ranking target (genre + period), the first N pages served \
carry the day's build; every later page carries a rebuild one hour newer (same items, \
moved by a few ranks), so reading the target again gives consistent pages. \
--rebuild-every-pages N: a new build every N pages served, so a read of more than N \
pages is never consistent.

REQUEST LOG: GET /__sandbox/requests lists the recent API requests (method, path and \
query as sent, header names, status, API).")]
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
    /// The date (YYYY-MM-DD) that drives the ranking order and its day-to-day churn
    /// (default: today in JST)
    #[arg(long)]
    pub date: Option<String>,
    /// A ranking page that always answers 500 (or the given 500/503), e.g. 0:3 or
    /// 100283:2:503 (genre 0 = overall); repeatable
    #[arg(long = "fail-ranking-page", value_name = "GENRE:PAGE[:STATUS]")]
    pub fail_ranking_page: Vec<FailPage>,
    /// How malformed bodies (--malformed-rate) are spoiled
    #[arg(long, value_enum, default_value_t = MalformedArg::Truncated)]
    pub malformed_kind: MalformedArg,
    /// The ranking served on --date is the one built this many days earlier (content and
    /// lastBuildDate)
    #[arg(long, default_value_t = 0)]
    pub build_date_lag_days: u32,
    /// Rankings are built only every N days (days since 1970-01-01); the days between
    /// serve the last build (same lastBuildDate)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub build_interval_days: u32,
    /// Rebuild each ranking target once, after N of its pages were served (pages after
    /// that carry a lastBuildDate one hour newer)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "rebuild_every_pages")]
    pub rebuild_after_page: Option<u32>,
    /// Rebuild each ranking target every N pages served (never consistent over more than
    /// N pages)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rebuild_every_pages: Option<u32>,
    /// Act as a Web-application app allowed for this website: requests without a matching
    /// Referer/Origin (same scheme, host and port) answer 403
    /// REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING / _NOT_ALLOWED
    #[arg(long, value_name = "URL")]
    pub require_referer: Option<String>,
    /// Act as a backend app allowed only from these client IPs (repeatable): others
    /// answer 403
    #[arg(long = "allowed-ip", value_name = "IP")]
    pub allowed_ip: Vec<IpAddr>,
    /// Act as the legacy host after the cut-over: every /services/... path answers 503
    /// "under maintenance"
    #[arg(long)]
    pub legacy_host_maintenance: bool,
    /// Send Retry-After: SECS with every 429 (default: no Retry-After)
    #[arg(long, value_name = "SECS")]
    pub retry_after: Option<u64>,
    /// The body of a 429
    #[arg(long, value_enum, default_value_t = RateLimitBodyArg::Classic)]
    pub rate_limit_body: RateLimitBodyArg,
    /// Requests kept in the request log (GET /__sandbox/requests)
    #[arg(long, default_value_t = 10_000)]
    pub request_log: usize,
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
        fail_ranking_pages: args.fail_ranking_page,
        build_date_lag_days: args.build_date_lag_days,
        build_interval_days: args.build_interval_days,
        ranking_rebuild: match (args.rebuild_after_page, args.rebuild_every_pages) {
            (Some(after_pages), _) => RankingRebuild::Once { after_pages },
            (None, Some(pages)) => RankingRebuild::Every { pages },
            (None, None) => RankingRebuild::Never,
        },
        require_referer: args.require_referer,
        allowed_ips: args.allowed_ip,
        legacy_host_maintenance: args.legacy_host_maintenance,
        retry_after_secs: args.retry_after,
        rate_limit_body: match args.rate_limit_body {
            RateLimitBodyArg::Classic => RateLimitBody::Classic,
            RateLimitBodyArg::StatusMessage => RateLimitBody::StatusMessage,
        },
        malformed_kind: match args.malformed_kind {
            MalformedArg::Truncated => MalformedKind::Truncated,
            MalformedArg::Html => MalformedKind::Html,
            MalformedArg::Empty => MalformedKind::Empty,
        },
        request_log_capacity: args.request_log,
    };
    let access_key = config.access_key.clone();
    match Sandbox::start_on(config, SocketAddr::new(args.bind, args.port)).await {
        Ok(handle) => {
            eprintln!("Rakuten sandbox serving at {}", handle.base_url());
            eprintln!("  RAKUTEN_API_BASE_URL={} RAKUTEN_ACCESS_KEY={access_key} RAKUTEN_APPLICATION_ID=<any UUID>", handle.base_url());
            eprintln!(
                "  stats: {0}/__sandbox/stats   requests: {0}/__sandbox/requests   stop: Ctrl-C",
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
