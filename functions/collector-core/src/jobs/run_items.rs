//! "This run's items": the follow-on policy every job after Ranking works from.
//!
//! The items of a run are the items ranked on the run's JST date, whichever run of that
//! day saved the ranking rows (unchanged rows are not rewritten, so they keep the run that
//! first saved them). Each job then asks only for what its refresh window says is due,
//! so a second run on the same day fetches only what the first one left undone — the
//! items a failed or killed run never got details for — and rewrites nothing else.

/// A CTE `ranked(item_code, best_rank)` of the items ranked on run `$1`'s date, with the
/// best rank each reached that day. Use as
/// `format!("WITH {RANKED_ITEMS_CTE} SELECT … FROM ranked …")`.
pub const RANKED_ITEMS_CTE: &str = "ranked AS (
    SELECT r.item_code, min(r.rank) AS best_rank
    FROM rakuten_rankings r
    JOIN etl_runs u ON u.run_id = $1
    WHERE r.snapshot_date = u.run_date
    GROUP BY r.item_code
)";

/// The ids (> 0) that `ids_of_items` finds among run `run_id`'s items and whose `entity`
/// was not fetched within `refresh_days`, ascending. `ids_of_items` is the FROM part of a
/// `SELECT DISTINCT … AS id` over `rakuten_items i JOIN ranked USING (item_code)`.
pub async fn due_ids(
    client: &impl tokio_postgres::GenericClient,
    run_id: uuid::Uuid,
    refresh_days: u32,
    entity: &str,
    ids_of_items: &str,
) -> Result<Vec<i64>, super::JobError> {
    let days = refresh_days as i32;
    let rows = client
        .query(
            &format!(
                "WITH {RANKED_ITEMS_CTE}, ids AS (SELECT DISTINCT {ids_of_items})
                 SELECT id FROM ids
                 WHERE id > 0
                   AND NOT EXISTS (
                       SELECT 1 FROM etl_refresh f
                       WHERE f.entity = $3 AND f.key = id::text
                         AND f.checked_at > now() - make_interval(days => $2))
                 ORDER BY 1"
            ),
            &[&run_id, &days, &entity],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
