//! Parsers against the recorded fixtures and constructed wire variants.

use rakuten_client::models::{
    parse_error_body, parse_genre, parse_item_search, parse_ranking, parse_tags, TagGroup,
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/rakuten/",
            $name
        ))
        .as_slice()
    };
}

// ---------------------------------------------------------------------------
// Recorded fixtures
// ---------------------------------------------------------------------------

#[test]
fn fixture_ranking() {
    let page = parse_ranking(fixture!("ranking_search.json")).unwrap();
    assert_eq!(
        page.title.as_deref(),
        Some("【楽天市場】ランキング市場 【総合】")
    );
    assert_eq!(
        page.last_build_date.as_deref(),
        Some("Sat, 28 Jan 2017 00:00:00 +0900")
    );
    assert_eq!(page.items.len(), 30);
    let ranks: Vec<i32> = page.items.iter().map(|i| i.rank).collect();
    assert_eq!(ranks, (1..=30).collect::<Vec<_>>());

    let first = &page.items[0];
    assert_eq!(first.item_code, "girls-web:10000087");
    assert_eq!(first.item_price, Some(3980)); // "3980" on the wire
    assert_eq!(first.review_average, Some(4.0)); // "4.0"
    assert_eq!(first.affiliate_rate, Some(1.0)); // "1.0"
    assert_eq!(first.review_count, Some(3422));
    assert_eq!(first.genre_id, Some(201488)); // "201488"
    assert_eq!(first.availability, Some(1));
    assert_eq!(first.tax_flag, Some(0));
    assert_eq!(first.postage_flag, Some(0));
    assert_eq!(first.point_rate, Some(1));
    assert_eq!(first.shop_code.as_deref(), Some("girls-web"));
    assert_eq!(first.shop_name.as_deref(), Some("ベルタ楽天市場店"));
    assert_eq!(
        first.shop_url.as_deref(),
        Some("http://www.rakuten.co.jp/girls-web/")
    );
    assert_eq!(first.affiliate_url, None); // "" on the wire
    assert!(!first.image_urls.is_empty());
    assert!(
        first.image_urls[0].contains("_ex=128x128"),
        "{:?}",
        first.image_urls
    );

    let fourth = &page.items[3];
    assert_eq!(fourth.item_code, "hisamatsu:10000170");
    assert_eq!(fourth.item_price, Some(500));
    assert_eq!(fourth.review_average, Some(4.55));
    assert_eq!(fourth.affiliate_rate, Some(1.1));
    assert_eq!(page.items[29].item_code, "dress-asa:10004050");
}

#[test]
fn fixture_item_search() {
    let page = parse_item_search(fixture!("item_search_with_keyword_Ruby.json")).unwrap();
    assert_eq!(page.count, 84930);
    assert_eq!(page.page, Some(1));
    assert_eq!(page.page_count, Some(100));
    assert_eq!(page.hits, Some(30));
    assert_eq!(page.items.len(), 30);
    let first = &page.items[0];
    assert_eq!(first.item_code, "book:17798676");
    assert_eq!(first.item_name, "たのしいRuby第5版 [ 高橋征義 ]");
    assert_eq!(first.item_price, Some(2808));
    assert_eq!(first.genre_id, Some(101937));
    assert_eq!(first.point_rate, Some(3));
    assert_eq!(
        first.point_rate_start_time.as_deref(),
        Some("2017-01-16 12:00")
    );
    assert_eq!(
        first.point_rate_end_time.as_deref(),
        Some("2017-01-31 23:59")
    );
    assert_eq!(first.start_time, None);
    assert_eq!(first.gift_flag, Some(0));
    assert_eq!(first.affiliate_rate, Some(1.0));
    assert_eq!(first.review_average, Some(0.0));
    assert!(first.tag_ids.is_empty());
    assert!(first
        .item_caption
        .as_deref()
        .unwrap()
        .starts_with("高橋征義"));
    assert_eq!(page.items[1].item_code, "rakutenkobo-ebooks:11545370");
    assert_eq!(page.items[1].item_price, Some(2160));
}

#[test]
fn fixture_item_search_no_items() {
    let page = parse_item_search(fixture!("item_search_with_no_items.json")).unwrap();
    assert_eq!(page.count, 0);
    assert_eq!(page.page_count, Some(0));
    assert!(page.items.is_empty());
}

