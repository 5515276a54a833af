//! Typed configuration, read from environment variables and validated once at start-up.
//!
//! Every error names the variable and what is wrong with it. Secrets are kept as
//! [`SecretString`] so they cannot reach a log line through `Debug`. Where a secret has a
//! `*_SSM_PARAMETER` variable, [`crate::secrets`] resolves it from SSM Parameter Store.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Where the local environment keeps its raw objects when `RAW_STORE` is unset.
pub const LOCAL_RAW_STORE_DEFAULT: &str = "file://./.local/raw";
/// The local environment's database when `DATABASE_URL` is unset.
pub const LOCAL_DATABASE_URL_DEFAULT: &str =
    "postgresql://postgres@127.0.0.1:5432/ichiba_collector";
pub const RAKUTEN_API_BASE_URL_DEFAULT: &str = "https://openapi.rakuten.co.jp";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Local,
    Dev,
    Prod,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Local => "local",
            AppEnv::Dev => "dev",
            AppEnv::Prod => "prod",
        }
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppEnv {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(AppEnv::Local),
            "dev" => Ok(AppEnv::Dev),
            "prod" => Ok(AppEnv::Prod),
            other => Err(format!(
                "unknown environment {other:?}; expected local, dev or prod"
            )),
        }
    }
}

/// Where raw API responses are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStoreLocation {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for RawStoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawStoreLocation::Dir(p) => write!(f, "file://{}", p.display()),
            RawStoreLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            RawStoreLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl RawStoreLocation {
    /// `file:///abs/dir`, `file://./relative/dir` or `s3://bucket[/prefix]`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(rest) = value.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(
                    "file:// needs a directory, e.g. file:///var/raw or file://./.local/raw".into(),
                );
            }
            return Ok(RawStoreLocation::Dir(PathBuf::from(rest)));
        }
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(format!("{bucket:?} is not a valid S3 bucket name"));
            }
            return Ok(RawStoreLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(format!(
            "{value:?} is neither file://DIR nor s3://BUCKET/PREFIX"
        ))
    }
}

/// A ranking to collect: a genre (0 = overall) and a period (`None` = the daily ranking).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RankingTarget {
    pub genre_id: i64,
    pub period: Option<String>,
}

impl RankingTarget {
    pub fn period_name(&self) -> &str {
        self.period.as_deref().unwrap_or("daily")
    }

    /// `RANKING_TARGETS` syntax: comma-separated `GENRE[:PERIOD]`, e.g. `0,100283,0:realtime`.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (genre, period) = part.split_once(':').unwrap_or((part, ""));
            let genre_id: i64 = genre
                .trim()
                .parse()
                .map_err(|_| format!("{genre:?} is not a genre id (an integer, 0 = overall)"))?;
            if genre_id < 0 {
                return Err(format!("genre id {genre_id} is negative"));
            }
            let period = match period.trim() {
                "" | "daily" => None,
                "realtime" => Some("realtime".to_string()),
                other => {
                    return Err(format!(
                        "period {other:?} is not supported; use daily or realtime"
                    ))
                }
            };
            let target = RankingTarget { genre_id, period };
            if !out.contains(&target) {
                out.push(target);
            }
        }
        if out.is_empty() {
            return Err("no ranking target given".into());
        }
        Ok(out)
    }
}

/// A secret that is either given directly or named in SSM Parameter Store.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Value(SecretString),
    SsmParameter(String),
    Absent,
}

/// The Rakuten API settings (credentials still unresolved).
#[derive(Debug, Clone)]
pub struct RakutenSettings {
    pub base_url: Url,
    pub ranking_path: String,
    pub item_search_path: String,
    pub genre_search_path: String,
    pub tag_search_path: String,
    pub application_id: SecretSource,
    pub access_key: SecretSource,
    pub affiliate_id: SecretSource,
    pub referer: Option<String>,
    pub origin: Option<String>,
    pub format_version: u8,
    pub requests_per_second: f64,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
    pub timeout: Duration,
    /// Pace through the request budget shared in PostgreSQL (see `pacing`); off = this process only.
    pub shared_budget: bool,
    /// Where the access key travels: the `accessKey` header (default; in no URL) or the query.
    pub access_key_in_query: bool,
}

