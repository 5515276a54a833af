//! Shared test support: a fresh PostgreSQL database per test, the sandbox, moto server
//! clients and job contexts wired to them. The real parts are started by
//! `scripts/test.sh` (PostgreSQL, moto); the sandbox is started in-process per test.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use collector_core::config::Config;
use collector_core::db;
use collector_core::jobs::{AppContext, RakutenEndpoint};
use collector_core::rawstore::{Manifest, ManifestEntry};
use collector_core::secrets::Secrets;
use rakuten_sandbox::{ErrorMode, Sandbox, SandboxConfig, SandboxHandle};
use tokio_postgres::types::{FromSqlOwned, ToSql};
pub use tokio_postgres::Client;

pub mod small_disk;
pub mod temp_pg;
pub use small_disk::{fill, SmallDisk};
pub use temp_pg::{installed_bin_dir, TempPostgres};

/// The application ID and access key tests use: distinctive, so a leak is easy to find.
pub const TEST_APP_ID: &str = "5ec2e7aa-1111-4222-8333-abcdefabcdef";
pub const TEST_ACCESS_KEY: &str = "pk_SECRETsecret123";

/// The admin URL of the test server (`TEST_DATABASE_URL`, default local trust auth).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into())
}

/// The moto server endpoint (`MOTO_ENDPOINT`, default the one `scripts/start-moto.sh` starts).
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// A database created for one test and dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates an empty database with the schema migrated.
    pub async fn new() -> TestDb {
        let name = format!("icx_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect_plain(&admin_url()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = with_dbname(&admin_url(), &name);
        let db = db::connect(&url.clone().into())
            .await
            .expect("connect to test database");
        let mut client = db.client;
        db::migrate(&mut client).await.expect("migrate");
        TestDb { name, url }
    }

    pub async fn client(&self) -> Client {
        connect_plain(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async: use a small runtime on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn with_dbname(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

pub async fn connect_plain(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL not reachable ({e}); start it with scripts/start-postgres.sh")
        });
    tokio::spawn(conn);
    client
}

/// A sandbox with no rate limit and no faults, tests' credentials, and `items` items.
pub fn sandbox_config(items: usize) -> SandboxConfig {
    SandboxConfig {
        items,
        access_key: TEST_ACCESS_KEY.into(),
        rate_limit_per_sec: None,
        date: Some("2026-11-23".into()),
        ..SandboxConfig::default()
    }
}

/// [`sandbox_config`] whose units fail at `rate`, transiently or for good (`mode`).
pub fn failing_config(items: usize, rate: f64, mode: ErrorMode) -> SandboxConfig {
    SandboxConfig {
        error_rate: rate,
        error_mode: mode,
        ..sandbox_config(items)
    }
}

/// A Rakuten client configuration for the API at `base` with the tests' application ID
/// and `access_key`.
pub fn client_config(base: &str, access_key: &str) -> rakuten_client::ClientConfig {
    rakuten_client::ClientConfig::new(
        base.parse().expect("a base URL"),
        TEST_APP_ID.to_string().into(),
        access_key.to_string().into(),
    )
}

/// [`sandbox_config`] answering each request after `latency_ms` milliseconds.
pub fn slow_config(items: usize, latency_ms: u64) -> SandboxConfig {
    SandboxConfig {
        latency: std::time::Duration::from_millis(latency_ms),
        ..sandbox_config(items)
    }
}

pub async fn start_sandbox(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config).await.expect("start sandbox")
}

/// The variables of a local job against `database_url`, the sandbox at `sandbox_url` and
/// the raw directory `raw_dir`, then `extra` (a later pair overrides an earlier one).
/// Defaults here are fast: no pacing to speak of, short retry delays.
pub fn job_vars(
    database_url: &str,
    sandbox_url: &str,
    raw_dir: &Path,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let raw_store = format!("file://{}", raw_dir.display());
    [
        ("APP_ENV", "local"),
        ("DATABASE_URL", database_url),
        ("RAW_STORE", &raw_store),
        ("RAKUTEN_API_BASE_URL", sandbox_url),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY),
        ("RAKUTEN_REQUESTS_PER_SECOND", "1000"),
        ("RAKUTEN_RETRY_BASE_MS", "5"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Configuration for a job against `sandbox`, `db` and a raw directory; `extra` overrides.
pub fn job_config(
    db: &TestDb,
    sandbox: &SandboxHandle,
    raw_dir: &Path,
    extra: &[(&str, &str)],
) -> Config {
    let vars: HashMap<String, String> = job_vars(&db.url, &sandbox.base_url(), raw_dir, extra)
        .into_iter()
        .collect();
    Config::from_map(&vars).expect("valid test configuration")
}

/// A job context for [`job_config`].
pub async fn job_context(
    db: &TestDb,
    sandbox: &SandboxHandle,
    raw_dir: &Path,
    extra: &[(&str, &str)],
) -> AppContext {
    context(job_config(db, sandbox, raw_dir, extra)).await
}

/// A database, a sandbox, a raw directory and a job context on them.
pub type JobEnv = (TestDb, SandboxHandle, tempfile::TempDir, AppContext);

/// A fresh database, a sandbox serving `sandbox`, a raw directory and a job context on
/// them with `extra` (see [`job_config`]).
pub async fn job_env(sandbox: SandboxConfig, extra: &[(&str, &str)]) -> JobEnv {
    let (db, sandbox, raw) = job_parts(sandbox).await;
    let ctx = job_context(&db, &sandbox, raw.path(), extra).await;
    (db, sandbox, raw, ctx)
}

/// A fresh database, a sandbox serving `sandbox` and a raw directory.
pub async fn job_parts(sandbox: SandboxConfig) -> (TestDb, SandboxHandle, tempfile::TempDir) {
    let (db, raw) = db_and_raw().await;
    (db, start_sandbox(sandbox).await, raw)
}

/// A fresh database and raw directory.
pub async fn db_and_raw() -> (TestDb, tempfile::TempDir) {
    (TestDb::new().await, tempfile::tempdir().unwrap())
}

/// The first column of the one row `sql` answers.
pub async fn scalar<T: FromSqlOwned>(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> T {
    one_row(c, sql, params).await.get(0)
}

/// The one row `sql` answers.
pub async fn one_row(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> tokio_postgres::Row {
    c.query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every row `sql` answers.
pub async fn rows(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<tokio_postgres::Row> {
    c.query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The count (or any other bigint) `sql` answers, without parameters.
pub async fn count(c: &Client, sql: &str) -> i64 {
    scalar(c, sql, &[]).await
}

/// The first column of every row `sql` answers, collected (into a `Vec`, a set, ...).
pub async fn column<T: FromSqlOwned, C: FromIterator<T>>(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> C {
    rows(c, sql, params)
        .await
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `err` is a FailureRateExceeded whose failure rate is above `above` and whose message
/// names its counts; (failed, attempted).
pub fn assert_failure_rate_exceeded(
    err: &collector_core::jobs::JobError,
    above: f64,
) -> (i32, i32) {
    assert_eq!(err.error_type(), "FailureRateExceeded", "{err}");
    let collector_core::jobs::JobError::FailureRateExceeded {
        failed, attempted, ..
    } = *err
    else {
        panic!("{err}")
    };
    assert!(f64::from(failed) / f64::from(attempted) > above, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{failed} of {attempted} units failed")),
        "{msg}"
    );
    (failed, attempted)
}

/// The ledger's status of run `run_id`.
pub async fn run_status(c: &Client, run_id: uuid::Uuid) -> String {
    collector_core::db::ledger::get_run(c, run_id)
        .await
        .unwrap()
        .expect("the run is in the ledger")
        .status
}

/// A run of `env` opened in the ledger as the jobnet's Guard would (manual trigger).
pub async fn open_run(c: &Client, env: &str) -> collector_core::db::ledger::Run {
    collector_core::db::ledger::create_run(c, env, "manual", std::time::Duration::from_secs(180))
        .await
        .expect("open a run")
}

/// A job context from a configuration (secrets as plain values).
pub async fn context(config: Config) -> AppContext {
    let secrets: Secrets = collector_core::secrets::resolve_with(&config, None)
        .await
        .expect("secrets");
    let endpoint = secrets.rakuten.clone().map(|c| RakutenEndpoint {
        base_url: config.rakuten.base_url.clone(),
        application_id: c.application_id,
        access_key: c.access_key,
    });
    AppContext::new(config, secrets, endpoint)
        .await
        .expect("context")
}

/// An S3 client for moto server (dummy credentials, path-style addressing).
pub async fn moto_s3() -> aws_sdk_s3::Client {
    let shared = moto_config().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn moto_ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto_config().await)
}

/// The AWS configuration of moto server (region ap-northeast-1, dummy credentials), for any
/// service's client; panics when moto does not answer.
pub async fn moto_config() -> aws_config::SdkConfig {
    let endpoint = moto_endpoint();
    assert!(
        reqwest_like_probe(&endpoint).await,
        "moto server not reachable at {endpoint}; start it with scripts/start-moto.sh"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ap-northeast-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// A Step Functions client for moto server, checked to answer.
pub async fn moto_sfn() -> aws_sdk_sfn::Client {
    let client = aws_sdk_sfn::Client::new(&moto_config().await);
    client
        .list_state_machines()
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "moto server not reachable at {} ({e:?}); start it with scripts/start-moto.sh",
                moto_endpoint()
            )
        });
    client
}

/// Creates a one-state (Pass) state machine `name` on moto server; returns its ARN.
pub async fn moto_state_machine(sfn: &aws_sdk_sfn::Client, name: &str) -> String {
    sfn.create_state_machine()
        .name(name)
        .definition(r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/icx-jobnet")
        .send()
        .await
        .expect("create state machine on moto")
        .state_machine_arn()
        .to_string()
}

pub async fn moto_sns() -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&moto_config().await)
}

/// `n` hex digits of a fresh UUID: a name no other test uses.
pub fn unique(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_string()
}

async fn reqwest_like_probe(endpoint: &str) -> bool {
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// Creates a bucket with a unique name on moto server.
pub async fn moto_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = format!("icx-test-{}", unique(12));
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .expect("create bucket on moto");
    bucket
}

/// A complete first attempt's manifest of `job` in env local, written at `at`, listing
/// `objects`.
pub fn manifest_of(
    job: &str,
    run_id: uuid::Uuid,
    run_date: chrono::NaiveDate,
    at: chrono::DateTime<chrono::Utc>,
    objects: Vec<ManifestEntry>,
) -> Manifest {
    Manifest {
        env: "local".into(),
        job: job.into(),
        run_id,
        run_date,
        attempt: 1,
        job_start_at: at,
        created_at: at,
        complete: true,
        object_count: objects.len(),
        total_bytes: objects.iter().map(|o| o.size).sum(),
        total_records: objects.iter().map(|o| o.records).sum(),
        objects,
        verdict: None,
    }
}

/// Every file under `dir`, as (relative key, bytes).
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
                out.push((key, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub type SharedContext = Arc<AppContext>;

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The `collector` binary `bin` (`env!("CARGO_BIN_EXE_collector")` in its tests) with
/// nothing of this process's environment but `PATH`, no colours, then `env`.
pub fn collector_command<K, V>(bin: &str, env: impl IntoIterator<Item = (K, V)>) -> Command
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .envs(env);
    cmd
}

/// [`collector_command`] as the jobnet's tests run it: warnings only, in `dir`.
pub fn jobnet_command(bin: &str, dir: &str, env: &[(String, String)]) -> Command {
    let mut cmd = collector_command(bin, env.iter().cloned());
    cmd.env("RUST_LOG", "warn").current_dir(dir);
    cmd
}

/// The command exited with `code` and said one line on stderr: that line.
/// (`run` and `job` print where their log file is first; that line is not the error.)
pub fn one_line_error(out: &Output, code: i32) -> String {
    let all = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{all}");
    let stderr: String = all
        .lines()
        .filter(|l| !l.starts_with("logs: "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {all}");
    stderr
}

/// Runs `cmd` to its end off the async runtime (the test's sandbox keeps serving meanwhile).
pub async fn output_of(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run collector"))
        .await
        .unwrap()
}
