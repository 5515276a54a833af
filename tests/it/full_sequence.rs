//! Ranking → Item → Genre ∥ Tag → IsActive over ≥ 1,000 ranked items, then the whole
//! sequence again over unchanged data: the second one rewrites no row.

use collector_core::jobs::Job;
use collector_core::jobs::{dispatch, AppContext};
use ichiba_collector_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

async fn sequence(ctx_a: &AppContext, ctx_b: &AppContext) -> Uuid {
    let ranking = dispatch(ctx_a, Job::Ranking, json!({}), None)
        .await
        .expect("ranking");
    let run_id: Uuid = serde_json::from_value(ranking["run_id"].clone()).unwrap();
    let event = json!({ "run_id": run_id });
    let item: Value = dispatch(ctx_a, Job::Item, event.clone(), None)
        .await
        .expect("item");
    assert_eq!(item["done"], true);
    // Genre and Tag at the same time, from two contexts (as two Lambdas would be).
    let (genre, tag) = tokio::join!(
        dispatch(ctx_a, Job::Genre, event.clone(), None),
        dispatch(ctx_b, Job::Tag, event.clone(), None)
    );
    genre.expect("genre");
    tag.expect("tag");
    dispatch(ctx_a, Job::IsActive, event, None)
        .await
        .expect("is_active");
    run_id
}

#[tokio::test]
async fn the_whole_sequence_fills_every_table_and_a_second_rewrites_nothing() {
    let (db, sandbox, raw) = job_parts(sandbox_config(3000)).await;
    let ctx_a = job_context(&db, &sandbox, raw.path(), &[]).await;
    let ctx_b = job_context(&db, &sandbox, raw.path(), &[]).await;
    let first = sequence(&ctx_a, &ctx_b).await;
    let c = db.client().await;

    let ranked = count(&c, "SELECT count(DISTINCT item_code) FROM rakuten_rankings").await;
    assert!(ranked >= 1000, "{ranked} ranked items");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM rakuten_items WHERE detail_hash IS NULL OR tag_ids IS NULL"
        )
        .await,
        0,
        "every ranked item has details and tag IDs"
    );
    // Every referenced genre exists, and so does each of its ancestors.
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_items i LEFT JOIN rakuten_genres g ON g.genre_id = i.genre_id WHERE i.genre_id > 0 AND g.genre_id IS NULL").await,
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_genres g, unnest(g.path_ids) AS p(id) LEFT JOIN rakuten_genres a ON a.genre_id = p.id WHERE a.genre_id IS NULL").await,
        0,
        "every ancestor on a path exists"
    );
    assert!(count(&c, "SELECT count(*) FROM rakuten_genres WHERE level = 1").await > 0);
    // Every referenced tag exists, with its group.
    assert_eq!(
        count(&c, "SELECT count(*) FROM (SELECT DISTINCT unnest(tag_ids) AS id FROM rakuten_items) t LEFT JOIN rakuten_tags g ON g.tag_id = t.id WHERE g.tag_id IS NULL").await,
        0
    );
    assert_eq!(count(&c, "SELECT count(*) FROM rakuten_tags t LEFT JOIN rakuten_tag_groups g USING (tag_group_id) WHERE g.tag_group_id IS NULL").await, 0);
    // is_active is true exactly for the items ranked in the window (independent count).
    let window = count(
        &c,
        "SELECT count(DISTINCT item_code) FROM rakuten_rankings r, etl_runs e WHERE r.snapshot_date > e.run_date - 7 AND r.snapshot_date <= e.run_date",
    )
    .await;
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_items WHERE is_active").await,
        window
    );

    // The second sequence over unchanged data rewrites no row (the ledger says so).
    let second = sequence(&ctx_a, &ctx_b).await;
    assert_ne!(first, second);
    let rows = rows(&c, "SELECT job, rows_inserted, rows_updated, status FROM etl_job_runs WHERE run_id = $1 ORDER BY job", &[&second]).await;
    assert_eq!(rows.len(), 5);
    for r in &rows {
        let job: String = r.get(0);
        assert_eq!(r.get::<_, String>(3), "succeeded", "{job}");
        assert_eq!(
            (r.get::<_, i32>(1), r.get::<_, i32>(2)),
            (0, 0),
            "{job} rewrote rows in the second sequence"
        );
    }
    sandbox.shutdown().await;
}
