//! Every environment variable the configuration reads, declared once: its name, what it
//! means and its rule (default, bounds, accepted words). Parsing ([`Vars`]), `--help` and
//! the README table test all read these declarations, so a default or a bound is changed
//! here and nowhere else.

use std::collections::HashMap;

use rakuten_client::Endpoints;
use secrecy::SecretString;

use super::{ConfigError, SecretSource};

/// One variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    /// What it means (the rule's bounds and default are added by [`Var::help`]).
    pub about: &'static str,
    pub rule: Rule,
}

/// What a variable accepts, and its default.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Text the reader checks itself (URLs, paths, lists).
    Text { default: Option<&'static str> },
    /// A default only in the local environment; required elsewhere.
    LocalDefault(&'static str),
    /// A secret (`<NAME>_SSM_PARAMETER` may name it in SSM instead).
    Secret,
    /// A whole number in `min..=max`.
    Whole {
        min: u64,
        max: u64,
        default: Option<u64>,
    },
    /// A number in `min..=max`.
    Real { min: f64, max: f64, default: f64 },
    /// A failure rate: a fraction in [0, 1).
    Fraction { default: f64 },
    /// One of these words; the first is the default.
    OneOf(&'static [&'static str]),
}

impl Var {
    pub const fn text(name: &'static str, about: &'static str) -> Self {
        Var {
            name,
            about,
            rule: Rule::Text { default: None },
        }
    }

    /// The default as it is written in a value (None: no default).
    pub fn default_text(&self) -> Option<String> {
        match self.rule {
            Rule::Text { default } => default.map(str::to_string),
            Rule::LocalDefault(d) => Some(d.to_string()),
            Rule::Secret => None,
            Rule::Whole { default, .. } => default.map(|d| d.to_string()),
            Rule::Real { default, .. } | Rule::Fraction { default } => Some(default.to_string()),
            Rule::OneOf(words) => Some(words[0].to_string()),
        }
    }

    /// The line `--help` shows: what it means, then its bounds and default.
    pub fn help(&self) -> String {
        let default = self.default_text().unwrap_or_default();
        let rule = match self.rule {
            Rule::Text { default: None } | Rule::Secret => String::new(),
            Rule::Text { .. } => format!("default {default}"),
            Rule::LocalDefault(_) => format!("local default {default}"),
            Rule::Whole { min, max, default } => {
                let range = if max >= u32::MAX as u64 {
                    format!("at least {min}")
                } else {
                    format!("{min}-{max}")
                };
                match default {
                    Some(_) => format!("{range}, default {}", self.default_text().unwrap()),
                    None => format!("{range}, unset by default"),
                }
            }
            Rule::Real { min, max, .. } => format!("{min}-{max}, default {default}"),
            Rule::Fraction { .. } => format!("a fraction in [0, 1), default {default}"),
            Rule::OneOf(words) => format!("{}, default {default}", words.join(" | ")),
        };
        match rule.is_empty() {
            true => self.about.to_string(),
            false => format!("{} ({rule})", self.about),
        }
    }
}

/// Declares each variable as a `const` of its own name, and [`VARIABLES`] listing them in
/// the order written (the `--help` order).
macro_rules! vars {
    ($($name:ident: $rule:expr, $about:literal;)*) => {
        $(pub const $name: Var = Var { name: stringify!($name), about: $about, rule: $rule };)*
        /// Every variable the configuration reads.
        pub const VARIABLES: &[Var] = &[$($name),*];
    };
}

