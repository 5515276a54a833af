//! What a job needs, built once per process (per Lambda cold start): configuration, the
//! Rakuten client, the raw store and the database connection.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rakuten_client::{ClientConfig, Endpoints, RakutenClient};
use secrecy::SecretString;
use tokio_postgres::Transaction;
use url::Url;

use crate::config::{Config, ConfigError};
use crate::db::{DbGuard, DbResultExt, SharedDb};
use crate::pacing::PgPacer;
use crate::rawstore::{self, RawStore};
use crate::secrets::Secrets;

use super::JobError;

/// Where the Rakuten client points and with which credentials.
#[derive(Debug, Clone)]
pub struct RakutenEndpoint {
    pub base_url: Url,
    pub application_id: SecretString,
    pub access_key: SecretString,
}

pub struct AppContext {
    pub config: Config,
    pub rakuten: RakutenClient,
    pub store: Arc<dyn RawStore>,
    /// Shared with the pacer: one connection per process.
    db: Arc<SharedDb>,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("env", &self.config.env)
            .field("store", &self.store.describe())
            .finish()
    }
}

impl AppContext {
    /// Builds the context. `endpoint` overrides the configured Rakuten base URL and
    /// credentials (the CLI uses it to point at the built-in sandbox).
    pub async fn new(
        config: Config,
        secrets: Secrets,
        endpoint: Option<RakutenEndpoint>,
    ) -> Result<Self, JobError> {
        let endpoint = match (endpoint, secrets.rakuten) {
            (Some(e), _) => e,
            (None, Some(c)) => RakutenEndpoint {
                base_url: config.rakuten.base_url.clone(),
                application_id: c.application_id,
                access_key: c.access_key,
            },
            (None, None) => {
                return Err(ConfigError::new(
                    "RAKUTEN_APPLICATION_ID",
                    "not set (and no sandbox was started)",
                )
                .into());
            }
        };
        let db = Arc::new(SharedDb::new(secrets.database_url.clone()));
        let pacer = config.rakuten.shared_budget.then(|| {
            Arc::new(PgPacer::sharing(
                Arc::clone(&db),
                secrets.database_url.clone(),
                &endpoint.application_id,
                config.rakuten.requests_per_second,
            )) as Arc<dyn rakuten_client::Pacer>
        });
        let rakuten = build_client(&config, endpoint, secrets.affiliate_id, pacer)?;
        let store: Arc<dyn RawStore> = Arc::from(rawstore::open(&config.raw_store).await?);
        Ok(Self {
            config,
            rakuten,
            store,
            db,
        })
    }

    /// Uses a given store (tests pass an S3 store pointed at moto, or a temp dir).
    pub fn with_store(mut self, store: Arc<dyn RawStore>) -> Self {
        self.store = store;
        self
    }

    /// The process's database connection, (re)connected when needed: a warm Lambda may
    /// find its connection closed by the server or a pooler after idling.
    pub async fn db(&self) -> Result<DbGuard<'_>, JobError> {
        Ok(self.db.get().await?)
    }

    /// Runs `work(tx, data)` in one transaction and commits it. A connection lost on the
    /// way (the server restarted, a pooler dropped it, a watchdog ended a frozen one) is
    /// re-established and the whole transaction tried once more: `work` must be
    /// idempotent (every job's load is, and checks whether its commit already landed).
    /// (`work` is a plain function of its data: a capturing async closure would make the
    /// job's future not provably `Send`.)
    pub async fn transact<D: Sync + ?Sized, R>(
        &self,
        what: &str,
        data: &D,
        work: TxWork<D, R>,
    ) -> Result<R, JobError> {
        let mut retried = false;
        loop {
            let result = async {
                let mut db = self.db().await?;
                let tx = db.client.transaction().await.context(what)?;
                let value = work(&tx, data).await?;
                tx.commit().await.context(what)?;
                Ok(value)
            }
            .await;
            match result {
                Err(JobError::Database(e)) if !retried && e.is_connection_lost() => {
                    tracing::warn!(error = %e, "connection to PostgreSQL lost while {what}; trying once more on a new connection");
                    retried = true;
                }
                other => return other,
            }
        }
    }
}

/// A step run inside [`AppContext::transact`].
pub type TxWork<D, R> =
    for<'t> fn(&'t Transaction<'t>, &'t D) -> BoxFuture<'t, Result<R, JobError>>;

fn build_client(
    config: &Config,
    endpoint: RakutenEndpoint,
    affiliate_id: Option<SecretString>,
    pacer: Option<Arc<dyn rakuten_client::Pacer>>,
) -> Result<RakutenClient, JobError> {
    let r = &config.rakuten;
    let mut cc = ClientConfig::new(
        endpoint.base_url,
        endpoint.application_id,
        endpoint.access_key,
    );
    cc.endpoints = Endpoints {
        ranking: r.ranking_path.clone(),
        item_search: r.item_search_path.clone(),
        genre_search: r.genre_search_path.clone(),
        tag_search: r.tag_search_path.clone(),
    };
    cc.access_key_in = if r.access_key_in_query {
        rakuten_client::AccessKeyIn::Query
    } else {
        rakuten_client::AccessKeyIn::Header
    };
    cc.referer = r.referer.clone();
    cc.origin = r.origin.clone();
    cc.affiliate_id = affiliate_id;
    cc.format_version = r.format_version;
    cc.requests_per_second = r.requests_per_second;
    cc.max_attempts = r.max_attempts;
    cc.retry_base_delay = r.retry_base_delay;
    cc.timeout = r.timeout;
    match pacer {
        Some(p) => RakutenClient::with_pacer(cc, p),
        None => RakutenClient::new(cc),
    }
    .map_err(|e| ConfigError::new("RAKUTEN_*", e.to_string()).into())
}
