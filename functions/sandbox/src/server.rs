//! HTTP layer: routing, credentials, rate limit, fault injection and the four APIs.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;

use crate::data::{self, Dataset, RANKING_MAX_PAGE, RANKING_PAGE_SIZE};
use crate::wire::{self, wrap};
use crate::{
    ErrorMode, MalformedKind, RankingRebuild, RateLimitBody, RequestRecord, SandboxConfig,
    SandboxStats, IP_NOT_ALLOWED_MESSAGE, KNOWN_VERSIONS,
};

/// The bounded request log behind [`crate::SandboxHandle::requests`].
pub(crate) struct RequestLog {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<RequestRecord>)>,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        RequestLog {
            capacity,
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    fn push(&self, mut rec: RequestRecord) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        rec.seq = g.0;
        g.0 += 1;
        if self.capacity == 0 {
            return;
        }
        while g.1.len() >= self.capacity {
            g.1.pop_front();
        }
        g.1.push_back(rec);
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.inner
            .lock()
            .map(|g| g.1.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.1.clear();
        }
    }
}

const JSON: &str = "application/json;charset=UTF-8";
/// Genre Search versions from this one on answer the flat 2026 shape.
const GENRE_NEW_SHAPE_VERSION: u64 = 20_260_401;
/// Genre Search versions from this one on carry `englishName`.
const GENRE_ENGLISH_VERSION: u64 = 20_170_711;

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    malformed: AtomicU64,
    client_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SandboxStats {
        SandboxStats {
            requests: self.requests.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
        }
    }

    fn record(&self, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let c = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::RateLimited => &self.rate_limited,
            Outcome::ServerError => &self.server_errors,
            Outcome::Malformed => &self.malformed,
            Outcome::ClientError => &self.client_errors,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    RateLimited,
    ServerError,
    Malformed,
    ClientError,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Ranking,
    ItemSearch,
    GenreSearch,
    TagSearch,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Ranking => "IchibaItem/Ranking",
            Api::ItemSearch => "IchibaItem/Search",
            Api::GenreSearch => "IchibaGenre/Search",
            Api::TagSearch => "IchibaTag/Search",
        }
    }
}

/// An error answer: status and a complete JSON body.
struct ApiError {
    status: StatusCode,
    body: Vec<u8>,
}

impl ApiError {
    fn classic(status: StatusCode, error: &str, description: &str) -> Self {
        ApiError {
            status,
            body: to_json(&wire::ClassicError {
                error,
                error_description: description,
            }),
        }
    }
    fn wrong(description: &str) -> Self {
        Self::classic(StatusCode::BAD_REQUEST, "wrong_parameter", description)
    }
    fn not_found() -> Self {
        Self::classic(StatusCode::NOT_FOUND, "not_found", "not found")
    }
    fn gateway(status: StatusCode, message: &str) -> Self {
        ApiError {
            status,
            body: to_json(&wire::GatewayError {
                errors: wire::GatewayErrorBody {
                    error_code: status.as_u16(),
                    error_message: message,
                },
            }),
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// Query parameters in arrival order; the first occurrence of a name wins.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A present, non-empty parameter.
    fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn int(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::wrong(&format!("{name} parameter is not valid"))),
        }
    }

    fn int_in(&self, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, ApiError> {
        let v = self.int(name)?.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::wrong(&format!(
                "{name} must be between {lo} and {hi}"
            )))
        }
    }
}

/// (genre id, build date, variant, build)
type RankingKey = (u64, String, String, u32);

pub(crate) struct AppState {
    config: SandboxConfig,
    dataset: Arc<Dataset>,
    pub(crate) stats: Arc<Counters>,
    log: Arc<RequestLog>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    draws: AtomicU64,
    rankings: Mutex<HashMap<RankingKey, Arc<Vec<u32>>>>,
    /// Ranking pages served per target (genre id, variant), for [`RankingRebuild`].
    served: Mutex<HashMap<(u64, String), u64>>,
    /// The date served, when set after start ([`crate::SandboxHandle::set_date`]); wins
    /// over `config.date`.
    pub(crate) date: std::sync::RwLock<Option<String>>,
}

