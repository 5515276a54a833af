//! End-to-end tests over real HTTP against a started sandbox.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rakuten_sandbox::{dataset, ErrorMode, Sandbox, SandboxConfig, SandboxStats};
use serde_json::Value;

mod common;
use common::*;

fn items(v: &Value) -> &Vec<Value> {
    v["Items"].as_array().expect("Items array")
}

#[tokio::test]
async fn same_seed_gives_byte_identical_responses() {
    let a = start(cfg()).await;
    let b = start(cfg()).await;
    let c = start(SandboxConfig { seed: 7, ..cfg() }).await;
    let code = &dataset(&cfg()).items[5].item_code;
    let requests = [
        (RANKING, "page=3".to_string()),
        (
            RANKING,
            "formatVersion=2&genreId=0&period=realtime".to_string(),
        ),
        (SEARCH, format!("itemCode={code}&availability=0")),
        (SEARCH, "genreId=0&hits=30&page=2".to_string()),
        (GENRE, "genreId=0".to_string()),
    ];
    for (path, q) in &requests {
        let (sa, ba) = call(&a, path, q).await;
        let (sb, bb) = call(&b, path, q).await;
        assert_eq!(sa, 200);
        assert_eq!(sb, 200);
        assert_eq!(
            ba, bb,
            "{path}?{q} differs between two sandboxes with the same seed"
        );
    }
    let (_, ba) = call(&a, RANKING, "page=1").await;
    let (_, bc) = call(&c, RANKING, "page=1").await;
    assert_ne!(ba, bc, "another seed gives other data");
    for h in [a, b, c] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn overall_ranking_pages_cover_ranks_1_to_1000_descending_on_the_wire() {
    let config = cfg();
    let ds = dataset(&config);
    let expected = ds.ranking(0, DATE, false).expect("overall ranking");
    assert_eq!(expected.len(), 1000.min(config.items));
    let h = start(config).await;
    let mut seen = BTreeSet::new();
    for page in 1..=34u64 {
        let v = json(
            &h,
            RANKING,
            &format!("formatVersion=2&genreId=0&page={page}"),
        )
        .await;
        assert_eq!(v["title"], "【楽天市場】ランキング市場 【総合】");
        assert_eq!(v["lastBuildDate"], "Mon, 01 Jun 2026 00:00:00 +0900");
        let rows = items(&v);
        assert_eq!(rows.len(), if page == 34 { 10 } else { 30 }, "page {page}");
        let ranks: Vec<u64> = rows
            .iter()
            .map(|r| r["rank"].as_u64().expect("rank is a number"))
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] > w[1]),
            "page {page} not descending: {ranks:?}"
        );
        let lo = 30 * (page - 1) + 1;
        assert_eq!(ranks.iter().min(), Some(&lo));
        for r in rows {
            let rank = r["rank"].as_u64().unwrap_or(0);
            assert!(seen.insert(rank), "rank {rank} twice");
            let item = &ds.items[expected[(rank - 1) as usize] as usize];
            assert_eq!(r["itemCode"], item.item_code.as_str());
            // ranking wire quirks
            assert!(r["itemPrice"].is_string());
            assert!(r["reviewAverage"].is_string());
            assert!(r["affiliateRate"].is_string());
            assert!(r["genreId"].is_string());
            assert!(r["reviewCount"].is_u64());
            assert!(r["pointRate"].is_u64());
            assert!(r["availability"].is_u64());
            assert!(r["carrier"].is_u64());
            assert!(r["smallImageUrls"].is_array());
        }
    }
    assert_eq!(seen, (1..=1000).collect::<BTreeSet<u64>>());
    // page 35 is outside 1..=34, page 0 too
    for page in [0, 35] {
        let (status, body) = call(&h, RANKING, &format!("page={page}")).await;
        assert_eq!(status, 400);
        assert_eq!(parse(&body)["error"], "wrong_parameter");
    }
    // period: realtime is another order, anything else is refused
    let daily = json(&h, RANKING, "formatVersion=2").await;
    let realtime = json(&h, RANKING, "formatVersion=2&period=realtime").await;
    assert_ne!(daily["Items"], realtime["Items"]);
    assert_eq!(call(&h, RANKING, "period=weekly").await.0, 400);
    // the order changes from one day to the next
    let next_day = start(SandboxConfig {
        date: Some("2026-06-02".into()),
        ..cfg()
    })
    .await;
    let other = json(&next_day, RANKING, "formatVersion=2").await;
    assert_ne!(daily["Items"], other["Items"]);
    next_day.shutdown().await;
    h.shutdown().await;
}