#[test]
fn fixture_genre_root() {
    let g = parse_genre(fixture!("genre_search.json")).unwrap();
    let cur = g.current.unwrap();
    assert_eq!((cur.genre_id, cur.level, cur.name.as_str()), (0, 0, ""));
    assert!(g.parents.is_empty());
    assert!(g.siblings.is_empty());
    assert!(g.tag_groups.is_empty());
    assert_eq!(g.children.len(), 36);
    assert_eq!(g.children[0].genre_id, 101240);
    assert_eq!(g.children[0].name, "CD・DVD・楽器");
    assert_eq!(g.children[0].level, 1);
    assert_eq!(g.children[35].genre_id, 565004);
}

#[test]
fn fixture_genre_with_parents() {
    let g = parse_genre(fixture!("parents_genre_search.json")).unwrap();
    let cur = g.current.unwrap();
    assert_eq!(cur.genre_id, 201351);
    assert_eq!(cur.name, "水・ミネラルウォーター");
    assert_eq!(cur.level, 2);
    assert_eq!(g.parents.len(), 1);
    assert_eq!(g.parents[0].genre_id, 100316);
    assert_eq!(g.parents[0].name, "水・ソフトドリンク");
    assert_eq!(g.siblings.len(), 9);
    assert_eq!(g.siblings[0].genre_id, 559934);
    assert!(g.children.is_empty());
    assert_eq!(g.tag_groups.len(), 6);
    let brands = &g.tag_groups[0];
    assert_group(
        brands,
        (1000190, "水のブランド", 27),
        (1003704, "クリスタルガイザー", 0),
    );
}

#[test]
fn fixture_tags() {
    let t = parse_tags(fixture!("tag_search.json")).unwrap();
    assert_eq!(t.tag_groups.len(), 1);
    assert_group(
        &t.tag_groups[0],
        (1000041, "サイズ（S/M/L）", 1),
        (1000317, "SS", 0),
    );
}

/// A tag group is (id, name, number of tags) and its first tag (id, name, parent id).
fn assert_group(g: &TagGroup, group: (i64, &str, usize), first_tag: (i64, &str, i64)) {
    assert_eq!((g.tag_group_id, g.name.as_str(), g.tags.len()), group);
    let t = &g.tags[0];
    assert_eq!((t.tag_id, t.name.as_str(), t.parent_tag_id), first_tag);
}

// ---------------------------------------------------------------------------
// Constructed variants
// ---------------------------------------------------------------------------

#[test]
fn ranking_format_version_1_wrapped() {
    let body = r#"{
        "title": "T", "lastBuildDate": "Mon, 01 Jun 2026 10:00:00 +0900",
        "Items": [
            {"Item": {"rank": 2, "itemCode": "s:2", "itemName": "two", "itemPrice": 3980,
                      "smallImageUrls": [{"imageUrl": "https://img/s2.jpg"}],
                      "mediumImageUrls": []}},
            {"Item": {"rank": 1, "itemCode": "s:1", "itemName": "one", "itemPrice": "2980",
                      "smallImageUrls": [{"imageUrl": "https://img/s1.jpg"}],
                      "mediumImageUrls": [{"imageUrl": "https://img/m1.jpg"}, {"imageUrl": "https://img/m1b.jpg"}],
                      "reviewAverage": "4.52", "reviewCount": "215", "genreId": 100283}}
        ]
    }"#;
    let page = parse_ranking(body.as_bytes()).unwrap();
    assert_eq!(page.items.len(), 2);
    let one = &page.items[0];
    assert_eq!(one.rank, 1);
    assert_eq!(one.item_code, "s:1");
    assert_eq!(one.item_price, Some(2980));
    assert_eq!(
        one.image_urls,
        vec![
            "https://img/m1.jpg".to_string(),
            "https://img/m1b.jpg".to_string()
        ]
    );
    assert_eq!(one.review_average, Some(4.52));
    assert_eq!(one.review_count, Some(215));
    assert_eq!(one.genre_id, Some(100283));
    let two = &page.items[1];
    assert_eq!(two.item_price, Some(3980));
    // No medium images: fall back to the small ones.
    assert_eq!(two.image_urls, vec!["https://img/s2.jpg".to_string()]);
}

