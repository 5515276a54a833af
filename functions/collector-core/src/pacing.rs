//! The request budget shared through PostgreSQL by every process that uses one Rakuten
//! application ID — Genre and Tag running at the same time in two Lambdas, a manual
//! rerun overlapping a scheduled run, or two jobs in one local process.
//!
//! Right before each request a process claims the budget (`etl_rate_slots`, one row per
//! application ID, keyed by a hash of it) with one atomic UPDATE that succeeds only when
//! the last claim is at least `1 / RAKUTEN_REQUESTS_PER_SECOND` old on the database
//! server's clock; otherwise it sleeps until then and tries again. Claiming immediately
//! before sending (rather than booking a future slot and sleeping towards it) means a
//! process that wakes late cannot squeeze the next request in behind it: consecutive
//! requests of all claimants together stay at least one interval apart. If the database
//! cannot be reached the pacer logs a warning and falls back to the process-local
//! limiter alone (the client always applies that one too).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rakuten_client::Pacer;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::db::{self, Db};

pub struct PgPacer {
    database_url: SecretString,
    budget_key: String,
    interval: Duration,
    conn: Mutex<Option<Arc<Db>>>,
}

impl PgPacer {
    pub fn new(
        database_url: SecretString,
        application_id: &SecretString,
        requests_per_second: f64,
    ) -> Self {
        let digest = Sha256::digest(application_id.expose_secret().as_bytes());
        Self {
            database_url,
            budget_key: format!("app-{}", &hex::encode(digest)[..16]),
            interval: Duration::from_secs_f64(1.0 / requests_per_second),
            conn: Mutex::new(None),
        }
    }

    pub fn budget_key(&self) -> &str {
        &self.budget_key
    }

    async fn connection(&self) -> Result<Arc<Db>, db::DbError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(db::connect(&self.database_url).await?);
        *guard = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Tries to claim the budget now; `None` when claimed, else how long until it may be.
    async fn try_claim(&self) -> Result<Option<Duration>, db::DbError> {
        let conn = self.connection().await?;
        let secs = self.interval.as_secs_f64();
        let row = conn
            .client
            .query_one(
                "WITH seed AS (
                     INSERT INTO etl_rate_slots (budget_key, last_sent_at) VALUES ($1, 'epoch')
                     ON CONFLICT (budget_key) DO NOTHING
                 ), claim AS (
                     UPDATE etl_rate_slots SET last_sent_at = clock_timestamp()
                     WHERE budget_key = $1 AND last_sent_at <= clock_timestamp() - make_interval(secs => $2)
                     RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM claim),
                        coalesce(extract(epoch FROM (SELECT last_sent_at FROM etl_rate_slots WHERE budget_key = $1)
                                 + make_interval(secs => $2) - clock_timestamp())::float8, 0)",
                &[&self.budget_key, &secs],
            )
            .await?;
        if row.get::<_, bool>(0) {
            return Ok(None);
        }
        Ok(Some(Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0))))
    }

    async fn claim(&self) -> Result<(), db::DbError> {
        loop {
            match self.try_claim().await? {
                None => return Ok(()),
                // A little jitter so claimants woken together do not collide again.
                Some(wait) => {
                    let jitter = Duration::from_millis(rand::random::<u64>() % 5 + 1);
                    tokio::time::sleep(wait + jitter).await;
                }
            }
        }
    }
}

impl Pacer for PgPacer {
    fn wait(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            match self.claim().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "shared request budget unavailable; pacing within this process only")
                }
            }
        })
    }
}
