//! The Genre job's SQL: its targets, then binary COPY into a temporary staging table and
//! one merge that writes only genres whose content hash changed, and the refresh
//! bookkeeping (`etl_refresh`) for every genre saved.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::db::ledger::JobRun;
use crate::jobs::run_items::due_ids;
use crate::jobs::staging::{load_hashed, mark_refreshed, HashedTable};
use crate::jobs::{JobError, RowCounts};

/// One row of `rakuten_genres`. The hash covers every field here (not `saved_at`/`run_id`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GenreRow {
    pub genre_id: i64,
    pub name: String,
    pub english_name: Option<String>,
    pub level: i32,
    /// 0 for a level-1 genre.
    pub parent_id: i64,
    /// Root-first ancestors (root 0 excluded), then the genre itself.
    pub path_ids: Vec<i64>,
    pub path_names: Vec<String>,
}

/// The genre ids of run `run_id`'s items (> 0) not fetched within `refresh_days`, ascending.
pub async fn due_genres(
    client: &impl GenericClient,
    run_id: Uuid,
    refresh_days: u32,
) -> Result<Vec<i64>, JobError> {
    let ids = "i.genre_id AS id FROM rakuten_items i JOIN ranked USING (item_code)";
    due_ids(client, run_id, refresh_days, "genre", ids).await
}

const GENRES: HashedTable = HashedTable {
    table: "rakuten_genres",
    columns: &[
        ("genre_id", Type::INT8),
        ("name", Type::TEXT),
        ("english_name", Type::TEXT),
        ("level", Type::INT4),
        ("parent_id", Type::INT8),
        ("path_ids", Type::INT8_ARRAY),
        ("path_names", Type::TEXT_ARRAY),
    ],
    key: &["genre_id"],
};

fn genre_values(r: &GenreRow) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &r.genre_id,
        &r.name,
        &r.english_name,
        &r.level,
        &r.parent_id,
        &r.path_ids,
        &r.path_names,
    ]
}

/// Loads genre rows (one per id) observed at `at`; a genre whose hash is unchanged, or
/// that a later observation saved, is not rewritten.
pub async fn load_genres(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[GenreRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let counts = load_hashed(tx, &GENRES, rows, genre_values, job_run.run.run_id, at).await?;
    let keys: Vec<String> = rows.iter().map(|r| r.genre_id.to_string()).collect();
    mark_refreshed(tx, "genre", &keys, at).await?;
    Ok(counts)
}