#[test]
fn ranking_lowercase_items_key_and_v2_images() {
    let body = r#"{"items": [{"rank": 1, "itemCode": "s:1", "itemName": "a",
        "mediumImageUrls": ["https://img/m.jpg?_ex=128x128"]}]}"#;
    let page = parse_ranking(body.as_bytes()).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].image_urls,
        vec!["https://img/m.jpg?_ex=128x128"]
    );
    assert_eq!(page.title, None);
}

#[test]
fn number_and_string_variants() {
    let as_strings = br#"{"Items": [{"rank": "1", "itemCode": "s:1", "itemName": "a",
        "itemPrice": "3980", "reviewAverage": "4.52", "affiliateRate": "2.5",
        "pointRate": "3", "availability": "1", "genreId": "201488"}]}"#;
    let as_numbers = br#"{"Items": [{"rank": 1, "itemCode": "s:1", "itemName": "a",
        "itemPrice": 3980, "reviewAverage": 4.52, "affiliateRate": 2.5,
        "pointRate": 3, "availability": 1, "genreId": 201488}]}"#;
    let a = parse_ranking(as_strings).unwrap();
    let b = parse_ranking(as_numbers).unwrap();
    assert_eq!(a, b);
    let i = &a.items[0];
    assert_eq!(i.item_price, Some(3980));
    assert_eq!(i.review_average, Some(4.52));
    assert_eq!(i.affiliate_rate, Some(2.5));
    assert_eq!(i.point_rate, Some(3));
    assert_eq!(i.genre_id, Some(201488));

    let empties = br#"{"Items": [{"rank": 1, "itemCode": 12345, "itemName": "a",
        "itemPrice": "", "reviewAverage": "", "reviewCount": null, "genreId": "",
        "catchcopy": "", "shopName": "x"}]}"#;
    let e = parse_ranking(empties).unwrap();
    let i = &e.items[0];
    assert_eq!(i.item_code, "12345"); // a number where text is expected
    assert_eq!(i.item_price, None);
    assert_eq!(i.review_average, None);
    assert_eq!(i.review_count, None);
    assert_eq!(i.genre_id, None);
    assert_eq!(i.catchcopy, None);
    assert_eq!(i.shop_name.as_deref(), Some("x"));
    assert!(i.image_urls.is_empty());
}

