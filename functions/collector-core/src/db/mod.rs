//! PostgreSQL: connecting (plain or TLS), migrations and the run ledger.

mod connect;
pub mod lease;
pub mod ledger;
mod migrate;

pub use connect::{connect, ensure_database, Db, DbError};
pub use migrate::{migrate, MigrationReport};
