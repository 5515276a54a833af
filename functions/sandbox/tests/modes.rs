//! The sandbox's fault, provenance, churn and "doctor" modes and its request log, over HTTP.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use rakuten_sandbox::{
    FailPage, MalformedKind, RankingRebuild, RateLimitBody, Sandbox, SandboxConfig, SandboxHandle,
    IP_NOT_ALLOWED_MESSAGE,
};
use serde_json::Value;

mod common;
use common::*;

/// Read pages 1..=34 of a ranking target: (lastBuildDate per page, item code per rank).
async fn read_target(h: &SandboxHandle, query: &str) -> (Vec<String>, HashMap<u64, String>) {
    let mut builds = Vec::new();
    let mut codes = HashMap::new();
    for page in 1..=34 {
        let v = json(h, RANKING, &format!("formatVersion=2&{query}&page={page}")).await;
        builds.push(
            v["lastBuildDate"]
                .as_str()
                .expect("lastBuildDate")
                .to_string(),
        );
        let rows = v["Items"].as_array().expect("Items");
        for r in rows {
            let rank = r["rank"].as_u64().expect("rank");
            let code = r["itemCode"].as_str().expect("itemCode").to_string();
            assert!(codes.insert(rank, code).is_none(), "rank {rank} twice");
        }
        if rows.len() < 30 {
            break;
        }
    }
    (builds, codes)
}