#[test]
fn descending_ranks_are_sorted() {
    let items: Vec<String> = (1..=30)
        .rev()
        .map(|r| format!(r#"{{"rank": {r}, "itemCode": "s:{r}", "itemName": "n{r}"}}"#))
        .collect();
    let body = format!(r#"{{"Items": [{}]}}"#, items.join(","));
    let page = parse_ranking(body.as_bytes()).unwrap();
    let ranks: Vec<i32> = page.items.iter().map(|i| i.rank).collect();
    assert_eq!(ranks, (1..=30).collect::<Vec<_>>());
    assert_eq!(page.items[0].item_code, "s:1");
    assert_eq!(page.items[29].item_code, "s:30");
}

#[test]
fn ranking_item_without_rank_is_an_error() {
    let body = r#"{"Items": [{"itemCode": "s:1", "itemName": "a"}]}"#;
    assert!(parse_ranking(body.as_bytes()).is_err());
}

#[test]
fn item_search_v1_with_tags_and_strings() {
    let body = r#"{"count": "1", "page": 1, "hits": 1, "pageCount": 1,
        "Items": [{"Item": {"itemCode": "shop:1", "itemName": "x", "itemPrice": "2980",
            "reviewAverage": "4.52", "tagIds": [1000317, "1003704"], "giftFlag": "1",
            "mediumImageUrls": [{"imageUrl": "https://img/m.jpg"}],
            "pointRateStartTime": "2026-06-01 10:00", "startTime": ""}}]}"#;
    let page = parse_item_search(body.as_bytes()).unwrap();
    assert_eq!(page.count, 1);
    let i = &page.items[0];
    assert_eq!(i.item_code, "shop:1");
    assert_eq!(i.item_price, Some(2980));
    assert_eq!(i.review_average, Some(4.52));
    assert_eq!(i.tag_ids, vec![1000317, 1003704]);
    assert_eq!(i.gift_flag, Some(1));
    assert_eq!(i.image_urls, vec!["https://img/m.jpg"]);
    assert_eq!(i.point_rate_start_time.as_deref(), Some("2026-06-01 10:00"));
    assert_eq!(i.start_time, None);
}

#[test]
fn zero_hit_search_constructed() {
    let page = parse_item_search(br#"{"count": 0, "hits": 0, "unknownField": {"a": 1}}"#).unwrap();
    assert_eq!(page.count, 0);
    assert!(page.items.is_empty());
    // Also with an explicit empty list, lowercase key.
    let page = parse_item_search(br#"{"count": 0, "items": []}"#).unwrap();
    assert!(page.items.is_empty());
}

#[test]
fn search_without_count_is_an_error() {
    assert!(parse_item_search(br#"{"Items": []}"#).is_err());
}

#[test]
fn genre_format_version_1_wrapped() {
    let body = r#"{
        "parents": [{"parent": {"genreId": 551167, "genreName": "スイーツ・お菓子", "genreLevel": 1}}],
        "current": {"genreId": 100283, "genreName": "洋菓子", "genreLevel": 2},
        "brothers": [{"brother": {"genreId": "100284", "genreName": "和菓子", "genreLevel": "2"}}],
        "children": [{"child": {"genreId": 100301, "genreName": "チョコレート", "genreLevel": 3}}],
        "tagGroups": [{"tagGroup": {"tagGroupName": "内容量", "tagGroupId": 1000100,
            "tags": [{"tag": {"tagId": 1000900, "tagName": "12個", "parentTagId": 0}}]}}]
    }"#;
    let g = parse_genre(body.as_bytes()).unwrap();
    assert_eq!(g.current.as_ref().unwrap().genre_id, 100283);
    assert_eq!(g.parents.len(), 1);
    assert_eq!(g.parents[0].name, "スイーツ・お菓子");
    assert_eq!(g.siblings[0].genre_id, 100284);
    assert_eq!(g.siblings[0].level, 2);
    assert_eq!(g.children[0].name, "チョコレート");
    assert_eq!(g.children[0].level, 3);
    assert_eq!(g.tag_groups[0].tag_group_id, 1000100);
    assert_eq!(g.tag_groups[0].tags[0].tag_id, 1000900);
    assert_eq!(g.tag_groups[0].tags[0].name, "12個");
}

#[test]
fn genre_parents_come_root_first() {
    let body = r#"{
        "parents": [{"genreId": 2, "genreName": "L2", "genreLevel": 2},
                    {"genreId": 1, "genreName": "L1", "genreLevel": 1}],
        "current": {"genreId": 3, "genreName": "L3", "genreLevel": 3}
    }"#;
    let g = parse_genre(body.as_bytes()).unwrap();
    let ids: Vec<i64> = g.parents.iter().map(|p| p.genre_id).collect();
    assert_eq!(ids, vec![1, 2]);
}

#[test]
fn genre_flat_newer_shape() {
    let body = r#"{
        "genre": {"genreId": 100283, "nameJa": "洋菓子", "nameEn": "Western Sweets", "level": 2},
        "ancestors": [{"genreId": 551167, "nameJa": "スイーツ・お菓子", "level": 1}],
        "siblings": [{"genreId": 100284, "nameJa": "和菓子", "level": 2}],
        "children": [{"genreId": 100301, "nameJa": "チョコレート", "level": 3}],
        "attributes": []
    }"#;
    let g = parse_genre(body.as_bytes()).unwrap();
    let cur = g.current.unwrap();
    assert_eq!(cur.genre_id, 100283);
    assert_eq!(cur.name, "洋菓子");
    assert_eq!(cur.level, 2);
    assert_eq!(cur.english_name.as_deref(), Some("Western Sweets"));
    assert_eq!(g.parents[0].genre_id, 551167);
    assert_eq!(g.parents[0].level, 1);
    assert_eq!(g.siblings[0].name, "和菓子");
    assert_eq!(g.children[0].genre_id, 100301);
    assert!(g.tag_groups.is_empty());
}

#[test]
fn genre_2017_english_name() {
    let body = r#"{"current": {"genreId": 1, "genreName": "a", "genreLevel": 1,
        "englishName": "A", "linkGenreId": "", "chopperFlg": 0, "lowestFlg": 0}}"#;
    let g = parse_genre(body.as_bytes()).unwrap();
    assert_eq!(g.current.unwrap().english_name.as_deref(), Some("A"));
}

#[test]
fn tags_format_version_1_wrapped_and_strings() {
    let body = r#"{"tagGroups": [
        {"tagGroup": {"tagGroupName": "サイズ（S/M/L）", "tagGroupId": "1000041",
            "tags": [{"tag": {"tagId": "1000317", "tagName": "SS", "parentTagId": "0"}},
                     {"tag": {"tagId": 1000318, "tagName": "S", "parentTagId": 1000317}}]}},
        {"tagGroup": {"tagGroupName": "水のブランド", "tagGroupId": 1000190,
            "tags": [{"tag": {"tagId": 1003704, "tagName": "クリスタルガイザー", "parentTagId": 0}}]}}
    ]}"#;
    let t = parse_tags(body.as_bytes()).unwrap();
    assert_eq!(t.tag_groups.len(), 2);
    assert_eq!(t.tag_groups[0].tag_group_id, 1000041);
    assert_eq!(t.tag_groups[0].tags[0].tag_id, 1000317);
    assert_eq!(t.tag_groups[0].tags[0].parent_tag_id, 0);
    assert_eq!(t.tag_groups[0].tags[1].parent_tag_id, 1000317);
    assert_eq!(t.tag_groups[1].tags[0].name, "クリスタルガイザー");
}

