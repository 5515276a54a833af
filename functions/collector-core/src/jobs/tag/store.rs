//! The Tag job's SQL: its targets, then binary COPY into temporary staging tables and
//! merges that write only tag groups and tags whose content hash changed, and the
//! refresh bookkeeping (`etl_refresh`) for every tag returned.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::db::ledger::JobRun;
use crate::jobs::run_items::RANKED_ITEMS_CTE;
use crate::jobs::staging::{copy_into_stage, hash_of, mark_refreshed, merge_counts};
use crate::jobs::{JobError, RowCounts};

/// One row of `rakuten_tag_groups`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TagGroupRow {
    pub tag_group_id: i64,
    pub name: String,
}

/// One row of `rakuten_tags`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TagRow {
    pub tag_id: i64,
    pub name: String,
    pub tag_group_id: i64,
    /// 0 for a top-level tag.
    pub parent_tag_id: i64,
}

/// The tag ids (> 0) of run `run_id`'s items not fetched within `refresh_days`, ascending.
pub async fn due_tags(
    client: &impl GenericClient,
    run_id: Uuid,
    refresh_days: u32,
) -> Result<Vec<i64>, JobError> {
    let days = refresh_days as i32;
    let rows = client
        .query(
            &format!(
                "WITH {RANKED_ITEMS_CTE}
                 SELECT DISTINCT t.tag_id
                 FROM rakuten_items i JOIN ranked USING (item_code)
                 CROSS JOIN LATERAL unnest(i.tag_ids) AS t(tag_id)
                 WHERE t.tag_id > 0
                   AND NOT EXISTS (
                       SELECT 1 FROM etl_refresh f
                       WHERE f.entity = 'tag' AND f.key = t.tag_id::text
                         AND f.checked_at > now() - make_interval(days => $2))
                 ORDER BY 1"
            ),
            &[&run_id, &days],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Loads tag groups; a group whose hash is unchanged is not rewritten.
pub async fn load_tag_groups(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[TagGroupRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    const COLUMNS: &str = "tag_group_id, name, content_hash, saved_at, run_id";
    let now = at;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::UUID,
    ];
    let mut writer = copy_into_stage(
        tx,
        "rakuten_tag_groups",
        "stage_tag_groups",
        COLUMNS,
        &types,
    )
    .await?;
    for r in rows {
        let hash = hash_of(r);
        let values: [&(dyn ToSql + Sync); 5] =
            [&r.tag_group_id, &r.name, &hash, &now, &job_run.run.run_id];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    merge_counts(
        tx,
        &format!(
            "INSERT INTO rakuten_tag_groups AS t ({COLUMNS})
             SELECT {COLUMNS} FROM stage_tag_groups
             ON CONFLICT (tag_group_id) DO UPDATE SET
                 name = EXCLUDED.name, content_hash = EXCLUDED.content_hash,
                 saved_at = EXCLUDED.saved_at, run_id = EXCLUDED.run_id
             WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash AND t.saved_at <= EXCLUDED.saved_at
             RETURNING (xmax = 0) AS inserted"
        ),
        rows.len(),
    )
    .await
}

/// Loads tags (their groups must be loaded first) and marks them refreshed; a tag whose
/// hash is unchanged is not rewritten.
pub async fn load_tags(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[TagRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    const COLUMNS: &str =
        "tag_id, name, tag_group_id, parent_tag_id, content_hash, saved_at, run_id";
    let now = at;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
        Type::UUID,
    ];
    let mut writer = copy_into_stage(tx, "rakuten_tags", "stage_tags", COLUMNS, &types).await?;
    for r in rows {
        let hash = hash_of(r);
        let values: [&(dyn ToSql + Sync); 7] = [
            &r.tag_id,
            &r.name,
            &r.tag_group_id,
            &r.parent_tag_id,
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
            "INSERT INTO rakuten_tags AS t ({COLUMNS})
             SELECT {COLUMNS} FROM stage_tags
             ON CONFLICT (tag_id) DO UPDATE SET
                 name = EXCLUDED.name, tag_group_id = EXCLUDED.tag_group_id,
                 parent_tag_id = EXCLUDED.parent_tag_id, content_hash = EXCLUDED.content_hash,
                 saved_at = EXCLUDED.saved_at, run_id = EXCLUDED.run_id
             WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash AND t.saved_at <= EXCLUDED.saved_at
             RETURNING (xmax = 0) AS inserted"
        ),
        rows.len(),
    )
    .await?;
    let keys: Vec<String> = rows.iter().map(|r| r.tag_id.to_string()).collect();
    mark_refreshed(tx, "tag", &keys, at).await?;
    Ok(counts)
}
