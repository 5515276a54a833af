//! `collector prune` as a user runs it: refused DAYS, a dry run, a prune.

use std::process::Output;

use chrono::{Days, NaiveDate, Utc};
use collector_core::db::ledger::jst_date;
use ichiba_collector_tests::*;

fn collector(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env.iter().copied());
    cmd.args(args).output().expect("run collector")
}

#[test]
fn zero_negative_or_too_few_days_are_refused_with_exit_status_2() {
    // Refused before any connection: the database named here does not exist.
    let env = [("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")];
    for (days, says) in [
        ("0", "positive"),
        ("-3", "positive"),
        ("3", "ACTIVE_WINDOW_DAYS (7)"),
    ] {
        let out = collector(&env, &["prune", "--older-than", days]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--older-than {days}: {err}");
        assert!(
            err.contains(says) && err.contains(&format!("--older-than {days}")),
            "{err}"
        );
    }
    let out = collector(&env, &["prune", "--older-than", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let out = collector(&env, &["prune"]);
    assert_eq!(out.status.code(), Some(2), "--older-than is required");
    let help = text(&collector(&[], &["--help"]).stdout);
    assert!(help.contains("prune"), "{help}");
}

async fn snapshot(c: &Client, day: NaiveDate, items: &[&str]) {
    let run_id = uuid::Uuid::new_v4();
    for (i, item) in items.iter().enumerate() {
        c.execute(
            "INSERT INTO rakuten_rankings (snapshot_date, ranking_genre_id, period, rank, item_code,
                 item_name, content_hash, run_id, saved_at)
             VALUES ($1, 0, 'daily', $2, $3, $3, '\\x00', $4, now())",
            &[&day, &(i as i32 + 1), item, &run_id],
        )
        .await
        .unwrap();
    }
    c.execute(
        "INSERT INTO rakuten_ranking_snapshots (snapshot_date, ranking_genre_id, period, pages,
             row_count, complete, run_id, saved_at)
         VALUES ($1, 0, 'daily', 1, $2, true, $3, now())",
        &[&day, &(items.len() as i32), &run_id],
    )
    .await
    .unwrap();
}

async fn dates(c: &Client) -> Vec<(NaiveDate, i64)> {
    rows(
        c,
        "SELECT snapshot_date, count(*) FROM rakuten_rankings GROUP BY 1 ORDER BY 1",
        &[],
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn a_dry_run_counts_and_a_prune_deletes_the_old_days_only() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let today = jst_date(Utc::now());
    let ago = |n: u64| today.checked_sub_days(Days::new(n)).unwrap();
    // Far from the 30-day edge, so a JST midnight between here and the binary changes nothing.
    snapshot(&c, ago(45), &["a", "b", "c"]).await;
    snapshot(&c, ago(40), &["a", "b"]).await;
    snapshot(&c, ago(2), &["b", "a"]).await;
    let before = vec![(ago(45), 3), (ago(40), 2), (ago(2), 2)];
    assert_eq!(dates(&c).await, before);
    let env = [("DATABASE_URL", db.url.as_str())];

    let out = collector(&env, &["prune", "--older-than", "30", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("dry run"), "{stdout}");
    assert!(
        stdout.contains("rakuten_rankings           would delete 5 rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rakuten_ranking_snapshots  would delete 2 rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("snapshot dates: 2 ({} .. {})", ago(45), ago(40))),
        "{stdout}"
    );
    assert_eq!(dates(&c).await, before, "a dry run deletes nothing");

    let out = collector(&env, &["prune", "--older-than", "30"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("rakuten_rankings           deleted 5 rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rakuten_ranking_snapshots  deleted 2 rows"),
        "{stdout}"
    );
    assert_eq!(dates(&c).await, vec![(ago(2), 2)]);
    let snapshots: i64 = scalar(&c, "SELECT count(*) FROM rakuten_ranking_snapshots", &[]).await;
    assert_eq!(snapshots, 1);

    // Nothing left to prune; the report as JSON.
    let out = collector(&env, &["prune", "--older-than", "30", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["before"], ago(30).to_string());
    assert_eq!(doc["dates"], serde_json::json!([]));
    assert_eq!(
        doc["rows"],
        serde_json::json!({"rakuten_rankings": 0, "rakuten_ranking_snapshots": 0})
    );
}
