//! [`DbError`]: what failed, where, and the server's own words; and the two extension
//! traits that add the "where" ([`DbResultExt::context`]) and the bound on a wait
//! ([`DbFutureExt::bounded`]).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::sqlstate::condition_name;

/// A PostgreSQL failure. Every message names what was being done when one was given,
/// and for server errors the SQLSTATE, its condition name, the server's message, detail
/// and hint: `database error while loading staging: ERROR 23505 unique_violation:
/// duplicate key value violates unique constraint "x" (detail: Key (id)=(1) already exists.)`.
/// Credentials never appear (connection errors are redacted).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed (refused, DNS, TLS, authentication, no such database, ...).
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect {
        /// host:port/database, no credentials.
        target: String,
        detail: String,
        /// The server's SQLSTATE when the server refused (e.g. 3D000, 28P01).
        code: Option<SqlState>,
    },
    /// Connecting did not finish within `DATABASE_CONNECT_TIMEOUT_SECS`.
    #[error("cannot connect to PostgreSQL at {target}: no answer within {} (DATABASE_CONNECT_TIMEOUT_SECS); the server is down, frozen or unreachable", secs(.after))]
    ConnectTimeout { target: String, after: Duration },
    /// A request failed and the caller said nothing about what it was doing
    /// (`?` on a `tokio_postgres::Error`).
    #[error("database error: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// A request failed while doing `context` (see [`DbResultExt::context`]).
    #[error("database error while {context}: {}", describe(.source))]
    Failed {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server did not answer within the client-side bound
    /// (`DATABASE_STATEMENT_TIMEOUT_SECS` + 5 s grace); see [`DbFutureExt::bounded`].
    #[error("database timeout while {context}: PostgreSQL did not answer within {} (DATABASE_STATEMENT_TIMEOUT_SECS + 5 s grace); the server is frozen, overloaded or unreachable", secs(.after))]
    Timeout { context: String, after: Duration },
    /// A migration (or the migration bookkeeping) failed.
    #[error("migration failed while {context}: {detail}")]
    Migration {
        /// The migration's name, e.g. `V3__snapshots`, when one was being applied.
        migration: Option<String>,
        /// What was being done, e.g. `applying migration V3__snapshots`.
        context: String,
        /// The server's error as [`DbError`] formats it (SQLSTATE, message, detail, hint).
        detail: String,
        code: Option<SqlState>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl DbError {
    /// The server's SQLSTATE, when the server answered with an error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Query(e) | DbError::Failed { source: e, .. } => e.code(),
            DbError::Connect { code, .. } | DbError::Migration { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    /// What was being done, when the caller said.
    pub fn context(&self) -> Option<&str> {
        match self {
            DbError::Failed { context, .. }
            | DbError::Timeout { context, .. }
            | DbError::Migration { context, .. } => Some(context),
            _ => None,
        }
    }

    /// A wait ran into its bound (connect or request).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            DbError::Timeout { .. } | DbError::ConnectTimeout { .. }
        )
    }

    /// The connection is (or may be) unusable: connect failures, timeouts, a closed or
    /// broken connection, the server shutting down (SQLSTATE classes 08 and 57P).
    /// An idempotent step that failed this way may be retried once on a new connection.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Connect { .. } | DbError::ConnectTimeout { .. } | DbError::Timeout { .. } => {
                true
            }
            DbError::Query(e) | DbError::Failed { source: e, .. } => connection_lost(e),
            DbError::Migration { code, .. } => code.as_ref().is_some_and(lost_code),
            DbError::Invalid(_) => false,
        }
    }

    /// Adds what was being done to an error that does not say yet.
    pub fn with_context(self, what: impl Into<String>) -> DbError {
        match self {
            DbError::Query(source) => DbError::Failed {
                context: what.into(),
                source,
            },
            other => other,
        }
    }
}

/// `7 s`, `0.5 s`.
fn secs(d: &Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn lost_code(code: &SqlState) -> bool {
    code.code().starts_with("08") || code.code().starts_with("57P")
}

fn connection_lost(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => lost_code(code),
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

/// One line for a tokio-postgres error: `ERROR 23505 unique_violation: message (detail:
/// ...) (hint: ...)` for server errors, the error chain otherwise.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut out = format!("{} {code}", db.severity());
        if let Some(name) = condition_name(code) {
            out.push(' ');
            out.push_str(name);
        }
        out.push_str(": ");
        out.push_str(db.message());
        if let Some(detail) = db.detail() {
            out.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            out.push_str(&format!(" (hint: {hint})"));
        }
        if *db.code() == SqlState::QUERY_CANCELED && db.message().contains("statement timeout") {
            out.push_str(" (DATABASE_STATEMENT_TIMEOUT_SECS)");
        }
        return out;
    }
    if e.is_closed() {
        return "the connection to PostgreSQL is closed (the server closed it or died, the network \
                failed, or it did not answer within DATABASE_STATEMENT_TIMEOUT_SECS + 5 s)"
            .into();
    }
    error_chain(e)
}

