//! One connection per process (per Lambda cold start), plain or TLS.
//!
//! `sslmode=require` encrypts without checking the server certificate, as libpq does
//! for that mode; `sslmode=prefer` (tokio-postgres' default) tries TLS and falls back to
//! plain; `sslmode=disable` never uses TLS. Named prepared statements are used, so a
//! transaction-mode pooler (PgBouncer, Supabase port 6543) is not supported: use a
//! session-mode pooler or a direct connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::SslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::redact_db_error;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Invalid(String),
}

/// A live connection and where it points (host/port/database, no credentials).
pub struct Db {
    pub client: Client,
    pub target: String,
    pub tls: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("target", &self.target)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Connects and spawns the connection task. Errors name host, port and database, never the password.
pub async fn connect(url: &SecretString) -> Result<Db, DbError> {
    let raw = url.expose_secret();
    let mut config: tokio_postgres::Config = raw.parse().map_err(|e: tokio_postgres::Error| {
        DbError::Invalid(format!(
            "DATABASE_URL is not a valid PostgreSQL URL: {}",
            redact_db_error(&e.to_string(), raw)
        ))
    })?;
    if config.get_application_name().is_none() {
        config.application_name("ichiba-collector");
    }
    config.connect_timeout(std::time::Duration::from_secs(15));
    let target = describe(&config);
    let fail = |e: tokio_postgres::Error| DbError::Connect {
        target: target.clone(),
        detail: redact_db_error(&error_chain(&e), raw),
    };
    let (client, tls) = if config.get_ssl_mode() == SslMode::Disable {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(fail)?;
        spawn_connection(conn);
        (client, false)
    } else {
        let (client, conn) = config.connect(tls_connector()).await.map_err(fail)?;
        spawn_connection(conn);
        let tls = client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        (client, tls)
    };
    tracing::debug!(target = %target, tls, "connected to PostgreSQL");
    Ok(Db {
        client,
        target,
        tls,
    })
}

fn spawn_connection<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed with an error");
        }
    });
}

fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
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

/// Local convenience: creates the URL's database when the server says it does not exist
/// (SQLSTATE 3D000), connecting to the `postgres` maintenance database to do so.
pub async fn ensure_database(url: &SecretString) -> Result<bool, DbError> {
    let raw = url.expose_secret();
    let config: tokio_postgres::Config = raw.parse().map_err(|e: tokio_postgres::Error| {
        DbError::Invalid(redact_db_error(&e.to_string(), raw))
    })?;
    let Some(dbname) = config.get_dbname().map(str::to_string) else {
        return Ok(false);
    };
    match connect(url).await {
        Ok(_) => return Ok(false),
        Err(DbError::Connect { detail, .. }) if detail.contains("does not exist") => {}
        Err(e) => return Err(e),
    }
    let mut admin = config.clone();
    admin.dbname("postgres");
    let admin_err = |e: tokio_postgres::Error| DbError::Connect {
        target: describe(&admin),
        detail: redact_db_error(&error_chain(&e), raw),
    };
    let client = if config.get_ssl_mode() == SslMode::Disable {
        let (c, conn) = admin
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(admin_err)?;
        spawn_connection(conn);
        c
    } else {
        let (c, conn) = admin.connect(tls_connector()).await.map_err(admin_err)?;
        spawn_connection(conn);
        c
    };
    let quoted = format!("\"{}\"", dbname.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => Ok(true),
        // Another process created it first.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
