//! Connecting (plain or TLS) with bounded waits, and creating the local database.
//!
//! `sslmode=require` encrypts without checking the server certificate, as libpq does
//! for that mode; `sslmode=prefer` (tokio-postgres' default) tries TLS and falls back to
//! plain; `sslmode=disable` never uses TLS. Named prepared statements are used, so a
//! transaction-mode pooler (PgBouncer, Supabase port 6543) is not supported: use a
//! session-mode pooler or a direct connection.
//!
//! TCP hosts are connected here (not by tokio-postgres) so the socket gets keep-alive,
//! `TCP_USER_TIMEOUT` and the [`super::watchdog`]. Multiple hosts are tried in order;
//! `hostaddr`, `target_session_attrs` and `load_balance_hosts` are not honoured. A Unix
//! socket host goes through tokio-postgres' own connect (bounded, but without watchdog).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{describe, error_chain, DbError, DbFutureExt};
use super::watchdog::Watched;
use crate::config::{redact_db_error, DatabaseSettings};

static SETTINGS: RwLock<Option<DatabaseSettings>> = RwLock::new(None);

/// Sets the process's database timeouts (what [`connect`] and [`DbFutureExt::bounded`]
/// use). Without a call they come from the `DATABASE_*_SECS` variables of the process
/// environment, read once (invalid values: the defaults, with a warning — `Config`
/// rejects them at start-up anyway).
pub fn configure(settings: DatabaseSettings) {
    *SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(settings);
}

/// The process's database timeouts (see [`configure`]).
pub fn settings() -> DatabaseSettings {
    if let Some(s) = *SETTINGS.read().unwrap_or_else(|e| e.into_inner()) {
        return s;
    }
    let vars = std::env::vars().collect();
    let from_env = DatabaseSettings::from_map(&vars).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "using the default database timeouts");
        DatabaseSettings::default()
    });
    *SETTINGS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(from_env)
}

/// A live connection and where it points (host/port/database, no credentials).
pub struct Db {
    pub client: Client,
    pub target: String,
    pub tls: bool,
    settings: DatabaseSettings,
    closed: Arc<Mutex<Option<String>>>,
    task: tokio::task::AbortHandle,
    given_up: AtomicBool,
}

impl Db {
    /// Gives the connection up now (e.g. after [`DbError::Timeout`]): the connection task
    /// ends, waiting calls fail, and [`Db::is_closed`] is true from this call on.
    pub fn close(&self) {
        self.given_up.store(true, Ordering::SeqCst);
        self.task.abort();
    }

    /// The connection is gone (server, network, watchdog) or was given up with
    /// [`Db::close`]: connect again instead of using it.
    pub fn is_closed(&self) -> bool {
        self.given_up.load(Ordering::SeqCst) || self.client.is_closed()
    }

