//! The paced, retrying HTTP client.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ORIGIN, REFERER, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;

use crate::config::{AccessKeyIn, ClientConfig};
use crate::error::ApiError;
use crate::models::{
    parse_error_body, parse_genre, parse_item_search, parse_ranking, parse_tags, GenreResponse,
    ItemSearchPage, RankingPage, TagResponse,
};

/// Longest pause between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Most tag ids one Tag Search call accepts.
pub const MAX_TAG_IDS: usize = 10;
/// Last ranking page (ranks 991–1000).
pub const MAX_RANKING_PAGE: u32 = 34;

/// One Item Ranking request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankingQuery {
    /// Genre id; 0 = overall ranking (sent as `genreId=0`).
    pub genre_id: i64,
    /// `period`, e.g. `"realtime"`; `None` = the daily ranking (parameter omitted).
    pub period: Option<String>,
    /// Page 1..=34 (30 rows each).
    pub page: u32,
}

impl RankingQuery {
    /// The daily ranking of `genre_id`, page `page`.
    pub fn daily(genre_id: i64, page: u32) -> Self {
        Self {
            genre_id,
            period: None,
            page,
        }
    }

    fn unit(&self) -> String {
        match self.period.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => format!(
                "ranking genreId={} period={} page={}",
                self.genre_id, p, self.page
            ),
            None => format!("ranking genreId={} page={}", self.genre_id, self.page),
        }
    }
}

/// Counters over every call made through a client (and its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP requests actually sent, retries included.
    pub requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// HTTP 429 answers received.
    pub throttled: u64,
    /// HTTP 5xx answers received.
    pub server_errors: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// HTTP 200 answers whose body could not be parsed.
    pub malformed: u64,
}

/// One request the client sent: the instant it handed the request to the HTTP stack,
/// taken at the moment the pacing check passed (see [`RakutenClient::sent_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// When it was sent.
    pub at: Instant,
    /// Credential-free label, e.g. `ranking genreId=0 page=3`.
    pub unit: String,
    /// 1 for the first try of the unit, 2 for its first retry, …
    pub attempt: u32,
}

/// A successful call: the raw body plus its parsed form.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The final HTTP 200 body, byte for byte.
    pub body: Bytes,
    /// The parsed body.
    pub parsed: T,
    /// Requests sent for this call (1 = no retry).
    pub attempts: u32,
    /// Credential-free label, e.g. `ranking genreId=0 page=3`.
    pub unit: String,
}

tokio::task_local! {
    /// Counters of the innermost `RakutenClient::scoped` future, and of those around it.
    static SCOPE: Arc<Scopes>;
}

/// The counters of the innermost scope and the chain of scopes enclosing it: a request
/// counts in every one (a display's per-job scope around the job's own).
struct Scopes {
    counters: Arc<Counters>,
    outer: Option<Arc<Scopes>>,
}

impl Scopes {
    /// `counters` inside the current scope, if any.
    fn enter(counters: Arc<Counters>) -> Arc<Scopes> {
        Arc::new(Scopes {
            counters,
            outer: SCOPE.try_with(Arc::clone).ok(),
        })
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    timeouts: AtomicU64,
    malformed: AtomicU64,
    /// How much of requests / retries / throttled has been recorded elsewhere (a ledger).
    recorded: [AtomicU64; 3],
}

/// The counters of one [`RakutenClient::scoped_in`] future, shareable with code outside
/// it (a heartbeat that records the job's requests while it works).
#[derive(Clone, Default)]
pub struct StatsScope(Arc<Counters>);

impl StatsScope {
    pub fn stats(&self) -> ClientStats {
        self.0.snapshot()
    }

    /// Requests, retries and 429s counted since the last take, now marked recorded. Takes
    /// never overlap, however many recorders take concurrently.
    pub fn take_unrecorded(&self) -> ClientStats {
        self.0.take_unrecorded()
    }

    /// Undoes a take whose recording failed: those counts are unrecorded again.
    pub fn give_back(&self, taken: ClientStats) {
        let r = &self.0.recorded;
        r[0].fetch_sub(taken.requests, Ordering::Relaxed);
        r[1].fetch_sub(taken.retries, Ordering::Relaxed);
        r[2].fetch_sub(taken.throttled, Ordering::Relaxed);
    }
}

impl Counters {
    fn snapshot(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }

