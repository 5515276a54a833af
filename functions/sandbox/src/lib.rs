//! A Rakuten Ichiba API look-alike HTTP server for local runs, tests and benchmarks.
//!
//! Serves `IchibaItem/Ranking`, `IchibaItem/Search`, `IchibaGenre/Search` and
//! `IchibaTag/Search` under any product root (`/{root}/api/{Api}/{Op}/{version}`, including
//! the legacy `/services/api/...`) from a synthetic data set that is fully determined by
//! [`SandboxConfig::seed`] and the sizes. The wire format follows the recorded real
//! responses: formatVersion 1 wrappers, string/number quirks, error bodies.
//!
//! Known versions ([`KNOWN_VERSIONS`]); any other version answers 404 `not_found`:
//! Ranking `20220601`, `20170628`; Item Search `20220601`, `20170706`, `20260401`,
//! `20260701`; Genre Search `20140222`, `20170711`, `20260401`, `20260701`; Tag Search
//! `20140222`, `20260401`.
//!
//! Per request, in this order: latency sleep; legacy-host maintenance
//! ([`SandboxConfig::legacy_host_maintenance`]: 503 for `/services/...`); route (unknown
//! API or version → 404); credentials (`applicationId`; `accessKey` from the query
//! parameter or the `accessKey` header); Referer/Origin check
//! ([`SandboxConfig::require_referer`]); client IP check ([`SandboxConfig::allowed_ips`]);
//! rate limit per `applicationId`; persistent failing ranking pages
//! ([`SandboxConfig::fail_ranking_pages`]); injected 5xx; the answer (400/404 for bad
//! parameters, else 200, possibly with a malformed body).
//!
//! # Error bodies
//! - classic (`{"error":…,"error_description":…}`): 400 `wrong_parameter` (bad parameters,
//!   `specify valid applicationId`), 404 `not_found`/`not found` (unknown path, version,
//!   genre), 429 `too_many_requests`, 500 `system_error`/`api logic error`, 503
//!   `service_unavailable`/`<Api>/<Op> is under maintenance` (also the legacy host);
//! - gateway (`{"errors":{"errorCode":…,"errorMessage":…}}`): 400 `accessKey must be present
//!   as a query parameter or in the header`, 403 `Invalid Access Key`, 403
//!   `REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING` (no Referer/Origin), 403
//!   `REQUEST_CONTEXT_BODY_HTTP_REFERRER_NOT_ALLOWED` (one that does not match), 403
//!   [`IP_NOT_ALLOWED_MESSAGE`] (client IP not allowed; the real text is not recorded);
//! - a 429 can instead carry the third reported shape, `{"statusCode":429,"message":"Rate
//!   limit is exceeded. Try again in 1 seconds."}` ([`RateLimitBody::StatusMessage`]).
//!
//! # Ranking provenance
//! Every Ranking answer carries `title` and `lastBuildDate` (`Mon, 01 Jun 2026 00:00:00
//! +0900`). The build served on date D is the one of the *build date*: D minus
//! [`SandboxConfig::build_date_lag_days`], rounded down to a multiple of
//! [`SandboxConfig::build_interval_days`] (days since 1970-01-01); its `lastBuildDate` is
//! that day's midnight JST and its content that day's ranking. Two sandboxes (or days) with
//! the same build date serve byte-identical rankings: a stale day. While a target is read,
//! [`SandboxConfig::ranking_rebuild`] can rebuild it (see [`RankingRebuild`]): build k of a
//! day has `lastBuildDate` k hours after the first and the same members, moved by a few
//! ranks ([`Dataset::ranking_build`]).
//!
//! # Day-to-day churn
//! Rankings follow a documented churn model (deterministic from seed and date): an item's
//! daily score is its popularity plus a slow component redrawn every 5 days (each item on
//! its own phase, so a fifth of the items redraw it on any day) plus a small daily
//! component. For the default data set (3,000 items) 13 % of the overall ranking's 1,000
//! items are replaced from one day to the next (mean over two weeks from 2026-06-01; 17 %
//! with 20,000 items) and the median item that stays moves by 9 ranks; a genre ranking
//! that already holds every item of its genre (fewer than 1,000) only reorders. Item details never change with
//! the date, so an ETL that refreshes details every N days sees the same fields.
//!
//! # Request log
//! The sandbox keeps the last [`SandboxConfig::request_log_capacity`] API requests
//! ([`RequestRecord`]: method, path and query as sent, header names, status, API):
//! [`SandboxHandle::requests`], or `GET /__sandbox/requests` as JSON.
//!
//! Extra routes: `GET /__sandbox/health` → `ok`, `GET /__sandbox/stats` → [`SandboxStats`]
//! as JSON, `GET /__sandbox/requests` → the request log as a JSON array (no credentials
//! needed, not counted in the stats, not logged).

