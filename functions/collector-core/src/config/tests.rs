use std::path::PathBuf;

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
            VARIABLES.iter().any(|v| v.name == name),
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
        let help = VARIABLES.iter().find(|v| v.name == name).unwrap().help();
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

#[test]
fn each_rule_is_stated_in_the_help_and_in_its_errors() {
    assert_eq!(
        RANKING_MAX_PAGES.help(),
        "pages per ranking target (30 ranks each) (1-34, default 34)"
    );
    assert!(ITEM_FAILURE_THRESHOLD
        .help()
        .ends_with("(a fraction in [0, 1), default 0.05)"));
    assert!(RAKUTEN_ACCESS_KEY_IN
        .help()
        .ends_with("(header | query, default header)"));
    assert!(ITEM_DAILY_REQUEST_BUDGET
        .help()
        .ends_with("(at least 1, unset by default)"));
    for (name, value, problem) in [
        ("RANKING_MAX_PAGES", "35", "35 must be between 1 and 34"),
        (
            "ITEM_DAILY_REQUEST_BUDGET",
            "0",
            "0 must be at least 1 (unset it for no limit)",
        ),
        (
            "ITEM_FAILURE_THRESHOLD",
            "1",
            "1 must be a fraction in [0, 1)",
        ),
        (
            "RAKUTEN_REQUESTS_PER_SECOND",
            "NaN",
            "NaN must be between 0.01 and 1000",
        ),
        (
            "RAKUTEN_ACCESS_KEY_IN",
            "body",
            "\"body\" is not one of header, query",
        ),
        (
            "RANKING_STALE_POLICY",
            "drop",
            "\"drop\" is not one of keep, skip",
        ),
    ] {
        let e = cfg(&[(name, value)]).unwrap_err();
        assert_eq!((e.variable.as_str(), e.problem.as_str()), (name, problem));
    }
}
