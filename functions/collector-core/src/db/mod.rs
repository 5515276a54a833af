//! PostgreSQL: connecting (plain or TLS), migrations and the run ledger.
//!
//! # Bounded waits
//!
//! Every wait on the server is bounded, so a dead or frozen server is an error, not a
//! stall (the `DATABASE_*_SECS` variables, see `config::DatabaseSettings`):
//!
//! - **Connecting** — TCP, TLS, start-up, authentication and session set-up together —
//!   gives up after `DATABASE_CONNECT_TIMEOUT_SECS` (default 10):
//!   [`DbError::ConnectTimeout`].
//! - **Statements**: every session runs with `statement_timeout` =
//!   `DATABASE_STATEMENT_TIMEOUT_SECS` (default 120); the server cancels a longer statement
//!   with SQLSTATE 57014.
//! - **Dead peers**: TCP keep-alive after `DATABASE_KEEPALIVE_SECS` (default 30) of
//!   silence, probes every third of it, three misses end the connection; on Linux
//!   `TCP_USER_TIMEOUT` (twice it) ends a connection whose sent data goes unacknowledged.
//! - **Frozen servers** (SIGSTOP, a hung host whose kernel still ACKs) defeat both of
//!   those, so the client bounds each request at `statement_timeout` + 5 s
//!   ([`crate::config::DatabaseSettings::query_bound`]), in two ways:
//!   1. [`DbFutureExt::bounded`] on a call — `client.query(sql, &[]).bounded("loading
//!      staging").await?` — fails it with [`DbError::Timeout`] naming what was being done.
//!      Use it on every call in job code: it works on any future yielding
//!      `Result<T, tokio_postgres::Error>` (`Client`, `Transaction`, `GenericClient`
//!      methods, `transaction()`, `commit()`, `copy_in`, `CopyInSink::finish`).
//!   2. A watchdog under every TCP connection (`watchdog.rs`) ends the connection when
//!      a request has gone unanswered for the bound + 1 s, so calls that are *not*
//!      wrapped fail too ("connection closed"), `Client::is_closed()` turns true and the
//!      next connect starts afresh. [`Db::closed_reason`] says why it ended.
//!
//! After a [`DbError::Timeout`] (or any error where [`DbError::is_connection_lost`]),
//! give the connection up with [`Db::close`] and connect again; reuse decisions should
//! test [`Db::is_closed`] (true at once after `close`, and once the watchdog, the server
//! or the network ended the connection), not only `Client::is_closed`.
//!
//! The bound comes from the process settings ([`settings`], [`configure`]; by default
//! read from the environment) or, with [`DbFutureExt::bounded_by`], from the
//! connection: `fut.bounded_by("what", db.query_bound())`.
//!
//! # Clear errors
//!
//! [`DbError`] says what was being done and, for server errors, the SQLSTATE, its
//! condition name, the server's message, detail and hint. `?` on a
//! `tokio_postgres::Error` still works ([`DbError::Query`], no context);
//! [`DbResultExt::context`] adds one to a finished call, [`DbFutureExt::bounded`] to a
//! pending one. [`DbError::is_connection_lost`] tells a caller that a retry on a new
//! connection may help.

mod connect;
mod error;
pub mod history;
pub mod lease;
pub mod ledger;
mod migrate;
pub mod retention;
mod shared;
mod sqlstate;
mod watchdog;

pub use connect::{configure, connect, connect_with, ensure_database, settings, Db};
pub use error::{describe, Bounded, DbError, DbFutureExt, DbResultExt};
pub use migrate::{migrate, schema_status, MigrationReport};
pub use shared::{DbGuard, SharedDb};
pub use sqlstate::condition_name;