/// `RANKING_STALE_POLICY`: a ranking served again with the previous snapshot's
/// `lastBuildDate` (not rebuilt yet) is stored flagged (`Keep`) or not stored (`Skip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StalePolicy {
    #[default]
    Keep,
    Skip,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub database_url: SecretSource,
    pub raw_store: RawStoreLocation,
    pub rakuten: RakutenSettings,
    pub ranking_targets: Vec<RankingTarget>,
    pub ranking_max_pages: u32,
    /// Failure-rate threshold of the Ranking job (fraction, default 0.01).
    pub ranking_failure_threshold: f64,
    /// What to do with a ranking whose `lastBuildDate` equals the previous snapshot's.
    pub ranking_stale_policy: StalePolicy,
    /// Genre: genres fetched within this many days are not fetched again (default 7).
    pub genre_refresh_days: u32,
    /// Failure-rate threshold of the Genre job (fraction, default 0.01).
    pub genre_failure_threshold: f64,
    /// Tag: tags fetched within this many days are not fetched again (default 7).
    pub tag_refresh_days: u32,
    /// Failure-rate threshold of the Tag job (fraction, default 0.01).
    pub tag_failure_threshold: f64,
    pub item: ItemSettings,
    /// IsActive: an item is active when ranked within this many days (JST dates, run date included).
    pub active_window_days: u32,
    /// How long a run's lease lasts without renewal; a run whose lease expired is abandoned.
    pub run_lease: Duration,
    /// PostgreSQL connect, statement and keep-alive timeouts (see `db` for how they apply).
    pub database: DatabaseSettings,
}

/// Bounded waits on PostgreSQL (`DATABASE_*_SECS`); how each applies is described in `db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// Connecting: TCP, TLS, start-up, authentication and session set-up together.
    pub connect_timeout: Duration,
    /// The server-side `statement_timeout`; the client gives up on an unanswered request
    /// [`DatabaseSettings::CLIENT_GRACE`] after it.
    pub statement_timeout: Duration,
    /// TCP keep-alive idle time; probes every third of it, the peer is dead after twice it.
    pub keepalive: Duration,
}

impl DatabaseSettings {
    /// How much longer than `statement_timeout` the client waits for an answer.
    pub const CLIENT_GRACE: Duration = Duration::from_secs(5);

    /// Reads the `DATABASE_*_SECS` variables (defaults 10, 120, 30).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secs = |name: &str, default: u64, max: u64, why: &'static str| {
            parse_num(&get, name, default, |v| {
                (1..=max).contains(&v).then_some(()).ok_or(why)
            })
            .map(Duration::from_secs)
        };
        const UP_TO_300: &str = "must be between 1 and 300";
        const UP_TO_3600: &str = "must be between 1 and 3600";
        Ok(DatabaseSettings {
            connect_timeout: secs("DATABASE_CONNECT_TIMEOUT_SECS", 10, 300, UP_TO_300)?,
            statement_timeout: secs("DATABASE_STATEMENT_TIMEOUT_SECS", 120, 3600, UP_TO_3600)?,
            keepalive: secs("DATABASE_KEEPALIVE_SECS", 30, 3600, UP_TO_3600)?,
        })
    }

    /// The client-side bound on any request: `statement_timeout` plus [`Self::CLIENT_GRACE`].
    pub fn query_bound(&self) -> Duration {
        self.statement_timeout + Self::CLIENT_GRACE
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings::from_map(&HashMap::new()).expect("valid defaults")
    }
}

/// The Item job's settings.
#[derive(Debug, Clone)]
pub struct ItemSettings {
    /// Items whose details were fetched within this window are not fetched again.
    pub refresh: Duration,
    /// At most this many Item Search units a JST day (over every run of the day); the
    /// rest, lowest ranks last, waits for the next day. None = no cap.
    pub daily_request_budget: Option<u32>,
    pub failure_threshold: f64,
    /// An invocation stops this long before its deadline (Lambda) or budget (CLI).
    pub deadline_margin: Duration,
    /// Items fetched per database commit.
    pub batch_size: usize,
}

