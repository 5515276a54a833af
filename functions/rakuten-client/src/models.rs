//! Typed views of the four Ichiba API responses, and parsers that accept every
//! wire variant seen in the wild: `formatVersion` 1 (wrapped elements) and 2
//! (flat), numbers sent as strings and strings sent as numbers, missing keys for
//! empty lists, `Items` or `items`, and unknown fields (ignored).
//!
//! The `parse_*` functions work on raw bytes, so stored response bodies can be
//! re-parsed without any HTTP.

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lenient;

// ---------------------------------------------------------------------------
// Public models
// ---------------------------------------------------------------------------

/// One page (≤ 30 rows) of the Item Ranking API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingPage {
    /// Ranking title, e.g. `【楽天市場】ランキング市場 【総合】`.
    pub title: Option<String>,
    /// Build time as sent by the API, e.g. `Sat, 28 Jan 2017 00:00:00 +0900`.
    pub last_build_date: Option<String>,
    /// Ranked items, sorted by `rank` ascending (array order is not trusted).
    pub items: Vec<RankingItem>,
}

/// One row of a ranking page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankingItem {
    /// Rank, 1–1000.
    pub rank: i32,
    /// `shopCode:itemId`; the join key to Item Search.
    pub item_code: String,
    /// Item name.
    pub item_name: String,
    /// Short sales copy; `None` when absent or empty.
    pub catchcopy: Option<String>,
    /// Price in yen (sent as a string by Ranking, a number by Search).
    pub item_price: Option<i64>,
    /// Item page URL.
    pub item_url: Option<String>,
    /// Affiliate URL; `None` unless an affiliate id was sent.
    pub affiliate_url: Option<String>,
    /// Thumbnail URLs: the medium (128×128) list, else the small (64×64) one.
    pub image_urls: Vec<String>,
    /// 1 = purchasable, 0 = not.
    pub availability: Option<i32>,
    /// 0 = tax included, 1 = excluded.
    pub tax_flag: Option<i32>,
    /// 0 = postage included/free, 1 = separate.
    pub postage_flag: Option<i32>,
    /// Number of reviews.
    pub review_count: Option<i64>,
    /// Average review score (0.0–5.0).
    pub review_average: Option<f64>,
    /// Point multiplier.
    pub point_rate: Option<i32>,
    /// Shop code (the `xyz` of `www.rakuten.co.jp/xyz/`).
    pub shop_code: Option<String>,
    /// Shop name.
    pub shop_name: Option<String>,
    /// Shop URL.
    pub shop_url: Option<String>,
    /// Genre the item is ranked under.
    pub genre_id: Option<i64>,
    /// Affiliate rate in percent.
    pub affiliate_rate: Option<f64>,
    /// The item's description, as Item Search gives it; `None` when absent.
    pub item_caption: Option<String>,
    /// When a point campaign starts and ends (`YYYY-MM-DD HH:MM`, JST), as the API sends them.
    pub point_rate_start_time: Option<String>,
    pub point_rate_end_time: Option<String>,
}

/// One page of the Item Search API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemSearchPage {
    /// Total number of hits (0 for an item that is gone).
    pub count: i64,
    /// Current page.
    pub page: Option<i64>,
    /// Total pages (capped at 100 by the API).
    pub page_count: Option<i64>,
    /// Rows on this page.
    pub hits: Option<i64>,
    /// The items; empty when the API sent no `Items` key.
    pub items: Vec<SearchItem>,
}

/// One Item Search row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchItem {
    /// `shopCode:itemId`.
    pub item_code: String,
    /// Item name.
    pub item_name: String,
    /// Short sales copy; `None` when absent or empty.
    pub catchcopy: Option<String>,
    /// Long item description.
    pub item_caption: Option<String>,
    /// Price in yen.
    pub item_price: Option<i64>,
    /// Item page URL.
    pub item_url: Option<String>,
    /// Affiliate URL; `None` unless an affiliate id was sent.
    pub affiliate_url: Option<String>,
    /// Thumbnail URLs: the medium list, else the small one.
    pub image_urls: Vec<String>,
    /// 1 = purchasable, 0 = not.
    pub availability: Option<i32>,
    /// 0 = tax included, 1 = excluded.
    pub tax_flag: Option<i32>,
    /// 0 = postage included/free, 1 = separate.
    pub postage_flag: Option<i32>,
    /// Number of reviews.
    pub review_count: Option<i64>,
    /// Average review score.
    pub review_average: Option<f64>,
    /// Point multiplier.
    pub point_rate: Option<i32>,
    /// Start of the point campaign, `YYYY-MM-DD HH:MM`.
    pub point_rate_start_time: Option<String>,
    /// End of the point campaign, `YYYY-MM-DD HH:MM`.
    pub point_rate_end_time: Option<String>,
    /// Start of a time sale, `YYYY-MM-DD HH:MM`.
    pub start_time: Option<String>,
    /// End of a time sale, `YYYY-MM-DD HH:MM`.
    pub end_time: Option<String>,
    /// 1 = gift wrapping available.
    pub gift_flag: Option<i32>,
    /// Shop code.
    pub shop_code: Option<String>,
    /// Shop name.
    pub shop_name: Option<String>,
    /// Shop URL.
    pub shop_url: Option<String>,
    /// Genre of the item.
    pub genre_id: Option<i64>,
    /// Affiliate rate in percent.
    pub affiliate_rate: Option<f64>,
    /// Tag ids attached to the item (may be empty).
    pub tag_ids: Vec<i64>,
}