    /// The timeouts this connection was made with.
    pub fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }

    /// The client-side bound on a request of this connection
    /// (`statement_timeout` + 5 s): `fut.bounded_by(what, db.query_bound())`.
    pub fn query_bound(&self) -> Duration {
        self.settings.query_bound()
    }

    /// Why the connection ended, when it ended with an error (e.g. the watchdog's
    /// "PostgreSQL sent nothing for 125 s after a request ...").
    pub fn closed_reason(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("target", &self.target)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Connects with the process's timeouts ([`settings`]) and spawns the connection task.
/// Errors name host, port and database, never the password.
pub async fn connect(url: &SecretString) -> Result<Db, DbError> {
    connect_with(url, &settings()).await
}

/// Connects with the given timeouts.
pub async fn connect_with(url: &SecretString, settings: &DatabaseSettings) -> Result<Db, DbError> {
    let raw = url.expose_secret();
    let config = parse(raw)?;
    connect_config(config, settings, raw).await
}

fn parse(raw: &str) -> Result<tokio_postgres::Config, DbError> {
    raw.parse().map_err(|e: tokio_postgres::Error| {
        DbError::Invalid(format!(
            "DATABASE_URL is not a valid PostgreSQL URL: {}",
            redact_db_error(&e.to_string(), raw)
        ))
    })
}

/// Why establishing failed, before it becomes a [`DbError::Connect`].
struct Failure {
    detail: String,
    code: Option<SqlState>,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        let detail = if e.as_db_error().is_some() {
            describe(&e)
        } else {
            error_chain(&e)
        };
        Failure {
            detail,
            code: e.code().cloned(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            detail: error_chain(&e),
            code: None,
        }
    }
}

async fn connect_config(
    mut config: tokio_postgres::Config,
    settings: &DatabaseSettings,
    raw: &str,
) -> Result<Db, DbError> {
    if config.get_application_name().is_none() {
        config.application_name("ichiba-collector");
    }
    // For the Unix-socket path, which tokio-postgres connects itself.
    config
        .connect_timeout(settings.connect_timeout)
        .keepalives(true)
        .keepalives_idle(settings.keepalive);
    let target = target_of(&config);
    match tokio::time::timeout(settings.connect_timeout, establish(&config, settings)).await {
        Err(_elapsed) => Err(DbError::ConnectTimeout {
            target,
            after: settings.connect_timeout,
        }),
        Ok(Err(f)) => Err(DbError::Connect {
            target,
            detail: redact_db_error(&f.detail, raw),
            code: f.code,
        }),
        Ok(Ok(Established {
            client,
            tls,
            closed,
            task,
        })) => {
            tracing::debug!(target = %target, tls, "connected to PostgreSQL");
            Ok(Db {
                client,
                target,
                tls,
                settings: *settings,
                closed,
                task,
                given_up: AtomicBool::new(false),
            })
        }
    }
}

struct Established {
    client: Client,
    tls: bool,
    closed: Arc<Mutex<Option<String>>>,
    task: tokio::task::AbortHandle,
}

async fn establish(
    config: &tokio_postgres::Config,
    settings: &DatabaseSettings,
) -> Result<Established, Failure> {
    let closed = Arc::new(Mutex::new(None));
    let plain = config.get_ssl_mode() == SslMode::Disable;
    let (client, task) = match tcp_hosts(config) {
        Some(hosts) => {
            let mut last = None;
            let mut client = None;
            for (host, port) in hosts {
                match connect_tcp(config, &host, port, settings, &closed).await {
                    Ok(c) => {
                        client = Some(c);
                        break;
                    }
                    Err(f) => last = Some(f),
                }
            }
            match (client, last) {
                (Some(c), _) => c,
                (None, Some(f)) => return Err(f),
                (None, None) => unreachable!("tcp_hosts is never empty"),
            }
        }
        None if plain => {
            let (c, conn) = config.connect(tokio_postgres::NoTls).await?;
            (c, spawn_connection(conn, closed.clone()))
        }
        None => {
            let (c, conn) = config.connect(tls_connector()).await?;
            (c, spawn_connection(conn, closed.clone()))
        }
    };
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            settings.statement_timeout.as_millis()
        ))
        .await?;
    let tls = if plain {
        false
    } else {
        client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
    };
    Ok(Established {
        client,
        tls,
        closed,
        task,
    })
}

/// Host/port pairs when every host is a TCP host (tokio-postgres' pairing rules).
fn tcp_hosts(config: &tokio_postgres::Config) -> Option<Vec<(String, u16)>> {
    let hosts = config.get_hosts();
    let ports = config.get_ports();
    if hosts.is_empty() {
        return None;
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = match ports.len() {
                0 => 5432,
                1 => ports[0],
                _ => *ports.get(i)?,
            };
            match h {
                Host::Tcp(name) => Some((name.clone(), port)),
                #[cfg(unix)]
                Host::Unix(_) => None,
            }
        })
        .collect()
}