/// Every variable the configuration reads, for `--help` texts and docs.
pub const VARIABLES: &[(&str, &str)] = &[
    ("APP_ENV", "local | dev | prod (default local)"),
    ("DATABASE_URL", "PostgreSQL URL; sslmode=require for TLS (local default: postgresql://postgres@127.0.0.1:5432/ichiba_collector)"),
    ("DATABASE_URL_SSM_PARAMETER", "SSM SecureString parameter holding DATABASE_URL"),
    ("DATABASE_CONNECT_TIMEOUT_SECS", "connecting to PostgreSQL (TCP, TLS, login) gives up after this, 1-300 (default 10)"),
    ("DATABASE_STATEMENT_TIMEOUT_SECS", "server-side statement_timeout, 1-3600 (default 120); the client gives up on an unanswered request 5 s later"),
    ("DATABASE_KEEPALIVE_SECS", "TCP keep-alive idle time, 1-3600 (default 30); a silent peer is dropped after about twice this"),
    ("RAKUTEN_APPLICATION_ID", "Rakuten application ID (local: unset = built-in sandbox)"),
    ("RAKUTEN_APPLICATION_ID_SSM_PARAMETER", "SSM parameter holding the application ID"),
    ("RAKUTEN_ACCESS_KEY", "Rakuten access key (pk_...)"),
    ("RAKUTEN_ACCESS_KEY_SSM_PARAMETER", "SSM parameter holding the access key"),
    ("RAKUTEN_AFFILIATE_ID", "optional affiliate ID (or RAKUTEN_AFFILIATE_ID_SSM_PARAMETER)"),
    ("RAKUTEN_API_BASE_URL", "API base URL (default https://openapi.rakuten.co.jp)"),
    ("RAKUTEN_RANKING_PATH", "default /ichibaranking/api/IchibaItem/Ranking/20220601"),
    ("RAKUTEN_ITEM_SEARCH_PATH", "default /ichibams/api/IchibaItem/Search/20220601"),
    ("RAKUTEN_GENRE_SEARCH_PATH", "default /ichibagt/api/IchibaGenre/Search/20170711"),
    ("RAKUTEN_TAG_SEARCH_PATH", "default /ichibagt/api/IchibaTag/Search/20140222"),
    ("RAKUTEN_REFERER", "Referer header for web-application apps"),
    ("RAKUTEN_ORIGIN", "Origin header for web-application apps"),
    ("RAKUTEN_FORMAT_VERSION", "1 or 2 (default 2)"),
    ("RAKUTEN_REQUESTS_PER_SECOND", "requests per second for one application ID, 0.01-1000 (default 0.98; the real API allows about 1)"),
    ("RAKUTEN_MAX_ATTEMPTS", "tries per request, retries included (default 4)"),
    ("RAKUTEN_RETRY_BASE_MS", "first backoff delay in ms, doubled per retry with jitter (default 1000)"),
    ("RAKUTEN_TIMEOUT_SECS", "per-request timeout (default 20)"),
    ("RAKUTEN_ACCESS_KEY_IN", "header (default: the accessKey header, so the key is in no URL) or query"),
    ("RAKUTEN_SHARED_BUDGET", "postgres (default): every process on one application ID shares the rate through PostgreSQL; off: per process"),
    ("RAW_STORE", "file:///dir or s3://bucket/prefix (local default file://./.local/raw)"),
    ("RANKING_TARGETS", "comma-separated GENRE[:PERIOD] (default 0 = overall daily)"),
    ("RANKING_MAX_PAGES", "pages per ranking target, 1-34 (default 34)"),
    ("RANKING_FAILURE_THRESHOLD", "failure rate above which Ranking fails (default 0.01)"),
    ("RANKING_STALE_POLICY", "a ranking not rebuilt since the previous snapshot (same lastBuildDate): keep = store it flagged stale (default), skip = store no duplicate day"),
    ("GENRE_REFRESH_DAYS", "Genre: genres fetched within this many days are skipped, 0 = always fetch (default 7)"),
    ("GENRE_FAILURE_THRESHOLD", "failure rate above which Genre fails (default 0.01)"),
    ("TAG_REFRESH_DAYS", "Tag: tags fetched within this many days are skipped, 0 = always fetch (default 7)"),
    ("TAG_FAILURE_THRESHOLD", "failure rate above which Tag fails (default 0.01)"),
    ("ITEM_REFRESH_DAYS", "item details are fetched again when older than this many days, 0-3650 (default 7; 0 = every run); the ranking refreshes prices, names, availability, captions and point campaigns daily anyway"),
    ("ITEM_REFRESH_HOURS", "deprecated: the same window in hours; used only when ITEM_REFRESH_DAYS is not set"),
    ("ITEM_DAILY_REQUEST_BUDGET", "optional cap on Item Search requests a JST day (best-ranked items first; the rest wait for the next day)"),
    ("ITEM_FAILURE_THRESHOLD", "failure rate above which Item fails (default 0.05)"),
    ("ITEM_DEADLINE_MARGIN_SECS", "an Item invocation stops this long before its deadline (default 60)"),
    ("ITEM_BATCH_SIZE", "items saved per database commit (default 10)"),
    ("ACTIVE_WINDOW_DAYS", "IsActive: ranked within this many days = active (default 7)"),
    ("RUN_LEASE_SECS", "a run not renewed by its process for this long is abandoned, 30-3600 (default 180)"),
];

/// Optional variables whose empty value means "unset" (a template passes `''` for an
/// unused optional parameter). Every other variable set to an empty value is an error.
const EMPTY_MEANS_UNSET: &[&str] = &[
    "RAKUTEN_AFFILIATE_ID",
    "RAKUTEN_AFFILIATE_ID_SSM_PARAMETER",
    "RAKUTEN_REFERER",
    "RAKUTEN_ORIGIN",
];