impl AppState {
    pub(crate) fn new(
        config: SandboxConfig,
        dataset: Arc<Dataset>,
        stats: Arc<Counters>,
        log: Arc<RequestLog>,
    ) -> Self {
        let limiter = config
            .rate_limit_per_sec
            .filter(|r| r.is_finite() && *r > 0.0)
            .and_then(|r| Quota::with_period(Duration::from_secs_f64(1.0 / r)))
            .map(|q| RateLimiter::keyed(q.allow_burst(NonZeroU32::MIN)));
        AppState {
            config,
            dataset,
            stats,
            log,
            limiter,
            draws: AtomicU64::new(0),
            rankings: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
            date: std::sync::RwLock::new(None),
        }
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/__sandbox/health", get(|| async { "ok" }))
        .route("/__sandbox/stats", get(stats))
        .route("/__sandbox/requests", get(requests))
        .fallback(api)
        .with_state(state)
}

async fn stats(State(st): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, to_json(&st.stats.snapshot()))
}

async fn requests(State(st): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, to_json(&st.log.snapshot()))
}

async fn api(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    if !st.config.latency.is_zero() {
        tokio::time::sleep(st.config.latency).await;
    }
    let (outcome, resp) = st.handle(
        &method,
        uri.path(),
        &headers,
        peer.ip(),
        query.map(|q| Params(q.0)),
    );
    st.stats.record(outcome);
    st.log.push(RequestRecord {
        seq: 0,
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
        header_names: headers.keys().map(|k| k.as_str().to_string()).collect(),
        status: resp.status().as_u16(),
        api: parse_path(uri.path()).map(|(a, _)| a.name().to_string()),
    });
    // Never log the query string: it carries the credentials.
    tracing::debug!(
        method = %method,
        path = uri.path(),
        status = resp.status().as_u16(),
        outcome = ?outcome,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sandbox request"
    );
    resp
}

/// `/{root}/api/{Api}/{Op}/{version}` → (api, version).
fn parse_path(path: &str) -> Option<(Api, &str)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [root, "api", api, op, version] = segs.as_slice() else {
        return None;
    };
    if root.is_empty() || version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let api = match (*api, *op) {
        ("IchibaItem", "Ranking") => Api::Ranking,
        ("IchibaItem", "Search") => Api::ItemSearch,
        ("IchibaGenre", "Search") => Api::GenreSearch,
        ("IchibaTag", "Search") => Api::TagSearch,
        _ => return None,
    };
    Some((api, version))
}

fn valid_application_id(id: &str) -> bool {
    let b = id.as_bytes();
    let numeric = b.len() == 19 && b.iter().all(u8::is_ascii_digit);
    let uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    numeric || uuid
}

