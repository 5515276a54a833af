//! A Rakuten Ichiba API look-alike HTTP server for local runs, tests and benchmarks.
//!
//! Serves `IchibaItem/Ranking`, `IchibaItem/Search`, `IchibaGenre/Search` and
//! `IchibaTag/Search` under any product root (`/{root}/api/{Api}/{Op}/{version}`, including
//! the legacy `/services/api/...`) from a synthetic data set that is fully determined by
//! [`SandboxConfig::seed`] and the sizes. The wire format follows the recorded real
//! responses: formatVersion 1 wrappers, string/number quirks, error bodies.
//!
//! Per request, in this order: latency sleep, route (unknown → 404), credentials, rate limit
//! per `applicationId`, injected 5xx, the answer (400/404 for bad parameters, else 200,
//! possibly with a malformed body).
//!
//! Extra routes: `GET /__sandbox/health` → `ok`, `GET /__sandbox/stats` → [`SandboxStats`]
//! as JSON (no credentials needed, not counted in the stats).

mod data;
mod server;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use data::{
    today_jst, Dataset, Genre, Item, Tag, TagGroup, MAX_RANK, RANKING_MAX_PAGE, RANKING_PAGE_SIZE,
};

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Seed of the data set and of the fault draws. Default 42.
    pub seed: u64,
    /// Genres in the tree below the root (levels 1..=3); the root (id 0) comes on top. Default 120.
    pub genres: usize,
    /// Default 3000.
    pub items: usize,
    /// Tags, in groups of ~10. Default 400.
    pub tags: usize,
    /// The one valid access key. Default `pk_sandbox`.
    pub access_key: String,
    /// Requests per second per `applicationId` (burst 1); `None` = unlimited. Default `Some(1.0)`.
    pub rate_limit_per_sec: Option<f64>,
    /// Fraction of authorised, in-budget requests answered 500 or 503. Default 0.
    pub error_rate: f64,
    /// How `error_rate` and `malformed_rate` are drawn. Default [`ErrorMode::Transient`].
    pub error_mode: ErrorMode,
    /// Fraction of 200 answers whose body is cut short (invalid JSON). Default 0.
    pub malformed_rate: f64,
    /// Added to every answer. Default 0.
    pub latency: Duration,
    /// `YYYY-MM-DD` driving the daily ranking order; `None` = today in JST.
    pub date: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 42,
            genres: 120,
            items: 3000,
            tags: 400,
            access_key: "pk_sandbox".to_string(),
            rate_limit_per_sec: Some(1.0),
            error_rate: 0.0,
            error_mode: ErrorMode::Transient,
            malformed_rate: 0.0,
            latency: Duration::ZERO,
            date: None,
        }
    }
}

/// How injected faults (5xx and malformed bodies) are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorMode {
    /// Each request draws independently (from a seeded sequence), so a retry may succeed.
    #[default]
    Transient,
    /// Decided by a hash of (seed, `Api/Op/version`, query parameters except
    /// `applicationId`, `accessKey` and `formatVersion`): the same unit fails on every retry.
    Persistent,
}

/// Counters since start. The categories are disjoint:
/// `requests = ok + rate_limited + server_errors + malformed + client_errors`.
/// `/__sandbox/*` requests are not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SandboxStats {
    pub requests: u64,
    /// 200 with a well-formed body.
    pub ok: u64,
    /// 429s sent.
    pub rate_limited: u64,
    /// Injected 500/503s.
    pub server_errors: u64,
    /// 200 with a cut-short body.
    pub malformed: u64,
    /// 400/403/404.
    pub client_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("date must be YYYY-MM-DD, got {0:?}")]
    InvalidDate(String),
    #[error("{0} must be between 0 and 1, got {1}")]
    InvalidRate(&'static str, f64),
}

impl SandboxConfig {
    /// Check the values `start` relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(d) = &self.date {
            if data::parse_date(d).is_none() {
                return Err(ConfigError::InvalidDate(d.clone()));
            }
        }
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::InvalidRate(name, rate));
            }
        }
        Ok(())
    }
}

/// The data set a sandbox started with `config` serves (same seed and sizes → same data).
pub fn dataset(config: &SandboxConfig) -> Dataset {
    Dataset::generate(config)
}

pub struct Sandbox;

impl Sandbox {
    /// Serve on 127.0.0.1 with a free port.
    pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Serve on `addr` in a spawned task. Dropping the handle shuts the server down.
    pub async fn start_on(
        config: SandboxConfig,
        addr: SocketAddr,
    ) -> std::io::Result<SandboxHandle> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let dataset = Arc::new(Dataset::generate(&config));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(server::Counters::default());
        let state = Arc::new(server::AppState::new(
            config,
            dataset.clone(),
            stats.clone(),
        ));
        let app = server::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "rakuten sandbox server failed");
            }
        });
        let handle = SandboxHandle {
            addr,
            shutdown: Some(tx),
            join: Some(join),
            stats,
            dataset,
        };
        tracing::info!(base_url = %handle.base_url(), "rakuten sandbox listening");
        Ok(handle)
    }
}

pub struct SandboxHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<server::Counters>,
    dataset: Arc<Dataset>,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> SandboxStats {
        self.stats.snapshot()
    }

    /// The data set being served.
    pub fn dataset(&self) -> Arc<Dataset> {
        self.dataset.clone()
    }

    /// Stop accepting, let in-flight requests finish (at most 5 s), then return.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Serve until ctrl-c (then shut down gracefully) or until the server stops.
    pub async fn wait(mut self) {
        let Some(mut join) = self.join.take() else {
            return;
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot listen for ctrl-c");
                    let _ = (&mut join).await;
                    return;
                }
                tracing::info!("ctrl-c: rakuten sandbox shutting down");
                self.join = Some(join);
                self.stop().await;
            }
            _ = &mut join => {}
        }
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut join) = self.join.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut join)
                .await
                .is_err()
            {
                join.abort();
            }
        }
    }
}
