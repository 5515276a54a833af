//! The paced, retrying HTTP client.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN, REFERER};
use secrecy::ExposeSecret;
use serde::Serialize;
use url::Url;

use crate::config::ClientConfig;
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
    /// Counters of the innermost `RakutenClient::scoped` future.
    static SCOPE: Arc<Counters>;
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    timeouts: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    limiter: DefaultDirectRateLimiter,
    pacer: Option<Arc<dyn Pacer>>,
    stats: Counters,
}

/// A request budget shared beyond this process (e.g. by every Lambda using one
/// application ID). `wait` returns when this process may send its next request; it is
/// awaited before every HTTP attempt, after the client's own limiter.
pub trait Pacer: Send + Sync {
    fn wait(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
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
    },
    Timeout,
    Transport {
        detail: String,
        retryable: bool,
    },
}

impl AttemptError {
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => *status == 429 || (500..=599).contains(status),
            AttemptError::Timeout => true,
            AttemptError::Transport { retryable, .. } => *retryable,
        }
    }
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
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rps))
            .ok_or_else(|| ApiError::invalid(format!("requests_per_second {rps} is too high")))?
            .allow_burst(NonZeroU32::MIN);
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
        let http = reqwest::Client::builder()
            .user_agent(concat!("ichiba-collector/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| ApiError::invalid(format!("HTTP client: {}", describe_reqwest(e))))?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limiter: RateLimiter::direct(quota),
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

    /// A snapshot of the counters over every call of this client and its clones.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// The counters of the current [`RakutenClient::scoped`] future, or [`RakutenClient::stats`]
    /// outside one. Jobs that run concurrently on one client (Genre and Tag in one process)
    /// each see only their own requests this way.
    pub fn current_stats(&self) -> ClientStats {
        SCOPE
            .try_with(|c| c.snapshot())
            .unwrap_or_else(|_| self.stats())
    }

    /// Runs `fut` with counters of its own (visible through [`RakutenClient::current_stats`]
    /// inside it); the client-wide counters keep counting too.
    pub async fn scoped<F: std::future::Future>(&self, fut: F) -> F::Output {
        SCOPE.scope(Arc::new(Counters::default()), fut).await
    }

    fn count(&self, field: impl Fn(&Counters) -> &AtomicU64) {
        field(&self.inner.stats).fetch_add(1, Ordering::Relaxed);
        let _ = SCOPE.try_with(|c| field(c).fetch_add(1, Ordering::Relaxed));
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
            q.append_pair("accessKey", cfg.access_key.expose_secret());
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
        let attempts = AtomicU32::new(0);
        let attempts_ref = &attempts;
        let url_ref = &url;
        let unit_ref = unit.as_str();

        let result = (|| self.attempt(url_ref, unit_ref, attempts_ref))
            .retry(backoff)
            .when(AttemptError::retryable)
            .adjust(|_, delay| delay.map(|d| d.min(MAX_RETRY_DELAY)))
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
            Ok(body) => match parse(&body) {
                Ok(parsed) => Ok(Fetched {
                    body,
                    parsed,
                    attempts,
                    unit,
                }),
                Err(e) => {
                    let detail = self.scrub(e.to_string());
                    tracing::warn!(unit = unit.as_str(), %detail, "rakuten response malformed");
                    Err(ApiError::Malformed { unit, detail })
                }
            },
            Err(AttemptError::Status {
                status,
                code,
                message,
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

    /// One paced HTTP attempt. `Ok` only for a 200 with its whole body read.
    async fn attempt(
        &self,
        url: &Url,
        unit: &str,
        attempts: &AtomicU32,
    ) -> Result<Bytes, AttemptError> {
        let inner = &self.inner;
        inner.limiter.until_ready().await;
        if let Some(pacer) = &inner.pacer {
            pacer.wait().await;
        }
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
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
            let body = resp.bytes().await;
            if status == 200 {
                return body.map_err(classify_reqwest);
            }
            let (code, message) = body
                .ok()
                .and_then(|b| parse_error_body(&b))
                .unwrap_or((None, None));
            Err(AttemptError::Status {
                status,
                code: code.map(|c| self.scrub(c)),
                message: message.map(|m| self.scrub(m)),
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