/// Bounds of RAKUTEN_REQUESTS_PER_SECOND: below, one day's requests would take longer
/// than a day; above, even the sandbox's limiter is outrun (the real API allows about 1).
pub const REQUESTS_PER_SECOND_BOUNDS: (f64, f64) = (0.01, 1000.0);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    /// Reads configuration from a map (the environment, or a test's own map).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        // `RAW_STORE=` silently meaning the default directory hides a broken deployment.
        for (name, _) in VARIABLES {
            let is_empty = vars.get(*name).is_some_and(|v| v.trim().is_empty());
            if is_empty && !EMPTY_MEANS_UNSET.contains(name) {
                return Err(ConfigError::new(
                    *name,
                    "is set but empty: give it a value, or unset it to use the default",
                ));
            }
        }

        let env = match get("APP_ENV") {
            None => AppEnv::Local,
            Some(v) => v.parse().map_err(|e| ConfigError::new("APP_ENV", e))?,
        };

        let secret = |name: &str| -> Result<SecretSource, ConfigError> {
            let ssm_name = format!("{name}_SSM_PARAMETER");
            match (
                vars.get(name).filter(|v| !v.trim().is_empty()),
                get(&ssm_name),
            ) {
                (Some(_), Some(_)) => Err(ConfigError::new(
                    name,
                    format!("set either {name} or {ssm_name}, not both"),
                )),
                (Some(v), None) => Ok(SecretSource::Value(SecretString::from(
                    v.trim().to_string(),
                ))),
                (None, Some(p)) => Ok(SecretSource::SsmParameter(p)),
                (None, None) => Ok(SecretSource::Absent),
            }
        };

        let mut database_url = secret("DATABASE_URL")?;
        if let SecretSource::Value(url) = &database_url {
            validate_database_url(url.expose_secret())
                .map_err(|e| ConfigError::new("DATABASE_URL", e))?;
        }
        if matches!(database_url, SecretSource::Absent) {
            if env == AppEnv::Local {
                database_url = SecretSource::Value(SecretString::from(LOCAL_DATABASE_URL_DEFAULT));
            } else {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    format!("required when APP_ENV={env} (or set DATABASE_URL_SSM_PARAMETER)"),
                ));
            }
        }

        let raw_store = match get("RAW_STORE") {
            Some(v) => RawStoreLocation::parse(&v).map_err(|e| ConfigError::new("RAW_STORE", e))?,
            None if env == AppEnv::Local => {
                RawStoreLocation::parse(LOCAL_RAW_STORE_DEFAULT).expect("valid default")
            }
            None => {
                return Err(ConfigError::new(
                    "RAW_STORE",
                    format!("required when APP_ENV={env}, e.g. s3://my-bucket/raw"),
                ))
            }
        };

        let base_url = match get("RAKUTEN_API_BASE_URL") {
            None => Url::parse(RAKUTEN_API_BASE_URL_DEFAULT).expect("valid default"),
            Some(v) => {
                let url = Url::parse(&v).map_err(|e| {
                    ConfigError::new("RAKUTEN_API_BASE_URL", format!("{v:?} is not a URL: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(ConfigError::new(
                        "RAKUTEN_API_BASE_URL",
                        format!("{v:?} must be an http(s) URL with a host"),
                    ));
                }
                url
            }
        };
        let path = |name: &str, default: &str| -> Result<String, ConfigError> {
            let p = get(name).unwrap_or_else(|| default.to_string());
            if !p.starts_with('/') || p.contains('?') {
                return Err(ConfigError::new(
                    name,
                    format!("{p:?} must be a path starting with / and without a query"),
                ));
            }
            Ok(p)
        };

        let default_paths = rakuten_client::Endpoints::default();
        let application_id = secret("RAKUTEN_APPLICATION_ID")?;
        let access_key = secret("RAKUTEN_ACCESS_KEY")?;
        if env != AppEnv::Local {
            for (name, source) in [
                ("RAKUTEN_APPLICATION_ID", &application_id),
                ("RAKUTEN_ACCESS_KEY", &access_key),
            ] {
                if matches!(source, SecretSource::Absent) {
                    return Err(ConfigError::new(
                        name,
                        format!("required when APP_ENV={env} (or set {name}_SSM_PARAMETER)"),
                    ));
                }
            }
        }
        if matches!(application_id, SecretSource::Absent)
            != matches!(access_key, SecretSource::Absent)
        {
            let missing = if matches!(application_id, SecretSource::Absent) {
                "RAKUTEN_APPLICATION_ID"
            } else {
                "RAKUTEN_ACCESS_KEY"
            };
            return Err(ConfigError::new(
                missing,
                "the Rakuten application ID and access key must be set together",
            ));
        }

        let rakuten = RakutenSettings {
            base_url,
            // The paths and versions the client knows (rakuten_client::Endpoints).
            ranking_path: path("RAKUTEN_RANKING_PATH", &default_paths.ranking)?,
            item_search_path: path("RAKUTEN_ITEM_SEARCH_PATH", &default_paths.item_search)?,
            genre_search_path: path("RAKUTEN_GENRE_SEARCH_PATH", &default_paths.genre_search)?,
            tag_search_path: path("RAKUTEN_TAG_SEARCH_PATH", &default_paths.tag_search)?,
            application_id,
            access_key,
            affiliate_id: secret("RAKUTEN_AFFILIATE_ID")?,
            referer: get("RAKUTEN_REFERER"),
            origin: get("RAKUTEN_ORIGIN"),
            format_version: parse_num(&get, "RAKUTEN_FORMAT_VERSION", 2u8, |v| {
                (v == 1 || v == 2).then_some(()).ok_or("must be 1 or 2")
            })?,
            requests_per_second: parse_num(&get, "RAKUTEN_REQUESTS_PER_SECOND", 0.98f64, |v| {
                let (lo, hi) = REQUESTS_PER_SECOND_BOUNDS;
                (v.is_finite() && (lo..=hi).contains(&v))
                    .then_some(())
                    .ok_or("must be between 0.01 and 1000 (requests per second)")
            })?,
            max_attempts: parse_num(&get, "RAKUTEN_MAX_ATTEMPTS", 4u32, |v| {
                (1..=10)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be between 1 and 10")
            })?,
            retry_base_delay: Duration::from_millis(parse_num(
                &get,
                "RAKUTEN_RETRY_BASE_MS",
                1000u64,
                |v| (v <= 60_000).then_some(()).ok_or("must be at most 60000"),
            )?),
            timeout: Duration::from_secs(parse_num(&get, "RAKUTEN_TIMEOUT_SECS", 20u64, |v| {
                (1..=300)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be between 1 and 300")
            })?),
            access_key_in_query: match get("RAKUTEN_ACCESS_KEY_IN").as_deref() {
                None | Some("header") => false,
                Some("query") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "RAKUTEN_ACCESS_KEY_IN",
                        format!("{other:?} is neither header nor query"),
                    ))
                }
            },
            shared_budget: match get("RAKUTEN_SHARED_BUDGET").as_deref() {
                None | Some("postgres") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(ConfigError::new(
                        "RAKUTEN_SHARED_BUDGET",
                        format!("{other:?} is neither postgres nor off"),
                    ))
                }
            },
        };

        let ranking_targets =
            RankingTarget::parse_list(&get("RANKING_TARGETS").unwrap_or_else(|| "0".into()))
                .map_err(|e| ConfigError::new("RANKING_TARGETS", e))?;
        let ranking_max_pages = parse_num(&get, "RANKING_MAX_PAGES", 34u32, |v| {
            (1..=34)
                .contains(&v)
                .then_some(())
                .ok_or("must be between 1 and 34")
        })?;
        let ranking_failure_threshold =
            parse_num(&get, "RANKING_FAILURE_THRESHOLD", 0.01f64, |v| {
                (0.0..1.0)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be a fraction in [0, 1)")
            })?;

        let ranking_stale_policy = match get("RANKING_STALE_POLICY").as_deref().map(str::trim) {
            None | Some("") | Some("keep") => StalePolicy::Keep,
            Some("skip") => StalePolicy::Skip,
            Some(other) => {
                return Err(ConfigError::new(
                    "RANKING_STALE_POLICY",
                    format!("{other:?} is not a policy; expected keep or skip"),
                ))
            }
        };

        // ITEM_REFRESH_HOURS (the old daily-refetch policy) still works, with a warning.
        let refresh_days = parse_num(&get, "ITEM_REFRESH_DAYS", 7u64, |v| {
            (v <= 3650)
                .then_some(())
                .ok_or("must be between 0 and 3650")
        })?;
        let refresh = match (get("ITEM_REFRESH_DAYS"), get("ITEM_REFRESH_HOURS")) {
            (None, Some(_)) => {
                let hours = parse_num(&get, "ITEM_REFRESH_HOURS", 0u64, |v| {
                    (v <= 24 * 3650)
                        .then_some(())
                        .ok_or("must be at most 87600")
                })?;
                tracing::warn!(
                    "ITEM_REFRESH_HOURS is deprecated: set ITEM_REFRESH_DAYS instead (now {hours} h)"
                );
                Duration::from_secs(3600 * hours)
            }
            (Some(_), Some(_)) => {
                tracing::warn!("ITEM_REFRESH_HOURS is ignored: ITEM_REFRESH_DAYS is set");
                Duration::from_secs(86_400 * refresh_days)
            }
            _ => Duration::from_secs(86_400 * refresh_days),
        };
        let daily_request_budget = match get("ITEM_DAILY_REQUEST_BUDGET") {
            None => None,
            Some(_) => Some(parse_num(&get, "ITEM_DAILY_REQUEST_BUDGET", 0u32, |v| {
                (v >= 1)
                    .then_some(())
                    .ok_or("must be at least 1 (unset it for no cap)")
            })?),
        };
        let item = ItemSettings {
            refresh,
            daily_request_budget,
            failure_threshold: parse_num(&get, "ITEM_FAILURE_THRESHOLD", 0.05f64, |v| {
                (0.0..1.0)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be a fraction in [0, 1)")
            })?,
            deadline_margin: Duration::from_secs(parse_num(
                &get,
                "ITEM_DEADLINE_MARGIN_SECS",
                60u64,
                |v| (v <= 600).then_some(()).ok_or("must be at most 600"),
            )?),
            batch_size: parse_num(&get, "ITEM_BATCH_SIZE", 10usize, |v| {
                (1..=500)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be between 1 and 500")
            })?,
        };
        let active_window_days = parse_num(&get, "ACTIVE_WINDOW_DAYS", 7u32, |v| {
            (1..=366)
                .contains(&v)
                .then_some(())
                .ok_or("must be between 1 and 366")
        })?;

        let run_lease = Duration::from_secs(parse_num(&get, "RUN_LEASE_SECS", 180u64, |v| {
            (30..=3600)
                .contains(&v)
                .then_some(())
                .ok_or("must be between 30 and 3600")
        })?);

        let refresh_days = |name: &str| {
            parse_num(&get, name, 7u32, |v| {
                (v <= 3650)
                    .then_some(())
                    .ok_or("must be between 0 and 3650")
            })
        };
        let threshold = |name: &str| {
            parse_num(&get, name, 0.01f64, |v| {
                (0.0..1.0)
                    .contains(&v)
                    .then_some(())
                    .ok_or("must be a fraction in [0, 1)")
            })
        };
        let genre_refresh_days = refresh_days("GENRE_REFRESH_DAYS")?;
        let genre_failure_threshold = threshold("GENRE_FAILURE_THRESHOLD")?;
        let tag_refresh_days = refresh_days("TAG_REFRESH_DAYS")?;
        let tag_failure_threshold = threshold("TAG_FAILURE_THRESHOLD")?;
        let database = DatabaseSettings::from_map(vars)?;

        Ok(Config {
            env,
            database_url,
            raw_store,
            rakuten,
            ranking_targets,
            ranking_max_pages,
            ranking_failure_threshold,
            ranking_stale_policy,
            genre_refresh_days,
            genre_failure_threshold,
            tag_refresh_days,
            tag_failure_threshold,
            item,
            active_window_days,
            run_lease,
            database,
        })
    }

    /// True when no Rakuten credentials are configured (only possible with APP_ENV=local).
    pub fn has_rakuten_credentials(&self) -> bool {
        !matches!(self.rakuten.application_id, SecretSource::Absent)
    }
}