/// Genre Search response, normalised over the 2014/2017 and the newer flat shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenreResponse {
    /// The requested genre (root: id 0, level 0, empty name).
    pub current: Option<GenreNode>,
    /// Ancestors, root first (sorted by level).
    pub parents: Vec<GenreNode>,
    /// Genres at the same level under the same parent (`brothers` / `siblings`).
    pub siblings: Vec<GenreNode>,
    /// Direct children.
    pub children: Vec<GenreNode>,
    /// Tag groups usable in this genre (empty when absent).
    pub tag_groups: Vec<TagGroup>,
}

/// One genre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenreNode {
    /// Genre id (0 = root).
    pub genre_id: i64,
    /// Japanese name (`genreName` or `nameJa`).
    pub name: String,
    /// Depth, root = 0 (`genreLevel` or `level`).
    pub level: i32,
    /// English name when sent (`englishName` or `nameEn`).
    pub english_name: Option<String>,
}

/// Tag Search response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagResponse {
    /// Tag groups with their tags.
    pub tag_groups: Vec<TagGroup>,
}

/// A group of tags (e.g. "サイズ（S/M/L）").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagGroup {
    /// Tag group id.
    pub tag_group_id: i64,
    /// Tag group name.
    pub name: String,
    /// Tags in the group.
    pub tags: Vec<Tag>,
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    /// Tag id.
    pub tag_id: i64,
    /// Tag name.
    pub name: String,
    /// Parent tag id, 0 for a top-level tag.
    pub parent_tag_id: i64,
}

// ---------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------

/// Parses an Item Ranking body (either formatVersion). Items come back sorted by rank.
pub fn parse_ranking(body: &[u8]) -> Result<RankingPage, serde_json::Error> {
    let v = parse_object(body, &["Items", "items", "title", "lastBuildDate"])?;
    let raw: RawRankingPage = serde_json::from_value(v)?;
    let mut items = raw
        .items
        .into_iter()
        .map(RawItem::into_ranking)
        .collect::<Result<Vec<_>, _>>()
        .map_err(serde_json::Error::custom)?;
    items.sort_by_key(|i| i.rank);
    Ok(RankingPage {
        title: raw.title,
        last_build_date: raw.last_build_date,
        items,
    })
}

/// Parses an Item Search body (either formatVersion). A zero-hit answer has no
/// `Items` key and yields an empty list; `count` must be present.
pub fn parse_item_search(body: &[u8]) -> Result<ItemSearchPage, serde_json::Error> {
    let v = parse_object(body, &["count", "Items", "items"])?;
    let raw: RawSearchPage = serde_json::from_value(v)?;
    Ok(ItemSearchPage {
        count: raw.count,
        page: raw.page,
        page_count: raw.page_count,
        hits: raw.hits,
        items: raw.items.into_iter().map(RawItem::into_search).collect(),
    })
}