mod data;
mod server;
mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use data::{
    today_jst, Dataset, Genre, Item, Tag, TagGroup, MAX_RANK, RANKING_MAX_PAGE, RANKING_PAGE_SIZE,
};

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Seed of the data set and of the fault draws. Default 42.
    pub seed: u64,
    /// Genres in the tree below the root (levels 1..=3); the root (id 0) comes on top. Default 120.
    pub genres: usize,
    /// Default 3000.
    pub items: usize,
    /// Tags, in groups of ~10. Default 400.
    pub tags: usize,
    /// The one valid access key. Default `pk_sandbox`.
    pub access_key: String,
    /// Requests per second per `applicationId` (burst 1); `None` = unlimited. Default `Some(1.0)`.
    pub rate_limit_per_sec: Option<f64>,
    /// Fraction of authorised, in-budget requests answered 500 or 503. Default 0.
    pub error_rate: f64,
    /// How `error_rate` and `malformed_rate` are drawn. Default [`ErrorMode::Transient`].
    pub error_mode: ErrorMode,
    /// Fraction of 200 answers whose body is cut short (invalid JSON). Default 0.
    pub malformed_rate: f64,
    /// Added to every answer. Default 0.
    pub latency: Duration,
    /// `YYYY-MM-DD` driving the daily ranking order; `None` = today in JST.
    pub date: Option<String>,
    /// Ranking pages that always answer a 5xx (persistent, whatever `error_mode`), for any
    /// `period`/age/sex/carrier of that genre. Default empty.
    pub fail_ranking_pages: Vec<FailPage>,
    /// The ranking served on date D is the one built on D minus this many days (content and
    /// `lastBuildDate`). Default 0.
    pub build_date_lag_days: u32,
    /// Rankings are built only on days (since 1970-01-01, after the lag) that are multiples
    /// of this; other days serve the last build (the same `lastBuildDate`). Default 1
    /// (built every day). 0 is refused.
    pub build_interval_days: u32,
    /// Rebuilds of a ranking target while it is being read. Default [`RankingRebuild::Never`].
    pub ranking_rebuild: RankingRebuild,
    /// A Web-application app's allowed website: when set, every API request needs a
    /// `Referer` or `Origin` header matching it (equal, or starting with it followed by
    /// `/`; trailing `/` and ASCII case ignored), else 403
    /// `REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING` (neither header) or
    /// `REQUEST_CONTEXT_BODY_HTTP_REFERRER_NOT_ALLOWED` (no matching one). Default `None`.
    pub require_referer: Option<String>,
    /// A backend app's allowed client IPs: when non-empty, a request from another peer
    /// address answers 403 [`IP_NOT_ALLOWED_MESSAGE`]. Default empty (any IP).
    pub allowed_ips: Vec<IpAddr>,
    /// The legacy host after the cut-over: every path under `/services/` answers 503
    /// `service_unavailable` ("`<Api>/<Op>` is under maintenance"), before any other check.
    /// Default false.
    pub legacy_host_maintenance: bool,
    /// When set, a 429 carries `Retry-After: <secs>`. Default `None` (the real API is not
    /// known to send it).
    pub retry_after_secs: Option<u64>,
    /// The body of a 429. Default [`RateLimitBody::Classic`].
    pub rate_limit_body: RateLimitBody,
    /// How the bodies counted in `malformed_rate` are spoiled. Default
    /// [`MalformedKind::Truncated`].
    pub malformed_kind: MalformedKind,
    /// Requests kept in the request log (oldest dropped first). Default 10,000.
    pub request_log_capacity: usize,
}

/// One ranking page that always fails: `genre_id` 0 is the overall ranking (also a request
/// without `genreId`), `page` 1 also matches a request without `page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailPage {
    pub genre_id: u64,
    pub page: u32,
    /// 500 (`system_error`) or 503 (`service_unavailable`).
    pub status: u16,
}

impl std::str::FromStr for FailPage {
    type Err = String;

