//! The history views for the site (`rakuten_ranking_movers`, `rakuten_ranking_dropouts`,
//! migration V4) and snapshot retention (`db::retention`, `collector prune`), over
//! hand-made snapshots with hand-checked values.
//!
//! The days (target 0/daily unless said otherwise; rank: item):
//!
//! | date       | complete | ranks                          |
//! | ---------- | -------- | ------------------------------ |
//! | 2026-11-01 | yes      | 1 A, 2 B, 3 C, 4 D, 5 E        |
//! | 2026-11-02 | **no**   | 1 X, 2 A (ranks 3-5 missing)   |
//! | 2026-11-03 | yes      | 1 C, 2 A, 3 F, 4 B, 5 G        |
//! | 2026-11-04 | yes      | 1 A, 2 C, 3 F, 4 D             |
//!
//! and target 100283/daily: 2026-11-03 `1 A` (its first complete snapshot), 2026-11-04
//! `1 H, 2 A`.

use chrono::NaiveDate;
use collector_core::db::retention;
use ichiba_collector_tests::*;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// One target's snapshot of a day: `items[i]` at rank i + 1, and its snapshot row.
async fn snapshot(c: &Client, day: &str, genre: i64, complete: bool, items: &[&str]) {
    let day = date(day);
    let run_id = uuid::Uuid::new_v4();
    for (i, item) in items.iter().enumerate() {
        let rank = i as i32 + 1;
        c.execute(
            "INSERT INTO rakuten_rankings (snapshot_date, ranking_genre_id, period, rank, item_code,
                 item_name, content_hash, run_id, saved_at)
             VALUES ($1, $2, 'daily', $3, $4, 'item ' || $4, '\\x00', $5, now())",
            &[&day, &genre, &rank, item, &run_id],
        )
        .await
        .unwrap();
    }
    let rows = items.len() as i32;
    let missing = (!complete).then(|| format!("{}-5", rows + 1));
    c.execute(
        "INSERT INTO rakuten_ranking_snapshots (snapshot_date, ranking_genre_id, period, pages,
             row_count, complete, missing_ranks, run_id, saved_at)
         VALUES ($1, $2, 'daily', 1, $3, $4, $5, $6, now())",
        &[&day, &genre, &rows, &complete, &missing, &run_id],
    )
    .await
    .unwrap();
}

async fn four_days(c: &Client) {
    snapshot(c, "2026-11-01", 0, true, &["A", "B", "C", "D", "E"]).await;
    snapshot(c, "2026-11-02", 0, false, &["X", "A"]).await;
    snapshot(c, "2026-11-03", 0, true, &["C", "A", "F", "B", "G"]).await;
    snapshot(c, "2026-11-04", 0, true, &["A", "C", "F", "D"]).await;
    snapshot(c, "2026-11-03", 100283, true, &["A"]).await;
    snapshot(c, "2026-11-04", 100283, true, &["H", "A"]).await;
}

/// (item_code, rank, previous_rank, rank_delta, new_entry, previous_snapshot_date) of a
/// target's day, by rank.
type Mover = (
    String,
    i32,
    Option<i32>,
    Option<i32>,
    bool,
    Option<NaiveDate>,
);

