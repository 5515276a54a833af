//! The Rakuten client against the sandbox over HTTP: both formatVersions give the same
//! data, all four APIs parse, and credential errors arrive in their real shapes.

use ichiba_collector_tests::*;
use rakuten_client::{AccessKeyIn, ApiError, ErrorKind, RakutenClient, RankingQuery};

fn client(base: &str, format_version: u8, access_key: &str) -> RakutenClient {
    let mut c = client_config(base, access_key);
    c.format_version = format_version;
    c.requests_per_second = 1000.0;
    c.retry_base_delay = std::time::Duration::from_millis(5);
    RakutenClient::new(c).unwrap()
}

#[tokio::test]
async fn both_format_versions_parse_to_the_same_data() {
    let sandbox = start_sandbox(sandbox_config(500)).await;
    let data = sandbox.dataset();
    let (v1, v2) = (
        client(&sandbox.base_url(), 1, TEST_ACCESS_KEY),
        client(&sandbox.base_url(), 2, TEST_ACCESS_KEY),
    );

    let q = RankingQuery::daily(0, 2);
    let (a, b) = (v1.ranking(&q).await.unwrap(), v2.ranking(&q).await.unwrap());
    assert_ne!(a.body, b.body, "the wire formats differ");
    assert_eq!(
        serde_json::to_value(&a.parsed).unwrap(),
        serde_json::to_value(&b.parsed).unwrap()
    );
    let ranks: Vec<i32> = b.parsed.items.iter().map(|i| i.rank).collect();
    assert_eq!(
        ranks,
        (31..=60).collect::<Vec<_>>(),
        "sorted by rank although the wire is descending"
    );

    let code = b.parsed.items[0].item_code.clone();
    let (a, b) = (
        v1.item_by_code(&code).await.unwrap(),
        v2.item_by_code(&code).await.unwrap(),
    );
    assert_eq!(b.parsed.count, 1);
    assert_eq!(b.parsed.items[0].item_code, code);
    assert_eq!(
        serde_json::to_value(&a.parsed).unwrap(),
        serde_json::to_value(&b.parsed).unwrap()
    );

    // A zero-hit lookup is an outcome, not an error.
    let gone = v2.item_by_code("no-such-shop:1").await.unwrap();
    assert_eq!((gone.parsed.count, gone.parsed.items.len()), (0, 0));

    let leaf = data
        .genres
        .iter()
        .find(|g| g.level == 3)
        .expect("a level-3 genre");
    let (a, b) = (
        v1.genre(leaf.id as i64).await.unwrap(),
        v2.genre(leaf.id as i64).await.unwrap(),
    );
    assert_eq!(
        serde_json::to_value(&a.parsed).unwrap(),
        serde_json::to_value(&b.parsed).unwrap()
    );
    assert_eq!(b.parsed.current.as_ref().unwrap().genre_id, leaf.id as i64);
    assert_eq!(
        b.parsed.parents.len(),
        2,
        "a level-3 genre has two ancestors"
    );

    let tag_ids: Vec<i64> = data.tags.iter().take(10).map(|t| t.id as i64).collect();
    let (a, b) = (
        v1.tags(&tag_ids).await.unwrap(),
        v2.tags(&tag_ids).await.unwrap(),
    );
    assert_eq!(
        serde_json::to_value(&a.parsed).unwrap(),
        serde_json::to_value(&b.parsed).unwrap()
    );
    let got: usize = b.parsed.tag_groups.iter().map(|g| g.tags.len()).sum();
    assert_eq!(got, 10);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn credential_errors_are_not_retried_and_say_what_is_wrong() {
    let sandbox = start_sandbox(sandbox_config(50)).await;
    let c = client(&sandbox.base_url(), 2, "pk_wrong");
    let err = c.ranking(&RankingQuery::daily(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientError);
    assert_eq!(err.http_status(), Some(403));
    assert!(
        matches!(&err, ApiError::Http { message: Some(m), attempts: 1, .. } if m == "Invalid Access Key"),
        "{err:?}"
    );
    assert_eq!(sandbox.stats().requests, 1);
    assert_eq!(c.stats().retries, 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_reported_not_loaded() {
    let mut cfg = sandbox_config(50);
    cfg.malformed_rate = 1.0;
    let sandbox = start_sandbox(cfg).await;
    let c = client(&sandbox.base_url(), 2, TEST_ACCESS_KEY);
    let err = c.ranking(&RankingQuery::daily(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(
        err.to_string().contains("genreId=0"),
        "names the unit: {err}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn concurrent_scopes_on_one_client_count_their_own_requests() {
    let sandbox = start_sandbox(sandbox_config(300)).await;
    let c = client(&sandbox.base_url(), 2, TEST_ACCESS_KEY);
    async fn pages(c: RakutenClient, n: u32) -> u64 {
        c.scoped(async {
            for page in 1..=n {
                c.ranking(&RankingQuery {
                    genre_id: 0,
                    period: None,
                    page,
                })
                .await
                .unwrap();
            }
            c.current_stats().requests
        })
        .await
    }
    let (a, b) = tokio::join!(pages(c.clone(), 3), pages(c.clone(), 7));
    assert_eq!((a, b), (3, 7), "each scope sees only its own requests");
    assert_eq!(c.stats().requests, 10, "the client-wide counters see all");
    // Scopes nest (a display's per-job scope around the job's own): the enclosing scope
    // counts every request of the scopes inside it, each inner one still only its own.
    let (outer, (a, b)) = c
        .scoped(async {
            let inner = tokio::join!(pages(c.clone(), 2), pages(c.clone(), 4));
            (c.current_stats().requests, inner)
        })
        .await;
    assert_eq!((outer, a, b), (6, 2, 4));
    sandbox.shutdown().await;
}

/// The access key in the header (the default) and in the query both authenticate with
/// the sandbox, as with the real API; a wrong key in the header is rejected the same way.
#[tokio::test]
async fn access_key_in_header_or_query_both_work() {
    let sandbox = start_sandbox(sandbox_config(50)).await;
    let base = sandbox.base_url();
    let header = client(&base, 2, TEST_ACCESS_KEY);
    let mut cfg = client_config(&base, TEST_ACCESS_KEY);
    cfg.access_key_in = AccessKeyIn::Query;
    cfg.requests_per_second = 1000.0;
    let query = RakutenClient::new(cfg).unwrap();
    let q = RankingQuery::daily(0, 1);
    let (a, b) = (
        header.ranking(&q).await.unwrap(),
        query.ranking(&q).await.unwrap(),
    );
    assert_eq!(a.body, b.body);
    let wrong = client(&base, 2, "pk_wrong");
    let err = wrong.ranking(&q).await.unwrap_err();
    assert_eq!(err.http_status(), Some(403), "{err}");
    assert!(!err.to_string().contains("pk_wrong"));
    sandbox.shutdown().await;
}