#[test]
fn error_body_shapes() {
    assert_eq!(
        parse_error_body(
            br#"{"error": "wrong_parameter", "error_description": "specify valid applicationId"}"#
        ),
        Some((
            Some("wrong_parameter".to_string()),
            Some("specify valid applicationId".to_string())
        ))
    );
    assert_eq!(
        parse_error_body(
            br#"{"errors": {"errorCode": 403, "errorMessage": "REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING"}}"#
        ),
        Some((
            Some("403".to_string()),
            Some("REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING".to_string())
        ))
    );
    assert_eq!(
        parse_error_body(
            br#"{"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}"#
        ),
        Some((
            Some("429".to_string()),
            Some("Rate limit is exceeded. Try again in 1 seconds.".to_string())
        ))
    );
    assert_eq!(parse_error_body(b"<html>502 Bad Gateway</html>"), None);
    assert_eq!(parse_error_body(b""), None);
    assert_eq!(parse_error_body(br#"{"count": 0}"#), None);
    assert_eq!(parse_error_body(br#"[1, 2]"#), None);
}

#[test]
fn error_bodies_are_not_empty_pages() {
    let classic = br#"{"error": "wrong_parameter", "error_description": "page must be 1-34"}"#;
    let gateway = br#"{"errors": {"errorCode": 403, "errorMessage": "Invalid Access Key"}}"#;
    let status = br#"{"statusCode": 429, "message": "Rate limit is exceeded."}"#;
    for body in [&classic[..], &gateway[..], &status[..]] {
        assert!(parse_ranking(body).is_err());
        assert!(parse_item_search(body).is_err());
        assert!(parse_genre(body).is_err());
        assert!(parse_tags(body).is_err());
    }
    let err = parse_ranking(classic).unwrap_err().to_string();
    assert!(err.contains("page must be 1-34"), "{err}");
}

#[test]
fn malformed_bodies() {
    for body in [
        &b"{\"Items\": [ {\"rank\": 1"[..],
        b"<html>oops</html>",
        b"",
        b"[]",
        b"\"text\"",
        br#"{"Items": "nope"}"#,
        br#"{"Items": [{"rank": "first", "itemCode": "s:1"}]}"#,
    ] {
        assert!(
            parse_ranking(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(parse_item_search(br#"{"count": "many"}"#).is_err());
    assert!(parse_tags(br#"{"tagGroups": [{"tagGroupName": "x"}]}"#).is_err());
    assert!(parse_genre(br#"{"current": {"genreName": "no id"}}"#).is_err());
}
