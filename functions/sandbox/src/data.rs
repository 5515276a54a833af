//! The synthetic, seed-deterministic data set behind the sandbox: a genre tree, tag groups
//! with tags, items, and the daily rankings derived from them.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use crate::SandboxConfig;

/// Ranks beyond this are never served (the real API stops at 1000).
pub const MAX_RANK: usize = 1000;
/// Rows per ranking page.
pub const RANKING_PAGE_SIZE: usize = 30;
/// Highest ranking page accepted.
pub const RANKING_MAX_PAGE: u32 = 34;

/// One node of the genre tree. The root has id 0, level 0 and an empty name.
#[derive(Clone, Debug)]
pub struct Genre {
    pub id: u64,
    pub name: String,
    pub english_name: String,
    /// 0 for the root, 1..=3 below it.
    pub level: u32,
    /// Parent genre id (0 for level-1 genres and for the root itself).
    pub parent: u64,
    /// Direct children, in display order.
    pub children: Vec<u64>,
    /// Tag groups shown for this genre by Genre Search (items of the genre draw tags from them).
    pub tag_groups: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct TagGroup {
    pub id: u64,
    pub name: String,
    /// Tags of the group, in display order.
    pub tags: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Tag {
    pub id: u64,
    pub name: String,
    /// 0 for a top-level tag, else another tag of the same group.
    pub parent_tag_id: u64,
    pub group_id: u64,
}

#[derive(Clone, Debug)]
pub struct Item {
    /// `shopCode:itemId`
    pub item_code: String,
    pub item_id: u64,
    pub name: String,
    pub catchcopy: String,
    pub caption: String,
    /// Yen, tax included.
    pub price: u64,
    pub shop_code: String,
    pub shop_name: String,
    pub genre_id: u64,
    pub tag_ids: Vec<u64>,
    pub review_count: u64,
    /// Review average in hundredths (452 = 4.52); 0 when there are no reviews.
    pub review_average_x100: u32,
    pub point_rate: u32,
    pub point_rate_start_time: String,
    pub point_rate_end_time: String,
    /// Affiliate rate in tenths of a percent (10 = 1.0).
    pub affiliate_rate_x10: u32,
    /// 1 = purchasable, 0 = sold out.
    pub availability: u8,
    pub image_flag: u8,
    /// Image URLs without the `?_ex=` size suffix.
    pub image_urls: Vec<String>,
    pub postage_flag: u8,
    pub credit_card_flag: u8,
    pub shop_of_the_year_flag: u8,
    pub gift_flag: u8,
    /// Static popularity used as the base of every ranking score.
    pub popularity: u64,
}

impl Item {
    pub fn item_url(&self) -> String {
        format!(
            "https://item.sandbox.invalid/{}/{}/",
            self.shop_code, self.item_id
        )
    }
    pub fn shop_url(&self) -> String {
        format!("https://www.sandbox.invalid/{}/", self.shop_code)
    }
}

/// Everything the sandbox serves. Same config (seed and sizes) → identical data set.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub seed: u64,
    /// All genres, the root (id 0) first.
    pub genres: Vec<Genre>,
    pub tag_groups: Vec<TagGroup>,
    pub tags: Vec<Tag>,
    pub items: Vec<Item>,
    genre_index: HashMap<u64, usize>,
    tag_index: HashMap<u64, usize>,
    tag_group_index: HashMap<u64, usize>,
    item_index: HashMap<String, usize>,
    /// genre id → indices (into `items`) of the items in that genre's subtree, ascending.
    subtree_items: HashMap<u64, Vec<u32>>,
}

const LEVEL1: &[(&str, &str)] = &[
    ("CD・DVD・楽器", "CDs, DVDs & Instruments"),
    ("インテリア・寝具・収納", "Interior, Bedding & Storage"),
    ("おもちゃ・ホビー・ゲーム", "Toys, Hobbies & Games"),
    ("キッズ・ベビー・マタニティ", "Kids, Baby & Maternity"),
    (
        "日用品雑貨・文房具・手芸",
        "Daily Goods, Stationery & Crafts",
    ),
    ("ジュエリー・アクセサリー", "Jewelry & Accessories"),
    ("スポーツ・アウトドア", "Sports & Outdoors"),
    ("ダイエット・健康", "Diet & Health"),
    ("水・ソフトドリンク", "Water & Soft Drinks"),
    ("パソコン・周辺機器", "Computers & Peripherals"),
    ("バッグ・小物・ブランド雑貨", "Bags & Brand Goods"),
    ("レディースファッション", "Women's Fashion"),
    ("花・ガーデン・DIY", "Flowers, Garden & DIY"),
    ("ペット・ペットグッズ", "Pets & Pet Supplies"),
    ("TV・オーディオ・カメラ", "TV, Audio & Cameras"),
    ("食品", "Food"),
    ("美容・コスメ・香水", "Beauty, Cosmetics & Perfume"),
    ("本・雑誌・コミック", "Books, Magazines & Comics"),
    ("スイーツ・お菓子", "Sweets & Snacks"),
    ("メンズファッション", "Men's Fashion"),
    ("日本酒・焼酎", "Sake & Shochu"),
    ("ビール・洋酒", "Beer & Liquor"),
    ("キッチン用品・食器・調理器具", "Kitchenware & Tableware"),
    ("家電", "Home Appliances"),
    ("靴", "Shoes"),
    ("腕時計", "Watches"),
];

const NOUNS: &[(&str, &str)] = &[
    ("チョコレート", "Chocolate"),
    ("クッキー", "Cookies"),
    ("ミネラルウォーター", "Mineral Water"),
    ("コーヒー", "Coffee"),
    ("紅茶", "Black Tea"),
    ("日本茶", "Japanese Tea"),
    ("ケーキ", "Cakes"),
    ("せんべい", "Rice Crackers"),
    ("タオル", "Towels"),
    ("枕", "Pillows"),
    ("ソファ", "Sofas"),
    ("ラグ", "Rugs"),
    ("スニーカー", "Sneakers"),
    ("ブーツ", "Boots"),
    ("Tシャツ", "T-shirts"),
    ("ワンピース", "Dresses"),
    ("ジャケット", "Jackets"),
    ("リュック", "Backpacks"),
    ("財布", "Wallets"),
    ("イヤホン", "Earphones"),
    ("スピーカー", "Speakers"),
    ("カメラ", "Cameras"),
    ("マウス", "Mice"),
    ("キーボード", "Keyboards"),
    ("米", "Rice"),
    ("精肉", "Meat"),
    ("魚介類", "Seafood"),
    ("フルーツ", "Fruit"),
    ("野菜", "Vegetables"),
    ("調味料", "Seasonings"),
    ("ドッグフード", "Dog Food"),
    ("キャットフード", "Cat Food"),
    ("テント", "Tents"),
    ("ゴルフ用品", "Golf"),
    ("ヨガ用品", "Yoga"),
    ("化粧水", "Lotion"),
    ("シャンプー", "Shampoo"),
    ("香水", "Perfume"),
    ("サプリメント", "Supplements"),
    ("プロテイン", "Protein"),
    ("絵本", "Picture Books"),
    ("コミック", "Comics"),
    ("ノート", "Notebooks"),
    ("ぬいぐるみ", "Stuffed Toys"),
    ("プラモデル", "Plastic Models"),
    ("花束", "Bouquets"),
    ("観葉植物", "Houseplants"),
    ("電動工具", "Power Tools"),
    ("ワイン", "Wine"),
    ("焼酎", "Shochu"),
    ("フライパン", "Frying Pans"),
    ("マグカップ", "Mugs"),
];

const MODIFIERS: &[(&str, &str)] = &[
    ("国産", "Domestic "),
    ("輸入", "Imported "),
    ("ギフト用", "Gift "),
    ("業務用", "Commercial "),
    ("子供用", "Kids' "),
    ("大容量", "Large "),
    ("限定", "Limited "),
    ("その他の", "Other "),
];

const TAG_GROUPS: &[(&str, &[&str])] = &[
    (
        "サイズ（S/M/L）",
        &["SS", "S", "M", "L", "LL", "3L", "4L", "5L", "フリー", "XS"],
    ),
    (
        "カラー",
        &[
            "ブラック",
            "ホワイト",
            "レッド",
            "ブルー",
            "グリーン",
            "イエロー",
            "ピンク",
            "ベージュ",
            "グレー",
            "ネイビー",
        ],
    ),
    (
        "内容量",
        &[
            "1個", "3個", "6個", "12個", "24個", "48個", "100g", "500g", "1kg", "2kg",
        ],
    ),
    (
        "素材",
        &[
            "綿",
            "麻",
            "シルク",
            "ウール",
            "ポリエステル",
            "レザー",
            "ステンレス",
            "木製",
            "ガラス",
            "陶器",
        ],
    ),
    (
        "原産国",
        &[
            "日本",
            "中国",
            "アメリカ",
            "フランス",
            "イタリア",
            "ドイツ",
            "韓国",
            "タイ",
            "ベトナム",
            "イギリス",
        ],
    ),
    (
        "対象",
        &[
            "メンズ",
            "レディース",
            "キッズ",
            "ベビー",
            "シニア",
            "ユニセックス",
            "犬用",
            "猫用",
            "男の子",
            "女の子",
        ],
    ),
    (
        "用途",
        &[
            "ギフト",
            "自宅用",
            "業務用",
            "アウトドア",
            "旅行",
            "通勤",
            "通学",
            "母の日",
            "父の日",
            "お中元",
        ],
    ),
    (
        "味",
        &[
            "甘口",
            "辛口",
            "中辛",
            "しょうゆ",
            "みそ",
            "塩",
            "バニラ",
            "抹茶",
            "いちご",
            "チョコ",
        ],
    ),
    ("保存方法", &["常温", "冷蔵", "冷凍", "要冷蔵", "要冷凍"]),
    (
        "ブランド",
        &[
            "サンドボックス",
            "ミヤビ",
            "ハルカ",
            "アオゾラ",
            "ヤマト",
            "コダマ",
            "サクラ",
            "ツバメ",
            "ミドリ",
            "ヒカリ",
        ],
    ),
];

const NAME_PREFIXES: &[&str] = &[
    "【送料無料】",
    "【公式】",
    "【楽天1位】",
    "【限定】",
    "【P5倍】",
    "",
    "",
];
const NAME_SUFFIXES: &[&str] = &[
    "ギフト",
    "セット",
    "お試し",
    "大容量",
    "人気",
    "訳あり",
    "新作",
    "定番",
];
const UNITS: &[&str] = &["個入", "本セット", "枚組", "袋", "点セット"];
const CATCHCOPIES: &[&str] = &[
    "楽天ランキング常連！リピーター続出の人気商品",
    "あす楽対応・ギフト包装無料",
    "期間限定ポイント5倍！お早めにどうぞ",
    "送料無料でお届けします",
    "レビューを書いて次回使えるクーポンプレゼント",
    "",
];
const SENTENCES: &[&str] = &[
    "厳選した素材を使用しています。",
    "ご自宅用にも贈り物にも最適です。",
    "丁寧に一つずつ検品してお届けします。",
    "在庫限りの特別価格です。",
    "商品の色味はご覧の環境により異なる場合があります。",
    "お届けまで3〜5営業日ほどいただきます。",
];
const SHOP_WORDS: &[&str] = &[
    "さくら",
    "ひまわり",
    "みどり",
    "あおぞら",
    "こだま",
    "ふじ",
    "うみ",
    "やまと",
];
const SHOP_KINDS: &[&str] = &["商店", "ストア", "マーケット", "本舗", "堂", "屋"];

fn unique_id(rng: &mut StdRng, used: &mut HashSet<u64>, lo: u64, hi: u64) -> u64 {
    loop {
        let id = rng.random_range(lo..hi);
        if used.insert(id) {
            return id;
        }
    }
}

impl Dataset {
    /// Generate the data set for `config` (only `seed`, `genres`, `items` and `tags` matter).
    pub fn generate(config: &SandboxConfig) -> Dataset {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n_genres = config.genres.max(1);

        // ---- tags and tag groups ----
        let n_tags = config.tags;
        let n_groups = n_tags.div_ceil(10);
        let mut tag_groups = Vec::with_capacity(n_groups);
        let mut tags = Vec::with_capacity(n_tags);
        let mut used_group_ids = HashSet::new();
        let mut used_tag_ids = HashSet::new();
        let group_hi = 1_000_000 + (n_groups as u64 * 20).max(1000);
        let tag_hi = 1_000_300 + (n_tags as u64 * 20).max(10_000);
        for g in 0..n_groups {
            let (base_name, values) = TAG_GROUPS[g % TAG_GROUPS.len()];
            let round = g / TAG_GROUPS.len();
            let name = if round == 0 {
                base_name.to_string()
            } else {
                format!("{base_name}{}", round + 1)
            };
            let group_id = unique_id(&mut rng, &mut used_group_ids, 1_000_001, group_hi);
            // spread n_tags as evenly as possible over the groups
            let size = n_tags / n_groups + usize::from(g < n_tags % n_groups);
            let mut group_tags: Vec<u64> = Vec::with_capacity(size);
            let mut top_level: Vec<u64> = Vec::new();
            for j in 0..size {
                let id = unique_id(&mut rng, &mut used_tag_ids, 1_000_300, tag_hi);
                let tag_name = match values.get(j) {
                    Some(v) if round == 0 => (*v).to_string(),
                    Some(v) => format!("{v}{}", round + 1),
                    None => format!("{base_name}{}-{}", round + 1, j + 1),
                };
                let parent_tag_id = if !top_level.is_empty() && rng.random_bool(0.2) {
                    *top_level.choose(&mut rng).unwrap_or(&0)
                } else {
                    top_level.push(id);
                    0
                };
                tags.push(Tag {
                    id,
                    name: tag_name,
                    parent_tag_id,
                    group_id,
                });
                group_tags.push(id);
            }
            tag_groups.push(TagGroup {
                id: group_id,
                name,
                tags: group_tags,
            });
        }

        // ---- genre tree ----
        let l1 = n_genres.div_ceil(12).clamp(1, n_genres);
        let rest = n_genres - l1;
        let l2 = rest.div_ceil(3).min(rest);
        let l3 = rest - l2;
        let mut used_genre_ids = HashSet::new();
        let genre_hi = 100_000 + (n_genres as u64 * 50).max(500_000);
        let mut genres: Vec<Genre> = Vec::with_capacity(n_genres + 1);
        genres.push(Genre {
            id: 0,
            name: String::new(),
            english_name: String::new(),
            level: 0,
            parent: 0,
            children: Vec::new(),
            tag_groups: Vec::new(),
        });
        let mut noun_of: Vec<usize> = vec![0]; // per genre: NOUNS index used (level 2+)
        let mut push_genre = |genres: &mut Vec<Genre>,
                              noun_of: &mut Vec<usize>,
                              rng: &mut StdRng,
                              parent_idx: usize,
                              name: String,
                              english_name: String,
                              noun: usize| {
            let id = unique_id(rng, &mut used_genre_ids, 100_000, genre_hi);
            let level = genres[parent_idx].level + 1;
            let parent = genres[parent_idx].id;
            let n_groups_here = if tag_groups.is_empty() {
                0
            } else {
                rng.random_range(1..=3usize)
            };
            let groups: Vec<u64> = tag_groups
                .choose_multiple(rng, n_groups_here)
                .map(|g| g.id)
                .collect();
            genres.push(Genre {
                id,
                name,
                english_name,
                level,
                parent,
                children: Vec::new(),
                tag_groups: groups,
            });
            noun_of.push(noun);
            let idx = genres.len() - 1;
            genres[parent_idx].children.push(id);
            idx
        };
        let mut level1_idx = Vec::with_capacity(l1);
        for i in 0..l1 {
            let (ja, en) = LEVEL1[i % LEVEL1.len()];
            let round = i / LEVEL1.len();
            let (ja, en) = if round == 0 {
                (ja.to_string(), en.to_string())
            } else {
                (format!("{ja}{}", round + 1), format!("{en} {}", round + 1))
            };
            let idx = push_genre(&mut genres, &mut noun_of, &mut rng, 0, ja, en, 0);
            level1_idx.push(idx);
        }
        let mut level2_idx = Vec::with_capacity(l2);
        for i in 0..l2 {
            let parent = if i < l1 {
                level1_idx[i]
            } else {
                *level1_idx.choose(&mut rng).unwrap_or(&0)
            };
            let noun = rng.random_range(0..NOUNS.len());
            let (ja, en) = NOUNS[noun];
            let idx = push_genre(
                &mut genres,
                &mut noun_of,
                &mut rng,
                parent,
                ja.to_string(),
                en.to_string(),
                noun,
            );
            level2_idx.push(idx);
        }
        for i in 0..l3 {
            let parent = if i < l2 {
                level2_idx[i]
            } else {
                *level2_idx.choose(&mut rng).unwrap_or(&0)
            };
            let (mja, men) = MODIFIERS[rng.random_range(0..MODIFIERS.len())];
            let noun = noun_of[parent];
            let (nja, nen) = NOUNS[noun];
            push_genre(
                &mut genres,
                &mut noun_of,
                &mut rng,
                parent,
                format!("{mja}{nja}"),
                format!("{men}{nen}"),
                noun,
            );
        }
        let genre_index: HashMap<u64, usize> =
            genres.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
        let leaves: Vec<usize> = (1..genres.len())
            .filter(|&i| genres[i].children.is_empty())
            .collect();
        let tag_index: HashMap<u64, usize> =
            tags.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let tag_group_index: HashMap<u64, usize> = tag_groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id, i))
            .collect();

