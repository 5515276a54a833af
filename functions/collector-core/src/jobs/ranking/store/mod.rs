//! The Ranking job's SQL: binary COPY into a temporary staging table, then one merge
//! statement that writes only rows whose content hash changed.

use chrono::{DateTime, NaiveDate, Utc};
use rakuten_client::RankingItem;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use crate::config::RankingTarget;
use crate::db::ledger::JobRun;
use crate::jobs::staging::{copy_into_stage, hash_of, load_hashed, merge_counts, HashedTable};
use crate::jobs::{JobError, RowCounts};

mod snapshots;
pub use snapshots::*;

/// One row of `rakuten_rankings`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankingRow {
    #[serde(skip)]
    pub target: usize,
    pub snapshot_date: NaiveDate,
    pub ranking_genre_id: i64,
    pub period: String,
    pub rank: i32,
    pub item_code: String,
    pub item_name: String,
    pub item_price: Option<i64>,
    pub review_count: Option<i64>,
    pub review_average: Option<f64>,
    pub point_rate: Option<i32>,
    pub availability: Option<i16>,
    pub shop_code: Option<String>,
    pub item_genre_id: Option<i64>,
}

impl RankingRow {
    pub fn new(
        snapshot_date: NaiveDate,
        target_index: usize,
        target: &RankingTarget,
        it: &RankingItem,
    ) -> Self {
        Self {
            target: target_index,
            snapshot_date,
            ranking_genre_id: target.genre_id,
            period: target.period_name().to_string(),
            rank: it.rank,
            item_code: it.item_code.clone(),
            item_name: it.item_name.clone(),
            item_price: it.item_price,
            review_count: it.review_count,
            review_average: it.review_average,
            point_rate: it.point_rate,
            availability: it.availability.and_then(|v| i16::try_from(v).ok()),
            shop_code: it.shop_code.clone(),
            item_genre_id: it.genre_id,
        }
    }
}

/// The fields of `rakuten_items` that a ranking carries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemRow {
    pub item_code: String,
    pub item_name: String,
    pub catchcopy: Option<String>,
    pub item_price: Option<i64>,
    pub item_url: Option<String>,
    pub affiliate_url: Option<String>,
    pub image_url: Option<String>,
    pub availability: Option<i16>,
    pub tax_flag: Option<i16>,
    pub postage_flag: Option<i16>,
    pub review_count: Option<i64>,
    pub review_average: Option<f64>,
    pub point_rate: Option<i32>,
    pub affiliate_rate: Option<f64>,
    pub shop_code: Option<String>,
    pub shop_name: Option<String>,
    pub shop_url: Option<String>,
    pub genre_id: Option<i64>,
    /// Kept from the ranking too, so a site's captions and point campaigns are fresh daily
    /// without an Item Search (which adds only tags, gift flag and shop affiliate URL).
    pub item_caption: Option<String>,
    pub point_rate_start_time: Option<String>,
    pub point_rate_end_time: Option<String>,
}

impl ItemRow {
    pub fn from_ranking(it: &RankingItem) -> Self {
        let small = |v: Option<i32>| v.and_then(|v| i16::try_from(v).ok());
        Self {
            item_code: it.item_code.clone(),
            item_name: it.item_name.clone(),
            catchcopy: it.catchcopy.clone().filter(|s| !s.is_empty()),
            item_price: it.item_price,
            item_url: it.item_url.clone().filter(|s| !s.is_empty()),
            affiliate_url: it.affiliate_url.clone().filter(|s| !s.is_empty()),
            image_url: it.image_urls.first().cloned(),
            availability: small(it.availability),
            tax_flag: small(it.tax_flag),
            postage_flag: small(it.postage_flag),
            review_count: it.review_count,
            review_average: it.review_average,
            point_rate: it.point_rate,
            affiliate_rate: it.affiliate_rate,
            shop_code: it.shop_code.clone(),
            shop_name: it.shop_name.clone(),
            shop_url: it.shop_url.clone(),
            genre_id: it.genre_id,
            item_caption: it.item_caption.clone().filter(|s| !s.is_empty()),
            point_rate_start_time: it.point_rate_start_time.clone().filter(|s| !s.is_empty()),
            point_rate_end_time: it.point_rate_end_time.clone().filter(|s| !s.is_empty()),
        }
    }
}

const RANKINGS: HashedTable = HashedTable {
    table: "rakuten_rankings",
    columns: &[
        ("snapshot_date", Type::DATE),
        ("ranking_genre_id", Type::INT8),
        ("period", Type::TEXT),
        ("rank", Type::INT4),
        ("item_code", Type::TEXT),
        ("item_name", Type::TEXT),
        ("item_price", Type::INT8),
        ("review_count", Type::INT8),
        ("review_average", Type::FLOAT8),
        ("point_rate", Type::INT4),
        ("availability", Type::INT2),
        ("shop_code", Type::TEXT),
        ("item_genre_id", Type::INT8),
    ],
    key: &["snapshot_date", "ranking_genre_id", "period", "rank"],
};