    /// `GENRE:PAGE` (answers 500) or `GENRE:PAGE:STATUS` with STATUS 500 or 503.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected GENRE:PAGE or GENRE:PAGE:500|503, got {s:?}");
        let parts: Vec<&str> = s.split(':').collect();
        let (g, p, st) = match parts.as_slice() {
            [g, p] => (*g, *p, "500"),
            [g, p, st] => (*g, *p, *st),
            _ => return Err(bad()),
        };
        let genre_id = g.trim().parse().map_err(|_| bad())?;
        let page: u32 = p.trim().parse().map_err(|_| bad())?;
        let status: u16 = st.trim().parse().map_err(|_| bad())?;
        if !(1..=RANKING_MAX_PAGE).contains(&page) || !matches!(status, 500 | 503) {
            return Err(bad());
        }
        Ok(FailPage {
            genre_id,
            page,
            status,
        })
    }
}

/// Rebuilds of a ranking *target* (genre id + period/age/sex; carrier and formatVersion
/// ignored) while it is read. Pages are counted per target over the sandbox's lifetime:
/// every Ranking answer with a body (200, including malformed ones) counts one; failed
/// requests (5xx, 429, 4xx) do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RankingRebuild {
    /// One build per day.
    #[default]
    Never,
    /// One rebuild per target: the first N pages served carry build 0, every later page of
    /// that target build 1 (`lastBuildDate` one hour later, items moved by a few ranks). A
    /// sequential read of more than N pages sees two builds; reading the target again
    /// sees build 1 on every page (consistent).
    Once { after_pages: u32 },
    /// A new build every N pages served for the target: the k-th page served (from 0)
    /// carries build k / N. Any read of more than N pages mixes builds, on every attempt.
    Every { pages: u32 },
}

/// The body a 429 carries (reference §6: both are reported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitBody {
    /// `{"error":"too_many_requests","error_description":"number of allowed requests has
    /// been exceeded for this API. please try again soon."}`
    #[default]
    Classic,
    /// `{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}`
    StatusMessage,
}

/// How a malformed body is spoiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MalformedKind {
    /// The first half of the JSON document (never valid JSON), a complete HTTP answer.
    #[default]
    Truncated,
    /// An HTML maintenance page with status 200 and a JSON content type.
    Html,
    /// An empty body.
    Empty,
}

/// The `errorMessage` of the 403 for a client IP outside [`SandboxConfig::allowed_ips`].
/// Rakuten's exact text for this case is not recorded (reference §6.2); this is the
/// sandbox's.
pub const IP_NOT_ALLOWED_MESSAGE: &str = "REQUEST_CONTEXT_CLIENT_IP_NOT_ALLOWED";

/// Versions served per API (`Api/Op`, versions); any other version path answers 404.
pub const KNOWN_VERSIONS: &[(&str, &[&str])] = &[
    ("IchibaItem/Ranking", &["20220601", "20170628"]),
    (
        "IchibaItem/Search",
        &["20220601", "20170706", "20260401", "20260701"],
    ),
    (
        "IchibaGenre/Search",
        &["20140222", "20170711", "20260401", "20260701"],
    ),
    ("IchibaTag/Search", &["20140222", "20260401"]),
];

/// One API request as the sandbox saw it (`/__sandbox/*` requests are not recorded).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    /// Sequence number since start (0, 1, …), also counting requests dropped from the log.
    pub seq: u64,
    pub method: String,
    /// Path and query exactly as sent (credentials in the query included).
    pub path_and_query: String,
    /// Names of the request headers present, lower case, each once (no values; the order is
    /// not significant).
    pub header_names: Vec<String>,
    /// HTTP status answered.
    pub status: u16,
    /// `IchibaItem/Ranking`, `IchibaItem/Search`, `IchibaGenre/Search`, `IchibaTag/Search`;
    /// `None` for a path that is none of them.
    pub api: Option<String>,
}

impl RequestRecord {
    /// The query string (without `?`), empty when there is none.
    pub fn query(&self) -> &str {
        self.path_and_query.split_once('?').map_or("", |(_, q)| q)
    }

    /// Whether the header `name` (any case) was sent.
    pub fn has_header(&self, name: &str) -> bool {
        self.header_names
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 42,
            genres: 120,
            items: 3000,
            tags: 400,
            access_key: "pk_sandbox".to_string(),
            rate_limit_per_sec: Some(1.0),
            error_rate: 0.0,
            error_mode: ErrorMode::Transient,
            malformed_rate: 0.0,
            latency: Duration::ZERO,
            date: None,
            fail_ranking_pages: Vec::new(),
            build_date_lag_days: 0,
            build_interval_days: 1,
            ranking_rebuild: RankingRebuild::Never,
            require_referer: None,
            allowed_ips: Vec::new(),
            legacy_host_maintenance: false,
            retry_after_secs: None,
            rate_limit_body: RateLimitBody::Classic,
            malformed_kind: MalformedKind::Truncated,
            request_log_capacity: 10_000,
        }
    }
}

