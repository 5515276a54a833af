//! Retention of ranking snapshots (`collector prune --older-than DAYS`): deletes the rows of
//! `rakuten_rankings` and `rakuten_ranking_snapshots` whose `snapshot_date` is before a
//! cut-off date. Nothing runs it on a schedule; rows are kept until someone prunes.
//!
//! Each snapshot date is deleted in a transaction of its own (both tables together), so an
//! interrupted prune leaves every day either whole or gone, and no single statement grows
//! with the length of the history. Items (`rakuten_items`), genres, tags and the run
//! ledger are never touched; the raw store has its own expiry (`RawObjectExpirationDays`).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use tokio_postgres::Client;

use super::{DbError, DbFutureExt};

/// The tables a prune deletes from, in the order it deletes.
pub const TABLES: [&str; 2] = ["rakuten_rankings", "rakuten_ranking_snapshots"];

/// What a prune deleted, or (dry run) would delete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Rows with a `snapshot_date` before this date are (or would be) deleted.
    pub before: NaiveDate,
    pub dry_run: bool,
    /// The snapshot dates concerned, oldest first.
    pub dates: Vec<NaiveDate>,
    /// Rows per table of [`TABLES`].
    pub rows: BTreeMap<String, u64>,
}

impl PruneReport {
    /// Rows of `table` deleted (or that a dry run would delete).
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }
}

/// The first snapshot date kept when rows older than `days` days before `today` go:
/// `today - days`. With today 2026-12-01 and 30 days, 2026-11-01 is kept and 2026-10-31
/// is the newest date deleted (so `days` + 1 dates, today included, remain).
pub fn cutoff(today: NaiveDate, days: u32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MIN)
}

/// Deletes (or with `dry_run` only counts) the snapshot rows dated before `before`.
pub async fn prune_snapshots(
    client: &mut Client,
    before: NaiveDate,
    dry_run: bool,
) -> Result<PruneReport, DbError> {
    let dates: Vec<NaiveDate> = client
        .query(
            "SELECT snapshot_date FROM rakuten_ranking_snapshots WHERE snapshot_date < $1
             UNION
             SELECT DISTINCT snapshot_date FROM rakuten_rankings WHERE snapshot_date < $1
             ORDER BY 1",
            &[&before],
        )
        .bounded("listing the snapshot dates to prune")
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut counts = [0u64; TABLES.len()];
    if dry_run {
        for (table, n) in TABLES.iter().zip(counts.iter_mut()) {
            let count: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE snapshot_date < $1"),
                    &[&before],
                )
                .bounded(format!("counting the rows of {table} to prune"))
                .await?
                .get(0);
            *n = u64::try_from(count).unwrap_or(0);
        }
    } else {
        for date in &dates {
            let tx = client
                .transaction()
                .bounded("starting a prune transaction")
                .await?;
            for (table, n) in TABLES.iter().zip(counts.iter_mut()) {
                *n += tx
                    .execute(
                        &format!("DELETE FROM {table} WHERE snapshot_date = $1"),
                        &[date],
                    )
                    .bounded(format!("deleting the {date} rows of {table}"))
                    .await?;
            }
            tx.commit()
                .bounded(format!("committing the prune of {date}"))
                .await?;
        }
    }
    Ok(PruneReport {
        before,
        dry_run,
        dates,
        rows: TABLES
            .iter()
            .zip(counts)
            .map(|(t, n)| (t.to_string(), n))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_keeps_days_plus_one_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(cutoff(d("2026-12-01"), 30), d("2026-11-01"));
        assert_eq!(cutoff(d("2026-03-01"), 1), d("2026-02-28"));
        assert_eq!(cutoff(d("2026-11-10"), 7), d("2026-11-03"));
    }
}
