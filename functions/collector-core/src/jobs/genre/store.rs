//! The Genre job's SQL: its targets, then binary COPY into a temporary staging table and
//! one merge that writes only genres whose content hash changed, and the refresh
//! bookkeeping (`etl_refresh`) for every genre saved.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::db::ledger::JobRun;
use crate::jobs::run_items::RANKED_ITEMS_CTE;
use crate::jobs::staging::{copy_into_stage, hash_of, mark_refreshed, merge_counts};
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
    let days = refresh_days as i32;
    let rows = client
        .query(
            &format!(
                "WITH {RANKED_ITEMS_CTE}
                 SELECT DISTINCT i.genre_id
                 FROM rakuten_items i JOIN ranked USING (item_code)
                 WHERE i.genre_id > 0
                   AND NOT EXISTS (
                       SELECT 1 FROM etl_refresh f
                       WHERE f.entity = 'genre' AND f.key = i.genre_id::text
                         AND f.checked_at > now() - make_interval(days => $2))
                 ORDER BY 1"
            ),
            &[&run_id, &days],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

const GENRE_COLUMNS: &str =
    "genre_id, name, english_name, level, parent_id, path_ids, path_names, content_hash, saved_at, run_id";

/// Loads genre rows (one per id) observed at `at`; a genre whose hash is unchanged, or
/// that a later observation saved, is not rewritten.
pub async fn load_genres(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[GenreRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let now = at;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::INT8,
        Type::INT8_ARRAY,
        Type::TEXT_ARRAY,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::UUID,
    ];
    let mut writer =
        copy_into_stage(tx, "rakuten_genres", "stage_genres", GENRE_COLUMNS, &types).await?;
    for r in rows {
        let hash = hash_of(r);
        let values: [&(dyn ToSql + Sync); 10] = [
            &r.genre_id,
            &r.name,
            &r.english_name,
            &r.level,
            &r.parent_id,
            &r.path_ids,
            &r.path_names,
            &hash,
            &now,
            &job_run.run.run_id,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;

    let counts = merge_counts(
        tx,
        &format!(
            "INSERT INTO rakuten_genres AS t ({GENRE_COLUMNS})
             SELECT {GENRE_COLUMNS} FROM stage_genres
             ON CONFLICT (genre_id) DO UPDATE SET
                 name = EXCLUDED.name, english_name = EXCLUDED.english_name, level = EXCLUDED.level,
                 parent_id = EXCLUDED.parent_id, path_ids = EXCLUDED.path_ids,
                 path_names = EXCLUDED.path_names, content_hash = EXCLUDED.content_hash,
                 saved_at = EXCLUDED.saved_at, run_id = EXCLUDED.run_id
             WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash AND t.saved_at <= EXCLUDED.saved_at
             RETURNING (xmax = 0) AS inserted"
        ),
        rows.len(),
    )
    .await?;
    let keys: Vec<String> = rows.iter().map(|r| r.genre_id.to_string()).collect();
    mark_refreshed(tx, "genre", &keys, at).await?;
    Ok(counts)
}