fn parse_num<T, G>(
    get: &G,
    name: &str,
    default: T,
    check: impl Fn(T) -> Result<(), &'static str>,
) -> Result<T, ConfigError>
where
    T: FromStr + Copy + fmt::Display,
    G: Fn(&str) -> Option<String>,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let value: T = raw
        .parse()
        .map_err(|_| ConfigError::new(name, format!("{raw:?} is not a number")))?;
    check(value).map_err(|why| ConfigError::new(name, format!("{value} {why}")))?;
    Ok(value)
}

/// Checks a PostgreSQL URL without echoing it (it carries a password).
pub fn validate_database_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        format!(
            "not a valid PostgreSQL URL ({})",
            redact_db_error(&e.to_string(), url)
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    if config.get_dbname().is_none() {
        return Err("names no database (postgresql://USER@HOST:PORT/DATABASE)".into());
    }
    Ok(())
}

/// Removes the URL's password, should an error message ever quote it.
pub(crate) fn redact_db_error(message: &str, url: &str) -> String {
    match Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "***"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn local_defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.env, AppEnv::Local);
        assert_eq!(
            c.raw_store,
            RawStoreLocation::Dir(PathBuf::from("./.local/raw"))
        );
        assert_eq!(
            c.ranking_targets,
            vec![RankingTarget {
                genre_id: 0,
                period: None
            }]
        );
        assert!((c.rakuten.requests_per_second - 0.98).abs() < 1e-9);
        assert!(!c.has_rakuten_credentials());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = cfg(&[("RAKUTEN_REQUESTS_PER_SECOND", "fast")]).unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_REQUESTS_PER_SECOND");
        assert!(e.to_string().contains("\"fast\" is not a number"), "{e}");
        let e = cfg(&[("RAKUTEN_REQUESTS_PER_SECOND", "0")]).unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_REQUESTS_PER_SECOND");
        let e = cfg(&[("APP_ENV", "staging")]).unwrap_err();
        assert_eq!(e.variable, "APP_ENV");
        assert!(e.problem.contains("staging"));
        let e = cfg(&[("DATABASE_URL", "mysql://x@y/z")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        let e = cfg(&[("RAW_STORE", "ftp://x")]).unwrap_err();
        assert_eq!(e.variable, "RAW_STORE");
        let e = cfg(&[("RANKING_TARGETS", "0,abc")]).unwrap_err();
        assert_eq!(e.variable, "RANKING_TARGETS");
        let e = cfg(&[("RAKUTEN_FORMAT_VERSION", "3")]).unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_FORMAT_VERSION");
        let e = cfg(&[("RAKUTEN_REQUESTS_PER_SECOND", "1e-9")]).unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_REQUESTS_PER_SECOND");
        assert!(e.problem.contains("between 0.01 and 1000"), "{e}");
    }

    #[test]
    fn empty_values_are_errors_except_optional_ones() {
        for name in ["RAW_STORE", "DATABASE_URL", "RANKING_TARGETS", "APP_ENV"] {
            let e = cfg(&[(name, " ")]).unwrap_err();
            assert_eq!(e.variable, name);
            assert!(e.problem.contains("set but empty"), "{e}");
        }
        let c = cfg(&[
            ("RAKUTEN_AFFILIATE_ID_SSM_PARAMETER", ""),
            ("RAKUTEN_REFERER", ""),
        ])
        .unwrap();
        assert!(matches!(c.rakuten.affiliate_id, SecretSource::Absent));
        assert!(c.rakuten.referer.is_none());
    }

    #[test]
    fn database_url_errors_never_quote_the_password() {
        let e = cfg(&[("DATABASE_URL", "postgresql://u:hunter2@host:notaport/db")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn cloud_envs_require_store_database_and_credentials() {
        let e = cfg(&[("APP_ENV", "dev")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        let e = cfg(&[("APP_ENV", "dev"), ("DATABASE_URL_SSM_PARAMETER", "/x/db")]).unwrap_err();
        assert_eq!(e.variable, "RAW_STORE");
        let e = cfg(&[
            ("APP_ENV", "prod"),
            ("DATABASE_URL_SSM_PARAMETER", "/x/db"),
            ("RAW_STORE", "s3://bucket-x/raw"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "RAKUTEN_APPLICATION_ID");
        let c = cfg(&[
            ("APP_ENV", "prod"),
            ("DATABASE_URL_SSM_PARAMETER", "/x/db"),
            ("RAW_STORE", "s3://bucket-x/raw/"),
            ("RAKUTEN_APPLICATION_ID_SSM_PARAMETER", "/x/app"),
            ("RAKUTEN_ACCESS_KEY_SSM_PARAMETER", "/x/key"),
        ])
        .unwrap();
        assert_eq!(
            c.raw_store,
            RawStoreLocation::S3 {
                bucket: "bucket-x".into(),
                prefix: "raw".into()
            }
        );
    }

    #[test]
    fn item_refresh_is_in_days_with_the_hours_variable_still_understood() {
        let days = |c: &Config| c.item.refresh.as_secs() as f64 / 86_400.0;
        assert_eq!(days(&cfg(&[]).unwrap()), 7.0, "the default");
        assert_eq!(cfg(&[]).unwrap().item.daily_request_budget, None);
        assert_eq!(days(&cfg(&[("ITEM_REFRESH_DAYS", "0")]).unwrap()), 0.0);
        let hours = cfg(&[("ITEM_REFRESH_HOURS", "20")]).unwrap();
        assert_eq!(
            hours.item.refresh.as_secs(),
            20 * 3600,
            "deprecated, still honoured"
        );
        let both = cfg(&[("ITEM_REFRESH_DAYS", "3"), ("ITEM_REFRESH_HOURS", "20")]).unwrap();
        assert_eq!(days(&both), 3.0, "the days win");
        let e = cfg(&[("ITEM_REFRESH_DAYS", "4000")]).unwrap_err();
        assert_eq!(e.variable, "ITEM_REFRESH_DAYS");
        let budget = cfg(&[("ITEM_DAILY_REQUEST_BUDGET", "500")]).unwrap();
        assert_eq!(budget.item.daily_request_budget, Some(500));
        let e = cfg(&[("ITEM_DAILY_REQUEST_BUDGET", "0")]).unwrap_err();
        assert_eq!(e.variable, "ITEM_DAILY_REQUEST_BUDGET");
    }

    #[test]
    fn both_value_and_parameter_is_an_error() {
        let e = cfg(&[
            ("DATABASE_URL", "postgresql://a@b/c"),
            ("DATABASE_URL_SSM_PARAMETER", "/p"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
    }

    #[test]
    fn genre_and_tag_settings() {
        let c = cfg(&[]).unwrap();
        assert_eq!((c.genre_refresh_days, c.tag_refresh_days), (7, 7));
        assert!((c.genre_failure_threshold - 0.01).abs() < 1e-9);
        assert!((c.tag_failure_threshold - 0.01).abs() < 1e-9);
        let c = cfg(&[
            ("GENRE_REFRESH_DAYS", "0"),
            ("TAG_FAILURE_THRESHOLD", "0.05"),
        ])
        .unwrap();
        assert_eq!(c.genre_refresh_days, 0);
        assert!((c.tag_failure_threshold - 0.05).abs() < 1e-9);
        for (name, bad) in [
            ("GENRE_REFRESH_DAYS", "-1"),
            ("TAG_REFRESH_DAYS", "week"),
            ("GENRE_FAILURE_THRESHOLD", "1.5"),
            ("TAG_FAILURE_THRESHOLD", "x"),
        ] {
            let e = cfg(&[(name, bad)]).unwrap_err();
            assert_eq!(e.variable, name);
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn database_timeouts() {
        let d = cfg(&[]).unwrap().database;
        assert_eq!(d, DatabaseSettings::default());
        assert_eq!(d.connect_timeout, Duration::from_secs(10));
        assert_eq!(d.statement_timeout, Duration::from_secs(120));
        assert_eq!(d.keepalive, Duration::from_secs(30));
        assert_eq!(d.query_bound(), Duration::from_secs(125));
        let d = cfg(&[
            ("DATABASE_CONNECT_TIMEOUT_SECS", "3"),
            ("DATABASE_STATEMENT_TIMEOUT_SECS", "1"),
            ("DATABASE_KEEPALIVE_SECS", "5"),
        ])
        .unwrap()
        .database;
        assert_eq!(d.connect_timeout, Duration::from_secs(3));
        assert_eq!(d.statement_timeout, Duration::from_secs(1));
        assert_eq!(d.keepalive, Duration::from_secs(5));
        for (name, bad) in [
            ("DATABASE_CONNECT_TIMEOUT_SECS", "0"),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "301"),
            ("DATABASE_STATEMENT_TIMEOUT_SECS", "3601"),
            ("DATABASE_STATEMENT_TIMEOUT_SECS", "1.5"),
            ("DATABASE_KEEPALIVE_SECS", "-1"),
        ] {
            let e = cfg(&[(name, bad)]).unwrap_err();
            assert_eq!(e.variable, name);
            assert!(e.to_string().contains(name), "{e}");
        }
        for name in [
            "DATABASE_CONNECT_TIMEOUT_SECS",
            "DATABASE_STATEMENT_TIMEOUT_SECS",
            "DATABASE_KEEPALIVE_SECS",
        ] {
            assert!(
                VARIABLES.iter().any(|(v, _)| *v == name),
                "{name} not in VARIABLES"
            );
        }
    }

    #[test]
    fn the_help_names_the_paths_the_client_uses() {
        let e = rakuten_client::Endpoints::default();
        for (name, path) in [
            ("RAKUTEN_RANKING_PATH", e.ranking),
            ("RAKUTEN_ITEM_SEARCH_PATH", e.item_search),
            ("RAKUTEN_GENRE_SEARCH_PATH", e.genre_search),
            ("RAKUTEN_TAG_SEARCH_PATH", e.tag_search),
        ] {
            let help = VARIABLES.iter().find(|(n, _)| *n == name).unwrap().1;
            assert!(help.contains(&path), "{name}: {help}");
        }
    }

    #[test]
    fn targets_parse() {
        let t = RankingTarget::parse_list("0, 100283:realtime,100283,0").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].period_name(), "realtime");
        assert!(RankingTarget::parse_list("0:weekly").is_err());
        assert!(RankingTarget::parse_list(" , ").is_err());
    }
}