#[tokio::test]
async fn genre_ranking_holds_the_subtree_items_and_ends_with_an_empty_page() {
    let config = SandboxConfig {
        items: 400,
        ..cfg()
    };
    let ds = dataset(&config);
    let genre = ds
        .genres
        .iter()
        .filter(|g| g.level == 1)
        .max_by_key(|g| ds.subtree_item_indices(g.id).map_or(0, <[u32]>::len))
        .expect("a level-1 genre");
    let members: HashSet<&str> = ds
        .subtree_item_indices(genre.id)
        .expect("known genre")
        .iter()
        .map(|&i| ds.items[i as usize].item_code.as_str())
        .collect();
    assert!(
        members.len() > 30 && members.len() < 1000,
        "test wants a multi-page genre, got {}",
        members.len()
    );
    let h = start(config).await;
    let mut got = HashSet::new();
    let mut page = 1;
    loop {
        let v = json(
            &h,
            RANKING,
            &format!("formatVersion=2&genreId={}&page={page}", genre.id),
        )
        .await;
        assert_eq!(
            v["title"],
            format!("【楽天市場】ランキング市場 【{}】", genre.name)
        );
        let rows = items(&v);
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let code = r["itemCode"].as_str().expect("itemCode");
            assert!(
                members.contains(code),
                "{code} is not in genre {}",
                genre.id
            );
            let gid: u64 = r["genreId"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("genreId string");
            let mut g = ds.genre(gid).expect("item genre exists");
            while g.level > 1 {
                g = ds.genre(g.parent).expect("parent");
            }
            assert_eq!(g.id, genre.id);
            got.insert(code.to_string());
        }
        page += 1;
    }
    assert_eq!(got.len(), members.len());
    assert_eq!(
        page,
        members.len().div_ceil(30) + 1,
        "the page after the last full one is empty"
    );
    // unknown genre → 404 classic body
    let (status, body) = call(&h, RANKING, "genreId=999").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        br#"{"error":"not_found","error_description":"not found"}"#
    );
    h.shutdown().await;
}