vars! {
    APP_ENV: Rule::OneOf(&["local", "dev", "prod"]),
        "the environment: names the raw-store folder and the ledger's env";
    DATABASE_URL: Rule::LocalDefault("postgresql://postgres@127.0.0.1:5432/ichiba_collector"),
        "PostgreSQL URL; sslmode=require for TLS (secret; or DATABASE_URL_SSM_PARAMETER)";
    DATABASE_URL_SSM_PARAMETER: Rule::Text { default: None },
        "SSM SecureString parameter holding DATABASE_URL";
    DATABASE_CONNECT_TIMEOUT_SECS: Rule::Whole { min: 1, max: 300, default: Some(10) },
        "connecting to PostgreSQL (TCP, TLS, login) gives up after this";
    DATABASE_STATEMENT_TIMEOUT_SECS: Rule::Whole { min: 1, max: 3600, default: Some(120) },
        "server-side statement_timeout; the client gives up on an unanswered request 5 s later";
    DATABASE_KEEPALIVE_SECS: Rule::Whole { min: 1, max: 3600, default: Some(30) },
        "TCP keep-alive idle time; a silent peer is dropped after about twice this";
    RAKUTEN_APPLICATION_ID: Rule::Secret,
        "Rakuten application ID (local: unset = built-in sandbox)";
    RAKUTEN_APPLICATION_ID_SSM_PARAMETER: Rule::Text { default: None },
        "SSM parameter holding the application ID";
    RAKUTEN_ACCESS_KEY: Rule::Secret,
        "Rakuten access key (pk_...)";
    RAKUTEN_ACCESS_KEY_SSM_PARAMETER: Rule::Text { default: None },
        "SSM parameter holding the access key";
    RAKUTEN_AFFILIATE_ID: Rule::Secret,
        "optional affiliate ID (or RAKUTEN_AFFILIATE_ID_SSM_PARAMETER)";
    RAKUTEN_API_BASE_URL: Rule::Text { default: Some(rakuten_client::DEFAULT_BASE_URL) },
        "API base URL";
    // The four paths' defaults are the ones the client parses.
    RAKUTEN_RANKING_PATH: Rule::Text { default: Some(Endpoints::RANKING) },
        "Ranking API path and version";
    RAKUTEN_ITEM_SEARCH_PATH: Rule::Text { default: Some(Endpoints::ITEM_SEARCH) },
        "Item Search API path and version";
    RAKUTEN_GENRE_SEARCH_PATH: Rule::Text { default: Some(Endpoints::GENRE_SEARCH) },
        "Genre Search API path and version";
    RAKUTEN_TAG_SEARCH_PATH: Rule::Text { default: Some(Endpoints::TAG_SEARCH) },
        "Tag Search API path and version";
    RAKUTEN_REFERER: Rule::Text { default: None },
        "Referer header for web-application apps";
    RAKUTEN_ORIGIN: Rule::Text { default: None },
        "Origin header for web-application apps";
    RAKUTEN_FORMAT_VERSION: Rule::Whole { min: 1, max: 2, default: Some(2) },
        "the API's formatVersion; both are parsed";
    // Below 0.01 a day's requests would not fit in a day; above 1000 even the sandbox's
    // limiter is outrun.
    RAKUTEN_REQUESTS_PER_SECOND: Rule::Real { min: 0.01, max: 1000.0, default: 0.98 },
        "request pace for one application ID (the real API allows about 1); sends of all processes sharing the ID leave at least 1/rate apart";
    RAKUTEN_MAX_ATTEMPTS: Rule::Whole { min: 1, max: 10, default: Some(4) },
        "tries per request, retries included";
    RAKUTEN_RETRY_BASE_MS: Rule::Whole { min: 0, max: 60_000, default: Some(1000) },
        "first backoff delay in ms, doubled per retry with jitter";
    RAKUTEN_TIMEOUT_SECS: Rule::Whole { min: 1, max: 300, default: Some(20) },
        "per-request timeout";
    RAKUTEN_ACCESS_KEY_IN: Rule::OneOf(&["header", "query"]),
        "where the access key travels: the accessKey header (in no URL) or the query";
    RAKUTEN_SHARED_BUDGET: Rule::OneOf(&["postgres", "off"]),
        "postgres: every process on one application ID shares the pace through PostgreSQL; off: per process";
    RAW_STORE: Rule::LocalDefault("file://./.local/raw"),
        "file:///dir or s3://bucket/prefix";
    RANKING_TARGETS: Rule::Text { default: Some("0") },
        "comma-separated GENRE[:PERIOD]: 0 = overall, PERIOD daily or realtime";
    RANKING_MAX_PAGES: Rule::Whole { min: 1, max: 34, default: Some(34) },
        "pages per ranking target (30 ranks each)";
    RANKING_FAILURE_THRESHOLD: Rule::Fraction { default: 0.01 },
        "failure rate above which Ranking fails";
    RANKING_STALE_POLICY: Rule::OneOf(&["keep", "skip"]),
        "a ranking not rebuilt since the previous snapshot (same lastBuildDate): keep = store it flagged stale, skip = store no duplicate day";
    GENRE_REFRESH_DAYS: Rule::Whole { min: 0, max: 3650, default: Some(7) },
        "Genre: genres fetched within this many days are skipped, 0 = always fetch";
    GENRE_FAILURE_THRESHOLD: Rule::Fraction { default: 0.01 },
        "failure rate above which Genre fails";
    TAG_REFRESH_DAYS: Rule::Whole { min: 0, max: 3650, default: Some(7) },
        "Tag: tags fetched within this many days are skipped, 0 = always fetch";
    TAG_FAILURE_THRESHOLD: Rule::Fraction { default: 0.01 },
        "failure rate above which Tag fails";
    ITEM_REFRESH_DAYS: Rule::Whole { min: 0, max: 3650, default: Some(7) },
        "item details are fetched again when older than this many days (0 = every run); the ranking refreshes prices, names, availability, captions and point campaigns daily anyway";
    ITEM_REFRESH_HOURS: Rule::Whole { min: 0, max: 24 * 3650, default: None },
        "deprecated: the same window in hours; used only when ITEM_REFRESH_DAYS is not set";
    ITEM_DAILY_REQUEST_BUDGET: Rule::Whole { min: 1, max: u32::MAX as u64, default: None },
        "cap on Item Search requests a JST day (best-ranked items first; the rest wait for the next day)";
    ITEM_FAILURE_THRESHOLD: Rule::Fraction { default: 0.05 },
        "failure rate above which Item fails";
    ITEM_DEADLINE_MARGIN_SECS: Rule::Whole { min: 0, max: 600, default: Some(60) },
        "an Item invocation stops this long before its deadline";
    ITEM_BATCH_SIZE: Rule::Whole { min: 1, max: 500, default: Some(10) },
        "items saved per database commit";
    ACTIVE_WINDOW_DAYS: Rule::Whole { min: 1, max: 366, default: Some(7) },
        "IsActive: ranked within this many JST days (run date included) = active";
    RUN_LEASE_SECS: Rule::Whole { min: 30, max: 3600, default: Some(180) },
        "a run not renewed by its process for this long is abandoned";
}

