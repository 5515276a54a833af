//! Wire shapes: field names, order and string/number quirks of the real responses.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::data::{Dataset, Genre, Item, Tag, TagGroup};

/// formatVersion=1 wraps an array element in a one-key object (`{"Item": {...}}`);
/// formatVersion=2 (key `None`) leaves it flat.
pub struct Versioned<T> {
    pub key: Option<&'static str>,
    pub val: T,
}

impl<T: Serialize> Serialize for Versioned<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.key {
            None => self.val.serialize(s),
            Some(k) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(k, &self.val)?;
                m.end()
            }
        }
    }
}

pub fn wrap<T>(v1: bool, key: &'static str, val: T) -> Versioned<T> {
    Versioned {
        key: v1.then_some(key),
        val,
    }
}

/// Image URL list: `["…?_ex=64x64"]` (v2) or `[{"imageUrl": "…"}]` (v1).
pub struct Images<'a> {
    pub urls: &'a [String],
    pub size: &'static str,
    pub v1: bool,
}

impl Serialize for Images<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.urls.len()))?;
        for u in self.urls {
            seq.serialize_element(&wrap(self.v1, "imageUrl", format!("{u}?_ex={}", self.size)))?;
        }
        seq.end()
    }
}

/// A decimal stored in fixed point, emitted as a JSON number (an integer when whole,
/// like `"reviewAverage": 0` and `"affiliateRate": 1` in the recorded Item Search).
pub struct Fixed {
    pub value: u32,
    pub scale: u32,
}

impl Serialize for Fixed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.value.is_multiple_of(self.scale) {
            s.serialize_u32(self.value / self.scale)
        } else {
            s.serialize_f64(f64::from(self.value) / f64::from(self.scale))
        }
    }
}

/// Fixed point as the ranking's strings: `"4.0"`, `"4.5"`, `"4.52"`, `"1.0"`.
pub fn fixed_string(value: u32, scale: u32) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if scale == 100 {
        if frac.is_multiple_of(10) {
            format!("{whole}.{}", frac / 10)
        } else {
            format!("{whole}.{frac:02}")
        }
    } else {
        format!("{whole}.{frac}")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankingItem<'a> {
    pub rank: usize,
    pub carrier: u32,
    pub item_name: &'a str,
    pub catchcopy: &'a str,
    pub item_code: &'a str,
    pub item_price: String,
    pub item_caption: &'a str,
    pub item_url: String,
    pub affiliate_url: &'a str,
    pub shop_affiliate_url: &'a str,
    pub image_flag: u8,
    pub small_image_urls: Images<'a>,
    pub medium_image_urls: Images<'a>,
    pub availability: u8,
    pub tax_flag: u8,
    pub postage_flag: u8,
    pub credit_card_flag: u8,
    pub shop_of_the_year_flag: u8,
    pub ship_overseas_flag: u8,
    pub ship_overseas_area: &'a str,
    pub asuraku_flag: u8,
    pub asuraku_closing_time: &'a str,
    pub asuraku_area: &'a str,
    pub affiliate_rate: String,
    pub start_time: &'a str,
    pub end_time: &'a str,
    pub review_count: u64,
    pub review_average: String,
    pub point_rate: u32,
    pub point_rate_start_time: &'a str,
    pub point_rate_end_time: &'a str,
    pub shop_name: &'a str,
    pub shop_code: &'a str,
    pub shop_url: String,
    pub genre_id: String,
}