async fn movers(c: &Client, day: &str, genre: i64) -> Vec<Mover> {
    rows(
        c,
        "SELECT item_code, rank, previous_rank, rank_delta, new_entry, previous_snapshot_date
         FROM rakuten_ranking_movers
         WHERE snapshot_date = $1 AND ranking_genre_id = $2 AND period = 'daily' ORDER BY rank",
        &[&date(day), &genre],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

fn m(
    item: &str,
    rank: i32,
    previous: Option<i32>,
    delta: Option<i32>,
    new: bool,
    since: Option<&str>,
) -> Mover {
    (item.into(), rank, previous, delta, new, since.map(date))
}

/// (item_code, previous_rank, previous_snapshot_date) of a target's day, by previous rank.
async fn dropouts(c: &Client, day: &str, genre: i64) -> Vec<(String, i32, NaiveDate)> {
    rows(
        c,
        "SELECT item_code, previous_rank, previous_snapshot_date FROM rakuten_ranking_dropouts
         WHERE snapshot_date = $1 AND ranking_genre_id = $2 AND period = 'daily'
         ORDER BY previous_rank",
        &[&date(day), &genre],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn d(item: &str, previous_rank: i32, since: &str) -> (String, i32, NaiveDate) {
    (item.into(), previous_rank, date(since))
}

#[tokio::test]
async fn movers_compare_each_complete_snapshot_with_the_previous_complete_one() {
    let db = TestDb::new().await;
    let c = db.client().await;
    four_days(&c).await;

    // The first complete snapshot: nothing to compare with, so no new entries and no
    // previous ranks.
    assert_eq!(
        movers(&c, "2026-11-01", 0).await,
        vec![
            m("A", 1, None, None, false, None),
            m("B", 2, None, None, false, None),
            m("C", 3, None, None, false, None),
            m("D", 4, None, None, false, None),
            m("E", 5, None, None, false, None),
        ]
    );
    // The incomplete day is not in the view at all...
    assert!(movers(&c, "2026-11-02", 0).await.is_empty());
    // ...nor is it anyone's previous day: 11-03 compares with 11-01, so X (only on the
    // incomplete day) is no drop-out and A's previous rank is 1, not 2.
    assert_eq!(
        movers(&c, "2026-11-03", 0).await,
        vec![
            m("C", 1, Some(3), Some(2), false, Some("2026-11-01")),
            m("A", 2, Some(1), Some(-1), false, Some("2026-11-01")),
            m("F", 3, None, None, true, Some("2026-11-01")),
            m("B", 4, Some(2), Some(-2), false, Some("2026-11-01")),
            m("G", 5, None, None, true, Some("2026-11-01")),
        ]
    );
    // D was ranked on 11-01, not on 11-03: back in, it is a new entry again.
    assert_eq!(
        movers(&c, "2026-11-04", 0).await,
        vec![
            m("A", 1, Some(2), Some(1), false, Some("2026-11-03")),
            m("C", 2, Some(1), Some(-1), false, Some("2026-11-03")),
            m("F", 3, Some(3), Some(0), false, Some("2026-11-03")),
            m("D", 4, None, None, true, Some("2026-11-03")),
        ]
    );
    // Targets are compared only with themselves: A on 11-03 in genre 100283 is that
    // target's first snapshot (not compared with genre 0).
    assert_eq!(
        movers(&c, "2026-11-03", 100283).await,
        vec![m("A", 1, None, None, false, None)]
    );
    assert_eq!(
        movers(&c, "2026-11-04", 100283).await,
        vec![
            m("H", 1, None, None, true, Some("2026-11-03")),
            m("A", 2, Some(1), Some(-1), false, Some("2026-11-03")),
        ]
    );
    // One row per ranked row of a complete snapshot: 5 + 5 + 4 + 1 + 2.
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_ranking_movers").await,
        17
    );

    // The site's "biggest climbers" of a day (docs/site-queries.md).
    let climbers: Vec<(String, i32)> = rows(
        &c,
        "SELECT item_code, rank_delta FROM rakuten_ranking_movers
             WHERE snapshot_date = '2026-11-03' AND ranking_genre_id = 0 AND period = 'daily'
               AND rank_delta > 0
             ORDER BY rank_delta DESC, rank",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(climbers, vec![("C".to_string(), 2)]);
}

#[tokio::test]
async fn dropouts_are_the_previous_complete_snapshots_items_missing_today() {
    let db = TestDb::new().await;
    let c = db.client().await;
    four_days(&c).await;

    // None on a first snapshot, none on an incomplete day.
    assert!(dropouts(&c, "2026-11-01", 0).await.is_empty());
    assert!(dropouts(&c, "2026-11-02", 0).await.is_empty());
    // 11-03 against 11-01 (the incomplete 11-02 skipped): D and E left; A, B, C stayed.
    assert_eq!(
        dropouts(&c, "2026-11-03", 0).await,
        vec![d("D", 4, "2026-11-01"), d("E", 5, "2026-11-01")]
    );
    assert_eq!(
        dropouts(&c, "2026-11-04", 0).await,
        vec![d("B", 4, "2026-11-03"), d("G", 5, "2026-11-03")]
    );
    assert!(dropouts(&c, "2026-11-03", 100283).await.is_empty());
    assert!(dropouts(&c, "2026-11-04", 100283).await.is_empty());
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_ranking_dropouts").await,
        4
    );
}

#[tokio::test]
async fn prune_deletes_only_older_snapshot_days_and_a_dry_run_nothing() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    four_days(&c).await;
    let all = "SELECT (SELECT count(*) FROM rakuten_rankings) * 1000
                    + (SELECT count(*) FROM rakuten_ranking_snapshots)";
    // 19 ranking rows, 6 snapshot rows.
    assert_eq!(count(&c, all).await, 19_006);

    // "older than 7 days" on 2026-11-10: 11-03 and later stay.
    let before = retention::cutoff(date("2026-11-10"), 7);
    assert_eq!(before, date("2026-11-03"));

    let dry = retention::prune_snapshots(&mut c, before, true)
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.dates, vec![date("2026-11-01"), date("2026-11-02")]);
    // 11-01: 5 ranks, 11-02: 2 ranks; one snapshot row each.
    assert_eq!(dry.rows_of("rakuten_rankings"), 7);
    assert_eq!(dry.rows_of("rakuten_ranking_snapshots"), 2);
    assert_eq!(count(&c, all).await, 19_006, "a dry run deletes nothing");

    let done = retention::prune_snapshots(&mut c, before, false)
        .await
        .unwrap();
    assert!(!done.dry_run);
    assert_eq!(done.dates, dry.dates);
    assert_eq!(
        done.rows, dry.rows,
        "the dry run counted what the prune deleted"
    );
    assert_eq!(count(&c, all).await, 12_004);
    let left: Vec<(NaiveDate, i64, i64)> = rows(
        &c,
        "SELECT snapshot_date, ranking_genre_id, count(*) FROM rakuten_rankings
             GROUP BY 1, 2 ORDER BY 1, 2",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        left,
        vec![
            (date("2026-11-03"), 0, 5),
            (date("2026-11-03"), 100283, 1),
            (date("2026-11-04"), 0, 4),
            (date("2026-11-04"), 100283, 2),
        ]
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM rakuten_ranking_snapshots WHERE snapshot_date >= '2026-11-03'"
        )
        .await,
        4
    );
    // The oldest day left is now the target's first complete snapshot.
    assert_eq!(
        movers(&c, "2026-11-03", 0).await[0],
        m("C", 1, None, None, false, None)
    );
    assert_eq!(movers(&c, "2026-11-04", 0).await.len(), 4);

    // Again: nothing left that old.
    let again = retention::prune_snapshots(&mut c, before, false)
        .await
        .unwrap();
    assert!(again.dates.is_empty());
    assert_eq!(again.rows_of("rakuten_rankings"), 0);
    assert_eq!(again.rows_of("rakuten_ranking_snapshots"), 0);
    assert_eq!(count(&c, all).await, 12_004);
}