        // ---- shops and items ----
        let n_shops = (config.items / 15).max(1);
        let shops: Vec<(String, String)> = (0..n_shops)
            .map(|s| {
                let code = format!("shop-{:02}", s + 1);
                let name = format!(
                    "{}{} {}号店",
                    SHOP_WORDS[rng.random_range(0..SHOP_WORDS.len())],
                    SHOP_KINDS[rng.random_range(0..SHOP_KINDS.len())],
                    s + 1
                );
                (code, name)
            })
            .collect();
        let mut next_item_id = vec![10_000_001u64; n_shops];
        let mut items = Vec::with_capacity(config.items);
        for _ in 0..config.items {
            let shop = rng.random_range(0..n_shops);
            let item_id = next_item_id[shop] + rng.random_range(0..3);
            next_item_id[shop] = item_id + 1;
            let (shop_code, shop_name) = shops[shop].clone();
            let genre_idx = if leaves.is_empty() {
                0
            } else {
                leaves[rng.random_range(0..leaves.len())]
            };
            let genre = &genres[genre_idx];
            let name = format!(
                "{}{} {} {}{}",
                NAME_PREFIXES[rng.random_range(0..NAME_PREFIXES.len())],
                genre.name,
                NAME_SUFFIXES[rng.random_range(0..NAME_SUFFIXES.len())],
                rng.random_range(1..=48u32),
                UNITS[rng.random_range(0..UNITS.len())]
            );
            let catchcopy = CATCHCOPIES[rng.random_range(0..CATCHCOPIES.len())].to_string();
            let caption = format!(
                "{name}。{}{}",
                SENTENCES[rng.random_range(0..SENTENCES.len())],
                SENTENCES[rng.random_range(0..SENTENCES.len())]
            );
            // log-uniform-ish price between ~200 and ~60,000 yen, rounded to 10
            let exp: f64 = rng.random_range(2.3..4.8);
            let price = ((10f64.powf(exp) / 10.0).round() as u64).max(1) * 10;
            let r: f64 = rng.random();
            let review_count = (r * r * r * 5000.0) as u64;
            let review_average_x100 = if review_count == 0 {
                0
            } else if rng.random_bool(0.5) {
                rng.random_range(30..=50u32) * 10
            } else {
                rng.random_range(250..=500u32)
            };
            let point_rate = *[1u32, 1, 1, 1, 1, 1, 1, 2, 3, 5, 10]
                .choose(&mut rng)
                .unwrap_or(&1);
            let (point_rate_start_time, point_rate_end_time) = if point_rate > 1 {
                let month = rng.random_range(1..=12u32);
                let day = rng.random_range(1..=20u32);
                (
                    format!("2026-{month:02}-{day:02} 10:00"),
                    format!("2026-{month:02}-{:02} 09:59", day + 7),
                )
            } else {
                (String::new(), String::new())
            };
            let affiliate_rate_x10 = *[10u32, 10, 10, 20, 30, 40, 50, 80]
                .choose(&mut rng)
                .unwrap_or(&10);
            let availability = u8::from(rng.random_bool(0.92));
            let image_flag = u8::from(rng.random_bool(0.95));
            let image_urls = if image_flag == 1 {
                (1..=rng.random_range(1..=3u32))
                    .map(|k| {
                        format!("https://thumbnail.sandbox.invalid/@0_mall/{shop_code}/cabinet/{item_id}_{k}.jpg")
                    })
                    .collect()
            } else {
                Vec::new()
            };
            // tags: 0-6 distinct tags from the genre's tag groups
            let pool: Vec<u64> = genre
                .tag_groups
                .iter()
                .flat_map(|g| tag_groups[tag_group_index[g]].tags.iter().copied())
                .collect();
            let n_item_tags = rng.random_range(0..=6usize).min(pool.len());
            let tag_ids: Vec<u64> = pool
                .choose_multiple(&mut rng, n_item_tags)
                .copied()
                .collect();
            let pop: f64 = rng.random();
            let popularity = (pop * pop * 1_000_000.0) as u64 + review_count * 50;
            items.push(Item {
                item_code: format!("{shop_code}:{item_id}"),
                item_id,
                name,
                catchcopy,
                caption,
                price,
                shop_code,
                shop_name,
                genre_id: genre.id,
                tag_ids,
                review_count,
                review_average_x100,
                point_rate,
                point_rate_start_time,
                point_rate_end_time,
                affiliate_rate_x10,
                availability,
                image_flag,
                image_urls,
                postage_flag: u8::from(rng.random_bool(0.3)),
                credit_card_flag: 1,
                shop_of_the_year_flag: u8::from(rng.random_bool(0.05)),
                gift_flag: u8::from(rng.random_bool(0.4)),
                popularity,
            });
        }
        // Children of non-root genres get a shuffled (real-looking) display order.
        for g in genres.iter_mut() {
            if g.level >= 1 {
                g.children.shuffle(&mut rng);
            }
        }
        let item_index: HashMap<String, usize> = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.item_code.clone(), i))
            .collect();

        // ---- subtree item lists ----
        let mut subtree_items: HashMap<u64, Vec<u32>> =
            genres.iter().map(|g| (g.id, Vec::new())).collect();
        for (i, item) in items.iter().enumerate() {
            let mut gid = item.genre_id;
            loop {
                if let Some(list) = subtree_items.get_mut(&gid) {
                    list.push(i as u32);
                }
                if gid == 0 {
                    break;
                }
                gid = genres[genre_index[&gid]].parent;
            }
        }

        Dataset {
            seed: config.seed,
            genres,
            tag_groups,
            tags,
            items,
            genre_index,
            tag_index,
            tag_group_index,
            item_index,
            subtree_items,
        }
    }

    pub fn genre(&self, id: u64) -> Option<&Genre> {
        self.genre_index.get(&id).map(|&i| &self.genres[i])
    }

    pub fn tag(&self, id: u64) -> Option<&Tag> {
        self.tag_index.get(&id).map(|&i| &self.tags[i])
    }

    pub fn tag_group(&self, id: u64) -> Option<&TagGroup> {
        self.tag_group_index.get(&id).map(|&i| &self.tag_groups[i])
    }

    pub fn item(&self, item_code: &str) -> Option<&Item> {
        self.item_index.get(item_code).map(|&i| &self.items[i])
    }

    /// Ancestors of a genre from level 1 down to its parent (the root excluded).
    pub fn ancestors(&self, id: u64) -> Vec<&Genre> {
        let mut out = Vec::new();
        let Some(mut g) = self.genre(id) else {
            return out;
        };
        while g.level > 1 {
            match self.genre(g.parent) {
                Some(p) => {
                    out.push(p);
                    g = p;
                }
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// Indices (into `items`) of all items in the genre's subtree; `None` for an unknown genre.
    pub fn subtree_item_indices(&self, genre_id: u64) -> Option<&[u32]> {
        self.subtree_items.get(&genre_id).map(Vec::as_slice)
    }

    /// The ranking the sandbox serves for `genre_id` (0 = overall) on `date` (`YYYY-MM-DD`):
    /// item indices in rank order (rank 1 first), at most 1000. `realtime` selects
    /// `period=realtime`. `None` for an unknown genre.
    ///
    /// This is the first build of `date` (see [`crate::SandboxConfig::build_date_lag_days`]
    /// and [`crate::RankingRebuild`] for what a sandbox serves instead when those are set).
    pub fn ranking(&self, genre_id: u64, date: &str, realtime: bool) -> Option<Vec<u32>> {
        let variant = if realtime { "realtime" } else { "daily" };
        self.ranking_variant(genre_id, date, variant)
    }

    /// Same as [`Dataset::ranking`] for build `build` of that day's ranking: build 0 is the
    /// day's first build, build k > 0 the k-th rebuild ([`crate::RankingRebuild`]), which
    /// keeps the members and moves items by a few ranks.
    pub fn ranking_build(
        &self,
        genre_id: u64,
        date: &str,
        realtime: bool,
        build: u32,
    ) -> Option<Vec<u32>> {
        let variant = if realtime { "realtime" } else { "daily" };
        self.ranking_scored(genre_id, date, variant, build)
    }

    /// Same as [`Dataset::ranking`] with an arbitrary variant key (used for age/sex rankings).
    pub(crate) fn ranking_variant(
        &self,
        genre_id: u64,
        date: &str,
        variant: &str,
    ) -> Option<Vec<u32>> {
        self.ranking_scored(genre_id, date, variant, 0)
    }

    /// The churn model (see the crate docs, "Day-to-day churn"): an item's score on day `d`
    /// is `popularity + slow + fast` where
    /// - `slow` is redrawn (uniform in `0..CHURN_SLOW_SPAN`) every `CHURN_WINDOW_DAYS` days,
    ///   each item on its own phase, so about one item in `CHURN_WINDOW_DAYS` changes it on
    ///   any given day: this moves items into and out of the ranking;
    /// - `fast` is drawn every day (uniform in `0..CHURN_FAST_SPAN`) and for every rebuild:
    ///   it moves the others by a few ranks.
    pub(crate) fn ranking_scored(
        &self,
        genre_id: u64,
        date: &str,
        variant: &str,
        build: u32,
    ) -> Option<Vec<u32>> {
        let members = self.subtree_item_indices(genre_id)?;
        let day = parse_date(date).map_or(0, |(y, m, d)| days_from_civil(y, m, d));
        let build = build.to_le_bytes();
        let mut scored: Vec<(u64, u32)> = members
            .iter()
            .map(|&i| {
                let item = &self.items[i as usize];
                let code = item.item_code.as_bytes();
                let phase = hash_parts(self.seed, &[b"phase", code]) % CHURN_WINDOW_DAYS as u64;
                let window = (day + phase as i64).div_euclid(CHURN_WINDOW_DAYS);
                let slow = hash_parts(
                    self.seed,
                    &[b"slow", variant.as_bytes(), code, &window.to_le_bytes()],
                ) % CHURN_SLOW_SPAN;
                let fast = hash_parts(
                    self.seed,
                    &[b"fast", date.as_bytes(), variant.as_bytes(), &build, code],
                ) % CHURN_FAST_SPAN;
                (item.popularity + slow + fast, i)
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(MAX_RANK);
        Some(scored.into_iter().map(|(_, i)| i).collect())
    }
}

/// Days between two redraws of an item's slow score component (each item on its own phase).
pub(crate) const CHURN_WINDOW_DAYS: i64 = 5;
/// Range of the slow score component (popularity ranges over 0..~1,250,000). Tuned so that
/// about 13 % of the default overall ranking is replaced each day (17 % with 20,000 items).
pub(crate) const CHURN_SLOW_SPAN: u64 = 2_500_000;
/// Range of the daily score component.
pub(crate) const CHURN_FAST_SPAN: u64 = 4_000;

/// splitmix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable (toolchain-independent) hash of the seed and some byte strings.
pub(crate) fn hash_parts(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ mix(seed);
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Map a hash to [0, 1).
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

// ---- dates (civil calendar, no external crate) ----

/// Days since 1970-01-01 → (year, month, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse `YYYY-MM-DD` (validated against the calendar).
pub(crate) fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    (civil_from_days(days_from_civil(y, m, d)) == (y, m, d)).then_some((y, m, d))
}

/// Today's date in JST (UTC+9) as `YYYY-MM-DD`.
pub fn today_jst() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs + 9 * 3600).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `Sat, 28 Jan 2017 00:00:00 +0900` for a `YYYY-MM-DD` date.
#[cfg(test)]
pub(crate) fn rfc822_midnight_jst(date: &str) -> String {
    let (y, m, d) = parse_date(date).unwrap_or((1970, 1, 1));
    rfc822_jst(days_from_civil(y, m, d), 0)
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub(crate) fn date_from_days(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `Sat, 28 Jan 2017 03:00:00 +0900`: `hours` after midnight JST of day `days`.
pub(crate) fn rfc822_jst(days: i64, hours: u32) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = days + i64::from(hours / 24);
    let hour = hours % 24;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {hour:02}:00:00 +0900",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2026, 6, 1)), (2026, 6, 1));
        assert_eq!(
            rfc822_midnight_jst("2017-01-28"),
            "Sat, 28 Jan 2017 00:00:00 +0900"
        );
        assert_eq!(
            rfc822_jst(days_from_civil(2026, 11, 30), 25),
            "Tue, 01 Dec 2026 01:00:00 +0900"
        );
        assert_eq!(date_from_days(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("2026-6-1").is_none());
        assert_eq!(today_jst().len(), 10);
    }

    /// Day-to-day churn of the default data set's overall ranking, over two weeks:
    /// (mean share of ranked items replaced, median |rank move| of the items that stay).
    fn churn_stats(cfg: &SandboxConfig, genre: u64) -> (f64, usize) {
        let ds = Dataset::generate(cfg);
        let day0 = days_from_civil(2026, 6, 1);
        let date = |d: i64| {
            let (y, m, dd) = civil_from_days(d);
            format!("{y:04}-{m:02}-{dd:02}")
        };
        let mut shares = Vec::new();
        let mut moves = Vec::new();
        for d in day0..day0 + 14 {
            let a = ds.ranking(genre, &date(d), false).unwrap_or_default();
            let b = ds.ranking(genre, &date(d + 1), false).unwrap_or_default();
            let pos_a: HashMap<u32, usize> = a.iter().enumerate().map(|(r, &i)| (i, r)).collect();
            let mut replaced = 0;
            for (r, i) in b.iter().enumerate() {
                match pos_a.get(i) {
                    Some(&ra) => moves.push(ra.abs_diff(r)),
                    None => replaced += 1,
                }
            }
            shares.push(replaced as f64 / b.len().max(1) as f64);
        }
        moves.sort_unstable();
        (
            shares.iter().sum::<f64>() / shares.len() as f64,
            moves.get(moves.len() / 2).copied().unwrap_or(0),
        )
    }

    #[test]
    fn daily_churn_is_realistic() {
        // The figures the crate docs quote (default data set: 13 % replaced, median move 9).
        let (share, median_move) = churn_stats(&SandboxConfig::default(), 0);
        assert!((0.10..=0.16).contains(&share), "replaced share {share}");
        assert!(median_move <= 12, "median move {median_move}");
    }

    #[test]
    fn default_dataset_is_consistent_and_fast() {
        let started = std::time::Instant::now();
        let cfg = SandboxConfig::default();
        let ds = Dataset::generate(&cfg);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(ds.genres.len(), cfg.genres + 1);
        assert_eq!(ds.items.len(), cfg.items);
        assert_eq!(ds.tags.len(), cfg.tags);
        assert!(ds.genres.iter().all(|g| g.level <= 3));
        for g in &ds.genres[1..] {
            let p = ds.genre(g.parent).expect("parent exists");
            assert_eq!(p.level + 1, g.level);
            assert!(p.children.contains(&g.id));
        }
        for it in &ds.items {
            assert!(ds.genre(it.genre_id).is_some());
            assert!(it.tag_ids.iter().all(|t| ds.tag(*t).is_some()));
            assert!(it.tag_ids.len() <= 6);
        }
        for t in &ds.tags {
            if t.parent_tag_id != 0 {
                assert_eq!(
                    ds.tag(t.parent_tag_id).map(|p| p.group_id),
                    Some(t.group_id)
                );
            }
        }
        assert_eq!(
            ds.subtree_item_indices(0).map(<[u32]>::len),
            Some(cfg.items)
        );
        let codes: HashSet<&str> = ds.items.iter().map(|i| i.item_code.as_str()).collect();
        assert_eq!(codes.len(), cfg.items);
        assert!(ds.items.iter().any(|i| i.availability == 0));
        // determinism
        let again = Dataset::generate(&cfg);
        assert_eq!(
            format!("{:?}", again.items[17]),
            format!("{:?}", ds.items[17])
        );
        assert_eq!(
            ds.ranking(0, "2026-06-01", false),
            again.ranking(0, "2026-06-01", false)
        );
        assert_ne!(
            ds.ranking(0, "2026-06-01", false),
            ds.ranking(0, "2026-06-02", false)
        );
    }
}