/// How injected faults (5xx and malformed bodies) are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorMode {
    /// Each request draws independently (from a seeded sequence), so a retry may succeed.
    #[default]
    Transient,
    /// Decided by a hash of (seed, `Api/Op/version`, query parameters except
    /// `applicationId`, `accessKey` and `formatVersion`): the same unit fails on every retry.
    Persistent,
}

/// Counters since start. The categories are disjoint:
/// `requests = ok + rate_limited + server_errors + malformed + client_errors`.
/// `/__sandbox/*` requests are not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SandboxStats {
    pub requests: u64,
    /// 200 with a well-formed body.
    pub ok: u64,
    /// 429s sent.
    pub rate_limited: u64,
    /// Injected 500/503s.
    pub server_errors: u64,
    /// 200 with a cut-short body.
    pub malformed: u64,
    /// 400/403/404.
    pub client_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("date must be YYYY-MM-DD, got {0:?}")]
    InvalidDate(String),
    #[error("{0} must be between 0 and 1, got {1}")]
    InvalidRate(&'static str, f64),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

impl SandboxConfig {
    /// Check the values `start` relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(d) = &self.date {
            if data::parse_date(d).is_none() {
                return Err(ConfigError::InvalidDate(d.clone()));
            }
        }
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::InvalidRate(name, rate));
            }
        }
        if self.build_interval_days == 0 {
            return Err(ConfigError::Zero("build_interval_days"));
        }
        match self.ranking_rebuild {
            RankingRebuild::Once { after_pages: 0 } | RankingRebuild::Every { pages: 0 } => {
                return Err(ConfigError::Zero("ranking_rebuild pages"))
            }
            _ => {}
        }
        Ok(())
    }
}

/// The data set a sandbox started with `config` serves (same seed and sizes → same data).
pub fn dataset(config: &SandboxConfig) -> Dataset {
    Dataset::generate(config)
}

pub struct Sandbox;

impl Sandbox {
    /// Serve on 127.0.0.1 with a free port.
    pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Serve on `addr` in a spawned task. Dropping the handle shuts the server down.
    pub async fn start_on(
        config: SandboxConfig,
        addr: SocketAddr,
    ) -> std::io::Result<SandboxHandle> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let dataset = Arc::new(Dataset::generate(&config));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(server::Counters::default());
        let log = Arc::new(server::RequestLog::new(config.request_log_capacity));
        let state = Arc::new(server::AppState::new(
            config,
            dataset.clone(),
            stats.clone(),
            log.clone(),
        ));
        let app =
            server::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "rakuten sandbox server failed");
            }
        });
        let handle = SandboxHandle {
            addr,
            shutdown: Some(tx),
            join: Some(join),
            stats,
            dataset,
            log,
            state,
        };
        tracing::info!(base_url = %handle.base_url(), "rakuten sandbox listening");
        Ok(handle)
    }
}

pub struct SandboxHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<server::Counters>,
    dataset: Arc<Dataset>,
    log: Arc<server::RequestLog>,
    state: Arc<server::AppState>,
}

impl SandboxHandle {
    /// Serves the JST day `date` (`YYYY-MM-DD`) from now on, as if started with
    /// [`SandboxConfig::date`] = `date` (`collector run --as-of` uses it on the sandbox
    /// the CLI started).
    pub fn set_date(&self, date: &str) -> Result<(), ConfigError> {
        if data::parse_date(date).is_none() {
            return Err(ConfigError::InvalidDate(date.to_string()));
        }
        *self.state.date.write().unwrap_or_else(|e| e.into_inner()) = Some(date.to_string());
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.stats.snapshot()
    }

    /// The recent API requests, oldest first: at most
    /// [`SandboxConfig::request_log_capacity`] of them (older ones are dropped; `seq`
    /// shows the gaps).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.snapshot()
    }

    /// Empty the request log (sequence numbers go on).
    pub fn clear_requests(&self) {
        self.log.clear();
    }

    /// The data set being served.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.dataset.clone()
    }

    /// Stop accepting, let in-flight requests finish (at most 5 s), then return.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Serve until ctrl-c (then shut down gracefully) or until the server stops.
    pub async fn wait(mut self) {
        let Some(mut join) = self.join.take() else {
            return;
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot listen for ctrl-c");
                    let _ = (&mut join).await;
                    return;
                }
                tracing::info!("ctrl-c: rakuten sandbox shutting down");
                self.join = Some(join);
                self.stop().await;
            }
            _ = &mut join => {}
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut join) = self.join.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut join)
                .await
                .is_err()
            {
                join.abort();
            }
        }
    }
}
