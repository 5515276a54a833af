//! Shared test support: a fresh PostgreSQL database per test, the sandbox, moto server
//! clients and job contexts wired to them. The real parts are started by
//! `scripts/test.sh` (PostgreSQL, moto); the sandbox is started in-process per test.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use collector_core::config::Config;
use collector_core::db;
use collector_core::jobs::{AppContext, RakutenEndpoint};
use collector_core::secrets::Secrets;
use rakuten_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
pub use tokio_postgres::Client;

pub mod small_disk;
pub mod temp_pg;
pub use small_disk::{fill, SmallDisk};
pub use temp_pg::TempPostgres;

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

pub async fn start_sandbox(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config).await.expect("start sandbox")
}

/// Configuration for a job against `sandbox`, `db` and a raw directory; `extra` overrides.
/// Defaults here are fast: no pacing to speak of, short retry delays.
pub fn job_config(
    db: &TestDb,
    sandbox: &SandboxHandle,
    raw_dir: &Path,
    extra: &[(&str, &str)],
) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut set = |k: &str, v: &str| {
        vars.insert(k.to_string(), v.to_string());
    };
    set("APP_ENV", "local");
    set("DATABASE_URL", &db.url);
    set("RAW_STORE", &format!("file://{}", raw_dir.display()));
    set("RAKUTEN_API_BASE_URL", &sandbox.base_url());
    set("RAKUTEN_APPLICATION_ID", TEST_APP_ID);
    set("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY);
    set("RAKUTEN_REQUESTS_PER_SECOND", "1000");
    set("RAKUTEN_RETRY_BASE_MS", "5");
    for (k, v) in extra {
        set(k, v);
    }
    Config::from_map(&vars).expect("valid test configuration")
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
    let shared = moto_shared_config().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub async fn moto_ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto_shared_config().await)
}

async fn moto_shared_config() -> aws_config::SdkConfig {
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

async fn reqwest_like_probe(endpoint: &str) -> bool {
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// Creates a bucket with a unique name on moto server.
pub async fn moto_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = format!(
        "icx-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
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
