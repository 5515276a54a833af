//! The `collector` binary as a user runs it.

use std::ffi::OsStr;
use std::process::{Command, Output};

use ichiba_collector_tests::*;

/// No variables but what every run gets.
const NO_ENV: &[(&str, &str)] = &[];

fn command<K: AsRef<OsStr>, V: AsRef<OsStr>>(env: &[(K, V)], args: &[&str]) -> Command {
    let env = env.iter().map(|(k, v)| (k, v));
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env);
    cmd.args(args);
    cmd
}

fn collector<K: AsRef<OsStr>, V: AsRef<OsStr>>(env: &[(K, V)], args: &[&str]) -> Output {
    command(env, args).output().expect("run collector")
}

/// Runs the binary off the async runtime (the test's sandbox keeps serving meanwhile).
async fn collector_async<K, V>(env: &[(K, V)], args: &[&str]) -> Output
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    output_of(command(env, args)).await
}

#[test]
fn help_lists_the_fixed_subcommands_and_variables() {
    let out = collector(NO_ENV, &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "migrate",
        "job",
        "sandbox",
        "DATABASE_URL",
        "RAKUTEN_APPLICATION_ID",
        "RAW_STORE",
        "APP_ENV",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let out = collector(NO_ENV, &["job", "ranking", "--help"]);
    assert!(text(&out.stdout).contains("--output"));
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_variable() {
    for (var, value) in [
        ("RAKUTEN_REQUESTS_PER_SECOND", "fast"),
        ("APP_ENV", "staging"),
        ("DATABASE_URL", "postgresql://app:pw@db.example:port/ichiba"),
        ("RAW_STORE", "ftp://nowhere"),
    ] {
        let out = collector(&[(var, value)], &["job", "ranking"]);
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let err = text(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
        assert!(!err.contains(":pw@"), "the password leaked: {err}");
    }
}

#[test]
fn a_dead_database_is_reported_clearly() {
    let out = collector(
        &[("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/ichiba")],
        &["migrate"],
    );
    // 4: infrastructure failed (the one exit-status table of docs/runbook.md).
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("cannot connect to PostgreSQL at 127.0.0.1:1/ichiba"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn job_ranking_prints_its_output_document_as_json() {
    let (db, sandbox, raw) = job_parts(sandbox_config(300)).await;
    let extra = [
        ("RAKUTEN_REQUESTS_PER_SECOND", "200"),
        ("RUST_LOG", "debug"),
    ];
    let env = job_vars(&db.url, &sandbox.base_url(), raw.path(), &extra);
    let out = collector_async(&env, &["job", "ranking", "--output", "json"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(doc["job"], "ranking");
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["units"]["attempted"], 11);
    assert_eq!(doc["rows"]["rakuten_rankings"]["inserted"], 300);
    for s in [TEST_APP_ID, TEST_ACCESS_KEY] {
        assert!(
            !stdout.contains(s) && !stderr.contains(s),
            "credential in the CLI output"
        );
    }

    // The run in the history: `collector runs` lists it, `runs show` details it.
    let run_id = doc["run_id"].as_str().unwrap().to_string();
    let out = collector(&env, &["runs"]);
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = listed
        .lines()
        .find(|l| l.starts_with(&run_id))
        .unwrap_or_else(|| panic!("run not listed:\n{listed}"));
    assert!(
        line.contains("succeeded") && line.contains("ok 11r 0.0%"),
        "{line}"
    );
    let out = collector(&env, &["runs", "--output", "json", "--limit", "1"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["jobs"][0]["requests"], 11);
    let out = collector(&env, &["runs", "show", &run_id]);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains(&format!("run {run_id} (env local")),
        "{shown}"
    );
    assert!(
        shown.lines().any(|l| l.starts_with("ranking    succeeded")),
        "{shown}"
    );
    assert!(shown.contains("/manifest.json"), "{shown}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = collector(&env, &["runs", "show", &unknown]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown run is exit status 2"
    );
    assert!(text(&out.stderr).contains("does not exist"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn without_credentials_the_built_in_sandbox_is_used_and_a_summary_printed() {
    let (db, raw) = db_and_raw().await;
    let store = format!("file://{}", raw.path().display());
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("RAW_STORE", store.as_str()),
        ("RANKING_MAX_PAGES", "2"),
    ];
    let out = collector_async(&env, &["job", "ranking"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("built-in Rakuten sandbox"), "{stderr}");
    for word in [
        "ranking job succeeded",
        "units",
        "requests   2 sent",
        "rakuten_rankings",
        "60 inserted",
        "duration",
    ] {
        assert!(stdout.contains(word), "summary lacks {word:?}:\n{stdout}");
    }
}

/// `collector doctor`: every check on its line; each failure Rakuten users report since
/// the 2026 migration, as the sandbox answers it, turns into its advice; exit 0 only when
/// all pass; no credential printed.
#[tokio::test]
async fn doctor_checks_everything_and_turns_known_failures_into_advice() {
    use rakuten_sandbox::SandboxConfig;
    let (db, raw) = db_and_raw().await;
    let store = format!("file://{}", raw.path().display());
    collector(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("RAW_STORE", store.as_str()),
        ],
        &["migrate"],
    );
    // (what the sandbox does, extra variables, what the advice must say)
    type Case = (
        SandboxConfig,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (sandbox_config(50), vec![], "all "),
        (
            SandboxConfig {
                require_referer: Some("https://example.com".into()),
                ..sandbox_config(50)
            },
            vec![],
            "set RAKUTEN_REFERER (or RAKUTEN_ORIGIN)",
        ),
        (
            sandbox_config(50),
            vec![("RAKUTEN_ACCESS_KEY", "pk_not_the_right_key_123")],
            "the access key is rejected",
        ),
        (
            SandboxConfig {
                allowed_ips: vec!["10.9.9.9".parse().unwrap()],
                ..sandbox_config(50)
            },
            vec![],
            "static egress IP",
        ),
        (
            SandboxConfig {
                legacy_host_maintenance: true,
                ..sandbox_config(50)
            },
            vec![(
                "RAKUTEN_RANKING_PATH",
                "/services/api/IchibaItem/Ranking/20220601",
            )],
            "the legacy host",
        ),
        (
            sandbox_config(50),
            vec![(
                "RAKUTEN_GENRE_SEARCH_PATH",
                "/ichibagt/api/IchibaGenre/Search/20990101",
            )],
            "is not served: the API version in the path",
        ),
        (
            SandboxConfig {
                rate_limit_per_sec: Some(0.001),
                ..sandbox_config(50)
            },
            vec![],
            "another process uses the same application ID",
        ),
    ];
    for (cfg, extra, advice) in cases {
        let sandbox = start_sandbox(cfg).await;
        let base = sandbox.base_url();
        let mut env = vec![
            ("DATABASE_URL", db.url.as_str()),
            ("RAW_STORE", store.as_str()),
            ("RAKUTEN_API_BASE_URL", base.as_str()),
            ("RAKUTEN_APPLICATION_ID", TEST_APP_ID),
            ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY),
        ];
        for (k, v) in &extra {
            env.retain(|(name, _)| name != k);
            env.push((k, v));
        }
        let out = collector_async(&env, &["doctor"]).await;
        let stdout = text(&out.stdout);
        assert!(stdout.contains(advice), "{advice:?} missing:\n{stdout}");
        let expected = if advice == "all " { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(expected), "{stdout}");
        assert!(stdout.contains("✓ database"), "{stdout}");
        assert!(stdout.contains("✓ raw store"), "{stdout}");
        assert!(stdout.contains("✓ migrations current"), "{stdout}");
        for s in [TEST_APP_ID, TEST_ACCESS_KEY] {
            assert!(
                !stdout.contains(s) && !text(&out.stderr).contains(s),
                "a credential in the output"
            );
        }
        sandbox.shutdown().await;
    }

    // A dead database and an unwritable raw store: each its own ✗ with what to do.
    let out = collector(
        &[
            ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none"),
            ("DATABASE_CONNECT_TIMEOUT_SECS", "2"),
            ("RAW_STORE", "file:///proc/doctor-cannot-write"),
        ],
        &["doctor"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("✗ database") && stdout.contains("check DATABASE_URL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✗ raw store") && stdout.contains("check RAW_STORE"),
        "{stdout}"
    );
}
