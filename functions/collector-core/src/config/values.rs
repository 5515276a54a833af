//! The configuration's value types and their syntax: environments, raw-store locations,
//! ranking targets, secret sources, the stale policy, and the error naming a variable.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::SecretString;
use url::Url;

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

/// `RANKING_STALE_POLICY`: a ranking served again with the previous snapshot's
/// `lastBuildDate` (not rebuilt yet) is stored flagged (`Keep`) or not stored (`Skip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StalePolicy {
    #[default]
    Keep,
    Skip,
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