    fn take_unrecorded(&self) -> ClientStats {
        // fetch_max: of two takers racing, the one that read less gets nothing and the
        // mark never moves back, so no count is recorded twice.
        let take = |field: &AtomicU64, mark: &AtomicU64| {
            let now = field.load(Ordering::Relaxed);
            now.saturating_sub(mark.fetch_max(now, Ordering::Relaxed))
        };
        ClientStats {
            requests: take(&self.requests, &self.recorded[0]),
            retries: take(&self.retries, &self.recorded[1]),
            throttled: take(&self.throttled, &self.recorded[2]),
            ..ClientStats::default()
        }
    }
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    /// Smallest gap between two sends of this client and its clones (`1 / rate`).
    interval: Duration,
    gate: Mutex<Gate>,
    pacer: Option<Arc<dyn Pacer>>,
    stats: Counters,
}

/// The process-local limiter. Its check and its record happen under one lock with one
/// `Instant::now()`, so the recorded send instants are exactly what it spaced (a
/// limiter crate would space its own admission instants, not the send instants).
#[derive(Default)]
struct Gate {
    last_sent: Option<Instant>,
    log: VecDeque<SentRequest>,
}

/// A send slot granted by a [`Pacer`]: the client sends within `not_before..=deadline`,
/// or, past the deadline (it woke up late), hands the slot back through
/// [`Pacer::reserve`] and gets a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Not sent before this instant.
    pub not_before: Instant,
    /// Not sent after this instant; `None` = no limit (e.g. the pacer fell back to the
    /// process-local limiter).
    pub deadline: Option<Instant>,
    /// The pacer's own identification of the slot (e.g. its start and end on the
    /// pacer's clock), given back with a missed slot.
    pub token: Option<(i64, i64)>,
}

impl Slot {
    /// A slot open now and without deadline: what a pacer returns when it cannot pace.
    pub fn unpaced() -> Self {
        Slot {
            not_before: Instant::now(),
            deadline: None,
            token: None,
        }
    }
}

/// A request budget shared beyond this process (e.g. by every Lambda using one
/// application ID). The client asks for a slot before every HTTP attempt and sends
/// inside it; the process-local limiter applies as well.
pub trait Pacer: Send + Sync {
    /// Reserves the next send slot. `missed` is a slot this caller reserved earlier and
    /// could not use before its deadline.
    fn reserve<'a>(
        &'a self,
        missed: Option<&'a Slot>,
    ) -> Pin<Box<dyn Future<Output = Slot> + Send + 'a>>;

    /// Told when a request went out in `slot`, at `at` (the recorded send instant), so
    /// the pacer can space the next request from the send rather than from the end of
    /// the slot. Must not block.
    fn sent(&self, _slot: &Slot, _at: Instant) {}
}

/// Rakuten Ichiba API client. Cheap to clone; clones share the connection
/// pool, the rate limiter and the stats.
#[derive(Clone)]
pub struct RakutenClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RakutenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RakutenClient")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum AttemptError {
    Status {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        /// `Retry-After` of a 429, in seconds.
        retry_after: Option<Duration>,
    },
    Timeout,
    Transport {
        detail: String,
        retryable: bool,
    },
    /// A 200 whose body did not parse; retryable when it is not JSON at all (cut short
    /// in transit), not when it is well-formed JSON of the wrong shape or an error body.
    Malformed {
        detail: String,
        body: Bytes,
        retryable: bool,
    },
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            AttemptError::Timeout => true,
            AttemptError::Transport { retryable, .. } => *retryable,
            AttemptError::Malformed { retryable, .. } => *retryable,
        }
    }
}

