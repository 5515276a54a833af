//! The Tag job's SQL: its targets, then binary COPY into temporary staging tables and
//! merges that write only tag groups and tags whose content hash changed, and the
//! refresh bookkeeping (`etl_refresh`) for every tag returned.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::db::ledger::JobRun;
use crate::jobs::run_items::due_ids;
use crate::jobs::staging::{load_hashed, mark_refreshed, HashedTable};
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
    let ids = "t.tag_id AS id FROM rakuten_items i JOIN ranked USING (item_code) CROSS JOIN LATERAL unnest(i.tag_ids) AS t(tag_id)";
    due_ids(client, run_id, refresh_days, "tag", ids).await
}

const TAG_GROUPS: HashedTable = HashedTable {
    table: "rakuten_tag_groups",
    columns: &[("tag_group_id", Type::INT8), ("name", Type::TEXT)],
    key: &["tag_group_id"],
};

const TAGS: HashedTable = HashedTable {
    table: "rakuten_tags",
    columns: &[
        ("tag_id", Type::INT8),
        ("name", Type::TEXT),
        ("tag_group_id", Type::INT8),
        ("parent_tag_id", Type::INT8),
    ],
    key: &["tag_id"],
};

fn group_values(r: &TagGroupRow) -> Vec<&(dyn ToSql + Sync)> {
    vec![&r.tag_group_id, &r.name]
}

fn tag_values(r: &TagRow) -> Vec<&(dyn ToSql + Sync)> {
    vec![&r.tag_id, &r.name, &r.tag_group_id, &r.parent_tag_id]
}

/// Loads tag groups observed at `at`; a group whose hash is unchanged, or that a later
/// observation saved, is not rewritten.
pub async fn load_tag_groups(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[TagGroupRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    load_hashed(tx, &TAG_GROUPS, rows, group_values, job_run.run.run_id, at).await
}

/// Loads tags (their groups must be loaded first) and marks them refreshed; a tag whose
/// hash is unchanged, or that a later observation saved, is not rewritten.
pub async fn load_tags(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[TagRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let counts = load_hashed(tx, &TAGS, rows, tag_values, job_run.run.run_id, at).await?;
    let keys: Vec<String> = rows.iter().map(|r| r.tag_id.to_string()).collect();
    mark_refreshed(tx, "tag", &keys, at).await?;
    Ok(counts)
}