#[tokio::test]
async fn format_version_1_wraps_and_2_flattens() {
    let (ds, h) = start_with_data(cfg()).await;

    // ranking: default is v1
    let v1 = json(&h, RANKING, "").await;
    let first = &items(&v1)[0];
    assert!(first["Item"]["itemCode"].is_string());
    let with_images = items(&v1)
        .iter()
        .find(|r| r["Item"]["imageFlag"] == 1)
        .expect("an item with images");
    assert!(with_images["Item"]["mediumImageUrls"][0]["imageUrl"]
        .as_str()
        .unwrap_or("")
        .ends_with("?_ex=128x128"));
    let v2 = json(&h, RANKING, "formatVersion=2").await;
    let first2 = &items(&v2)[0];
    assert!(first2.get("Item").is_none());
    assert_eq!(first2["itemCode"], first["Item"]["itemCode"]);
    let with_images = items(&v2)
        .iter()
        .find(|r| r["imageFlag"] == 1)
        .expect("an item with images");
    assert!(with_images["smallImageUrls"][0]
        .as_str()
        .unwrap_or("")
        .ends_with("?_ex=64x64"));

    // item search
    let s1 = json(&h, SEARCH, "genreId=0&hits=2").await;
    assert!(items(&s1)[0]["Item"]["itemCode"].is_string());
    let s2 = json(&h, SEARCH, "genreId=0&hits=2&formatVersion=2").await;
    assert!(items(&s2)[0]["itemCode"].is_string());

    // genre search on a level-2 genre with children
    let g = ds
        .genres
        .iter()
        .find(|g| g.level == 2 && !g.children.is_empty())
        .expect("level-2 genre");
    let q = format!("genreId={}", g.id);
    let gv1 = json(&h, GENRE, &q).await;
    assert_eq!(gv1["current"]["genreId"], g.id);
    assert_eq!(gv1["parents"][0]["parent"]["genreLevel"], 1);
    assert_eq!(gv1["children"][0]["child"]["genreLevel"], 3);
    if let Some(b) = gv1["brothers"].as_array().and_then(|b| b.first()) {
        assert_eq!(b["brother"]["genreLevel"], 2);
    }
    assert!(gv1["tagGroups"][0]["tagGroup"]["tags"][0]["tag"]["tagId"].is_u64());
    let gv2 = json(&h, GENRE, &format!("{q}&formatVersion=2")).await;
    assert_eq!(gv2["parents"][0]["genreLevel"], 1);
    assert_eq!(gv2["children"][0]["genreLevel"], 3);
    assert!(gv2["tagGroups"][0]["tags"][0]["tagId"].is_u64());

    // tag search
    let tag = &ds.tags[3];
    let tv1 = json(&h, TAG, &format!("tagId={}", tag.id)).await;
    assert_eq!(
        tv1["tagGroups"][0]["tagGroup"]["tags"][0]["tag"]["tagId"],
        tag.id
    );
    let tv2 = json(&h, TAG, &format!("tagId={}&formatVersion=2", tag.id)).await;
    assert_eq!(tv2["tagGroups"][0]["tags"][0]["tagName"], tag.name.as_str());

    // anything but 1 or 2 is refused
    let (status, body) = call(&h, RANKING, "formatVersion=3").await;
    assert_eq!(status, 400);
    assert_eq!(parse(&body)["error"], "wrong_parameter");
    h.shutdown().await;
}