/// `Retry-After` as delta-seconds (an HTTP date is ignored: the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The error chain of a reqwest error, without the URL (it holds the credentials).
fn describe_reqwest(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut out = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn classify_reqwest(err: reqwest::Error) -> AttemptError {
    if err.is_timeout() {
        return AttemptError::Timeout;
    }
    let retryable = err.is_connect() || err.is_request() || err.is_body();
    AttemptError::Transport {
        detail: describe_reqwest(err),
        retryable,
    }
}

impl RakutenClient {
    /// Builds a client. Fails with [`ApiError::InvalidRequest`] when the rate is
    /// not a positive finite number, `max_attempts` is 0, `format_version` is not
    /// 1 or 2, the timeout is zero, the base URL is not http(s), or a header value
    /// is invalid.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let rps = config.requests_per_second;
        if !(rps.is_finite() && rps > 0.0) {
            return Err(ApiError::invalid(format!(
                "requests_per_second must be a positive finite number, got {rps}"
            )));
        }
        let interval = Duration::try_from_secs_f64(1.0 / rps)
            .ok()
            .filter(|i| !i.is_zero())
            .ok_or_else(|| {
                ApiError::invalid(format!("requests_per_second {rps} is out of range"))
            })?;
        if config.max_attempts == 0 {
            return Err(ApiError::invalid("max_attempts must be at least 1"));
        }
        if !matches!(config.format_version, 1 | 2) {
            return Err(ApiError::invalid(format!(
                "format_version must be 1 or 2, got {}",
                config.format_version
            )));
        }
        if config.timeout.is_zero() {
            return Err(ApiError::invalid("timeout must be greater than zero"));
        }
        if !matches!(config.base_url.scheme(), "http" | "https")
            || config.base_url.cannot_be_a_base()
        {
            return Err(ApiError::invalid(format!(
                "base_url must be an http(s) URL, got scheme {:?}",
                config.base_url.scheme()
            )));
        }
        if config.application_id.expose_secret().is_empty()
            || config.access_key.expose_secret().is_empty()
        {
            return Err(ApiError::invalid(
                "application_id and access_key must not be empty",
            ));
        }

        let mut headers = HeaderMap::new();
        for (name, value, label) in [
            (REFERER, &config.referer, "referer"),
            (ORIGIN, &config.origin, "origin"),
        ] {
            if let Some(v) = value {
                let hv = HeaderValue::from_str(v).map_err(|_| {
                    ApiError::invalid(format!("{label} is not a valid header value"))
                })?;
                headers.insert(name, hv);
            }
        }
        if config.access_key_in == AccessKeyIn::Header {
            let mut hv = HeaderValue::from_str(config.access_key.expose_secret())
                .map_err(|_| ApiError::invalid("access_key is not a valid header value"))?;
            // Sensitive: hyper and reqwest print it as `Sensitive` in any debug output.
            hv.set_sensitive(true);
            headers.insert(HeaderName::from_static("accesskey"), hv);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("ichiba-collector/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| ApiError::invalid(format!("HTTP client: {}", describe_reqwest(e))))?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                interval,
                gate: Mutex::new(Gate::default()),
                pacer: None,
                config,
                stats: Counters::default(),
            }),
        })
    }

    /// Like [`RakutenClient::new`], with a shared [`Pacer`] awaited before every request.
    pub fn with_pacer(config: ClientConfig, pacer: Arc<dyn Pacer>) -> Result<Self, ApiError> {
        let client = Self::new(config)?;
        let inner = Arc::into_inner(client.inner).expect("a new client has one owner");
        Ok(Self {
            inner: Arc::new(Inner {
                pacer: Some(pacer),
                ..inner
            }),
        })
    }

    /// One page of the Item Ranking API.
    pub async fn ranking(&self, q: &RankingQuery) -> Result<Fetched<RankingPage>, ApiError> {
        if !(1..=MAX_RANKING_PAGE).contains(&q.page) {
            return Err(ApiError::invalid(format!(
                "ranking page must be 1..={MAX_RANKING_PAGE}, got {}",
                q.page
            )));
        }
        if q.genre_id < 0 {
            return Err(ApiError::invalid(format!(
                "genre id must not be negative, got {}",
                q.genre_id
            )));
        }
        let mut params = vec![
            ("genreId", q.genre_id.to_string()),
            ("page", q.page.to_string()),
        ];
        if let Some(p) = q.period.as_deref().filter(|p| !p.is_empty()) {
            params.push(("period", p.to_string()));
        }
        let path = &self.inner.config.endpoints.ranking;
        self.fetch(path, params, q.unit(), parse_ranking).await
    }

    /// Looks one item up by `itemCode` (`hits=1&availability=0`, so sold-out
    /// items are found too). A gone item answers `count: 0` with no items.
    pub async fn item_by_code(&self, item_code: &str) -> Result<Fetched<ItemSearchPage>, ApiError> {
        let item_code = item_code.trim();
        if item_code.is_empty() {
            return Err(ApiError::invalid("item code must not be empty"));
        }
        let params = vec![
            ("itemCode", item_code.to_string()),
            ("hits", "1".to_string()),
            ("availability", "0".to_string()),
        ];
        let unit = format!("item itemCode={item_code}");
        let path = &self.inner.config.endpoints.item_search;
        self.fetch(path, params, unit, parse_item_search).await
    }

    /// Genre Search for `genre_id` (0 = root).
    pub async fn genre(&self, genre_id: i64) -> Result<Fetched<GenreResponse>, ApiError> {
        if genre_id < 0 {
            return Err(ApiError::invalid(format!(
                "genre id must not be negative, got {genre_id}"
            )));
        }
        let params = vec![("genreId", genre_id.to_string())];
        let unit = format!("genre genreId={genre_id}");
        let path = &self.inner.config.endpoints.genre_search;
        self.fetch(path, params, unit, parse_genre).await
    }

    /// Tag Search for 1..=10 tag ids (sent comma-separated).
    pub async fn tags(&self, tag_ids: &[i64]) -> Result<Fetched<TagResponse>, ApiError> {
        if tag_ids.is_empty() || tag_ids.len() > MAX_TAG_IDS {
            return Err(ApiError::invalid(format!(
                "tag search takes 1..={MAX_TAG_IDS} tag ids, got {}",
                tag_ids.len()
            )));
        }
        if let Some(bad) = tag_ids.iter().find(|&&t| t <= 0) {
            return Err(ApiError::invalid(format!(
                "tag ids must be positive, got {bad}"
            )));
        }
        let joined = tag_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let unit = format!("tags tagId={joined}");
        let params = vec![("tagId", joined)];
        let path = &self.inner.config.endpoints.tag_search;
        self.fetch(path, params, unit, parse_tags).await
    }

    /// The send instants of the last [`ClientConfig::send_log_capacity`] requests of this
    /// client and its clones, oldest first. Consecutive ones are at least
    /// [`RakutenClient::min_send_interval`] apart; with a shared [`Pacer`] that holds
    /// across every client on the budget too.
    pub fn sent_requests(&self) -> Vec<SentRequest> {
        let gate = self.inner.gate.lock().unwrap_or_else(|e| e.into_inner());
        gate.log.iter().cloned().collect()
    }

    /// The smallest gap between two sends: `1 / requests_per_second`.
    pub fn min_send_interval(&self) -> Duration {
        self.inner.interval
    }

    /// A snapshot of the counters over every call of this client and its clones.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// The counters of the current [`RakutenClient::scoped`] future, or [`RakutenClient::stats`]
    /// outside one. Jobs that run concurrently on one client (Genre and Tag in one process)
    /// each see only their own requests this way.
    pub fn current_stats(&self) -> ClientStats {
        SCOPE
            .try_with(|c| c.counters.snapshot())
            .unwrap_or_else(|_| self.stats())
    }

    /// The current scope (see [`RakutenClient::scoped_in`]), if any.
    pub fn current_scope(&self) -> Option<StatsScope> {
        SCOPE.try_with(|c| StatsScope(Arc::clone(&c.counters))).ok()
    }

    /// Runs `fut` with the counters of `scope` (visible through
    /// [`RakutenClient::current_stats`] inside it and through `scope` outside). Scopes
    /// nest: a request inside counts in this scope and in every scope around it.
    pub async fn scoped_in<F: std::future::Future>(&self, scope: &StatsScope, fut: F) -> F::Output {
        SCOPE.scope(Scopes::enter(Arc::clone(&scope.0)), fut).await
    }

    /// Runs `fut` with counters of its own (visible through [`RakutenClient::current_stats`]
    /// inside it); the client-wide counters keep counting too.
    pub async fn scoped<F: std::future::Future>(&self, fut: F) -> F::Output {
        SCOPE
            .scope(Scopes::enter(Arc::new(Counters::default())), fut)
            .await
    }

    fn count(&self, field: impl Fn(&Counters) -> &AtomicU64) {
        field(&self.inner.stats).fetch_add(1, Ordering::Relaxed);
        let _ = SCOPE.try_with(|c| {
            let mut scope = Some(c);
            while let Some(s) = scope {
                field(&s.counters).fetch_add(1, Ordering::Relaxed);
                scope = s.outer.as_ref();
            }
        });
    }

    /// The full request URL. Holds the credentials: never log or keep it.
    fn build_url(&self, path: &str, params: &[(&str, String)]) -> Result<Url, ApiError> {
        let cfg = &self.inner.config;
        let base = cfg.base_url.as_str().trim_end_matches('/');
        let path = path.trim_start_matches('/');
        let mut url = Url::parse(&format!("{base}/{path}"))
            .map_err(|e| ApiError::invalid(format!("endpoint path {path:?}: {e}")))?;
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("applicationId", cfg.application_id.expose_secret());
            if cfg.access_key_in == AccessKeyIn::Query {
                q.append_pair("accessKey", cfg.access_key.expose_secret());
            }
            q.append_pair("formatVersion", &cfg.format_version.to_string());
            if let Some(aff) = &cfg.affiliate_id {
                q.append_pair("affiliateId", aff.expose_secret());
            }
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Removes any credential from a text that came from outside (server
    /// bodies, library errors) before it goes into an error or a log line.
    fn scrub(&self, text: String) -> String {
        let cfg = &self.inner.config;
        let mut out = text;
        let secrets = [
            Some(cfg.application_id.expose_secret()),
            Some(cfg.access_key.expose_secret()),
            cfg.affiliate_id.as_ref().map(|a| a.expose_secret()),
        ];
        for secret in secrets.into_iter().flatten() {
            if !secret.is_empty() && out.contains(secret) {
                out = out.replace(secret, "[REDACTED]");
            }
        }
        out
    }

    async fn fetch<T>(
        &self,
        path: &str,
        params: Vec<(&'static str, String)>,
        unit: String,
        parse: fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<Fetched<T>, ApiError> {
        let url = self.build_url(path, &params)?;
        let cfg = &self.inner.config;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.retry_base_delay)
            .with_factor(2.0)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_jitter()
            .with_max_times((cfg.max_attempts - 1) as usize);
        let retry_after_cap = cfg.retry_after_cap;
        let attempts = AtomicU32::new(0);
        let attempts_ref = &attempts;
        let url_ref = &url;
        let unit_ref = unit.as_str();

        let result = (|| self.attempt(url_ref, unit_ref, attempts_ref, parse))
            .retry(backoff)
            .when(AttemptError::retryable)
            .adjust(|err, delay| {
                // The server's own `Retry-After` (capped) wins over a shorter backoff.
                let asked = match err {
                    AttemptError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                delay.map(|d| match asked {
                    Some(a) => d.max(a.min(retry_after_cap)),
                    None => d.min(MAX_RETRY_DELAY),
                })
            })
            .notify(|err, delay| {
                let attempt = attempts_ref.load(Ordering::Relaxed);
                let status = match err {
                    AttemptError::Status { status, .. } => Some(*status),
                    _ => None,
                };
                let reason = match err {
                    AttemptError::Status { .. } => "status",
                    AttemptError::Timeout => "timeout",
                    AttemptError::Transport { .. } => "transport",
                    AttemptError::Malformed { .. } => "malformed",
                };
                tracing::warn!(
                    unit = unit_ref,
                    status,
                    reason,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "rakuten request failed, retrying"
                );
            })
            .await;

        let attempts = attempts.load(Ordering::Relaxed);
        match result {
            Ok((body, parsed)) => Ok(Fetched {
                body,
                parsed,
                attempts,
                unit,
            }),
            Err(AttemptError::Malformed { detail, body, .. }) => {
                tracing::warn!(unit = unit.as_str(), %detail, attempts, "rakuten response malformed");
                Err(ApiError::Malformed {
                    unit,
                    detail,
                    attempts,
                    body: Some(body),
                })
            }
            Err(AttemptError::Status {
                status,
                code,
                message,
                ..
            }) => Err(ApiError::Http {
                unit,
                status,
                code,
                message,
                attempts,
            }),
            Err(AttemptError::Timeout) => Err(ApiError::Timeout { unit, attempts }),
            Err(AttemptError::Transport { detail, .. }) => Err(ApiError::Transport {
                unit,
                attempts,
                detail,
            }),
        }
    }

    /// Waits until this process may send (the shared pacer's slot, if any, and the
    /// process-local spacing), records the send instant and returns it. The check and
    /// the record are one step under the gate's lock, so the recorded instants are the
    /// ones the spacing guarantee is about; a wake-up past the slot's deadline gives the
    /// slot back instead of sending late.
    async fn pace(&self, unit: &str, attempt: u32) -> Instant {
        enum Next {
            Sent(Instant),
            Wait(Instant),
            Missed,
        }
        let inner = &*self.inner;
        let mut slot: Option<Slot> = None;
        let mut missed: Option<Slot> = None;
        loop {
            if slot.is_none() {
                if let Some(p) = &inner.pacer {
                    slot = Some(p.reserve(missed.as_ref()).await);
                    missed = None;
                }
            }
            let next = {
                let mut gate = inner.gate.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let local = gate.last_sent.map(|t| t + inner.interval);
                let opens = slot.as_ref().map(|s| s.not_before);
                let at = local.into_iter().chain(opens).max();
                // Past the deadline, or unable to open before it: give the slot back.
                if slot
                    .as_ref()
                    .and_then(|s| s.deadline)
                    .is_some_and(|d| now > d || at.is_some_and(|at| at > d))
                {
                    Next::Missed
                } else if let Some(at) = at.filter(|&at| now < at) {
                    Next::Wait(at)
                } else {
                    gate.last_sent = Some(now);
                    let cap = inner.config.send_log_capacity;
                    if cap > 0 {
                        while gate.log.len() >= cap {
                            gate.log.pop_front();
                        }
                        gate.log.push_back(SentRequest {
                            at: now,
                            unit: unit.to_string(),
                            attempt,
                        });
                    }
                    Next::Sent(now)
                }
            };
            match next {
                Next::Sent(at) => {
                    if let (Some(p), Some(s)) = (&inner.pacer, &slot) {
                        p.sent(s, at);
                    }
                    return at;
                }
                Next::Wait(at) => tokio::time::sleep_until(at.into()).await,
                Next::Missed => {
                    tracing::debug!(unit, attempt, "send slot missed; reserving another");
                    missed = slot.take();
                }
            }
        }
    }

    /// One paced HTTP attempt. `Ok` only for a 200 whose whole body was read and parsed.
    async fn attempt<T>(
        &self,
        url: &Url,
        unit: &str,
        attempts: &AtomicU32,
        parse: fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<(Bytes, T), AttemptError> {
        let inner = &self.inner;
        let n = attempts.load(Ordering::Relaxed) + 1;
        self.pace(unit, n).await;
        // Counted when sent, in the same step as the send record.
        attempts.store(n, Ordering::Relaxed);
        self.count(|c| &c.requests);
        if n > 1 {
            self.count(|c| &c.retries);
        }
        tracing::debug!(unit, attempt = n, "rakuten request");

        let outcome = async {
            let resp = inner
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(classify_reqwest)?;
            let status = resp.status().as_u16();
            let retry_after = (status == 429)
                .then(|| retry_after(resp.headers()))
                .flatten();
            let body = resp.bytes().await;
            if status == 200 {
                let body = body.map_err(classify_reqwest)?;
                return match parse(&body) {
                    Ok(parsed) => Ok((body, parsed)),
                    Err(e) => Err(AttemptError::Malformed {
                        retryable: matches!(
                            e.classify(),
                            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
                        ),
                        detail: self.scrub(e.to_string()),
                        body,
                    }),
                };
            }
            let (code, message) = body
                .ok()
                .and_then(|b| parse_error_body(&b))
                .unwrap_or((None, None));
            Err(AttemptError::Status {
                status,
                code: code.map(|c| self.scrub(c)),
                message: message.map(|m| self.scrub(m)),
                retry_after,
            })
        }
        .await;

        match &outcome {
            Err(AttemptError::Status { status, .. }) => {
                if *status == 429 {
                    self.count(|c| &c.throttled);
                } else if (500..=599).contains(status) {
                    self.count(|c| &c.server_errors);
                }
            }
            Err(AttemptError::Timeout) => {
                self.count(|c| &c.timeouts);
            }
            Err(AttemptError::Malformed { .. }) => {
                self.count(|c| &c.malformed);
            }
            Err(AttemptError::Transport { detail, .. }) => {
                // The detail never holds the URL, but scrub defensively.
                let detail = self.scrub(detail.clone());
                tracing::debug!(unit, attempt = n, %detail, "rakuten transport error");
            }
            Ok(_) => {}
        }
        outcome.map_err(|e| match e {
            AttemptError::Transport { detail, retryable } => AttemptError::Transport {
                detail: self.scrub(detail),
                retryable,
            },
            other => other,
        })
    }
}