impl<'a> RankingItem<'a> {
    pub fn new(item: &'a Item, rank: usize, carrier: u32, v1: bool) -> Self {
        RankingItem {
            rank,
            carrier,
            item_name: &item.name,
            catchcopy: &item.catchcopy,
            item_code: &item.item_code,
            item_price: item.price.to_string(),
            item_caption: &item.caption,
            item_url: item.item_url(),
            affiliate_url: "",
            shop_affiliate_url: "",
            image_flag: item.image_flag,
            small_image_urls: Images {
                urls: &item.image_urls,
                size: "64x64",
                v1,
            },
            medium_image_urls: Images {
                urls: &item.image_urls,
                size: "128x128",
                v1,
            },
            availability: item.availability,
            tax_flag: 0,
            postage_flag: item.postage_flag,
            credit_card_flag: item.credit_card_flag,
            shop_of_the_year_flag: item.shop_of_the_year_flag,
            ship_overseas_flag: 0,
            ship_overseas_area: "",
            asuraku_flag: 0,
            asuraku_closing_time: "",
            asuraku_area: "",
            affiliate_rate: fixed_string(item.affiliate_rate_x10, 10),
            start_time: "",
            end_time: "",
            review_count: item.review_count,
            review_average: fixed_string(item.review_average_x100, 100),
            point_rate: item.point_rate,
            point_rate_start_time: &item.point_rate_start_time,
            point_rate_end_time: &item.point_rate_end_time,
            shop_name: &item.shop_name,
            shop_code: &item.shop_code,
            shop_url: item.shop_url(),
            genre_id: item.genre_id.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankingResponse<'a> {
    pub title: String,
    pub last_build_date: String,
    #[serde(rename = "Items")]
    pub items: Vec<Versioned<RankingItem<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchItem<'a> {
    pub item_name: &'a str,
    pub catchcopy: &'a str,
    pub item_code: &'a str,
    pub item_price: u64,
    pub item_caption: &'a str,
    pub item_url: String,
    pub affiliate_url: &'a str,
    pub shop_affiliate_url: &'a str,
    pub image_flag: u8,
    pub small_image_urls: Images<'a>,
    pub medium_image_urls: Images<'a>,
    pub availability: u8,
    pub tax_flag: u8,
    pub postage_flag: u8,
    pub credit_card_flag: u8,
    pub shop_of_the_year_flag: u8,
    pub ship_overseas_flag: u8,
    pub ship_overseas_area: &'a str,
    pub asuraku_flag: u8,
    pub asuraku_closing_time: &'a str,
    pub asuraku_area: &'a str,
    pub affiliate_rate: Fixed,
    pub start_time: &'a str,
    pub end_time: &'a str,
    pub review_count: u64,
    pub review_average: Fixed,
    pub point_rate: u32,
    pub point_rate_start_time: &'a str,
    pub point_rate_end_time: &'a str,
    pub gift_flag: u8,
    pub shop_name: &'a str,
    pub shop_code: &'a str,
    pub shop_url: String,
    pub genre_id: String,
    pub tag_ids: &'a [u64],
}

impl<'a> SearchItem<'a> {
    pub fn new(item: &'a Item, v1: bool) -> Self {
        SearchItem {
            item_name: &item.name,
            catchcopy: &item.catchcopy,
            item_code: &item.item_code,
            item_price: item.price,
            item_caption: &item.caption,
            item_url: item.item_url(),
            affiliate_url: "",
            shop_affiliate_url: "",
            image_flag: item.image_flag,
            small_image_urls: Images {
                urls: &item.image_urls,
                size: "64x64",
                v1,
            },
            medium_image_urls: Images {
                urls: &item.image_urls,
                size: "128x128",
                v1,
            },
            availability: item.availability,
            tax_flag: 0,
            postage_flag: item.postage_flag,
            credit_card_flag: item.credit_card_flag,
            shop_of_the_year_flag: item.shop_of_the_year_flag,
            ship_overseas_flag: 0,
            ship_overseas_area: "",
            asuraku_flag: 0,
            asuraku_closing_time: "",
            asuraku_area: "",
            affiliate_rate: Fixed {
                value: item.affiliate_rate_x10,
                scale: 10,
            },
            start_time: "",
            end_time: "",
            review_count: item.review_count,
            review_average: Fixed {
                value: item.review_average_x100,
                scale: 100,
            },
            point_rate: item.point_rate,
            point_rate_start_time: &item.point_rate_start_time,
            point_rate_end_time: &item.point_rate_end_time,
            gift_flag: item.gift_flag,
            shop_name: &item.shop_name,
            shop_code: &item.shop_code,
            shop_url: item.shop_url(),
            genre_id: item.genre_id.to_string(),
            tag_ids: &item.tag_ids,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse<'a> {
    pub count: usize,
    pub page: u32,
    pub first: usize,
    pub last: usize,
    pub hits: usize,
    pub carrier: u32,
    pub page_count: usize,
    #[serde(rename = "Items")]
    pub items: Vec<Versioned<SearchItem<'a>>>,
    #[serde(rename = "GenreInformation")]
    pub genre_information: [(); 0],
    #[serde(rename = "TagInformation")]
    pub tag_information: [(); 0],
}

/// Zero hits: exactly the keys of `item_search_with_no_items.json` (no `Items`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptySearchResponse {
    pub count: usize,
    pub page: u32,
    pub first: usize,
    pub last: usize,
    pub hits: usize,
    pub page_count: usize,
}

// ---- Genre Search, 2014/2017 shape ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OldGenre<'a> {
    pub genre_id: u64,
    pub genre_name: &'a str,
    pub genre_level: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub english_name: Option<&'a str>,
}

impl<'a> OldGenre<'a> {
    pub fn new(g: &'a Genre, english: bool) -> Self {
        OldGenre {
            genre_id: g.id,
            genre_name: &g.name,
            genre_level: g.level,
            english_name: english.then_some(g.english_name.as_str()),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTag<'a> {
    pub tag_id: u64,
    pub tag_name: &'a str,
    pub parent_tag_id: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTagGroup<'a> {
    pub tag_group_name: &'a str,
    pub tag_group_id: u64,
    pub tags: Vec<Versioned<WireTag<'a>>>,
}

impl<'a> WireTagGroup<'a> {
    pub fn new(group: &'a TagGroup, tags: impl Iterator<Item = &'a Tag>, v1: bool) -> Self {
        WireTagGroup {
            tag_group_name: &group.name,
            tag_group_id: group.id,
            tags: tags
                .map(|t| {
                    wrap(
                        v1,
                        "tag",
                        WireTag {
                            tag_id: t.id,
                            tag_name: &t.name,
                            parent_tag_id: t.parent_tag_id,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OldGenreResponse<'a> {
    pub parents: Vec<Versioned<OldGenre<'a>>>,
    pub current: OldGenre<'a>,
    pub brothers: Vec<Versioned<OldGenre<'a>>>,
    pub children: Vec<Versioned<OldGenre<'a>>>,
    pub tag_groups: Vec<Versioned<WireTagGroup<'a>>>,
}

impl<'a> OldGenreResponse<'a> {
    pub fn new(ds: &'a Dataset, g: &'a Genre, english: bool, v1: bool) -> Self {
        let node = |key: &'static str, x: &'a Genre| wrap(v1, key, OldGenre::new(x, english));
        OldGenreResponse {
            parents: ds
                .ancestors(g.id)
                .into_iter()
                .map(|p| node("parent", p))
                .collect(),
            current: OldGenre::new(g, english),
            brothers: siblings(ds, g).map(|b| node("brother", b)).collect(),
            children: g
                .children
                .iter()
                .filter_map(|c| ds.genre(*c))
                .map(|c| node("child", c))
                .collect(),
            tag_groups: g
                .tag_groups
                .iter()
                .filter_map(|id| ds.tag_group(*id))
                .map(|grp| {
                    wrap(
                        v1,
                        "tagGroup",
                        WireTagGroup::new(grp, grp.tags.iter().filter_map(|t| ds.tag(*t)), v1),
                    )
                })
                .collect(),
        }
    }
}

fn siblings<'a>(ds: &'a Dataset, g: &'a Genre) -> impl Iterator<Item = &'a Genre> + 'a {
    let list: &[u64] = if g.level == 0 {
        &[]
    } else {
        ds.genre(g.parent)
            .map(|p| p.children.as_slice())
            .unwrap_or(&[])
    };
    list.iter()
        .filter(move |id| **id != g.id)
        .filter_map(|id| ds.genre(*id))
}

// ---- Genre Search, 2026 shape ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewGenre<'a> {
    pub genre_id: u64,
    pub name_ja: &'a str,
    pub name_en: &'a str,
    pub level: u32,
}

impl<'a> NewGenre<'a> {
    pub fn new(g: &'a Genre) -> Self {
        NewGenre {
            genre_id: g.id,
            name_ja: &g.name,
            name_en: &g.english_name,
            level: g.level,
        }
    }
}

#[derive(Serialize)]
pub struct NewGenreResponse<'a> {
    pub genre: NewGenre<'a>,
    pub ancestors: Vec<NewGenre<'a>>,
    pub siblings: Vec<NewGenre<'a>>,
    pub children: Vec<NewGenre<'a>>,
    pub attributes: [(); 0],
}

impl<'a> NewGenreResponse<'a> {
    pub fn new(ds: &'a Dataset, g: &'a Genre) -> Self {
        NewGenreResponse {
            genre: NewGenre::new(g),
            ancestors: ds.ancestors(g.id).into_iter().map(NewGenre::new).collect(),
            siblings: siblings(ds, g).map(NewGenre::new).collect(),
            children: g
                .children
                .iter()
                .filter_map(|c| ds.genre(*c))
                .map(NewGenre::new)
                .collect(),
            attributes: [],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagSearchResponse<'a> {
    pub tag_groups: Vec<Versioned<WireTagGroup<'a>>>,
}

// ---- errors ----

#[derive(Serialize)]
pub struct ClassicError<'a> {
    pub error: &'a str,
    pub error_description: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayErrorBody<'a> {
    pub error_code: u16,
    pub error_message: &'a str,
}

#[derive(Serialize)]
pub struct GatewayError<'a> {
    pub errors: GatewayErrorBody<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_formats() {
        assert_eq!(fixed_string(400, 100), "4.0");
        assert_eq!(fixed_string(452, 100), "4.52");
        assert_eq!(fixed_string(450, 100), "4.5");
        assert_eq!(fixed_string(0, 100), "0.0");
        assert_eq!(fixed_string(10, 10), "1.0");
        assert_eq!(
            serde_json::to_string(&Fixed {
                value: 0,
                scale: 100
            })
            .unwrap(),
            "0"
        );
        assert_eq!(
            serde_json::to_string(&Fixed {
                value: 452,
                scale: 100
            })
            .unwrap(),
            "4.52"
        );
        assert_eq!(
            serde_json::to_string(&Fixed {
                value: 10,
                scale: 10
            })
            .unwrap(),
            "1"
        );
    }

    #[test]
    fn wrapper_shapes() {
        let urls = vec!["https://x/a.jpg".to_string()];
        let v1 = serde_json::to_string(&Images {
            urls: &urls,
            size: "64x64",
            v1: true,
        })
        .unwrap();
        assert_eq!(v1, r#"[{"imageUrl":"https://x/a.jpg?_ex=64x64"}]"#);
        let v2 = serde_json::to_string(&Images {
            urls: &urls,
            size: "64x64",
            v1: false,
        })
        .unwrap();
        assert_eq!(v2, r#"["https://x/a.jpg?_ex=64x64"]"#);
    }
}
