//! Typed configuration, read from environment variables and validated once at start-up.
//!
//! Every error names the variable and what is wrong with it. Secrets are kept as
//! [`SecretString`] so they cannot reach a log line through `Debug`. Where a secret has a
//! `*_SSM_PARAMETER` variable, [`crate::secrets`] resolves it from SSM Parameter Store.

//!
//! The variables themselves (names, defaults, bounds, help) are declared once in
//! [`vars`]; this file turns them into the typed [`Config`].

mod values;
mod vars;

use std::collections::HashMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub(crate) use values::redact_db_error;
pub use values::{
    validate_database_url, AppEnv, ConfigError, RankingTarget, RawStoreLocation, SecretSource,
    StalePolicy,
};
use vars::*;
pub use vars::{Rule, Var, VARIABLES};

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

    /// Reads the `DATABASE_*_SECS` variables.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let secs = |var: &Var| vars.whole(var).map(Duration::from_secs);
        Ok(DatabaseSettings {
            connect_timeout: secs(&DATABASE_CONNECT_TIMEOUT_SECS)?,
            statement_timeout: secs(&DATABASE_STATEMENT_TIMEOUT_SECS)?,
            keepalive: secs(&DATABASE_KEEPALIVE_SECS)?,
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

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    /// Reads configuration from a map (the environment, or a test's own map).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(map);
        vars.refuse_empty()?;
        let env: AppEnv = vars
            .word(&APP_ENV)?
            .parse()
            .map_err(|e| ConfigError::new(APP_ENV.name, e))?;
        let local = env == AppEnv::Local;
        // Required outside the local environment, which has a default.
        let required = |var: &Var, example: &str| {
            ConfigError::new(var.name, format!("required when APP_ENV={env}{example}"))
        };

        let database_url = match vars.secret(&DATABASE_URL)? {
            SecretSource::Value(url) => {
                validate_database_url(url.expose_secret())
                    .map_err(|e| ConfigError::new(DATABASE_URL.name, e))?;
                SecretSource::Value(url)
            }
            SecretSource::Absent if local => {
                SecretSource::Value(SecretString::from(vars.text(&DATABASE_URL).unwrap()))
            }
            SecretSource::Absent => {
                return Err(required(
                    &DATABASE_URL,
                    " (or set DATABASE_URL_SSM_PARAMETER)",
                ))
            }
            ssm => ssm,
        };
        let raw_store = match vars.given(&RAW_STORE) {
            None if !local => return Err(required(&RAW_STORE, ", e.g. s3://my-bucket/raw")),
            given => RawStoreLocation::parse(&given.or_else(|| vars.text(&RAW_STORE)).unwrap())
                .map_err(|e| ConfigError::new(RAW_STORE.name, e))?,
        };
        let rakuten = rakuten_settings(&vars, env)?;

        let ranking_targets = RankingTarget::parse_list(&vars.text(&RANKING_TARGETS).unwrap())
            .map_err(|e| ConfigError::new(RANKING_TARGETS.name, e))?;
        let ranking_stale_policy = match vars.word(&RANKING_STALE_POLICY)? {
            "skip" => StalePolicy::Skip,
            _ => StalePolicy::Keep,
        };

        // ITEM_REFRESH_HOURS (the old daily-refetch policy) still works, with a warning.
        let refresh_days: u64 = vars.whole(&ITEM_REFRESH_DAYS)?;
        let refresh = match (
            vars.given(&ITEM_REFRESH_DAYS),
            vars.whole_given(&ITEM_REFRESH_HOURS)?,
        ) {
            (None, Some(hours)) => {
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
        let item = ItemSettings {
            refresh,
            daily_request_budget: vars
                .whole_given(&ITEM_DAILY_REQUEST_BUDGET)?
                .map(|v| v as u32),
            failure_threshold: vars.real(&ITEM_FAILURE_THRESHOLD)?,
            deadline_margin: Duration::from_secs(vars.whole(&ITEM_DEADLINE_MARGIN_SECS)?),
            batch_size: vars.whole(&ITEM_BATCH_SIZE)?,
        };

        Ok(Config {
            env,
            database_url,
            raw_store,
            rakuten,
            ranking_targets,
            ranking_max_pages: vars.whole(&RANKING_MAX_PAGES)?,
            ranking_failure_threshold: vars.real(&RANKING_FAILURE_THRESHOLD)?,
            ranking_stale_policy,
            genre_refresh_days: vars.whole(&GENRE_REFRESH_DAYS)?,
            genre_failure_threshold: vars.real(&GENRE_FAILURE_THRESHOLD)?,
            tag_refresh_days: vars.whole(&TAG_REFRESH_DAYS)?,
            tag_failure_threshold: vars.real(&TAG_FAILURE_THRESHOLD)?,
            item,
            active_window_days: vars.whole(&ACTIVE_WINDOW_DAYS)?,
            run_lease: Duration::from_secs(vars.whole(&RUN_LEASE_SECS)?),
            database: DatabaseSettings::from_map(map)?,
        })
    }

    /// True when no Rakuten credentials are configured (only possible with APP_ENV=local).
    pub fn has_rakuten_credentials(&self) -> bool {
        !matches!(self.rakuten.application_id, SecretSource::Absent)
    }
}

fn rakuten_settings(vars: &Vars, env: AppEnv) -> Result<RakutenSettings, ConfigError> {
    let base_url = {
        let v = vars.text(&RAKUTEN_API_BASE_URL).unwrap();
        let url = Url::parse(&v).map_err(|e| {
            ConfigError::new(
                RAKUTEN_API_BASE_URL.name,
                format!("{v:?} is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(ConfigError::new(
                RAKUTEN_API_BASE_URL.name,
                format!("{v:?} must be an http(s) URL with a host"),
            ));
        }
        url
    };
    let path = |var: &Var| -> Result<String, ConfigError> {
        let p = vars.text(var).unwrap();
        if !p.starts_with('/') || p.contains('?') {
            return Err(ConfigError::new(
                var.name,
                format!("{p:?} must be a path starting with / and without a query"),
            ));
        }
        Ok(p)
    };

    let application_id = vars.secret(&RAKUTEN_APPLICATION_ID)?;
    let access_key = vars.secret(&RAKUTEN_ACCESS_KEY)?;
    for (var, source) in [
        (&RAKUTEN_APPLICATION_ID, &application_id),
        (&RAKUTEN_ACCESS_KEY, &access_key),
    ] {
        if env != AppEnv::Local && matches!(source, SecretSource::Absent) {
            return Err(ConfigError::new(
                var.name,
                format!(
                    "required when APP_ENV={env} (or set {}_SSM_PARAMETER)",
                    var.name
                ),
            ));
        }
    }
    let absent = |s: &SecretSource| matches!(s, SecretSource::Absent);
    if absent(&application_id) != absent(&access_key) {
        let missing = match absent(&application_id) {
            true => RAKUTEN_APPLICATION_ID.name,
            false => RAKUTEN_ACCESS_KEY.name,
        };
        return Err(ConfigError::new(
            missing,
            "the Rakuten application ID and access key must be set together",
        ));
    }

    Ok(RakutenSettings {
        base_url,
        ranking_path: path(&RAKUTEN_RANKING_PATH)?,
        item_search_path: path(&RAKUTEN_ITEM_SEARCH_PATH)?,
        genre_search_path: path(&RAKUTEN_GENRE_SEARCH_PATH)?,
        tag_search_path: path(&RAKUTEN_TAG_SEARCH_PATH)?,
        application_id,
        access_key,
        affiliate_id: vars.secret(&RAKUTEN_AFFILIATE_ID)?,
        referer: vars.given(&RAKUTEN_REFERER),
        origin: vars.given(&RAKUTEN_ORIGIN),
        format_version: vars.whole(&RAKUTEN_FORMAT_VERSION)?,
        requests_per_second: vars.real(&RAKUTEN_REQUESTS_PER_SECOND)?,
        max_attempts: vars.whole(&RAKUTEN_MAX_ATTEMPTS)?,
        retry_base_delay: Duration::from_millis(vars.whole(&RAKUTEN_RETRY_BASE_MS)?),
        timeout: Duration::from_secs(vars.whole(&RAKUTEN_TIMEOUT_SECS)?),
        access_key_in_query: vars.word(&RAKUTEN_ACCESS_KEY_IN)? == "query",
        shared_budget: vars.word(&RAKUTEN_SHARED_BUDGET)? == "postgres",
    })
}

#[cfg(test)]
mod tests;