/// Parses a Genre Search body: the 2014/2017 shape (`current`/`parents`/
/// `brothers`/`children`/`tagGroups`) or the newer flat one (`genre`/
/// `ancestors`/`siblings`/`children`), chosen by which keys are present.
pub fn parse_genre(body: &[u8]) -> Result<GenreResponse, serde_json::Error> {
    let v = parse_object(
        body,
        &[
            "current",
            "parents",
            "brothers",
            "children",
            "genre",
            "ancestors",
            "siblings",
        ],
    )?;
    let flat = v
        .as_object()
        .is_some_and(|o| o.contains_key("genre") || o.contains_key("ancestors"));
    let (current, parents, siblings, children, tag_groups) = if flat {
        let raw: RawGenreFlat = serde_json::from_value(v)?;
        (
            raw.genre,
            raw.ancestors,
            raw.siblings,
            raw.children,
            raw.tag_groups,
        )
    } else {
        let raw: RawGenreClassic = serde_json::from_value(v)?;
        (
            raw.current,
            raw.parents,
            raw.brothers,
            raw.children,
            raw.tag_groups,
        )
    };
    let node = |r: RawGenreNode| r.into_node().map_err(serde_json::Error::custom);
    let nodes = |list: Vec<RawGenreNode>| list.into_iter().map(node).collect::<Result<Vec<_>, _>>();
    let mut parents = nodes(parents)?;
    parents.sort_by_key(|p| p.level);
    Ok(GenreResponse {
        current: current.map(node).transpose()?,
        parents,
        siblings: nodes(siblings)?,
        children: nodes(children)?,
        tag_groups: tag_groups
            .into_iter()
            .map(RawTagGroup::into_group)
            .collect(),
    })
}

/// Parses a Tag Search body (either formatVersion).
pub fn parse_tags(body: &[u8]) -> Result<TagResponse, serde_json::Error> {
    let v = parse_object(body, &["tagGroups"])?;
    let raw: RawTagResponse = serde_json::from_value(v)?;
    Ok(TagResponse {
        tag_groups: raw
            .tag_groups
            .into_iter()
            .map(RawTagGroup::into_group)
            .collect(),
    })
}

/// Reads an error body in any of the three known shapes and returns
/// `(code, message)`:
/// - classic `{"error": "wrong_parameter", "error_description": "…"}`
/// - gateway `{"errors": {"errorCode": 403, "errorMessage": "…"}}`
/// - `{"statusCode": 429, "message": "…"}`
///
/// `None` when the body is not JSON or has none of these shapes.
pub fn parse_error_body(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    error_from_value(&v)
}

fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn error_from_value(v: &Value) -> Option<(Option<String>, Option<String>)> {
    let obj = v.as_object()?;
    if let Some(e) = obj.get("error").filter(|e| !e.is_null()) {
        let code = scalar_text(Some(e));
        let message =
            scalar_text(obj.get("error_description")).or_else(|| scalar_text(obj.get("message")));
        if code.is_some() || message.is_some() {
            return Some((code, message));
        }
    }
    if let Some(errs) = obj.get("errors") {
        let inner = match errs {
            Value::Array(a) => a.first(),
            other => Some(other),
        };
        if let Some(Value::Object(e)) = inner {
            return Some((
                scalar_text(e.get("errorCode")),
                scalar_text(e.get("errorMessage")),
            ));
        }
    }
    if obj.contains_key("statusCode") || obj.contains_key("message") {
        return Some((
            scalar_text(obj.get("statusCode")),
            scalar_text(obj.get("message")),
        ));
    }
    None
}

/// Parses `body` as a JSON object. Rejects non-objects, and error-shaped bodies
/// that carry none of the `data_keys` the caller expects (so an error answered
/// with HTTP 200 never turns into an empty page).
fn parse_object(body: &[u8], data_keys: &[&str]) -> Result<Value, serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let Some(obj) = v.as_object() else {
        return Err(serde_json::Error::custom(format!(
            "expected a JSON object, got {}",
            lenient::kind_of(&v)
        )));
    };
    if !data_keys.iter().any(|k| obj.contains_key(*k)) {
        if let Some((code, message)) = error_from_value(&v) {
            return Err(serde_json::Error::custom(format!(
                "body is an API error: code={}, message={}",
                code.as_deref().unwrap_or("-"),
                message.as_deref().unwrap_or("-")
            )));
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Wire structs (private)
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRankingPage {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    last_build_date: Option<String>,
    #[serde(
        rename = "Items",
        alias = "items",
        default,
        deserialize_with = "lenient::list"
    )]
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSearchPage {
    #[serde(deserialize_with = "lenient::req_i64")]
    count: i64,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    page: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    page_count: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    hits: Option<i64>,
    #[serde(
        rename = "Items",
        alias = "items",
        default,
        deserialize_with = "lenient::list"
    )]
    items: Vec<RawItem>,
}

/// Union of the Ranking and Search item fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem {
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    rank: Option<i32>,
    #[serde(default, deserialize_with = "lenient::string")]
    item_code: String,
    #[serde(default, deserialize_with = "lenient::string")]
    item_name: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    catchcopy: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    item_caption: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    item_price: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    item_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    affiliate_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::image_urls")]
    medium_image_urls: Vec<String>,
    #[serde(default, deserialize_with = "lenient::image_urls")]
    small_image_urls: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    availability: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    tax_flag: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    postage_flag: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    review_count: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    review_average: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    point_rate: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    point_rate_start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    point_rate_end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    gift_flag: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    shop_code: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    shop_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    shop_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    genre_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    affiliate_rate: Option<f64>,
    #[serde(default, deserialize_with = "lenient::i64_list")]
    tag_ids: Vec<i64>,
}