/// Optional variables whose empty value means "unset" (a template passes `''` for an
/// unused optional parameter). Every other variable set to an empty value is an error.
const EMPTY_MEANS_UNSET: &[&str] = &[
    "RAKUTEN_AFFILIATE_ID",
    "RAKUTEN_AFFILIATE_ID_SSM_PARAMETER",
    "RAKUTEN_REFERER",
    "RAKUTEN_ORIGIN",
];

/// The variables' values, read by their declarations.
pub(crate) struct Vars<'a>(pub &'a HashMap<String, String>);

impl Vars<'_> {
    /// `RAW_STORE=` silently meaning the default directory hides a broken deployment.
    pub fn refuse_empty(&self) -> Result<(), ConfigError> {
        for var in VARIABLES {
            let is_empty = self.0.get(var.name).is_some_and(|v| v.trim().is_empty());
            if is_empty && !EMPTY_MEANS_UNSET.contains(&var.name) {
                return Err(ConfigError::new(
                    var.name,
                    "is set but empty: give it a value, or unset it to use the default",
                ));
            }
        }
        Ok(())
    }

    /// The value as given (trimmed), None when unset or empty.
    pub fn given(&self, var: &Var) -> Option<String> {
        self.by_name(var.name)
    }

    fn by_name(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The value, or the declared default.
    pub fn text(&self, var: &Var) -> Option<String> {
        self.given(var).or_else(|| var.default_text())
    }

    /// A whole number within the declared bounds; its default when unset.
    pub fn whole<T: TryFrom<u64>>(&self, var: &Var) -> Result<T, ConfigError> {
        let value = match self.whole_given(var)? {
            Some(v) => v,
            None => match var.rule {
                Rule::Whole {
                    default: Some(d), ..
                } => d,
                _ => unreachable!("{} is declared without a default", var.name),
            },
        };
        T::try_from(value).map_err(|_| ConfigError::new(var.name, format!("{value} is too large")))
    }

    /// A whole number within the declared bounds, None when unset.
    pub fn whole_given(&self, var: &Var) -> Result<Option<u64>, ConfigError> {
        let Rule::Whole { min, max, .. } = var.rule else {
            unreachable!("{} is not declared a whole number", var.name)
        };
        let Some(raw) = self.given(var) else {
            return Ok(None);
        };
        let value: u64 = raw
            .parse()
            .map_err(|_| ConfigError::new(var.name, format!("{raw:?} is not a number")))?;
        if !(min..=max).contains(&value) {
            let why = match max >= u32::MAX as u64 {
                true => format!("must be at least {min} (unset it for no limit)"),
                false => format!("must be between {min} and {max}"),
            };
            return Err(ConfigError::new(var.name, format!("{value} {why}")));
        }
        Ok(Some(value))
    }

    /// A number (`Real` or `Fraction`) within the declared bounds; its default when unset.
    pub fn real(&self, var: &Var) -> Result<f64, ConfigError> {
        let (default, within, why) = match var.rule {
            Rule::Real { min, max, default } => (
                default,
                (min..=max),
                format!("must be between {min} and {max}"),
            ),
            // [0, 1): a threshold of 1 could never be exceeded.
            Rule::Fraction { default } => (
                default,
                (0.0..=f64::from_bits(1f64.to_bits() - 1)),
                "must be a fraction in [0, 1)".to_string(),
            ),
            _ => unreachable!("{} is not declared a number", var.name),
        };
        let Some(raw) = self.given(var) else {
            return Ok(default);
        };
        let value: f64 = raw
            .parse()
            .map_err(|_| ConfigError::new(var.name, format!("{raw:?} is not a number")))?;
        if !within.contains(&value) {
            return Err(ConfigError::new(var.name, format!("{value} {why}")));
        }
        Ok(value)
    }

    /// One of the declared words; the first when unset.
    pub fn word(&self, var: &Var) -> Result<&'static str, ConfigError> {
        let Rule::OneOf(words) = var.rule else {
            unreachable!("{} is not declared a choice", var.name)
        };
        match self.given(var) {
            None => Ok(words[0]),
            Some(v) => words.iter().find(|w| **w == v).copied().ok_or_else(|| {
                ConfigError::new(
                    var.name,
                    format!("{v:?} is not one of {}", words.join(", ")),
                )
            }),
        }
    }

    /// A secret given directly or as `<NAME>_SSM_PARAMETER`, never both.
    pub fn secret(&self, var: &Var) -> Result<SecretSource, ConfigError> {
        let name = var.name;
        let ssm_name = format!("{name}_SSM_PARAMETER");
        match (self.given(var), self.by_name(&ssm_name)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                name,
                format!("set either {name} or {ssm_name}, not both"),
            )),
            (Some(v), None) => Ok(SecretSource::Value(SecretString::from(v))),
            (None, Some(p)) => Ok(SecretSource::SsmParameter(p)),
            (None, None) => Ok(SecretSource::Absent),
        }
    }
}