impl AppState {
    fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: IpAddr,
        params: Result<Params, QueryRejection>,
    ) -> (Outcome, Response) {
        let client = |e: ApiError| (Outcome::ClientError, json_response(e.status, e.body));
        let server = |e: ApiError| (Outcome::ServerError, json_response(e.status, e.body));

        // the legacy host after the cut-over
        if self.config.legacy_host_maintenance && path.starts_with("/services/") {
            let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let what = match segs.as_slice() {
                ["services", "api", api, op, ..] => format!("{api}/{op}"),
                _ => "service".to_string(),
            };
            return server(ApiError::classic(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                &format!("{what} is under maintenance"),
            ));
        }

        let Some((api, version)) = parse_path(path)
            .filter(|_| *method == Method::GET || *method == Method::HEAD)
            .filter(|(api, version)| known_version(*api, version))
        else {
            return client(ApiError::not_found());
        };
        let Ok(params) = params else {
            return client(ApiError::wrong("query string is not valid"));
        };

        // credentials
        let app_id = match params.value("applicationId") {
            Some(id) if valid_application_id(id) => id,
            _ => return client(ApiError::wrong("specify valid applicationId")),
        };
        let access_key = params.value("accessKey").or_else(|| {
            headers
                .get("accessKey")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        });
        match access_key {
            None => {
                return client(ApiError::gateway(
                    StatusCode::BAD_REQUEST,
                    "accessKey must be present as a query parameter or in the header",
                ))
            }
            Some(k) if k != self.config.access_key => {
                return client(ApiError::gateway(
                    StatusCode::FORBIDDEN,
                    "Invalid Access Key",
                ))
            }
            Some(_) => {}
        }

        // a Web-application app: Referer/Origin
        if let Some(allowed) = &self.config.require_referer {
            let sent: Vec<&str> = ["referer", "origin"]
                .iter()
                .filter_map(|h| headers.get(*h))
                .filter_map(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            if sent.is_empty() {
                return client(ApiError::gateway(
                    StatusCode::FORBIDDEN,
                    "REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING",
                ));
            }
            let want = origin_of(allowed);
            if !sent.iter().any(|v| origin_of(v) == want) {
                return client(ApiError::gateway(
                    StatusCode::FORBIDDEN,
                    "REQUEST_CONTEXT_BODY_HTTP_REFERRER_NOT_ALLOWED",
                ));
            }
        }

        // a backend app: allowed IPs
        if !self.config.allowed_ips.is_empty() {
            let peer = peer.to_canonical();
            if !self
                .config
                .allowed_ips
                .iter()
                .any(|ip| ip.to_canonical() == peer)
            {
                return client(ApiError::gateway(
                    StatusCode::FORBIDDEN,
                    IP_NOT_ALLOWED_MESSAGE,
                ));
            }
        }

        // rate limit
        if let Some(limiter) = &self.limiter {
            if limiter.check_key(&app_id.to_string()).is_err() {
                let e = match self.config.rate_limit_body {
                    RateLimitBody::Classic => ApiError::classic(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_requests",
                        "number of allowed requests has been exceeded for this API. please try again soon.",
                    ),
                    RateLimitBody::StatusMessage => ApiError {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        body: br#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}"#.to_vec(),
                    },
                };
                let mut resp = json_response(e.status, e.body);
                if let Some(secs) = self.config.retry_after_secs {
                    resp.headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(secs));
                }
                return (Outcome::RateLimited, resp);
            }
        }

        // ranking pages that always fail
        if api == Api::Ranking && !self.config.fail_ranking_pages.is_empty() {
            let num = |name: &str, default: u64| match params.value(name) {
                None => Some(default),
                Some(v) => v.parse::<u64>().ok(),
            };
            let (genre, page) = (num("genreId", 0), num("page", 1));
            if let Some(f) = self
                .config
                .fail_ranking_pages
                .iter()
                .find(|f| Some(f.genre_id) == genre && Some(u64::from(f.page)) == page)
            {
                return server(server_error(f.status == 503, api));
            }
        }

        // injected faults
        let unit_key = || {
            let mut kept: Vec<(&str, &str)> = params
                .0
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "applicationId" | "accessKey" | "formatVersion")
                })
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            kept.sort_unstable();
            let mut key = format!("{}/{version}?", api.name());
            for (k, v) in kept {
                key.push_str(k);
                key.push('=');
                key.push_str(v);
                key.push('&');
            }
            key
        };
        if self.config.error_rate > 0.0 {
            let h = self.draw(b"error", &unit_key);
            if data::unit(h) < self.config.error_rate {
                return server(server_error(data::mix(h) & 1 == 1, api));
            }
        }

        // the answer
        let body = match self.answer(api, version, &params) {
            Ok(body) => body,
            Err(e) => return client(e),
        };
        if self.config.malformed_rate > 0.0
            && data::unit(self.draw(b"malformed", &unit_key)) < self.config.malformed_rate
        {
            let body = match self.config.malformed_kind {
                // Cut the document in half: the top-level object is never closed, so never
                // valid JSON.
                MalformedKind::Truncated => {
                    let mut body = body;
                    body.truncate((body.len() / 2).max(1));
                    body
                }
                MalformedKind::Html => MAINTENANCE_HTML.as_bytes().to_vec(),
                MalformedKind::Empty => Vec::new(),
            };
            return (Outcome::Malformed, json_response(StatusCode::OK, body));
        }
        (Outcome::Ok, json_response(StatusCode::OK, body))
    }

    /// A fault draw: per request (transient) or per unit of work (persistent).
    fn draw(&self, salt: &[u8], unit_key: &dyn Fn() -> String) -> u64 {
        match self.config.error_mode {
            ErrorMode::Transient => {
                let n = self.draws.fetch_add(1, Ordering::Relaxed);
                data::hash_parts(self.config.seed, &[salt, &n.to_le_bytes()])
            }
            ErrorMode::Persistent => {
                data::hash_parts(self.config.seed, &[salt, unit_key().as_bytes()])
            }
        }
    }

    fn date(&self) -> String {
        let set = self.date.read().unwrap_or_else(|e| e.into_inner()).clone();
        set.or_else(|| self.config.date.clone())
            .unwrap_or_else(data::today_jst)
    }

    fn answer(&self, api: Api, version: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
        let v1 = match p.value("formatVersion") {
            None | Some("1") => true,
            Some("2") => false,
            Some(_) => return Err(ApiError::wrong("formatVersion parameter is not valid")),
        };
        match api {
            Api::Ranking => self.ranking(p, v1),
            Api::ItemSearch => self.item_search(p, v1),
            Api::GenreSearch => self.genre_search(p, version, v1),
            Api::TagSearch => self.tag_search(p, v1),
        }
    }

    fn ranking(&self, p: &Params, v1: bool) -> Result<Vec<u8>, ApiError> {
        let genre_id = p.int("genreId")?.unwrap_or(0);
        let age = p.int("age")?;
        let sex = p.int("sex")?;
        if age.is_some_and(|a| ![10, 20, 30, 40, 50].contains(&a)) {
            return Err(ApiError::wrong("age parameter is not valid"));
        }
        if sex.is_some_and(|s| s > 1) {
            return Err(ApiError::wrong("sex parameter is not valid"));
        }
        if genre_id != 0 && (age.is_some() || sex.is_some()) {
            return Err(ApiError::wrong(
                "genreId cannot be combined with age or sex",
            ));
        }
        let carrier = p.int_in("carrier", 0, 0, 1)? as u32;
        let page = p.int_in("page", 1, 1, u64::from(RANKING_MAX_PAGE))? as usize;
        let realtime = match p.value("period") {
            None => false,
            Some("realtime") => true,
            Some(_) => return Err(ApiError::wrong("period parameter is not valid")),
        };
        let genre = self
            .dataset
            .genre(genre_id)
            .ok_or_else(ApiError::not_found)?;
        let build_day = self.build_day();
        let date = data::date_from_days(build_day);
        let mut variant = String::from(if realtime { "realtime" } else { "daily" });
        if age.is_some() || sex.is_some() {
            variant.push_str(&format!(":age={age:?}:sex={sex:?}"));
        }
        let build = self.next_build(genre_id, &variant);
        let ranking = self
            .cached_ranking(genre_id, &date, &variant, build)
            .ok_or_else(ApiError::not_found)?;
        let start = ((page - 1) * RANKING_PAGE_SIZE).min(ranking.len());
        let end = (start + RANKING_PAGE_SIZE).min(ranking.len());
        // Descending rank order on the wire, as the new host is reported to do.
        let items = (start..end)
            .rev()
            .map(|i| {
                let item = &self.dataset.items[ranking[i] as usize];
                wrap(v1, "Item", wire::RankingItem::new(item, i + 1, carrier, v1))
            })
            .collect();
        let kind = if realtime {
            "リアルタイムランキング"
        } else {
            "ランキング市場"
        };
        let scope = if genre.level == 0 {
            "総合"
        } else {
            genre.name.as_str()
        };
        Ok(to_json(&wire::RankingResponse {
            title: format!("【楽天市場】{kind} 【{scope}】"),
            last_build_date: data::rfc822_jst(build_day, build),
            items,
        }))
    }

    /// The day (since 1970-01-01) whose build is served: the date minus the lag, rounded
    /// down to a multiple of the build interval.
    fn build_day(&self) -> i64 {
        let date = self.date();
        let day = data::parse_date(&date).map_or(0, |(y, m, d)| data::days_from_civil(y, m, d))
            - i64::from(self.config.build_date_lag_days);
        day - day.rem_euclid(i64::from(self.config.build_interval_days.max(1)))
    }

    /// Count one page served for the target and say which build it carries.
    fn next_build(&self, genre_id: u64, variant: &str) -> u32 {
        let per = match self.config.ranking_rebuild {
            RankingRebuild::Never => return 0,
            RankingRebuild::Once { after_pages } | RankingRebuild::Every { pages: after_pages } => {
                u64::from(after_pages.max(1))
            }
        };
        let n = {
            let Ok(mut served) = self.served.lock() else {
                return 0;
            };
            let c = served.entry((genre_id, variant.to_string())).or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        match self.config.ranking_rebuild {
            RankingRebuild::Once { .. } => u32::from(n >= per),
            _ => u32::try_from(n / per).unwrap_or(u32::MAX),
        }
    }

    fn cached_ranking(
        &self,
        genre_id: u64,
        date: &str,
        variant: &str,
        build: u32,
    ) -> Option<Arc<Vec<u32>>> {
        let key = (genre_id, date.to_string(), variant.to_string(), build);
        if let Some(r) = self.rankings.lock().ok()?.get(&key) {
            return Some(r.clone());
        }
        let r = Arc::new(
            self.dataset
                .ranking_scored(genre_id, date, variant, build)?,
        );
        let mut cache = self.rankings.lock().ok()?;
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(key, r.clone());
        Some(r)
    }

    fn item_search(&self, p: &Params, v1: bool) -> Result<Vec<u8>, ApiError> {
        let keyword = p.value("keyword");
        let shop_code = p.value("shopCode");
        let item_code = p.value("itemCode");
        let genre_id = p.int("genreId")?;
        if keyword.is_none() && shop_code.is_none() && item_code.is_none() && genre_id.is_none() {
            return Err(ApiError::wrong(
                "keyword, genreId, itemCode or shopCode must be set",
            ));
        }
        let hits = p.int_in("hits", 30, 1, 30)? as usize;
        let page = p.int_in("page", 1, 1, 100)? as u32;
        let availability = p.int_in("availability", 1, 0, 1)?;
        let carrier = p.int_in("carrier", 0, 0, 2)? as u32;
        let image_flag = p.int_in("imageFlag", 0, 0, 1)?;
        let min_price = p.int("minPrice")?;
        let max_price = p.int("maxPrice")?;
        if let (Some(lo), Some(hi)) = (min_price, max_price) {
            if hi <= lo {
                return Err(ApiError::wrong("maxPrice must be greater than minPrice"));
            }
        }
        let tag_ids = match p.value("tagId") {
            None => Vec::new(),
            Some(v) => parse_ids(v)?,
        };
        let words: Vec<String> = match keyword {
            None => Vec::new(),
            Some(k) => {
                if k.chars().count() > 128 {
                    return Err(ApiError::wrong("keyword parameter is not valid"));
                }
                let words: Vec<String> = k
                    .split(|c: char| c.is_whitespace())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                // each word: ≥2 half-width characters or ≥1 full-width one
                if words.iter().any(|w| w.is_ascii() && w.len() < 2) {
                    return Err(ApiError::wrong("keyword length must be over 2 characters"));
                }
                words
            }
        };
        let sort = p.value("sort").unwrap_or("standard").replace(' ', "+");
        if !matches!(
            sort.as_str(),
            "standard"
                | "+affiliateRate"
                | "-affiliateRate"
                | "+reviewCount"
                | "-reviewCount"
                | "+reviewAverage"
                | "-reviewAverage"
                | "+itemPrice"
                | "-itemPrice"
                | "+updateTimestamp"
                | "-updateTimestamp"
        ) {
            return Err(ApiError::wrong("sort parameter is not valid"));
        }

        let ds = &*self.dataset;
        if let Some(g) = genre_id {
            ds.genre(g).ok_or_else(ApiError::not_found)?;
        }
        let candidates: Vec<&data::Item> = if let Some(code) = item_code {
            ds.item(code).into_iter().collect()
        } else if let Some(g) = genre_id {
            let members = ds.subtree_item_indices(g).unwrap_or(&[]);
            members.iter().map(|&i| &ds.items[i as usize]).collect()
        } else {
            ds.items.iter().collect()
        };
        let mut found: Vec<&data::Item> = candidates
            .into_iter()
            .filter(|it| availability == 0 || it.availability == 1)
            .filter(|it| shop_code.is_none_or(|s| it.shop_code == s))
            .filter(|it| genre_id.is_none_or(|g| in_subtree(ds, it.genre_id, g)))
            .filter(|it| image_flag == 0 || it.image_flag == 1)
            .filter(|it| {
                min_price.is_none_or(|lo| it.price >= lo)
                    && max_price.is_none_or(|hi| it.price <= hi)
            })
            .filter(|it| tag_ids.iter().all(|t| it.tag_ids.contains(t)))
            .filter(|it| {
                if words.is_empty() {
                    return true;
                }
                let hay = format!("{}\n{}\n{}", it.name, it.catchcopy, it.caption).to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect();
        match sort.as_str() {
            "+affiliateRate" => found.sort_by_key(|i| i.affiliate_rate_x10),
            "-affiliateRate" => found.sort_by_key(|i| std::cmp::Reverse(i.affiliate_rate_x10)),
            "+reviewCount" => found.sort_by_key(|i| i.review_count),
            "-reviewCount" => found.sort_by_key(|i| std::cmp::Reverse(i.review_count)),
            "+reviewAverage" => found.sort_by_key(|i| i.review_average_x100),
            "-reviewAverage" => found.sort_by_key(|i| std::cmp::Reverse(i.review_average_x100)),
            "+itemPrice" => found.sort_by_key(|i| i.price),
            "-itemPrice" => found.sort_by_key(|i| std::cmp::Reverse(i.price)),
            _ => {}
        }

        let count = found.len();
        if count == 0 {
            return Ok(to_json(&wire::EmptySearchResponse {
                count: 0,
                page,
                first: 0,
                last: 0,
                hits: 0,
                page_count: 0,
            }));
        }
        let page_count = count.div_ceil(hits).min(100);
        let start = ((page as usize - 1) * hits).min(count);
        let end = (start + hits).min(count);
        let rows: Vec<_> = found[start..end]
            .iter()
            .map(|it| wrap(v1, "Item", wire::SearchItem::new(it, v1)))
            .collect();
        let (first, last) = if rows.is_empty() {
            (0, 0)
        } else {
            (start + 1, end)
        };
        Ok(to_json(&wire::SearchResponse {
            count,
            page,
            first,
            last,
            hits: rows.len(),
            carrier,
            page_count,
            items: rows,
            genre_information: [],
            tag_information: [],
        }))
    }

    fn genre_search(&self, p: &Params, version: &str, v1: bool) -> Result<Vec<u8>, ApiError> {
        let genre_id = p
            .int("genreId")?
            .ok_or_else(|| ApiError::wrong("genreId must be set"))?;
        let genre = self
            .dataset
            .genre(genre_id)
            .ok_or_else(ApiError::not_found)?;
        let version: u64 = version.parse().unwrap_or(0);
        if version >= GENRE_NEW_SHAPE_VERSION {
            Ok(to_json(&wire::NewGenreResponse::new(&self.dataset, genre)))
        } else {
            Ok(to_json(&wire::OldGenreResponse::new(
                &self.dataset,
                genre,
                version >= GENRE_ENGLISH_VERSION,
                v1,
            )))
        }
    }

    fn tag_search(&self, p: &Params, v1: bool) -> Result<Vec<u8>, ApiError> {
        let ids = parse_ids(
            p.value("tagId")
                .ok_or_else(|| ApiError::wrong("tagId must be set"))?,
        )?;
        let ds = &*self.dataset;
        // group the known tags by tag group, groups in order of first appearance
        let mut groups: Vec<(u64, Vec<&data::Tag>)> = Vec::new();
        for id in ids {
            let Some(tag) = ds.tag(id) else { continue };
            match groups.iter_mut().find(|(g, _)| *g == tag.group_id) {
                Some((_, tags)) => {
                    if !tags.iter().any(|t| t.id == id) {
                        tags.push(tag);
                    }
                }
                None => groups.push((tag.group_id, vec![tag])),
            }
        }
        let tag_groups = groups
            .into_iter()
            .filter_map(|(gid, tags)| {
                let group = ds.tag_group(gid)?;
                Some(wrap(
                    v1,
                    "tagGroup",
                    wire::WireTagGroup::new(group, tags.into_iter(), v1),
                ))
            })
            .collect();
        Ok(to_json(&wire::TagSearchResponse { tag_groups }))
    }
}

/// An HTML page answered with 200 by [`MalformedKind::Html`].
const MAINTENANCE_HTML: &str = "<!DOCTYPE html>\n<html><head><title>Service Temporarily Unavailable</title></head>\n<body><h1>ただいまメンテナンス中です</h1></body></html>\n";

fn server_error(unavailable: bool, api: Api) -> ApiError {
    if unavailable {
        ApiError::classic(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            &format!("{} is under maintenance", api.name()),
        )
    } else {
        ApiError::classic(
            StatusCode::INTERNAL_SERVER_ERROR,
            "system_error",
            "api logic error",
        )
    }
}

fn known_version(api: Api, version: &str) -> bool {
    KNOWN_VERSIONS
        .iter()
        .any(|(name, versions)| *name == api.name() && versions.contains(&version))
}

/// `scheme://host[:port]` of a URL, lower case (the whole trimmed value when it has no
/// `://`).
fn origin_of(url: &str) -> String {
    let url = url.trim();
    let end = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j),
        None => url.trim_end_matches('/').len(),
    };
    url[..end].to_ascii_lowercase()
}