impl RawItem {
    fn images(medium: Vec<String>, small: Vec<String>) -> Vec<String> {
        if medium.is_empty() {
            small
        } else {
            medium
        }
    }

    fn into_ranking(self) -> Result<RankingItem, String> {
        let rank = self
            .rank
            .ok_or_else(|| format!("ranking item {:?} has no rank", self.item_code))?;
        if self.item_code.is_empty() {
            return Err(format!("ranking item at rank {rank} has no itemCode"));
        }
        Ok(RankingItem {
            rank,
            item_code: self.item_code,
            item_name: self.item_name,
            catchcopy: self.catchcopy,
            item_price: self.item_price,
            item_url: self.item_url,
            affiliate_url: self.affiliate_url,
            image_urls: Self::images(self.medium_image_urls, self.small_image_urls),
            availability: self.availability,
            tax_flag: self.tax_flag,
            postage_flag: self.postage_flag,
            review_count: self.review_count,
            review_average: self.review_average,
            point_rate: self.point_rate,
            shop_code: self.shop_code,
            shop_name: self.shop_name,
            shop_url: self.shop_url,
            genre_id: self.genre_id,
            affiliate_rate: self.affiliate_rate,
            item_caption: self.item_caption,
            point_rate_start_time: self.point_rate_start_time,
            point_rate_end_time: self.point_rate_end_time,
        })
    }

    fn into_search(self) -> SearchItem {
        SearchItem {
            item_code: self.item_code,
            item_name: self.item_name,
            catchcopy: self.catchcopy,
            item_caption: self.item_caption,
            item_price: self.item_price,
            item_url: self.item_url,
            affiliate_url: self.affiliate_url,
            image_urls: Self::images(self.medium_image_urls, self.small_image_urls),
            availability: self.availability,
            tax_flag: self.tax_flag,
            postage_flag: self.postage_flag,
            review_count: self.review_count,
            review_average: self.review_average,
            point_rate: self.point_rate,
            point_rate_start_time: self.point_rate_start_time,
            point_rate_end_time: self.point_rate_end_time,
            start_time: self.start_time,
            end_time: self.end_time,
            gift_flag: self.gift_flag,
            shop_code: self.shop_code,
            shop_name: self.shop_name,
            shop_url: self.shop_url,
            genre_id: self.genre_id,
            affiliate_rate: self.affiliate_rate,
            tag_ids: self.tag_ids,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGenreClassic {
    #[serde(default, deserialize_with = "lenient::opt_object")]
    current: Option<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    parents: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    brothers: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    children: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    tag_groups: Vec<RawTagGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGenreFlat {
    #[serde(default, deserialize_with = "lenient::opt_object")]
    genre: Option<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    ancestors: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    siblings: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    children: Vec<RawGenreNode>,
    #[serde(default, deserialize_with = "lenient::list")]
    tag_groups: Vec<RawTagGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGenreNode {
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    genre_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    genre_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name_ja: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    genre_level: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_i32")]
    level: Option<i32>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    english_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name_en: Option<String>,
}

impl RawGenreNode {
    fn into_node(self) -> Result<GenreNode, String> {
        let genre_id = self
            .genre_id
            .ok_or_else(|| "genre node without genreId".to_string())?;
        Ok(GenreNode {
            genre_id,
            name: self.genre_name.or(self.name_ja).unwrap_or_default(),
            level: self.genre_level.or(self.level).unwrap_or(0),
            english_name: self.english_name.or(self.name_en),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTagResponse {
    #[serde(default, deserialize_with = "lenient::list")]
    tag_groups: Vec<RawTagGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTagGroup {
    #[serde(deserialize_with = "lenient::req_i64")]
    tag_group_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    tag_group_name: String,
    #[serde(default, deserialize_with = "lenient::list")]
    tags: Vec<RawTag>,
}

impl RawTagGroup {
    fn into_group(self) -> TagGroup {
        TagGroup {
            tag_group_id: self.tag_group_id,
            name: self.tag_group_name,
            tags: self
                .tags
                .into_iter()
                .map(|t| Tag {
                    tag_id: t.tag_id,
                    name: t.tag_name,
                    parent_tag_id: t.parent_tag_id.unwrap_or(0),
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTag {
    #[serde(deserialize_with = "lenient::req_i64")]
    tag_id: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    tag_name: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    parent_tag_id: Option<i64>,
}
