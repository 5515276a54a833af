//! The IsActive job's SQL: one statement that marks each item active when it was ranked
//! within the window ending on the run's JST date.

use chrono::NaiveDate;
use tokio_postgres::Transaction;

use crate::jobs::JobError;

/// Marks items active (ranked within `window` days up to `date`) or inactive; returns
/// (items, activated, deactivated). Used by the job and by replay.
pub async fn mark_active(
    tx: &Transaction<'_>,
    date: NaiveDate,
    window: i32,
) -> Result<(i64, i64, i64), JobError> {
    // `x` reads the pre-update state, so activated/deactivated are counted from it.
    let row = tx
        .query_one(
            "WITH active AS (
                 SELECT DISTINCT item_code FROM rakuten_rankings
                 WHERE snapshot_date > $1::date - $2::int AND snapshot_date <= $1::date
             ), x AS (
                 SELECT i.item_code, (a.item_code IS NOT NULL) AS should
                 FROM rakuten_items i LEFT JOIN active a USING (item_code)
             ), upd AS (
                 UPDATE rakuten_items t SET is_active = x.should
                 FROM x WHERE t.item_code = x.item_code AND t.is_active IS DISTINCT FROM x.should
                 RETURNING x.should
             )
             SELECT (SELECT count(*) FROM x), count(*) FILTER (WHERE should), count(*) FILTER (WHERE NOT should) FROM upd",
            &[&date, &window],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}
