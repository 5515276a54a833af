//! Versioned migrations (refinery, files in the repository's `migrations/`), applied under
//! an advisory lock so two processes starting together do not race.

use tokio_postgres::Client;

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

pub async fn migrate(client: &mut Client) -> Result<MigrationReport, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = embedded::migrations::runner()
        .set_migration_table_name("etl_schema_history")
        .run_async(client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = result.map_err(|e| DbError::Migration(e.to_string()))?;
    let applied: Vec<String> = report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let current_version = client
        .query_opt("SELECT max(version) FROM etl_schema_history", &[])
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0));
    Ok(MigrationReport {
        applied,
        current_version,
    })
}