async fn connect_tcp(
    config: &tokio_postgres::Config,
    host: &str,
    port: u16,
    settings: &DatabaseSettings,
    closed: &Arc<Mutex<Option<String>>>,
) -> Result<(Client, tokio::task::AbortHandle), Failure> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| Failure {
            detail: format!("{host}:{port}: {}", error_chain(&e)),
            code: None,
        })?;
    stream.set_nodelay(true)?;
    set_keepalive(&stream, settings.keepalive)?;
    // A second after the bound `bounded` calls use, so they report first, by name.
    let stream = Watched::new(stream, settings.query_bound() + Duration::from_secs(1));
    if config.get_ssl_mode() == SslMode::Disable {
        let (client, conn) = config.connect_raw(stream, tokio_postgres::NoTls).await?;
        Ok((client, spawn_connection(conn, closed.clone())))
    } else {
        let tls = match MakeTlsConnect::<Watched<TcpStream>>::make_tls_connect(
            &mut tls_connector(),
            host,
        ) {
            Ok(tls) => tls,
            Err(never) => match never {},
        };
        let (client, conn) = config.connect_raw(stream, tls).await?;
        Ok((client, spawn_connection(conn, closed.clone())))
    }
}

/// Keep-alive probes after `idle` of silence, every third of it, three unanswered
/// probes end the connection; unacknowledged data does after twice `idle` (Linux).
fn set_keepalive(stream: &TcpStream, idle: Duration) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    #[allow(unused_mut)]
    let mut keepalive = socket2::TcpKeepalive::new().with_time(idle);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        keepalive = keepalive
            .with_interval((idle / 3).max(Duration::from_secs(1)))
            .with_retries(3);
    }
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(idle * 2))?;
    Ok(())
}

fn spawn_connection<F>(conn: F, closed: Arc<Mutex<Option<String>>>) -> tokio::task::AbortHandle
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            let reason = error_chain(&e);
            tracing::warn!(error = %reason, "PostgreSQL connection closed with an error");
            *closed.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        }
    })
    .abort_handle()
}

fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("?"))
}

fn tls_connector() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("rustls default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// libpq's `sslmode=require`: the channel is encrypted, the certificate is not checked
/// (Supabase and RDS present certificates of their own CAs). Handshake signatures are
/// still verified so the session keys belong to the presented certificate.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Arbitrary constant: the advisory-lock key (on the `postgres` database) that serialises
/// first-use database creation.
const CREATE_DATABASE_LOCK_KEY: i64 = 0x1c4b_a002;

/// Local convenience: creates the URL's database when the server says it does not exist
/// (SQLSTATE 3D000), connecting to the `postgres` maintenance database to do so. Returns
/// whether this call created it. Race-free: creators on one server take an advisory lock
/// and look again; a creator that does not (an older version) surfaces as 42P04 or as
/// 23505 on `pg_database`, both taken as "someone else created it".
pub async fn ensure_database(url: &SecretString) -> Result<bool, DbError> {
    let raw = url.expose_secret();
    let config = parse(raw)?;
    let Some(dbname) = config.get_dbname().map(str::to_string) else {
        return Ok(false);
    };
    let settings = settings();
    match connect_config(config.clone(), &settings, raw).await {
        Ok(_) => return Ok(false),
        Err(DbError::Connect {
            code: Some(code), ..
        }) if code == SqlState::INVALID_CATALOG_NAME => {}
        Err(e) => return Err(e),
    }
    let mut admin = config;
    admin.dbname("postgres");
    let db = connect_config(admin, &settings, raw).await?;
    let bound = db.query_bound();
    db.client
        .execute("SELECT pg_advisory_lock($1)", &[&CREATE_DATABASE_LOCK_KEY])
        .bounded_by("waiting for the database-creation lock", bound)
        .await?;
    let created = create_database(&db, &dbname).await;
    // Ending the session releases the lock too, should this fail.
    let _ = db
        .client
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&CREATE_DATABASE_LOCK_KEY],
        )
        .bounded_by("releasing the database-creation lock", bound)
        .await;
    if matches!(created, Ok(true)) {
        tracing::info!(database = %dbname, "created the database");
    }
    created
}

async fn create_database(db: &Db, dbname: &str) -> Result<bool, DbError> {
    let bound = db.query_bound();
    let exists = db
        .client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
        .bounded_by("looking for the database", bound)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", dbname.replace('"', "\"\""));
    match db
        .client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .bounded_by(format!("creating database {quoted}"), bound)
        .await
    {
        Ok(()) => Ok(true),
        // Another process created it first.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
