//! The shapes of the definition's plain parts (top level, branches, Retry and Catch
//! entries), read with serde: unknown fields are refused by name (`deny_unknown_fields`),
//! absent ones take the States language's defaults.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::definition::Retrier;

/// The top level. `Comment` and `QueryLanguage` are read only to be type-checked.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct TopLevel {
    #[serde(rename = "Comment")]
    _comment: Option<String>,
    #[serde(rename = "QueryLanguage")]
    _query_language: Option<QueryLanguage>,
    pub(super) start_at: String,
    pub(super) timeout_seconds: Option<u64>,
    pub(super) states: Map<String, Value>,
}

/// A Parallel branch.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct Branch {
    #[serde(rename = "Comment")]
    _comment: Option<String>,
    pub(super) start_at: String,
    pub(super) states: Map<String, Value>,
}

/// JSONata expressions are a different language, not a few more operators.
#[derive(Deserialize)]
enum QueryLanguage {
    #[serde(rename = "JSONPath")]
    JsonPath,
}

/// A `Retry` entry, with the States language's defaults.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct RetryEntry {
    pub(super) error_equals: Vec<String>,
    #[serde(default = "defaults::interval_seconds")]
    interval_seconds: u64,
    #[serde(default = "defaults::max_attempts")]
    max_attempts: u32,
    #[serde(default = "defaults::backoff_rate")]
    backoff_rate: f64,
    max_delay_seconds: Option<u64>,
    #[serde(default)]
    jitter_strategy: Jitter,
    #[serde(rename = "Comment")]
    _comment: Option<IgnoredAny>,
}

mod defaults {
    pub fn interval_seconds() -> u64 {
        1
    }
    pub fn max_attempts() -> u32 {
        3
    }
    pub fn backoff_rate() -> f64 {
        2.0
    }
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "UPPERCASE")]
enum Jitter {
    Full,
    #[default]
    None,
}

/// A `Catch` entry. `ResultPath` is kept as written: absent (`$`) and `null` differ.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct CatchEntry {
    pub(super) error_equals: Vec<String>,
    pub(super) next: String,
    #[serde(default, deserialize_with = "keep_null")]
    pub(super) result_path: Option<Value>,
    #[serde(rename = "Comment")]
    _comment: Option<IgnoredAny>,
}

/// `Some(Value::Null)` for an explicit `null` (serde's `Option` would make it `None`).
fn keep_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

pub(super) fn retrier(r: RetryEntry) -> Retrier {
    Retrier {
        errors: r.error_equals,
        interval_seconds: r.interval_seconds,
        max_attempts: r.max_attempts,
        backoff_rate: r.backoff_rate,
        max_delay_seconds: r.max_delay_seconds,
        jitter_full: r.jitter_strategy == Jitter::Full,
    }
}