#[tokio::test]
async fn item_search_quirks_zero_hits_and_availability() {
    let (ds, h) = start_with_data(cfg()).await;

    // zero hits: count 0 and no Items key at all
    let v = json(&h, SEARCH, "itemCode=nosuchshop:1&formatVersion=2").await;
    assert_eq!(v["count"], 0);
    assert!(v.get("Items").is_none(), "{v}");

    // a sold-out item is hidden by default and found with availability=0
    let sold_out = ds
        .items
        .iter()
        .find(|i| i.availability == 0)
        .expect("a sold-out item");
    let v = json(
        &h,
        SEARCH,
        &format!("itemCode={}&formatVersion=2", sold_out.item_code),
    )
    .await;
    assert_eq!(v["count"], 0);
    assert!(v.get("Items").is_none());
    let v = json(
        &h,
        SEARCH,
        &format!(
            "itemCode={}&availability=0&hits=1&formatVersion=2",
            sold_out.item_code
        ),
    )
    .await;
    assert_eq!(v["count"], 1);
    let row = &items(&v)[0];
    assert_eq!(row["itemCode"], sold_out.item_code.as_str());
    assert_eq!(row["availability"], 0);
    // search wire quirks
    assert!(row["itemPrice"].is_u64());
    assert!(row["reviewAverage"].is_number());
    assert!(row["affiliateRate"].is_number());
    assert_eq!(row["genreId"], sold_out.genre_id.to_string());
    assert_eq!(row["tagIds"], serde_json::json!(sold_out.tag_ids));
    assert_eq!(v["GenreInformation"], serde_json::json!([]));
    assert_eq!(v["TagInformation"], serde_json::json!([]));

    // genre listing: paging fields
    let purchasable = ds.items.iter().filter(|i| i.availability == 1).count();
    let v = json(&h, SEARCH, "genreId=0&hits=30&page=2&formatVersion=2").await;
    assert_eq!(v["count"], purchasable);
    assert_eq!(v["page"], 2);
    assert_eq!(v["first"], 31);
    assert_eq!(v["last"], 60);
    assert_eq!(v["hits"], 30);
    assert_eq!(v["pageCount"], purchasable.div_ceil(30).min(100));
    assert!(items(&v).iter().all(|r| r["availability"] == 1));

    // keyword: every hit contains the word
    let available = ds
        .items
        .iter()
        .find(|i| i.availability == 1)
        .expect("an available item");
    let word = ds
        .genre(available.genre_id)
        .expect("item genre")
        .name
        .clone();
    let q = format!("keyword={}&formatVersion=2", url_encode(&word));
    let v = json(&h, SEARCH, &q).await;
    assert!(v["count"].as_u64().unwrap_or(0) > 0);
    assert!(items(&v)
        .iter()
        .any(|r| r["itemCode"] == available.item_code.as_str()));
    assert!(items(&v)
        .iter()
        .all(|r| r["itemName"].as_str().unwrap_or("").contains(&word)));

    // parameter errors
    for q in [
        "",
        "genreId=0&hits=31",
        "genreId=0&hits=0",
        "genreId=0&page=101",
        "keyword=a",
    ] {
        let (status, body) = call(&h, SEARCH, q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(parse(&body)["error"], "wrong_parameter", "{q}");
    }
    h.shutdown().await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn genre_search_versions_and_tag_search() {
    let (ds, h) = start_with_data(cfg()).await;

    // root: level-1 children
    let root = json(&h, GENRE, "genreId=0&formatVersion=2").await;
    assert_eq!(root["current"]["genreId"], 0);
    assert_eq!(root["current"]["genreName"], "");
    assert_eq!(root["current"]["genreLevel"], 0);
    assert_eq!(root["parents"], serde_json::json!([]));
    let kids = root["children"].as_array().expect("children");
    assert_eq!(
        kids.len(),
        ds.genres.iter().filter(|g| g.level == 1).count()
    );
    assert!(kids
        .iter()
        .all(|c| c["genreLevel"] == 1 && c["englishName"].is_string()));

    // 20140222 has no englishName; 20260401 is the flat shape
    let leaf = ds
        .genres
        .iter()
        .find(|g| g.level == 3)
        .expect("level-3 genre");
    let old = json(
        &h,
        "/services/api/IchibaGenre/Search/20140222",
        &format!("genreId={}&formatVersion=2", leaf.id),
    )
    .await;
    assert!(old["current"].get("englishName").is_none());
    assert_eq!(old["parents"].as_array().map(Vec::len), Some(2));
    let new = json(
        &h,
        "/ichibagt/api/IchibaGenre/Search/20260401",
        &format!("genreId={}", leaf.id),
    )
    .await;
    assert_eq!(new["genre"]["genreId"], leaf.id);
    assert_eq!(new["genre"]["nameJa"], leaf.name.as_str());
    assert_eq!(new["genre"]["nameEn"], leaf.english_name.as_str());
    assert_eq!(new["genre"]["level"], 3);
    assert_eq!(new["ancestors"].as_array().map(Vec::len), Some(2));
    assert_eq!(new["attributes"], serde_json::json!([]));
    assert!(new["siblings"].is_array() && new["children"].is_array());

    assert_eq!(call(&h, GENRE, "").await.0, 400);
    let (status, body) = call(&h, GENRE, "genreId=1").await;
    assert_eq!(status, 404);
    assert_eq!(parse(&body)["error"], "not_found");

    // tag search: grouped by tag group, unknown ids absent
    let g0 = &ds.tag_groups[0];
    let g1 = &ds.tag_groups[1];
    let ids = format!("{},{},{},999", g0.tags[0], g1.tags[0], g0.tags[1]);
    let v = json(&h, TAG, &format!("tagId={ids}&formatVersion=2")).await;
    let groups = v["tagGroups"].as_array().expect("tagGroups");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["tagGroupId"], g0.id);
    assert_eq!(groups[0]["tagGroupName"], g0.name.as_str());
    assert_eq!(groups[0]["tags"].as_array().map(Vec::len), Some(2));
    assert_eq!(groups[1]["tags"][0]["tagId"], g1.tags[0]);
    assert!(groups[1]["tags"][0]["parentTagId"].is_u64());
    let v = json(&h, TAG, "tagId=999").await;
    assert_eq!(v["tagGroups"], serde_json::json!([]));
    for q in ["", "tagId=0", "tagId=1,2,3,4,5,6,7,8,9,10,11", "tagId=abc"] {
        let (status, body) = call(&h, TAG, q).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(parse(&body)["error"], "wrong_parameter");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn credential_errors_have_the_real_statuses_and_bodies() {
    let h = start(cfg()).await;
    let wrong_app =
        br#"{"error":"wrong_parameter","error_description":"specify valid applicationId"}"#;
    let cases: [(String, u16, &[u8]); 5] = [
        (format!("{RANKING}?accessKey={KEY}"), 400, wrong_app),
        (format!("{RANKING}?applicationId=12345&accessKey={KEY}"), 400, wrong_app),
        (
            format!("{RANKING}?applicationId={APP}"),
            400,
            br#"{"errors":{"errorCode":400,"errorMessage":"accessKey must be present as a query parameter or in the header"}}"#,
        ),
        (
            format!("{RANKING}?applicationId={APP}&accessKey=pk_wrong"),
            403,
            br#"{"errors":{"errorCode":403,"errorMessage":"Invalid Access Key"}}"#,
        ),
        (
            "/services/api/IchibaItem/Nope/20220601".to_string(),
            404,
            br#"{"error":"not_found","error_description":"not found"}"#,
        ),
    ];
    for (pq, status, body) in &cases {
        let (s, b) = raw(&h, pq).await;
        assert_eq!(s, *status, "{pq}");
        assert_eq!(b, *body, "{pq}: {}", String::from_utf8_lossy(&b));
    }
    // UUID app id and the key in a header are accepted
    let resp = reqwest::Client::new()
        .get(format!(
            "{}{RANKING}?applicationId={APP_UUID}",
            h.base_url()
        ))
        .header("accessKey", KEY)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let stats = h.stats();
    assert_eq!(stats.client_errors, 5);
    assert_eq!(stats.ok, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn rate_limit_is_per_application_id() {
    let h = start(SandboxConfig {
        rate_limit_per_sec: Some(1.0),
        ..cfg()
    })
    .await;
    let other = "9876543210987654321";
    let pq = |app: &str| format!("{GENRE}?applicationId={app}&accessKey={KEY}&genreId=0");
    assert_eq!(raw(&h, &pq(APP)).await.0, 200);
    let (status, body) = raw(&h, &pq(APP)).await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        br#"{"error":"too_many_requests","error_description":"number of allowed requests has been exceeded for this API. please try again soon."}"#
    );
    assert_eq!(
        raw(&h, &pq(other)).await.0,
        200,
        "another app id has its own budget"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(raw(&h, &pq(APP)).await.0, 200, "the budget refills");
    let stats = h.stats();
    assert_eq!((stats.requests, stats.ok, stats.rate_limited), (4, 3, 1));
    h.shutdown().await;
}

#[tokio::test]
async fn persistent_errors_repeat_and_transient_ones_do_not() {
    let config = SandboxConfig {
        error_rate: 0.5,
        error_mode: ErrorMode::Persistent,
        ..cfg()
    };
    let h = start(config).await;
    let mut failing = None;
    let mut passing = None;
    for page in 1..=34 {
        let q = format!("page={page}");
        let (status, body) = call(&h, RANKING, &q).await;
        match status {
            500 => {
                assert_eq!(
                    body,
                    br#"{"error":"system_error","error_description":"api logic error"}"#
                );
                failing.get_or_insert(q);
            }
            503 => {
                assert_eq!(
                    body,
                    br#"{"error":"service_unavailable","error_description":"IchibaItem/Ranking is under maintenance"}"#
                );
                failing.get_or_insert(q);
            }
            200 => {
                passing.get_or_insert(q);
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let (failing, passing) = (
        failing.expect("some page fails"),
        passing.expect("some page passes"),
    );
    for _ in 0..5 {
        assert!(
            call(&h, RANKING, &failing).await.0 >= 500,
            "{failing} must keep failing"
        );
        // credentials and formatVersion are not part of the unit
        assert!(
            raw(
                &h,
                &format!(
                    "{RANKING}?formatVersion=2&applicationId={APP_UUID}&accessKey={KEY}&{failing}"
                )
            )
            .await
            .0 >= 500
        );
        assert_eq!(
            call(&h, RANKING, &passing).await.0,
            200,
            "{passing} must keep passing"
        );
    }
    let stats = h.stats();
    assert!(stats.server_errors >= 11);
    h.shutdown().await;

    let h = start(SandboxConfig {
        error_rate: 0.5,
        ..cfg()
    })
    .await;
    let mut statuses = HashSet::new();
    for _ in 0..30 {
        statuses.insert(call(&h, RANKING, "page=1").await.0);
    }
    assert!(statuses.contains(&200), "transient: a retry can succeed");
    assert!(
        statuses.iter().any(|s| *s >= 500),
        "transient: errors happen"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_invalid_json() {
    let h = start(SandboxConfig {
        malformed_rate: 1.0,
        ..cfg()
    })
    .await;
    for (path, q) in [
        (RANKING, "page=1"),
        (GENRE, "genreId=0"),
        (SEARCH, "genreId=0"),
    ] {
        let (status, body) = call(&h, path, q).await;
        assert_eq!(status, 200);
        assert!(!body.is_empty());
        assert!(
            serde_json::from_slice::<Value>(&body).is_err(),
            "{path} body parsed"
        );
    }
    // errors are never malformed
    let (status, body) = call(&h, GENRE, "").await;
    assert_eq!(status, 400);
    assert_eq!(parse(&body)["error"], "wrong_parameter");
    let stats = h.stats();
    assert_eq!((stats.malformed, stats.client_errors, stats.ok), (3, 1, 0));
    h.shutdown().await;
}

#[tokio::test]
async fn stats_health_latency_and_shutdown() {
    let h = start(SandboxConfig {
        latency: Duration::from_millis(150),
        ..cfg()
    })
    .await;
    let (status, body) = raw(&h, "/__sandbox/health").await;
    assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()));

    let started = Instant::now();
    assert_eq!(call(&h, GENRE, "genreId=0").await.0, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency is added"
    );
    assert_eq!(call(&h, GENRE, "genreId=1").await.0, 404);
    assert_eq!(call(&h, TAG, "tagId=0").await.0, 400);

    let (status, body) = raw(&h, "/__sandbox/stats").await;
    assert_eq!(status, 200);
    let v = parse(&body);
    let expected = SandboxStats {
        requests: 3,
        ok: 1,
        client_errors: 2,
        ..SandboxStats::default()
    };
    assert_eq!(h.stats(), expected);
    assert_eq!(v, serde_json::to_value(&expected).expect("stats serialise"));

    let base = h.base_url();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(base, format!("http://{}", h.addr()));
    h.shutdown().await;
    assert!(
        reqwest::get(format!("{base}/__sandbox/health"))
            .await
            .is_err(),
        "stopped after shutdown"
    );
}

#[tokio::test]
async fn bad_config_is_refused() {
    let err = Sandbox::start(SandboxConfig {
        date: Some("2026-13-01".into()),
        ..cfg()
    })
    .await
    .err();
    assert_eq!(
        err.map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}
