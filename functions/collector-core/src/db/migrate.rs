//! Versioned migrations (refinery, files in the repository's `migrations/`), applied under
//! an advisory lock so two processes starting together do not race.
//!
//! A failure names the migration and carries the server's error as [`DbError`] shows it:
//! `migration failed while applying migration V2__item_genre_tag: ERROR 42P07
//! duplicate_table: relation "rakuten_items" already exists`.

use refinery::error::Kind;
use tokio_postgres::Client;

use super::error::{describe, error_chain, DbFutureExt};
use super::DbError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Arbitrary constant: the advisory-lock key that serialises migration runs.
const MIGRATION_LOCK_KEY: i64 = 0x1c4b_a001;

#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub current_version: Option<i32>,
}

/// The schema version a database has (None: never migrated) and the newest this build
/// carries, without applying anything.
pub async fn schema_status(client: &Client) -> Result<(Option<i32>, i32), DbError> {
    let latest = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0);
    let migrated: bool = client
        .query_one("SELECT to_regclass('etl_schema_history') IS NOT NULL", &[])
        .bounded("looking for the schema history")
        .await?
        .get(0);
    if !migrated {
        return Ok((None, latest));
    }
    let current = client
        .query_one("SELECT max(version) FROM etl_schema_history", &[])
        .bounded("reading the schema version")
        .await?
        .get::<_, Option<i32>>(0);
    Ok((current, latest))
}

/// Applies the pending migrations. Waiting for another process's migrations is bounded by
/// `DATABASE_STATEMENT_TIMEOUT_SECS`; each migration statement is too (server side), and
/// a server that stops answering ends the connection (see `db`'s docs).
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .bounded("waiting for the migration lock")
        .await?;
    let result = embedded::migrations::runner()
        .set_migration_table_name("etl_schema_history")
        .run_async(client)
        .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .bounded("releasing the migration lock")
        .await;
    let report = result.map_err(migration_error)?;
    unlocked?;
    let applied: Vec<String> = report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let current_version = client
        .query_opt("SELECT max(version) FROM etl_schema_history", &[])
        .bounded("reading the schema version")
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0));
    Ok(MigrationReport {
        applied,
        current_version,
    })
}

fn migration_error(e: refinery::Error) -> DbError {
    match e.kind() {
        // refinery's messages: "error applying migration V2__x", "error asserting
        // migrations table", ...
        Kind::Connection(message, source) => {
            let context = message
                .strip_prefix("error ")
                .unwrap_or(message)
                .to_string();
            let migration = context
                .strip_prefix("applying migration ")
                .map(str::to_string);
            let (detail, code) = match source.downcast_ref::<tokio_postgres::Error>() {
                Some(pg) => (describe(pg), pg.code().cloned()),
                None => (error_chain(source.as_ref()), None),
            };
            DbError::Migration {
                migration,
                context,
                detail,
                code,
            }
        }
        other => DbError::Migration {
            migration: None,
            context: "checking the migrations against the schema history".into(),
            detail: other.to_string(),
            code: None,
        },
    }
}