fn ranking_values(r: &RankingRow) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &r.snapshot_date,
        &r.ranking_genre_id,
        &r.period,
        &r.rank,
        &r.item_code,
        &r.item_name,
        &r.item_price,
        &r.review_count,
        &r.review_average,
        &r.point_rate,
        &r.availability,
        &r.shop_code,
        &r.item_genre_id,
    ]
}

/// Loads the snapshot rows observed at `at` (now, or when a replayed body was fetched);
/// for `complete` targets (genre, period, max rank) deletes ranks beyond the newest fetch
/// (a ranking that shrank since an earlier run of the same day). A row stored from a later
/// observation is never overwritten by an earlier one, so replaying twice changes nothing.
pub async fn load_rankings(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    rows: &[RankingRow],
    complete: &[(i64, String, i32)],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let now = at;
    let mut counts =
        load_hashed(tx, &RANKINGS, rows, ranking_values, job_run.run.run_id, at).await?;

    if !complete.is_empty() {
        let genres: Vec<i64> = complete.iter().map(|c| c.0).collect();
        let periods: Vec<&str> = complete.iter().map(|c| c.1.as_str()).collect();
        let max_ranks: Vec<i32> = complete.iter().map(|c| c.2).collect();
        let deleted = tx
            .execute(
                "DELETE FROM rakuten_rankings r
                 USING unnest($2::int8[], $3::text[], $4::int4[]) AS t(genre_id, period, max_rank)
                 WHERE r.snapshot_date = $1 AND r.ranking_genre_id = t.genre_id AND r.period = t.period
                   AND r.rank > t.max_rank AND r.saved_at < $5",
                &[&job_run.run.run_date, &genres, &periods, &max_ranks, &now],
            )
            .await?;
        counts.deleted = deleted as i32;
    }
    Ok(counts)
}

const ITEM_COLUMNS: &str = "item_code, item_name, catchcopy, item_price, item_url, affiliate_url, image_url, availability, \
     tax_flag, postage_flag, review_count, review_average, point_rate, affiliate_rate, shop_code, shop_name, shop_url, \
     genre_id, item_caption, point_rate_start_time, point_rate_end_time, ranking_hash, ranking_saved_at";

/// Loads the ranking-carried item fields observed at `at`; an item whose hash is unchanged,
/// or whose fields come from a later observation, is not rewritten.
pub async fn load_items(
    tx: &Transaction<'_>,
    _job_run: &JobRun,
    rows: &[ItemRow],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let now = at;
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT2,
        Type::INT2,
        Type::INT2,
        Type::INT8,
        Type::FLOAT8,
        Type::INT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::TIMESTAMPTZ,
    ];
    let mut writer =
        copy_into_stage(tx, "rakuten_items", "stage_items", ITEM_COLUMNS, &types).await?;
    for r in rows {
        let hash = hash_of(r);
        let values: [&(dyn ToSql + Sync); 23] = [
            &r.item_code,
            &r.item_name,
            &r.catchcopy,
            &r.item_price,
            &r.item_url,
            &r.affiliate_url,
            &r.image_url,
            &r.availability,
            &r.tax_flag,
            &r.postage_flag,
            &r.review_count,
            &r.review_average,
            &r.point_rate,
            &r.affiliate_rate,
            &r.shop_code,
            &r.shop_name,
            &r.shop_url,
            &r.genre_id,
            &r.item_caption,
            &r.point_rate_start_time,
            &r.point_rate_end_time,
            &hash,
            &now,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;

    merge_counts(
        tx,
        &format!(
            "INSERT INTO rakuten_items AS t ({ITEM_COLUMNS})
             SELECT {ITEM_COLUMNS} FROM stage_items
             ON CONFLICT (item_code) DO UPDATE SET
                 item_name = EXCLUDED.item_name, catchcopy = EXCLUDED.catchcopy, item_price = EXCLUDED.item_price,
                 item_url = EXCLUDED.item_url, affiliate_url = EXCLUDED.affiliate_url, image_url = EXCLUDED.image_url,
                 availability = EXCLUDED.availability, tax_flag = EXCLUDED.tax_flag, postage_flag = EXCLUDED.postage_flag,
                 review_count = EXCLUDED.review_count, review_average = EXCLUDED.review_average,
                 point_rate = EXCLUDED.point_rate, affiliate_rate = EXCLUDED.affiliate_rate,
                 shop_code = EXCLUDED.shop_code, shop_name = EXCLUDED.shop_name, shop_url = EXCLUDED.shop_url,
                 genre_id = EXCLUDED.genre_id,
                 -- a ranking without a caption or campaign keeps what Item Search saved
                 item_caption = coalesce(EXCLUDED.item_caption, t.item_caption),
                 point_rate_start_time = coalesce(EXCLUDED.point_rate_start_time, t.point_rate_start_time),
                 point_rate_end_time = coalesce(EXCLUDED.point_rate_end_time, t.point_rate_end_time),
                 ranking_hash = EXCLUDED.ranking_hash,
                 ranking_saved_at = EXCLUDED.ranking_saved_at
             WHERE t.ranking_hash IS DISTINCT FROM EXCLUDED.ranking_hash
               AND t.ranking_saved_at <= EXCLUDED.ranking_saved_at
             RETURNING (xmax = 0) AS inserted"
        ),
        rows.len(),
    )
    .await
}