#[tokio::test]
async fn failing_ranking_pages_fail_on_every_retry_and_unknown_genres_are_404() {
    let h = start(SandboxConfig {
        fail_ranking_pages: vec![
            "0:3".parse().expect("GENRE:PAGE"),
            FailPage {
                genre_id: 0,
                page: 5,
                status: 503,
            },
        ],
        ..cfg()
    })
    .await;
    for _ in 0..4 {
        let (status, body) = call(&h, RANKING, "genreId=0&page=3").await;
        assert_eq!(status, 500);
        assert_eq!(
            body,
            br#"{"error":"system_error","error_description":"api logic error"}"#
        );
        // without genreId is the overall ranking too; other periods of the genre fail as well
        assert_eq!(call(&h, RANKING, "page=3&formatVersion=2").await.0, 500);
        assert_eq!(call(&h, RANKING, "page=3&period=realtime").await.0, 500);
        let (status, body) = call(&h, RANKING, "page=5").await;
        assert_eq!(status, 503);
        assert_eq!(
            body,
            br#"{"error":"service_unavailable","error_description":"IchibaItem/Ranking is under maintenance"}"#
        );
        assert_eq!(call(&h, RANKING, "page=4").await.0, 200);
        assert_eq!(call(&h, RANKING, "").await.0, 200, "page 1 by default");
    }
    // a genre that does not exist: 404 not_found on every page
    for page in [1, 2, 34] {
        let (status, body) = call(&h, RANKING, &format!("genreId=999&page={page}")).await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            br#"{"error":"not_found","error_description":"not found"}"#
        );
    }
    let stats = h.stats();
    assert_eq!(stats.server_errors, 16);
    assert_eq!(stats.client_errors, 3);
    h.shutdown().await;

    for bad in ["0", "0:35", "x:1", "0:1:502", "0:1:500:1"] {
        assert!(bad.parse::<FailPage>().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_transient_per_request_and_come_in_three_kinds() {
    let h = start(SandboxConfig {
        malformed_rate: 0.5,
        ..cfg()
    })
    .await;
    let (mut good, mut bad) = (0, 0);
    for _ in 0..30 {
        let (status, body) = call(&h, RANKING, "page=2").await;
        assert_eq!(status, 200);
        match serde_json::from_slice::<Value>(&body) {
            Ok(_) => good += 1,
            Err(_) => bad += 1,
        }
    }
    assert!(
        good > 0 && bad > 0,
        "a retry of a malformed page can succeed"
    );
    assert_eq!((h.stats().ok, h.stats().malformed), (good, bad));
    h.shutdown().await;

    for (kind, check) in [
        (
            MalformedKind::Truncated,
            (|b: &[u8]| !b.is_empty() && b.starts_with(b"{\"title\"")) as fn(&[u8]) -> bool,
        ),
        (MalformedKind::Html, |b: &[u8]| {
            b.starts_with(b"<!DOCTYPE html>")
        }),
        (MalformedKind::Empty, |b: &[u8]| b.is_empty()),
    ] {
        let h = start(SandboxConfig {
            malformed_rate: 1.0,
            malformed_kind: kind,
            ..cfg()
        })
        .await;
        let (status, body) = call(&h, RANKING, "page=1").await;
        assert_eq!(status, 200);
        assert!(serde_json::from_slice::<Value>(&body).is_err(), "{kind:?}");
        assert!(check(&body), "{kind:?}: {}", String::from_utf8_lossy(&body));
        h.shutdown().await;
    }
}

#[tokio::test]
async fn build_date_lag_and_interval_make_stale_days() {
    let day1 = start(cfg()).await;
    let v1 = json(&day1, RANKING, "formatVersion=2&page=1").await;
    assert_eq!(v1["title"], "【楽天市場】ランキング市場 【総合】");
    assert_eq!(v1["lastBuildDate"], "Mon, 01 Jun 2026 00:00:00 +0900");

    // day 2, ranking not rebuilt yet: same build date, byte-identical pages
    let day2_stale = start(SandboxConfig {
        date: Some("2026-06-02".into()),
        build_date_lag_days: 1,
        ..cfg()
    })
    .await;
    let day2_fresh = start(SandboxConfig {
        date: Some("2026-06-02".into()),
        ..cfg()
    })
    .await;
    for page in [1, 17, 34] {
        let q = format!("page={page}");
        assert_eq!(
            call(&day1, RANKING, &q).await,
            call(&day2_stale, RANKING, &q).await
        );
    }
    let fresh = json(&day2_fresh, RANKING, "formatVersion=2&page=1").await;
    assert_eq!(fresh["lastBuildDate"], "Tue, 02 Jun 2026 00:00:00 +0900");
    assert_ne!(fresh["Items"], v1["Items"]);

    // built every 2 days (day numbers since 1970): 06-02 and 06-03 share the build of 06-02,
    // 06-01 serves the build of 05-31
    let mut seen = Vec::new();
    for date in ["2026-06-01", "2026-06-02", "2026-06-03"] {
        let h = start(SandboxConfig {
            date: Some(date.into()),
            build_interval_days: 2,
            ..cfg()
        })
        .await;
        seen.push(json(&h, RANKING, "formatVersion=2").await);
        h.shutdown().await;
    }
    assert_eq!(seen[0]["lastBuildDate"], "Sun, 31 May 2026 00:00:00 +0900");
    assert_eq!(seen[1]["lastBuildDate"], "Tue, 02 Jun 2026 00:00:00 +0900");
    assert_eq!(seen[2]["lastBuildDate"], "Tue, 02 Jun 2026 00:00:00 +0900");
    assert_eq!(seen[1]["Items"], seen[2]["Items"]);
    assert_eq!(seen[1]["Items"], fresh["Items"]);

    assert!(Sandbox::start(SandboxConfig {
        build_interval_days: 0,
        ..cfg()
    })
    .await
    .is_err());
    for h in [day1, day2_stale, day2_fresh] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn a_rebuild_after_page_10_is_seen_once_then_the_target_is_consistent() {
    let config = SandboxConfig {
        ranking_rebuild: RankingRebuild::Once { after_pages: 10 },
        ..cfg()
    };
    let (ds, h) = start_with_data(config).await;
    let old = "Mon, 01 Jun 2026 00:00:00 +0900";
    let new = "Mon, 01 Jun 2026 01:00:00 +0900";

    let (builds, _) = read_target(&h, "genreId=0").await;
    assert_eq!(builds.len(), 34);
    assert!(builds[..10].iter().all(|b| b == old), "{builds:?}");
    assert!(builds[10..].iter().all(|b| b == new), "{builds:?}");

    // the refetch sees one build, and it is a complete ranking of the rebuilt order
    let (builds, codes) = read_target(&h, "genreId=0").await;
    assert!(builds.iter().all(|b| b == new), "{builds:?}");
    assert_eq!(
        codes.keys().copied().collect::<BTreeSet<u64>>(),
        (1..=1000).collect()
    );
    let rebuilt = ds.ranking_build(0, DATE, false, 1).expect("overall");
    for (rank, code) in &codes {
        assert_eq!(
            code,
            &ds.items[rebuilt[(*rank - 1) as usize] as usize].item_code
        );
    }
    // the rebuild keeps the members and moves them a little
    let first = ds.ranking(0, DATE, false).expect("overall");
    assert_ne!(first, rebuilt);
    assert_eq!(
        first.iter().collect::<HashSet<_>>(),
        rebuilt.iter().collect::<HashSet<_>>()
    );

    // another target (the realtime period) has its own page count
    let v = json(&h, RANKING, "formatVersion=2&period=realtime").await;
    assert_eq!(v["lastBuildDate"], old);
    h.shutdown().await;
}

#[tokio::test]
async fn a_ranking_rebuilt_every_10_pages_is_never_consistent() {
    let h = start(SandboxConfig {
        ranking_rebuild: RankingRebuild::Every { pages: 10 },
        ..cfg()
    })
    .await;
    for attempt in 0..3 {
        let (builds, _) = read_target(&h, "genreId=0").await;
        let distinct: BTreeSet<&String> = builds.iter().collect();
        assert!(distinct.len() >= 2, "attempt {attempt}: {builds:?}");
    }
    // build k is k hours after the first
    let v = json(&h, RANKING, "formatVersion=2").await;
    assert_eq!(v["lastBuildDate"], "Mon, 01 Jun 2026 10:00:00 +0900");
    h.shutdown().await;
}

#[tokio::test]
async fn rankings_churn_a_documented_share_per_day_and_items_stay_the_same() {
    let a = start(cfg()).await;
    let b = start(SandboxConfig {
        date: Some("2026-06-02".into()),
        ..cfg()
    })
    .await;
    let (_, day1) = read_target(&a, "genreId=0").await;
    let (_, day2) = read_target(&b, "genreId=0").await;
    let pos1: HashMap<&String, u64> = day1.iter().map(|(r, c)| (c, *r)).collect();
    let mut replaced = 0;
    let mut moves = Vec::new();
    for (rank, code) in &day2 {
        match pos1.get(code) {
            Some(r) => moves.push(r.abs_diff(*rank)),
            None => replaced += 1,
        }
    }
    // documented: about 13 % replaced per day, the median stayer moves by about 9 ranks
    assert!(
        (50..=250).contains(&replaced),
        "replaced {replaced} of 1000"
    );
    moves.sort_unstable();
    assert!(
        moves[moves.len() / 2] <= 20,
        "median move {}",
        moves[moves.len() / 2]
    );
    // item details do not depend on the date
    let code = &day2[&1];
    let q = format!("itemCode={code}&availability=0");
    assert_eq!(call(&a, SEARCH, &q).await, call(&b, SEARCH, &q).await);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn doctor_modes_answer_like_the_2026_api() {
    let missing = br#"{"errors":{"errorCode":403,"errorMessage":"REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING"}}"#;
    let not_allowed = br#"{"errors":{"errorCode":403,"errorMessage":"REQUEST_CONTEXT_BODY_HTTP_REFERRER_NOT_ALLOWED"}}"#;
    let pq = format!("{GENRE}?applicationId={APP}&accessKey={KEY}&genreId=0");

    // a Web-application app
    let h = start(SandboxConfig {
        require_referer: Some("https://example.com/".into()),
        ..cfg()
    })
    .await;
    assert_eq!(get(&h, &pq, &[]).await, (403, missing.to_vec()));
    assert_eq!(
        get(&h, &pq, &[("Referer", "https://other.example/")]).await,
        (403, not_allowed.to_vec())
    );
    assert_eq!(
        get(&h, &pq, &[("Origin", "https://example.com.evil")]).await,
        (403, not_allowed.to_vec())
    );
    assert_eq!(
        get(&h, &pq, &[("Origin", "https://example.com")]).await.0,
        200
    );
    assert_eq!(
        get(&h, &pq, &[("Referer", "https://example.com/app/")])
            .await
            .0,
        200
    );
    h.shutdown().await;

    // a backend app bound to IP addresses (the test connects from 127.0.0.1)
    let h = start(SandboxConfig {
        allowed_ips: vec!["10.0.0.1".parse::<IpAddr>().expect("ip")],
        ..cfg()
    })
    .await;
    let (status, body) = get(&h, &pq, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        format!(r#"{{"errors":{{"errorCode":403,"errorMessage":"{IP_NOT_ALLOWED_MESSAGE}"}}}}"#)
            .into_bytes()
    );
    h.shutdown().await;
    let h = start(SandboxConfig {
        allowed_ips: vec!["127.0.0.1".parse::<IpAddr>().expect("ip")],
        ..cfg()
    })
    .await;
    assert_eq!(get(&h, &pq, &[]).await.0, 200);
    h.shutdown().await;

    // the legacy host after the cut-over: 503 before any credential check
    let h = start(SandboxConfig {
        legacy_host_maintenance: true,
        ..cfg()
    })
    .await;
    let (status, body) = get(&h, "/services/api/IchibaItem/Ranking/20220601", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        br#"{"error":"service_unavailable","error_description":"IchibaItem/Ranking is under maintenance"}"#
    );
    assert_eq!(call(&h, RANKING, "").await.0, 200, "the new host answers");
    h.shutdown().await;

    // defaults: an unknown version is 404, the key works in the header and in the query,
    // a wrong key is rejected, a 429 may carry Retry-After
    let h = start(SandboxConfig {
        rate_limit_per_sec: Some(0.01),
        retry_after_secs: Some(2),
        ..cfg()
    })
    .await;
    let (status, body) = get(
        &h,
        &format!(
            "/ichibaranking/api/IchibaItem/Ranking/20990101?applicationId={APP}&accessKey={KEY}"
        ),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        br#"{"error":"not_found","error_description":"not found"}"#
    );
    let (status, body) = get(
        &h,
        &format!("{GENRE}?applicationId={APP}&accessKey=pk_wrong&genreId=0"),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        br#"{"errors":{"errorCode":403,"errorMessage":"Invalid Access Key"}}"#
    );
    let (status, _) = get(
        &h,
        &format!("{GENRE}?applicationId={APP}&genreId=0"),
        &[("accessKey", KEY)],
    )
    .await;
    assert_eq!(status, 200, "key in the header");
    let resp = reqwest::get(format!("{}{pq}", h.base_url()))
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    h.shutdown().await;
    let h = start(SandboxConfig {
        rate_limit_per_sec: Some(0.01),
        rate_limit_body: RateLimitBody::StatusMessage,
        ..cfg()
    })
    .await;
    assert_eq!(
        call(&h, GENRE, "genreId=0").await.0,
        200,
        "key in the query"
    );
    let (status, body) = call(&h, GENRE, "genreId=0").await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        br#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}"#
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_request_log_records_urls_header_names_and_statuses_and_is_bounded() {
    let h = start(SandboxConfig {
        request_log_capacity: 3,
        ..cfg()
    })
    .await;
    let in_header = format!("{GENRE}?applicationId={APP}&genreId=0");
    assert_eq!(get(&h, &in_header, &[("accessKey", KEY)]).await.0, 200);
    assert_eq!(get(&h, "/__sandbox/health", &[]).await.0, 200);
    let log = h.requests();
    assert_eq!(log.len(), 1, "/__sandbox requests are not logged");
    let r = &log[0];
    assert_eq!(r.seq, 0);
    assert_eq!(r.method, "GET");
    assert_eq!(r.path_and_query, in_header);
    assert_eq!(r.query(), format!("applicationId={APP}&genreId=0"));
    assert!(r.has_header("accessKey") && r.has_header("host"));
    assert!(!r.query().contains(KEY), "the key is in no URL");
    assert_eq!(r.status, 200);
    assert_eq!(r.api.as_deref(), Some("IchibaGenre/Search"));

    assert_eq!(call(&h, RANKING, "page=1").await.0, 200);
    assert_eq!(call(&h, SEARCH, "").await.0, 400);
    assert_eq!(get(&h, "/nope", &[]).await.0, 404);
    let log = h.requests();
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "bounded: the oldest is dropped"
    );
    assert!(log[0].query().contains(&format!("accessKey={KEY}")));
    assert_eq!(log[0].api.as_deref(), Some("IchibaItem/Ranking"));
    assert_eq!(
        (log[1].status, log[2].status, log[2].api.as_deref()),
        (400, 404, None)
    );

    // the same log over HTTP
    let (status, body) = get(&h, "/__sandbox/requests", &[]).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v, serde_json::to_value(&log).expect("serialise"));
    assert_eq!(v[0]["path_and_query"], log[0].path_and_query.as_str());

    h.clear_requests();
    assert!(h.requests().is_empty());
    assert_eq!(call(&h, RANKING, "page=2").await.0, 200);
    assert_eq!(h.requests()[0].seq, 4);
    h.shutdown().await;
}