fn in_subtree(ds: &Dataset, mut genre_id: u64, ancestor: u64) -> bool {
    loop {
        if genre_id == ancestor {
            return true;
        }
        match ds.genre(genre_id) {
            Some(g) if g.level > 0 => genre_id = g.parent,
            _ => return false,
        }
    }
}

/// Comma-separated ids: 1..=10 of them, each a positive integer.
fn parse_ids(v: &str) -> Result<Vec<u64>, ApiError> {
    let ids: Vec<u64> = v
        .split(',')
        .map(|s| s.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::wrong("tagId parameter is not valid"))?;
    if ids.len() > 10 {
        return Err(ApiError::wrong("tagId must be 10 or less"));
    }
    if ids.contains(&0) {
        return Err(ApiError::wrong("tagId must not be 0"));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids() {
        assert_eq!(
            parse_path("/ichibaranking/api/IchibaItem/Ranking/20220601").map(|x| x.0),
            Some(Api::Ranking)
        );
        assert_eq!(
            parse_path("/services/api/IchibaTag/Search/20140222").map(|x| x.0),
            Some(Api::TagSearch)
        );
        assert!(parse_path("/services/api/IchibaTag/Find/20140222").is_none());
        assert!(parse_path("/api/IchibaItem/Search/20220601").is_none());
        assert!(valid_application_id("1234567890123456789"));
        assert!(valid_application_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!valid_application_id("123"));
        assert!(!valid_application_id("0f8fad5b-d9cb-469f-a165-70867728950"));
        assert!(parse_ids("1,2,3").is_ok());
        assert!(parse_ids("1,0").is_err());
        assert!(parse_ids("1,x").is_err());
        assert!(parse_ids("1,2,3,4,5,6,7,8,9,10,11").is_err());
        assert!(known_version(Api::Ranking, "20220601"));
        assert!(!known_version(Api::Ranking, "20260401"));
        assert!(known_version(Api::GenreSearch, "20260401"));
        assert_eq!(
            origin_of("https://Example.com/app/x?y=1"),
            "https://example.com"
        );
        assert_eq!(origin_of("https://example.com"), "https://example.com");
        assert_eq!(
            origin_of("https://example.com:8443/"),
            "https://example.com:8443"
        );
        assert_ne!(
            origin_of("https://example.com.evil/"),
            "https://example.com"
        );
    }
}