/// `error: source: source ...`, skipping a source whose text the previous one already shows.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Adds what was being done to a failed database call:
/// `tx.execute(sql, &[]).await.context("loading rakuten_rankings")?`.
pub trait DbResultExt<T> {
    /// `what` reads after "while": "loading staging", "applying migration V3".
    fn context(self, what: impl Into<String>) -> Result<T, DbError>;
    /// As [`DbResultExt::context`], the text built only on failure.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, DbError>;
}

impl<T> DbResultExt<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: impl Into<String>) -> Result<T, DbError> {
        self.map_err(|source| DbError::Failed {
            context: what.into(),
            source,
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, DbError> {
        self.map_err(|source| DbError::Failed {
            context: what().into(),
            source,
        })
    }
}

impl<T> DbResultExt<T> for Result<T, DbError> {
    fn context(self, what: impl Into<String>) -> Result<T, DbError> {
        self.map_err(|e| e.with_context(what))
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, DbError> {
        self.map_err(|e| e.with_context(what()))
    }
}

/// Bounds a database call and names it:
/// `client.query(sql, &[]).bounded("loading staging").await?`.
///
/// The call fails with [`DbError::Timeout`] when the server has not answered within the
/// process's bound (`DATABASE_STATEMENT_TIMEOUT_SECS` + 5 s, see [`super::settings`]), and
/// with [`DbError::Failed`] naming `what` on any other failure. Works on every future
/// that yields `Result<T, tokio_postgres::Error>`: `Client` and `Transaction` methods,
/// `transaction()`, `commit()`, `copy_in`, `GenericClient` calls.
pub trait DbFutureExt<T>: Future<Output = Result<T, tokio_postgres::Error>> + Sized {
    /// Bounded by the process's configured bound.
    fn bounded(self, what: impl Into<Cow<'static, str>>) -> Bounded<Self> {
        self.bounded_by(what, super::settings().query_bound())
    }

    /// Bounded by `limit` (e.g. [`super::Db::query_bound`] of the connection used).
    fn bounded_by(self, what: impl Into<Cow<'static, str>>, limit: Duration) -> Bounded<Self> {
        Bounded {
            inner: Box::pin(tokio::time::timeout(limit, self)),
            what: Some(what.into()),
            limit,
        }
    }
}

impl<T, F> DbFutureExt<T> for F where F: Future<Output = Result<T, tokio_postgres::Error>> {}

/// The future [`DbFutureExt::bounded`] returns. `Send` when the wrapped future is.
#[must_use = "futures do nothing unless awaited"]
pub struct Bounded<F> {
    inner: Pin<Box<tokio::time::Timeout<F>>>,
    what: Option<Cow<'static, str>>,
    limit: Duration,
}

impl<T, F> Future for Bounded<F>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    type Output = Result<T, DbError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = match self.inner.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(out) => out,
        };
        let what = self.what.take().unwrap_or_default().into_owned();
        Poll::Ready(match out {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(DbError::Failed {
                context: what,
                source,
            }),
            Err(_elapsed) => Err(DbError::Timeout {
                context: what,
                after: self.limit,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_never_answers_is_a_named_timeout() {
        let never = std::future::pending::<Result<(), tokio_postgres::Error>>();
        let err = never
            .bounded_by("loading staging", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(err.is_timeout() && err.is_connection_lost());
        assert_eq!(err.context(), Some("loading staging"));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "database timeout while loading staging: PostgreSQL did not answer within 0.1 s"
            ),
            "{text}"
        );
        assert!(text.contains("DATABASE_STATEMENT_TIMEOUT_SECS"), "{text}");
    }

    #[tokio::test]
    async fn an_answer_passes_through() {
        let ready = async { Ok::<_, tokio_postgres::Error>(5) };
        assert_eq!(ready.bounded("adding").await.unwrap(), 5);
    }

    #[tokio::test]
    async fn bounded_futures_stay_send() {
        fn is_send<T: Send>(_: &T) {}
        let f = async { Ok::<_, tokio_postgres::Error>(()) }.bounded("x");
        is_send(&f);
    }

    #[test]
    fn context_applies_once() {
        let e = DbError::Invalid("bad".into()).with_context("x");
        assert_eq!(e.to_string(), "bad");
        let r: Result<(), DbError> = Err(DbError::Timeout {
            context: "first".into(),
            after: Duration::from_secs(1),
        });
        assert_eq!(r.context("second").unwrap_err().context(), Some("first"));
    }
}
